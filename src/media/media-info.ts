/**
 * Converts an ffprobe report into CI's `<MediaInfo>` (shared/ci-api.md §4).
 *
 * Conventions, decided once here for every MediaInfo we emit (MediaInfo jobs,
 * and output info of transcode-like jobs):
 *
 * - **Units and formats** are those of CI's MediaInfo-job output: times and
 *   rates `%.6f` (`2.000000`), bitrates in kbps `%.6f` (ffprobe `bit_rate` /
 *   1000), integers plain, fractions as ffprobe prints them (`1/12800`, `4:3`).
 *   `Fps` and `AvgFps` are the evaluated `r_frame_rate` / `avg_frame_rate`
 *   (`30000/1001` → `29.970030`), never the raw fraction.
 * - **Element order** is alphabetical, as in CI's own callback sample
 *   (shared/seeds/002): `Format` then `Stream`; inside `Stream`, `Audio`,
 *   `Subtitle`, `Video`; inside each, the fields sorted by name. The fields
 *   that sample lacks (`CreationTime`, `Dar`, `Sar`) are slotted in by the
 *   same rule.
 * - **Missing values**: when ffprobe does not report a value (it omits the key)
 *   or reports one that means "unknown" (a `0/0` frame rate), the element is
 *   left out. The only exceptions are the defaults CI documents: `Language`
 *   is `und`, `ColorRange` / `ColorTransfer` / `ColorPrimaries` are `unknown`,
 *   and `Rotation` is `0.000000`. Values ffprobe does print pass through as
 *   printed (a `0:1` Sar, a `-99` Level), because CI's own output is ffprobe's.
 * - **Empty groups**: no video streams gives `Video: ''` (`<Video/>`), and
 *   likewise for `Audio`, `Subtitle` and `Format`. Non-empty groups are
 *   always arrays (one element per stream, in stream index order), so
 *   callers see one shape whether there are one or several.
 * - **Streams** are grouped by ffprobe `codec_type`; `data` and `attachment`
 *   streams are not listed (they still count in `Format/NumStream`). Cover
 *   art is a `video` stream to ffprobe and is listed as one.
 * - **Rotation** is clockwise degrees in [0, 360): see `clockwiseRotation`.
 */
import type { FfprobeFormat, FfprobeNumber, FfprobeReport, FfprobeStream } from './ffprobe.js';
import type { XmlObject } from '../xml/tree.js';

/**
 * The `<MediaInfo>` element for an ffprobe report.
 *
 * ```ts
 * toMediaInfo(await runFfprobe(file)).Stream // { Audio: [{ Bitrate: '64.226000', … }], Subtitle: '', Video: [...] }
 * ```
 */
export function toMediaInfo(report: FfprobeReport): XmlObject {
  const streams = [...(report.streams ?? [])].sort((a, b) => (toNumber(a.index) ?? 0) - (toNumber(b.index) ?? 0));
  const of = (type: string): FfprobeStream[] => streams.filter((stream) => stream.codec_type === type);
  return {
    Format: orEmpty(report.format ? formatElement(report.format) : {}),
    Stream: {
      Audio: orEmpty(of('audio').map(audioElement)),
      Subtitle: orEmpty(of('subtitle').map(subtitleElement)),
      Video: orEmpty(of('video').map(videoElement)),
    },
  };
}

function formatElement(format: FfprobeFormat): XmlObject {
  return element({
    Bitrate: kbps(format.bit_rate),
    Duration: fixed6(format.duration),
    FormatLongName: text(format.format_long_name),
    FormatName: text(format.format_name),
    NumProgram: integer(format.nb_programs),
    NumStream: integer(format.nb_streams),
    Size: integer(format.size),
    StartTime: fixed6(format.start_time),
  });
}

function videoElement(stream: FfprobeStream): XmlObject {
  return element({
    AvgFps: fixed6(rate(stream.avg_frame_rate)),
    Bitrate: kbps(stream.bit_rate),
    CodecLongName: text(stream.codec_long_name),
    CodecName: text(stream.codec_name),
    CodecTag: text(stream.codec_tag),
    CodecTagString: text(stream.codec_tag_string),
    CodecTimeBase: codecTimeBase(stream),
    ColorPrimaries: text(stream.color_primaries) ?? 'unknown',
    ColorRange: text(stream.color_range) ?? 'unknown',
    ColorTransfer: text(stream.color_transfer) ?? 'unknown',
    CreationTime: text(stream.tags?.creation_time),
    Dar: text(stream.display_aspect_ratio),
    Duration: fixed6(stream.duration),
    FieldOrder: text(stream.field_order),
    Fps: fixed6(rate(stream.r_frame_rate)),
    HasBFrame: integer(stream.has_b_frames),
    Height: integer(stream.height),
    Index: integer(stream.index),
    Language: language(stream),
    Level: integer(stream.level),
    NumFrames: integer(stream.nb_frames),
    PixFormat: text(stream.pix_fmt),
    Profile: text(stream.profile),
    RefFrames: integer(stream.refs),
    Rotation: clockwiseRotation(stream).toFixed(6),
    Sar: text(stream.sample_aspect_ratio),
    StartTime: fixed6(stream.start_time),
    Timebase: text(stream.time_base),
    Width: integer(stream.width),
  });
}

function audioElement(stream: FfprobeStream): XmlObject {
  return element({
    Bitrate: kbps(stream.bit_rate),
    Channel: integer(stream.channels),
    ChannelLayout: text(stream.channel_layout),
    CodecLongName: text(stream.codec_long_name),
    CodecName: text(stream.codec_name),
    CodecTag: text(stream.codec_tag),
    CodecTagString: text(stream.codec_tag_string),
    CodecTimeBase: codecTimeBase(stream),
    Duration: fixed6(stream.duration),
    Index: integer(stream.index),
    Language: language(stream),
    SampleFmt: text(stream.sample_fmt),
    SampleRate: integer(stream.sample_rate),
    StartTime: fixed6(stream.start_time),
    Timebase: text(stream.time_base),
  });
}

function subtitleElement(stream: FfprobeStream): XmlObject {
  return element({ Index: integer(stream.index), Language: language(stream) });
}

/**
 * How far the picture must be turned **clockwise** for display, in degrees,
 * normalised to [0, 360): a phone held upright records `90`, as the legacy
 * `rotate` tag and CI's samples mean it.
 *
 * Sources, in order:
 * 1. `tags.rotate` (ffprobe ≤ 4.x, e.g. ffprobe-static 4.0.2): already clockwise.
 * 2. The display matrix's `rotation` (every version): ffprobe prints
 *    `av_display_rotation_get()`, which is **counter-clockwise**, so it is
 *    negated (as FFmpeg's own autorotate does in `get_rotation()`).
 *
 * No version-specific sign flip is applied, because measuring showed none on
 * the *reading* side: given the same file, ffprobe-static 4.0.2 and Debian's
 * ffprobe 5.1.9 print the same matrix and the same `rotation`. For the
 * iPhone-portrait matrix `[0 1 0; -1 0 0; 0 0 1]`
 * (fixtures/media/rotated-phone.mp4) both print `rotation: -90`, and 4.0.2
 * adds `rotate: "90"`; for the opposite matrix both print `90` and 4.0.2 adds
 * `rotate: "270"`. The flip people see "since 5.1" is on the *writing* side:
 * ffmpeg 5.1 turns `-metadata:s:v rotate=90` into that opposite
 * (counter-clockwise) matrix, and ffmpeg ≥ 6's `-display_rotation` is
 * counter-clockwise by definition, so a file *made* with "rotate 90" by a
 * newer ffmpeg really is rotated the other way. Tag and matrix therefore agree
 * whenever both appear, and a report from any version gives the same answer.
 */
export function clockwiseRotation(stream: FfprobeStream): number {
  const tag = toNumber(stream.tags?.rotate);
  if (tag !== undefined) return normaliseDegrees(tag);
  for (const sideData of stream.side_data_list ?? []) {
    const counterClockwise = toNumber(sideData.rotation);
    if (sideData.side_data_type === 'Display Matrix' && counterClockwise !== undefined) {
      return normaliseDegrees(-counterClockwise);
    }
  }
  return 0;
}

function normaliseDegrees(degrees: number): number {
  const normalised = ((degrees % 360) + 360) % 360;
  return normalised === 0 ? 0 : normalised; // no `-0.000000`
}

/** `codec_time_base` was removed in ffprobe 5.0; CI's samples show it equal to `time_base`. */
function codecTimeBase(stream: FfprobeStream): string | undefined {
  return text(stream.codec_time_base) ?? text(stream.time_base);
}

function language(stream: FfprobeStream): string {
  return text(stream.tags?.language) ?? 'und';
}

/** Drops the fields with no value, keeping the listed (alphabetical) order. */
function element(fields: Record<string, string | undefined>): XmlObject {
  const out: XmlObject = {};
  for (const [name, value] of Object.entries(fields)) if (value !== undefined) out[name] = value;
  return out;
}

function orEmpty(value: XmlObject | XmlObject[]): XmlObject | XmlObject[] | '' {
  const empty = Array.isArray(value) ? value.length === 0 : Object.keys(value).length === 0;
  return empty ? '' : value;
}

function text(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function toNumber(value: FfprobeNumber | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const number = Number(value);
  return Number.isFinite(number) ? number : undefined;
}

/** Integers are printed plain; anything that is not an integer (`N/A`) counts as missing. */
function integer(value: FfprobeNumber | undefined): string | undefined {
  const number = toNumber(value);
  return number !== undefined && Number.isInteger(number) ? String(number) : undefined;
}

/**
 * `%.6f`. `toFixed` rounds the exact binary value half-up where C's printf
 * rounds half-even; the two differ only on exact binary ties (e.g.
 * 0.0078125), which no ffprobe value we format can produce: ffprobe prints
 * times with 6 decimals and bitrates as integers.
 */
function fixed6(value: FfprobeNumber | undefined): string | undefined {
  return toNumber(value)?.toFixed(6);
}

function kbps(bitsPerSecond: FfprobeNumber | undefined): string | undefined {
  const bps = toNumber(bitsPerSecond);
  return bps === undefined ? undefined : (bps / 1000).toFixed(6);
}

/** `30000/1001` → 29.97…; `0/0` (ffprobe's "unknown") → undefined. */
function rate(fraction: string | undefined): number | undefined {
  const match = /^(-?\d+(?:\.\d+)?)\/(\d+(?:\.\d+)?)$/.exec(fraction ?? '');
  if (!match) return undefined;
  const denominator = Number(match[2]);
  return denominator === 0 ? undefined : Number(match[1]) / denominator;
}

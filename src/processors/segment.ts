/**
 * Tag=Segment (shared/ci-media-tags.md §7): the input cut into pieces of
 * `Duration` seconds without re-encoding (CI calls it a remux), or remuxed
 * whole when Duration is absent.
 *
 * Honoured: Format mp4, ts, mkv, avi, hls/m3u8 (streams copied; pieces start
 * at key frames, so each is Duration long give or take a GOP, as any
 * copy-based cutter makes them), mp3, aac, flac (audio only, re-encoded to
 * that codec, cut exactly); Duration; StartTime/EndTime as a clip range.
 * HlsEncrypt{IsHlsEncrypt, UriKey} with hls/m3u8: the segments AES-128
 * encrypted, the key stored beside the playlist (hls-output.ts); other
 * formats ignore it, as CI's "hls only" says.
 * Accepted, ignored: TranscodeIndex, AIGCMetadata.
 *
 * Output: `${Number}` (from 0) is required when Duration is set and the
 * format is not hls. Result: `MediaInfo` of the first piece, and
 * `MediaResult/OutputFile` with the key before `${Number}` as ObjectPrefix,
 * the names after it, and an Md5Info (full key) per piece; hls lists the
 * playlist then its segments by full key, as Transcode's hls does.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { inputArgs } from '../media/ffmpeg.js';
import { withToolInput, type ToolInput } from '../media/input-policy.js';
import type { Spawner } from '../media/spawner.js';
import { isXmlObject, type XmlObject } from '../xml/tree.js';
import {
  assertFfmpegHas, asSubmitError, child, expandObject, hasNumber, invalid, number, numberedKey, outputMediaInfo, readOutput, safeKey, storeFiles,
  text, withInputFile, withWorkDir, type OutputTarget, type StoredFile, SUBMIT_CHECK_JOB,
} from './media-output.js';
import type { Processor, ProcessorContext } from './processor.js';
import { firstSegmentFile, hlsFiles, hlsKeyArgs, parseHlsEncrypt, prepareHlsKey, storeHls, withClearSegment, type HlsEncryption } from './hls-output.js';
import { inputReplacements, runTranscodeFfmpeg } from './transcode.js';

interface FormatSpec {
  readonly muxer: string;
  readonly ext: string;
  /** Audio-only formats re-encode to this encoder; the others copy every stream. */
  readonly audioEncoder?: string;
}

const FORMATS: Readonly<Record<string, FormatSpec>> = {
  mp4: { muxer: 'mp4', ext: 'mp4' },
  ts: { muxer: 'mpegts', ext: 'ts' },
  mkv: { muxer: 'matroska', ext: 'mkv' },
  avi: { muxer: 'avi', ext: 'avi' },
  hls: { muxer: 'hls', ext: 'm3u8' },
  m3u8: { muxer: 'hls', ext: 'm3u8' },
  mp3: { muxer: 'mp3', ext: 'mp3', audioEncoder: 'libmp3lame' },
  aac: { muxer: 'adts', ext: 'aac', audioEncoder: 'aac' },
  flac: { muxer: 'flac', ext: 'flac', audioEncoder: 'flac' },
};

export interface SegmentSpec {
  readonly format: FormatSpec;
  readonly durationSec?: number;
  readonly startSec?: number;
  readonly endSec?: number;
  readonly hlsEncrypt?: HlsEncryption;
}

/** Parses `<Segment>`; throws InvalidArgument naming the element. */
export function parseSegment(segment: XmlObject): SegmentSpec {
  const formatText = text(segment.Format);
  if (formatText === undefined) throw invalid('Segment/Format is required.');
  const format = FORMATS[formatText.toLowerCase()];
  if (!format) throw invalid(`Segment/Format must be one of ${Object.keys(FORMATS).join(', ')}, not ${JSON.stringify(formatText)}.`);
  const startSec = number(segment.StartTime, 'Segment/StartTime', 0, 1e7);
  const endSec = number(segment.EndTime, 'Segment/EndTime', 0, 1e7, { openMin: true });
  if (startSec !== undefined && endSec !== undefined && endSec <= startSec) throw invalid('Segment/EndTime must be after StartTime.');
  const hlsEncrypt = parseHlsEncrypt(child(segment, 'HlsEncrypt'), 'Segment/HlsEncrypt', format.muxer === 'hls');
  return { format, durationSec: number(segment.Duration, 'Segment/Duration', 1, 1e7), startSec, endSec, hlsEncrypt };
}

/**
 * ffmpeg arguments for a parsed Segment, writing `<dir>/<n>.<ext>` pieces (or
 * `<dir>/<base>.m3u8` + `<base>-<n>.ts` for hls, encrypted by the key info
 * file `hlsKeyInfo` when given, or `<dir>/out.<ext>` whole). Pure.
 */
export function buildSegmentArgs(spec: SegmentSpec, io: { input: ToolInput; dir: string; base: string; hlsKeyInfo?: string }): string[] {
  const args = inputArgs(io.input, spec.startSec ? ['-ss', String(spec.startSec)] : []);
  if (spec.endSec !== undefined) args.push('-t', String(spec.endSec - (spec.startSec ?? 0)));
  const { format } = spec;
  if (format.audioEncoder) args.push('-map', '0:a:0', '-vn', '-c:a', format.audioEncoder);
  else args.push('-map', '0:v?', '-map', '0:a?', '-c', 'copy', '-sn', '-dn');
  if (format.muxer === 'hls') {
    args.push('-f', 'hls', '-hls_time', String(spec.durationSec ?? 10), '-hls_list_size', '0', '-hls_playlist_type', 'vod',
      '-hls_segment_filename', path.join(io.dir, `${io.base}-%d.ts`), ...hlsKeyArgs(io.hlsKeyInfo), path.join(io.dir, `${io.base}.m3u8`));
  } else if (spec.durationSec) {
    args.push('-f', 'segment', '-segment_time', String(spec.durationSec), '-segment_format', format.muxer, '-reset_timestamps', '1',
      '-segment_start_number', '0', ...(format.muxer === 'mp4' ? ['-segment_format_options', 'movflags=+faststart'] : []),
      path.join(io.dir, `%d.${format.ext}`));
  } else {
    args.push(...(format.muxer === 'mp4' ? ['-movflags', '+faststart'] : []), '-f', format.muxer, path.join(io.dir, `out.${format.ext}`));
  }
  return args;
}

function segmentOf(operation: XmlObject): SegmentSpec {
  if (!isXmlObject(operation.Segment)) throw invalid('Operation/Segment is required.');
  return parseSegment(operation.Segment);
}

function readTarget(spec: SegmentSpec, operation: XmlObject, job: Parameters<typeof readOutput>[1]): OutputTarget {
  const target = readOutput(operation, job, true);
  if (spec.durationSec && spec.format.muxer !== 'hls' && !hasNumber(target.object)) throw invalid('Output/Object needs ${Number} when Segment/Duration is set.');
  return target;
}

/** Submit-time checks of a Segment Operation. */
export function checkSegmentOperation(operation: XmlObject, config: Config, where: string): void {
  try {
    const spec = segmentOf(operation);
    readTarget(spec, operation, SUBMIT_CHECK_JOB);
    if (spec.format.audioEncoder) assertFfmpegHas(config.ffmpegPath, { encoders: [spec.format.audioEncoder] });
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export function createSegmentProcessor(spawner: Spawner): Processor {
  return { tag: 'Segment', slotsItsTool: true, run: (ctx) => runSegment(ctx, spawner) };
}

async function runSegment(ctx: ProcessorContext, spawner: Spawner): Promise<XmlObject> {
  const { job } = ctx;
  const spec = segmentOf(job.operation);
  const target = readTarget(spec, job.operation, job);
  const expanded = expandObject(target.object, { inputObject: job.inputObject, extension: spec.format.ext, jobId: job.jobId });
  ctx.signal.throwIfAborted();
  ctx.setProgress(0);
  return withInputFile(ctx, (input) => withWorkDir(ctx, async (dir) => {
    const hls = spec.format.muxer === 'hls';
    const base = hls ? (path.posix.basename(expanded).replace(/\.[^.]*$/, '') || 'out') : '';
    const hlsKey = hls && spec.hlsEncrypt ? await prepareHlsKey(dir, base, spec.hlsEncrypt) : undefined;
    const args = (tool: ToolInput) => buildSegmentArgs(spec, { input: tool, dir, base, hlsKeyInfo: hlsKey?.infoFile });
    await withToolInput(input, (tool) => ctx.withToolSlot(() => runTranscodeFfmpeg(ctx, spawner, args(tool), dir, undefined, inputReplacements(tool, job.inputObject, dir))));
    ctx.setProgress(90);
    if (hls) {
      const written = await hlsFiles(dir, base, safeKey(expanded));
      const playlist = written.listed[0].file;
      const first = firstSegmentFile(written);
      const mediaInfo = first
        ? await withClearSegment(dir, playlist, first, hlsKey, (file) => outputMediaInfo(ctx, spawner, file))
        : await outputMediaInfo(ctx, spawner, playlist);
      const stored = await storeHls(ctx, target.bucket, written, hlsKey);
      ctx.setProgress(100);
      return { MediaInfo: mediaInfo, MediaResult: { OutputFile: outputFile(target, stored, stored.map((s) => s.key), '') } };
    }
    const names = await fs.readdir(dir);
    let files: Array<{ key: string; file: string }>;
    let prefix = '';
    let relative: string[];
    if (spec.durationSec) {
      const pieces = names.filter((f) => new RegExp(`^\\d+\\.${spec.format.ext}$`).test(f)).map((f) => Number(f.split('.')[0])).sort((a, b) => a - b);
      const keys = pieces.map((_, i) => numberedKey(expanded, i));
      prefix = keys[0]?.prefix ?? '';
      files = pieces.map((n, i) => ({ key: safeKey(keys[i].key), file: path.join(dir, `${n}.${spec.format.ext}`) }));
      relative = keys.map((k) => k.name);
    } else {
      const key = safeKey(numberedKey(expanded, 0).key);
      files = [{ key, file: path.join(dir, `out.${spec.format.ext}`) }];
      relative = [key];
    }
    if (files.length === 0) throw invalid('Segment wrote no piece: the input has nothing in the range asked for.');
    const mediaInfo = await outputMediaInfo(ctx, spawner, files[0].file);
    const stored = await storeFiles(ctx, target.bucket, files);
    ctx.setProgress(100);
    return { MediaInfo: mediaInfo, MediaResult: { OutputFile: outputFile(target, stored, relative, prefix) } };
  }));
}

function outputFile(target: OutputTarget, stored: readonly StoredFile[], names: readonly string[], prefix: string): XmlObject {
  const md5 = stored.map((s) => ({ Md5: s.md5, ObjectName: s.key }));
  return {
    Bucket: target.bucket,
    Md5Info: md5.length === 1 ? md5[0] : md5,
    ObjectName: names.length === 1 ? names[0] : [...names],
    ObjectPrefix: prefix,
    Region: target.region,
  };
}

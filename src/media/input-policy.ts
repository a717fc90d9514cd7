/**
 * What an FFmpeg tool (ffprobe, ffmpeg) may open when it reads a job's input:
 * that one file and nothing else. Every command line that reads user input
 * gets its input through `withToolInputs` (or `withToolInput`) and puts
 * `input.options` before `input.url`.
 *
 * Glossary: a *reference* is anything inside a media file that names another
 * resource: an HLS or DASH playlist entry, an ffconcat `file` line, a QuickTime
 * external data reference (`dref`/`alis`), an image-sequence pattern
 * (`img%03d.jpg`). A *demuxer* is libavformat's reader of one format.
 *
 * ```ts
 * await withToolInputs([localPath], async ([input]) =>
 *   spawner.run({ binary, args: [...input.options, '-i', input.url, …] }));   // ffmpeg
 *   // ffprobe: [...input.options, …, input.url]
 * ```
 *
 * How: two layers, both needed.
 *
 * 1. **Only self-contained demuxers** (`-format_whitelist`, an AVFormatContext
 *    option ffprobe and ffmpeg take as an input option; checked on ffprobe-static
 *    4.0.2, @ffmpeg-installer's 2018 ffmpeg and Debian's ffmpeg 5.1.9):
 *    the demuxer probing picks must be one that reads nothing but the bytes of
 *    the file it was given, otherwise the tool fails with "Format not on
 *    whitelist" before it reads a single reference. `-protocol_whitelist file`
 *    alone is not enough: HLS, DASH and ffconcat open their references through
 *    the file protocol (an HLS entry `/abs/x.mp4`, `../../x.mp4`, or a DASH
 *    `<BaseURL>file:///…</BaseURL>` all reached files outside the bucket with
 *    it); it stays, so nothing is ever fetched from the network.
 * 2. **No `%` in the name the tool sees.** The image2 demuxer (JPEG and other
 *    still images are read by it, and their `FormatName` is `image2`, so it
 *    must stay allowed) reads `%d` in its file name as a sequence pattern and
 *    `%*`, `%?`, `%{…}` as a glob: a key `in/x%d.jpg` made ffprobe read the
 *    objects `in/x1.jpg`, `in/x2.jpg`… Its `-pattern_type none` cannot be
 *    passed instead: ffprobe and ffmpeg refuse a demuxer-private option the
 *    demuxer they end up with lacks ("Option pattern_type not found" on an
 *    MP4), and the format is not known before probing. So a path containing
 *    `%` is handed over as `file:<fresh private dir>/input<.ext>`, a symlink
 *    to the object that keeps the key's extension (probing and `FormatName`
 *    depend on it) and lives alone in its directory. Every other path is
 *    passed as `file:<absolute path>` (the `file:` prefix keeps a key such as
 *    `concat:a|b` or `-i` a plain file name): a symlink for every run was
 *    measured at 0.23–0.80 ms of CPU per run (mkdtemp, symlink, unlink, rmdir
 *    on libuv's pool; three runs under varying load), 5–15 % of the service's
 *    whole CPU per MediaInfo job (4.4–4.9 ms, README), to guard against a `%`
 *    the other paths do not have.
 *
 * QuickTime external data references are off by default in libavformat since
 * the option appeared in 2016 (`mov` demuxer `enable_drefs`, default false; a
 * test checks both bundled binaries' `-h demuxer=mov`, Debian's 5.1.9 agrees).
 * They cannot be turned off explicitly for the same reason as `pattern_type`;
 * a MOV whose track lives in another file is therefore probed from its header
 * alone, and that file is never opened (test/media/hostile-inputs.test.ts).
 *
 * Rejected (figures: ffprobe-static 4.0.2 on fixtures/media/h264-aac.mp4, a
 * shared 2-core VM, 3 rounds of 100 runs each, 2026-12-07):
 * - passing the input as `pipe:0` or an inherited descriptor: 4.0.2 has no
 *   `fd:` protocol, and `pipe:` cannot seek, so every MP4 with its `moov` at
 *   the end (most uploads) would fail;
 * - a mount namespace or chroot holding only the input (`unshare -m`,
 *   bubblewrap): needs user namespaces for a non-root service (often disabled
 *   in containers and hardened kernels), one more exec per probe (CPU per
 *   probe 4.2–5.0 ms plain, 5.1–5.8 ms under `unshare -Urm` alone, before
 *   any mount or chroot is set up), and the dynamically linked ffprobe that
 *   `MEDIAJOBS_FFPROBE_PATH` may name would need its libraries mounted too;
 * - a list of *forbidden* demuxers: every FFmpeg release adds readers (5.x
 *   added `imf`, which follows CPL references), and a deny list misses them.
 *
 * Cost of the chosen way, same setup: ffprobe's own CPU per probe 5.1–6.0 ms
 * without `-format_whitelist`, 5.6–5.7 ms with it (noise: the option is one
 * string match after probing); the service's CPU per `runFfprobe` 0.55 and
 * 0.71 ms before, 0.57 and 0.77 ms after (two runs, each the median of 5
 * interleaved rounds of 200; the load of the shared host moved both).
 *
 * Filters that open files by name (`movie`, `amovie`, `subtitles`, `ass`) are
 * not covered by these options: a command line must never put object keys or
 * other user text into a filter graph.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Demuxers that read only the file they are given, by libavformat name (a
 * demuxer whose name lists several, such as `mov,mp4,m4a,3gp,3g2,mj2` or
 * `matroska,webm`, is allowed by any one of them). Common video, audio,
 * subtitle and image formats; rare game, device and legacy formats are left
 * out on purpose (each one is code nobody here has read). Each name below is a
 * demuxer of the bundled ffprobe 4.0.2 except where marked; test
 * `input-policy.test.ts` checks that against the binary's `-demuxers`.
 *
 * Deliberately absent, because they open other files or URLs: `hls`
 * (`applehttp`), `dash`, `concat`, `webm_dash_manifest`, `vobsub` (opens the
 * `.sub` beside its `.idx`), `sdp`, `rtsp`, `rtp`, `sap`, `imf` (5.x),
 * `avisynth`, `vapoursynth`, `image2pipe` (unneeded), and every capture device
 * (`lavfi`, `x11grab`, `v4l2`, `alsa`, `oss`, `fbdev`, …).
 */
export const SELF_CONTAINED_DEMUXERS: readonly string[] = Object.freeze([
  // containers
  'mov', 'matroska', 'avi', 'flv', 'mpegts', 'mpeg', 'asf', 'rm', 'ogg', 'mxf', 'gxf', 'nut', 'ivf', 'wtv', 'dv', 'yuv4mpegpipe',
  // raw video elementary streams
  'h261', 'h263', 'h264', 'hevc', 'm4v', 'mpegvideo', 'vc1', 'cavsvideo', 'dirac', 'dnxhd', 'mjpeg',
  'obu', // AV1 low-overhead bitstream, ffmpeg ≥ 4.2
  // audio
  'mp3', 'aac', 'ac3', 'eac3', 'dts', 'dtshd', 'truehd', 'mlp', 'flac', 'wav', 'w64', 'aiff', 'caf', 'au', 'amr', 'amrnb', 'amrwb',
  'ape', 'wv', 'tta', 'mpc', 'mpc8', 'tak', 'loas', 'dsf', 'xwma', 'voc',
  // subtitles
  'srt', 'ass', 'webvtt', 'microdvd', 'subviewer', 'subviewer1', 'sami', 'mpl2', 'jacosub', 'lrc', 'stl', 'realtext', 'pjs',
  'vplayer', 'mpsub', 'aqtitle', 'scc', 'sup',
  // still and animated images; image2 only because the tool sees a name without `%` (see above)
  'image2', 'gif', 'apng', 'ico', 'bmp_pipe', 'jpeg_pipe', 'jpegls_pipe', 'j2k_pipe', 'png_pipe', 'webp_pipe', 'tiff_pipe', 'psd_pipe',
  'exr_pipe', 'dpx_pipe', 'dds_pipe', 'svg_pipe', 'pam_pipe', 'pbm_pipe', 'pgm_pipe', 'ppm_pipe', 'pgmyuv_pipe', 'sgi_pipe',
  'sunrast_pipe', 'xpm_pipe', 'pcx_pipe',
  'gif_pipe', 'jpegxl_pipe', 'qoi_pipe', // ffmpeg ≥ 5.0
  // a text file named .txt/.nfo/…: allowed so the MediaInfo processor can say "a text file, not media"
  'tty',
]);

/**
 * The options that go before the input on every ffprobe or ffmpeg command
 * line reading user input: protocols limited to local files, demuxers to
 * `SELF_CONTAINED_DEMUXERS`.
 */
export const INPUT_OPTIONS: readonly string[] = Object.freeze([
  '-protocol_whitelist', 'file',
  '-format_whitelist', SELF_CONTAINED_DEMUXERS.join(','),
]);

/** One input as a tool is to read it. */
export interface ToolInput {
  /** Put these before the input (`[...options, url]` for ffprobe, `[...options, '-i', url]` for ffmpeg). */
  readonly options: readonly string[];
  /** `file:<absolute path>`, or `file:<private dir>/input<.ext>` (a symlink named by us) when the path has a `%`. */
  readonly url: string;
  /** The object's own file (absolute), which `url` leads to. */
  readonly filePath: string;
}

/** The key's extension when it is plain (`.mp4`, `.M2TS`); anything else is dropped, as no demuxer matches it. */
const PLAIN_EXTENSION = /^\.[A-Za-z0-9]{1,16}$/;

/**
 * Runs `use` with each of `filePaths` as a tool is to read it (see the module
 * comment), and removes any private name afterwards, whatever `use` did. The
 * inputs of one job that need a private name share one directory:
 * `input-0.mp4`, `input-1.mov`, … (a single input is just `input.mp4`).
 */
export async function withToolInputs<T>(filePaths: readonly string[], use: (inputs: readonly ToolInput[]) => Promise<T>): Promise<T> {
  const absolute = filePaths.map((filePath) => path.resolve(filePath));
  if (!absolute.some((filePath) => filePath.includes('%'))) {
    return use(absolute.map((filePath) => ({ options: INPUT_OPTIONS, url: `file:${filePath}`, filePath })));
  }
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mediajobs-input-'));
  const links: string[] = [];
  try {
    const inputs: ToolInput[] = [];
    for (const [index, filePath] of absolute.entries()) {
      if (!filePath.includes('%')) {
        inputs.push({ options: INPUT_OPTIONS, url: `file:${filePath}`, filePath });
        continue;
      }
      const extension = path.extname(filePath);
      const name = `input${absolute.length === 1 ? '' : `-${index}`}${PLAIN_EXTENSION.test(extension) ? extension : ''}`;
      const link = path.join(dir, name);
      await fs.symlink(filePath, link);
      links.push(link);
      inputs.push({ options: INPUT_OPTIONS, url: `file:${link}`, filePath });
    }
    return await use(inputs);
  } finally {
    // unlink + rmdir rather than fs.rm({ recursive }): no directory walk.
    await Promise.all(links.map((link) => fs.unlink(link).catch(() => undefined)));
    await fs.rmdir(dir).catch(() => undefined);
  }
}

/** `withToolInputs` for one input. */
export function withToolInput<T>(filePath: string, use: (input: ToolInput) => Promise<T>): Promise<T> {
  return withToolInputs([filePath], ([input]) => use(input!));
}

/**
 * A tool's message with each input's private name (if it had one) replaced by
 * `file:<the object's path>`, so callers see the path they passed in and can
 * map it to the object key.
 */
export function withCallerPaths(text: string, inputs: readonly ToolInput[]): string {
  let out = text;
  for (const input of inputs) {
    const link = input.url.slice('file:'.length);
    if (link !== input.filePath) out = out.split(input.url).join(`file:${input.filePath}`).split(link).join(input.filePath);
  }
  return out;
}

/**
 * libavformat's refusal of a demuxer that is not in `SELF_CONTAINED_DEMUXERS`:
 * `[hls,applehttp @ 0x…] Format not on whitelist 'mov,matroska,…'`. The list
 * is most of a kilobyte; `runFfprobe`'s errors carry `shortRefusal(stderr)`
 * instead, and ffmpeg's callers do the same.
 */
export const FORMAT_REFUSAL = /Format not on whitelist '[^']*'/;

/** `text` with each refusal made short: `[hls,applehttp @ 0x…] format not read here (playlists, …)`. */
export function shortRefusal(text: string): string {
  return text.replace(new RegExp(FORMAT_REFUSAL.source, 'g'), 'format not read here (playlists, references to other files and rare formats are refused)');
}

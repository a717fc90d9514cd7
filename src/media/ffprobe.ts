/**
 * Runs ffprobe on a local file and returns its JSON report, typed.
 *
 * Glossary: the *report* is ffprobe's `-print_format json -show_format
 * -show_streams` output; a *stream* is one entry of its `streams` array. The
 * types below list only the keys `media-info.ts` reads; ffprobe prints many
 * more, and omits a key (rather than printing `N/A`) when it has no value.
 *
 * Example:
 * ```ts
 * const report = await runFfprobe('/data/in.mp4', { spawner, ffprobePath: config.ffprobePath, signal });
 * report.format?.duration; // '2.000000'
 * ```
 */
import { createRequire } from 'node:module';
import { shortRefusal, withCallerPaths, withToolInput, type ToolInput } from './input-policy.js';
import type { Spawner } from './spawner.js';

/** Numbers ffprobe prints as JSON numbers in some versions and as strings in others. */
export type FfprobeNumber = number | string;

/** `format` of the report: the container. */
export interface FfprobeFormat {
  readonly filename?: string;
  readonly nb_streams?: FfprobeNumber;
  readonly nb_programs?: FfprobeNumber;
  readonly format_name?: string;
  readonly format_long_name?: string;
  readonly start_time?: string;
  readonly duration?: string;
  readonly size?: string;
  readonly bit_rate?: string;
  readonly tags?: Readonly<Record<string, string>>;
}

/** One entry of a stream's `side_data_list`. */
export interface FfprobeSideData {
  readonly side_data_type?: string;
  /** Display matrix only: counter-clockwise degrees (see `media-info.ts` on the sign). */
  readonly rotation?: FfprobeNumber;
}

/** One entry of `streams`; which keys appear depends on `codec_type`. */
export interface FfprobeStream {
  readonly index?: FfprobeNumber;
  /** `video`, `audio`, `subtitle`, `data`, `attachment`. */
  readonly codec_type?: string;
  readonly codec_name?: string;
  readonly codec_long_name?: string;
  readonly profile?: string;
  /** Printed by ffprobe < 5.0 only. */
  readonly codec_time_base?: string;
  readonly codec_tag_string?: string;
  readonly codec_tag?: string;
  readonly width?: FfprobeNumber;
  readonly height?: FfprobeNumber;
  readonly has_b_frames?: FfprobeNumber;
  readonly sample_aspect_ratio?: string;
  readonly display_aspect_ratio?: string;
  readonly pix_fmt?: string;
  readonly level?: FfprobeNumber;
  readonly color_range?: string;
  readonly color_transfer?: string;
  readonly color_primaries?: string;
  readonly field_order?: string;
  readonly refs?: FfprobeNumber;
  readonly sample_fmt?: string;
  readonly sample_rate?: FfprobeNumber;
  readonly channels?: FfprobeNumber;
  readonly channel_layout?: string;
  readonly r_frame_rate?: string;
  readonly avg_frame_rate?: string;
  readonly time_base?: string;
  readonly start_time?: string;
  readonly duration?: string;
  readonly bit_rate?: string;
  readonly nb_frames?: FfprobeNumber;
  readonly tags?: Readonly<Record<string, string>>;
  readonly side_data_list?: readonly FfprobeSideData[];
}

/** The whole `-show_format -show_streams` report. */
export interface FfprobeReport {
  readonly format?: FfprobeFormat;
  readonly streams?: readonly FfprobeStream[];
}

export interface FfprobeOptions {
  /** The binary to run; `''` or unset means the one shipped by `ffprobe-static` (`Config.ffprobePath`). */
  readonly ffprobePath?: string;
  /** Aborting kills ffprobe and rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** ffprobe is killed and the call rejects after this long. */
  readonly timeoutMs?: number;
  /** ffprobe is killed when its stdout grows past this (a file with absurdly many streams). */
  readonly maxOutputBytes?: number;
  /** What spawns ffprobe: the one Spawner the composition root owns (see spawner.ts). */
  readonly spawner: Spawner;
}

/** Reads headers only, so even large files take milliseconds; 30 s means something is wrong. */
export const DEFAULT_FFPROBE_TIMEOUT_MS = 30_000;
/** A typical report is 2–5 KB per stream. */
export const DEFAULT_FFPROBE_MAX_OUTPUT_BYTES = 4 * 1024 * 1024;
/** Only the start of stderr is kept: the first lines say what went wrong. */
const MAX_STDERR_BYTES = 16 * 1024;

/**
 * Why ffprobe gave no report:
 * - `spawn`: the binary could not be started (missing, not executable);
 * - `exit`: ffprobe ran and exited non-zero: it could not read the file;
 * - `crash`: ffprobe was killed by a signal we did not send;
 * - `timeout`: it ran longer than `timeoutMs` and was killed;
 * - `output-limit`: its report grew past `maxOutputBytes` and it was killed;
 * - `bad-output`: it exited 0 but did not print a JSON object.
 */
export type FfprobeFailure = 'spawn' | 'exit' | 'crash' | 'timeout' | 'output-limit' | 'bad-output';

/** ffprobe ran (or tried to) and gave no report; `reason` says why. */
export class FfprobeError extends Error {
  constructor(
    readonly reason: FfprobeFailure,
    message: string,
    /** The start of what ffprobe wrote to stderr (may be `''`). */
    readonly stderr: string,
    readonly exitCode: number | null = null,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'FfprobeError';
  }

  /** ffprobe's first stderr line, or `''`. */
  get firstStderrLine(): string {
    return this.stderr.split('\n').find((line) => line.trim() !== '')?.trim() ?? '';
  }
}

let bundledPath: string | undefined;

/** The `ffprobe-static` binary's path; resolved on first use so that a configured path never loads it. */
export function bundledFfprobePath(): string {
  // ffprobe-static is CommonJS without type declarations; `require` keeps it
  // out of the type checker without a hand-written .d.ts.
  bundledPath ??= (createRequire(import.meta.url)('ffprobe-static') as { path: string }).path;
  return bundledPath;
}

/**
 * Runs `ffprobe -v error -print_format json -show_format -show_streams` on
 * `filePath` and parses the report.
 *
 * We spawn ffprobe ourselves rather than use `fluent-ffmpeg`'s `ffprobe()`:
 * that helper never hands back the child process, so it cannot be killed on
 * abort or timeout; it also buffers stdout without a limit and parses ffprobe's
 * default text format instead of JSON.
 *
 * ffprobe is spawned (no shell) by the composition root's Spawner
 * (`spawner.ts`: vfork + exec from this process, or child_process), which
 * applies the time and output limits and hands back stdout and the start of
 * stderr.
 *
 * ffprobe reads the file and nothing else (`input-policy.ts`): it is given a
 * `file:` URL, so a key that looks like an option (`-i`) or a URL (`http:…`,
 * `concat:…`) is still a plain file name; a path with a `%` (an image-sequence
 * pattern to image2) is given under a private name of ours; and only demuxers
 * that read no other file are allowed, so a playlist, an ffconcat list or an
 * external reference inside the object cannot make ffprobe open anything
 * else. Error messages name the input as `file:<absolute path of filePath>`,
 * never by that private name, and a refused format in one short line.
 */
export function runFfprobe(filePath: string, options: FfprobeOptions): Promise<FfprobeReport> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  const binary = options.ffprobePath || bundledFfprobePath();
  const timeoutMs = options.timeoutMs ?? DEFAULT_FFPROBE_TIMEOUT_MS;
  const maxOutputBytes = options.maxOutputBytes ?? DEFAULT_FFPROBE_MAX_OUTPUT_BYTES;
  return withToolInput(filePath, async (input) => {
    const args = ffprobeArgs(input);
    const run = await options.spawner.run({ binary, args, timeoutMs, maxStdoutBytes: maxOutputBytes, maxStderrBytes: MAX_STDERR_BYTES }, signal);
    const errText = shortRefusal(withCallerPaths(run.stderr, [input]));
    if (run.killedFor === 'abort') throw signal?.reason;
    if (run.spawnError !== undefined) {
      throw new FfprobeError('spawn', `cannot run ffprobe (${binary}): ${run.spawnError}`, errText);
    }
    if (run.killedFor === 'timeout') throw new FfprobeError('timeout', `ffprobe did not finish within ${timeoutMs} ms`, errText);
    if (run.killedFor === 'output-limit') throw new FfprobeError('output-limit', `ffprobe printed more than ${maxOutputBytes} bytes`, errText);
    if (run.signal !== null) throw new FfprobeError('crash', `ffprobe was killed by ${run.signal}`, errText);
    if (run.code !== 0) {
      const first = errText.split('\n').find((line) => line.trim() !== '')?.trim() ?? '';
      throw new FfprobeError('exit', `ffprobe exited with code ${run.code}${first ? `: ${first}` : ''}`, errText, run.code);
    }
    let report: unknown;
    try {
      report = JSON.parse(run.stdout);
    } catch (err) {
      throw new FfprobeError('bad-output', 'ffprobe printed invalid JSON', errText, run.code, { cause: err });
    }
    if (typeof report !== 'object' || report === null || Array.isArray(report)) {
      throw new FfprobeError('bad-output', 'ffprobe printed JSON that is not an object', errText, run.code);
    }
    return report as FfprobeReport;
  });
}

/** ffprobe's arguments for one input: the input policy's options, the JSON report of format and streams, the input's URL. */
export function ffprobeArgs(input: ToolInput): string[] {
  return [
    '-v', 'error',
    ...input.options,
    '-print_format', 'json',
    '-show_format', '-show_streams',
    input.url,
  ];
}

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
 * const report = await runFfprobe('/data/in.mp4', { ffprobePath: config.ffprobePath, signal });
 * report.format?.duration; // '2.000000'
 * ```
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

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
 * Overhead: one `spawn` (no shell), chunks collected and joined once, one
 * `JSON.parse`. Measured on fixtures/media/h264-aac.mp4, 200 sequential
 * probes: the binary alone takes ~6.4 ms from a shell loop and ~8 ms when
 * Node spawns it with output discarded; `runFfprobe` is within ±0.7 ms of the
 * latter, so what we add is Node's own spawn cost (~1.5 ms), nothing more.
 *
 * The input is passed as `file:<absolute path>` with `-protocol_whitelist
 * file`, so a key that looks like an option (`-i`) or a URL (`http:…`,
 * `concat:…`) is still read as a plain file, and a playlist inside an uploaded
 * object (HLS, concat) cannot make ffprobe fetch from the network.
 */
export function runFfprobe(filePath: string, options: FfprobeOptions = {}): Promise<FfprobeReport> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  const binary = options.ffprobePath || bundledFfprobePath();
  const timeoutMs = options.timeoutMs ?? DEFAULT_FFPROBE_TIMEOUT_MS;
  const maxOutputBytes = options.maxOutputBytes ?? DEFAULT_FFPROBE_MAX_OUTPUT_BYTES;
  const args = [
    '-v', 'error',
    '-protocol_whitelist', 'file',
    '-print_format', 'json',
    '-show_format', '-show_streams',
    `file:${path.resolve(filePath)}`,
  ];

  return new Promise<FfprobeReport>((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    const stderr: Buffer[] = [];
    let stderrBytes = 0;
    // Set when we kill the child, so 'close' knows why it died.
    let killedFor: 'abort' | 'timeout' | 'output-limit' | undefined;
    let spawnError: Error | undefined;

    const kill = (why: NonNullable<typeof killedFor>): void => {
      if (killedFor !== undefined) return;
      killedFor = why;
      // SIGKILL: ffprobe holds no state worth a clean shutdown, and a process
      // stuck in a bad demuxer may ignore SIGTERM.
      child.kill('SIGKILL');
    };
    const onAbort = (): void => kill('abort');
    const timer = setTimeout(() => kill('timeout'), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > maxOutputBytes) kill('output-limit');
      else stdout.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderrBytes >= MAX_STDERR_BYTES) return;
      stderr.push(chunk);
      stderrBytes += chunk.length;
    });
    child.on('error', (err) => {
      // A failed spawn (ENOENT, EACCES) is followed by 'close' on Node 20; a
      // failed kill is not an error worth reporting.
      if (child.pid === undefined) spawnError = err;
    });

    // 'close' (not 'exit') waits for stdout and stderr to drain, so the report is complete.
    child.on('close', (code, killSignal) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      const errText = Buffer.concat(stderr).toString('utf8').slice(0, MAX_STDERR_BYTES);
      if (killedFor === 'abort') return reject(signal?.reason);
      if (spawnError !== undefined) {
        return reject(new FfprobeError('spawn', `cannot run ffprobe (${binary}): ${spawnError.message}`, errText, null, { cause: spawnError }));
      }
      if (killedFor === 'timeout') {
        return reject(new FfprobeError('timeout', `ffprobe did not finish within ${timeoutMs} ms`, errText));
      }
      if (killedFor === 'output-limit') {
        return reject(new FfprobeError('output-limit', `ffprobe printed more than ${maxOutputBytes} bytes`, errText));
      }
      if (killSignal !== null) {
        return reject(new FfprobeError('crash', `ffprobe was killed by ${killSignal}`, errText));
      }
      if (code !== 0) {
        const first = errText.split('\n').find((line) => line.trim() !== '')?.trim() ?? '';
        return reject(new FfprobeError('exit', `ffprobe exited with code ${code}${first ? `: ${first}` : ''}`, errText, code));
      }
      let report: unknown;
      try {
        report = JSON.parse(Buffer.concat(stdout).toString('utf8'));
      } catch (err) {
        return reject(new FfprobeError('bad-output', 'ffprobe printed invalid JSON', errText, code, { cause: err }));
      }
      if (typeof report !== 'object' || report === null || Array.isArray(report)) {
        return reject(new FfprobeError('bad-output', 'ffprobe printed JSON that is not an object', errText, code));
      }
      resolve(report as FfprobeReport);
    });
  });
}

/**
 * Runs ffmpeg for the video and audio Tags (G18: the command is built by
 * each processor's pure builder, run here, and read back by the processor).
 *
 * Why our own argument builders rather than fluent-ffmpeg's: fluent-ffmpeg
 * hands back its argument list only through a private method
 * (`_getArguments`), and its runner spawns with `child_process` directly,
 * outside our Spawner (no process group, no vfork, no tool slots), so neither
 * half fits; its `size()` also follows its own aspect rules, not CI's. A list
 * of strings per Operation is short, and unit-tested as such.
 *
 * The run goes through the composition root's Spawner (process group, abort
 * and timeout kill the whole group, bounded stderr). Progress comes from
 * `-progress <file>`: the Spawner collects stdout to the end rather than
 * streaming it, so ffmpeg writes its `key=value` blocks to a file in the
 * job's work folder, read every `PROGRESS_POLL_MS`.
 */
import { promises as fs } from 'node:fs';
import type { ToolInput } from './input-policy.js';
import type { Spawner } from './spawner.js';

/** Every run starts with these: no banner, no stdin (a job has none), errors only on stderr, overwrite our own temporary outputs. */
export const FFMPEG_GLOBAL_ARGS: readonly string[] = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-y'];

const MAX_STDERR_BYTES = 16 * 1024;
const PROGRESS_POLL_MS = 500;

/**
 * The one place where an ffmpeg command names a job's input: as
 * `media/input-policy.ts` hands it over (file protocol only, self-contained
 * demuxers only, a private name for a path with `%`), so the tool reads that
 * object and nothing it refers to. `before` are our own input options (`-ss 10`).
 */
export function inputArgs(input: ToolInput, before: readonly string[] = []): string[] {
  return [...before, ...input.options, '-i', input.url];
}

/**
 * Why ffmpeg produced no output:
 * - `spawn`: the binary could not be started;
 * - `exit`: ffmpeg ran and exited non-zero (usually: the input cannot be read);
 * - `crash`: killed by a signal we did not send;
 * - `timeout`: ran longer than `timeoutMs` and was killed.
 */
export type FfmpegFailure = 'spawn' | 'exit' | 'crash' | 'timeout';

export class FfmpegError extends Error {
  constructor(readonly reason: FfmpegFailure, message: string, readonly stderr: string) {
    super(message);
    this.name = 'FfmpegError';
  }

  /** The first stderr lines that say something (up to 3), joined; `''` if none. */
  get stderrSummary(): string {
    return meaningfulLines(this.stderr).slice(0, 3).join('; ');
  }
}

/**
 * stderr's non-empty lines, without fontconfig's complaints about the host's
 * configuration files (`Fontconfig warning: … unknown element "description"`),
 * which the static build prints on every run that draws text (drawtext,
 * subtitles) before any reason ffmpeg gives.
 */
export function meaningfulLines(stderr: string): string[] {
  return stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !/^Fontconfig (warning|error):/.test(l));
}

export interface FfmpegRunOptions {
  readonly spawner: Spawner;
  readonly binary: string;
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
  /** With `onProgress`: where ffmpeg writes its progress blocks (a file in the job's work folder). */
  readonly progressFile?: string;
  /** Length of the output in seconds, to turn `out_time` into a fraction. */
  readonly durationSec?: number;
  /** Called with 0–1 as ffmpeg reports progress. */
  readonly onProgress?: (fraction: number) => void;
}

/** The full argv of a run: global options, then `args`, with `-progress` when asked. */
export function ffmpegArgv(args: readonly string[], progressFile?: string): string[] {
  return [...FFMPEG_GLOBAL_ARGS, ...(progressFile ? ['-progress', `file:${progressFile}`, '-nostats'] : []), ...args];
}

/** Runs one ffmpeg command to completion; aborting kills its process group and rejects with the signal's reason. */
export async function runFfmpeg(args: readonly string[], options: FfmpegRunOptions): Promise<void> {
  const { signal, spawner, binary, timeoutMs } = options;
  signal.throwIfAborted();
  const watch = options.onProgress && options.progressFile && options.durationSec ? watchProgress(options.progressFile, options.durationSec, options.onProgress) : undefined;
  try {
    const argv = ffmpegArgv(args, watch ? options.progressFile : undefined);
    const run = await spawner.run({ binary, args: argv, timeoutMs, maxStdoutBytes: 1024 * 1024, maxStderrBytes: MAX_STDERR_BYTES }, signal);
    const stderr = run.stderr;
    if (run.killedFor === 'abort') throw signal.reason;
    if (run.spawnError !== undefined) throw new FfmpegError('spawn', `cannot run ffmpeg (${binary}): ${run.spawnError}`, stderr);
    if (run.killedFor === 'timeout') throw new FfmpegError('timeout', `ffmpeg did not finish within ${Math.round(timeoutMs / 1000)} s`, stderr);
    if (run.killedFor === 'output-limit') throw new FfmpegError('crash', 'ffmpeg printed too much on stdout', stderr);
    if (run.signal !== null) throw new FfmpegError('crash', `ffmpeg was killed by ${run.signal}`, stderr);
    if (run.code !== 0) {
      const first = meaningfulLines(stderr)[0] ?? '';
      throw new FfmpegError('exit', `ffmpeg exited with code ${run.code}${first ? `: ${first}` : ''}`, stderr);
    }
    // The last block may have come after the last poll.
    if (watch) options.onProgress?.(1);
  } finally {
    watch?.stop();
  }
}

/** Polls ffmpeg's `-progress` file; each block ends with `progress=continue|end`, `out_time_ms` is in microseconds. */
function watchProgress(file: string, durationSec: number, onProgress: (fraction: number) => void): { stop(): void } {
  let last = -1;
  const timer = setInterval(() => {
    fs.readFile(file, 'utf8').then((text) => {
      const at = text.lastIndexOf('out_time_ms=');
      if (at < 0) return;
      const micros = Number(/^out_time_ms=(-?\d+)/.exec(text.slice(at))?.[1]);
      if (!Number.isFinite(micros) || micros < 0) return;
      const fraction = Math.min(1, micros / 1e6 / durationSec);
      if (fraction > last) {
        last = fraction;
        onProgress(fraction);
      }
    }, () => undefined);
  }, PROGRESS_POLL_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/** ffmpeg's stderr without server details: our local paths become the object key, `@ 0x…` pointers go. */
export function publicFfmpegMessage(text: string, replacements: ReadonlyArray<readonly [string, string]>): string {
  let out = text;
  for (const [from, to] of replacements) out = out.split(`file:${from}`).join(to).split(from).join(to);
  return out.replace(/ @ 0x[0-9a-f]+\]/g, ']');
}

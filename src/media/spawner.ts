/**
 * Runs external tools (ffprobe, ffmpeg) to completion, within time and output
 * limits, killable on abort. Every tool leads a process group of its own, and
 * a kill (timeout, output limit, abort, close) takes the whole group.
 *
 * One spawner for the normal path, and a fallback:
 * - `NativeSpawner` (native-spawner.ts): vfork + exec from this process,
 *   through the small addon the Makefile builds (src/media/vfork-spawn.c);
 * - `ChildProcessSpawner` (child-spawner.ts): Node's own child_process, for
 *   a machine where the addon could not be built (no C compiler). It costs
 *   ~1.6 ms more of this process's CPU per tool and ~1 ms more in the tool
 *   (bench/README.md, "Spawning tools"), and tools outlive a worker that is
 *   killed outright.
 * `createSpawner` picks the addon when it loads.
 */
import { ChildProcessSpawner } from './child-spawner.js';
import { NativeSpawner } from './native-spawner.js';

export interface RunRequest {
  readonly binary: string;
  readonly args: readonly string[];
  readonly timeoutMs: number;
  /** The child is killed once its stdout grows past this. */
  readonly maxStdoutBytes: number;
  /** Only this much of stderr is kept. */
  readonly maxStderrBytes: number;
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Set when the spawner killed the child, and why. */
  readonly killedFor?: 'timeout' | 'output-limit' | 'abort';
  /** Set when the binary could not be started. */
  readonly spawnError?: string;
}

export interface Spawner {
  /** `native` (vfork + exec through the addon) or `child` (Node's child_process, the fallback). */
  readonly kind: 'native' | 'child';
  /** Runs one binary to completion; aborting `signal` kills it (the result then has `killedFor: 'abort'`). */
  run(request: RunRequest, signal?: AbortSignal): Promise<RunResult>;
  /** Kills what still runs; their results come back with `killedFor: 'abort'` or a spawnError. */
  close(): void;
}

/** The addon's spawner when it loads here, else Node's child_process; `'child'` asks for the latter (benchmarks, tests). */
export function createSpawner(prefer?: 'child'): Spawner {
  return prefer !== 'child' && NativeSpawner.unavailableReason() === undefined ? new NativeSpawner() : new ChildProcessSpawner();
}

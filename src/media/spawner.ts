/**
 * Runs short-lived binaries (ffprobe) to completion, within time and output
 * limits, killable on abort.
 *
 * Two implementations, one contract:
 * - `NativeSpawner` (native-spawner.ts) spawns from this process with
 *   vfork and exec, through the small addon the Makefile builds;
 * - `HelperSpawner` (helper-spawner.ts) asks a small helper process to spawn
 *   with Node's child_process, for when the addon is not built (no C
 *   compiler on the machine).
 * `createSpawner` picks the first that works here.
 */
import { HelperSpawner } from './helper-spawner.js';
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
  /** Set when the binary could not be started (or the helper process died). */
  readonly spawnError?: string;
}

export interface Spawner {
  /** `native` (vfork + exec from this process) or `helper` (child_process in a helper process). */
  readonly kind: 'native' | 'helper';
  /** Runs one binary to completion; aborting `signal` kills it (the result then has `killedFor: 'abort'`). */
  run(request: RunRequest, signal?: AbortSignal): Promise<RunResult>;
  /** Kills what still runs; their results come back with `killedFor: 'abort'` or a spawnError. */
  close(): void;
}

export function createSpawner(): Spawner {
  return NativeSpawner.unavailableReason() === undefined ? new NativeSpawner() : new HelperSpawner();
}

/**
 * What both spawners (`native-spawner.ts` and `child-spawner.ts`) do with a
 * started child: drain its output within the
 * limits of its RunRequest, kill it on timeout, output overflow or request,
 * and report how it ended once it has been reaped.
 */
import type { Readable } from 'node:stream';
import type { RunRequest, RunResult } from './spawner.js';

export type KillReason = NonNullable<RunResult['killedFor']>;

/** How a child ended; `spawnError` when it never started. */
export interface ExitStatus {
  readonly code: number | null;
  readonly signal: string | null;
  readonly spawnError?: string;
}

export interface StartedChild {
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Resolves once the child has exited, been reaped, and its stdout and stderr are closed. */
  readonly exited: Promise<ExitStatus>;
  /** SIGKILLs the child; must be harmless once it has exited. */
  kill(): void;
}

export interface SupervisedRun {
  readonly result: Promise<RunResult>;
  /** Kills the child for `why` (the first reason wins). */
  stop(why: KillReason): void;
}

export function superviseChild(child: StartedChild, limits: Pick<RunRequest, 'timeoutMs' | 'maxStdoutBytes' | 'maxStderrBytes'>): SupervisedRun {
  const stdout: Buffer[] = [];
  let stdoutBytes = 0;
  const stderr: Buffer[] = [];
  let stderrBytes = 0;
  let killedFor: KillReason | undefined;
  const stop = (why: KillReason): void => {
    if (killedFor !== undefined) return;
    killedFor = why;
    child.kill();
  };
  const timer = setTimeout(() => stop('timeout'), limits.timeoutMs);
  child.stdout.on('data', (chunk: Buffer) => {
    stdoutBytes += chunk.length;
    if (stdoutBytes > limits.maxStdoutBytes) stop('output-limit');
    else stdout.push(chunk);
  });
  child.stderr.on('data', (chunk: Buffer) => {
    if (stderrBytes >= limits.maxStderrBytes) return;
    stderr.push(chunk);
    stderrBytes += chunk.length;
  });
  const result = child.exited.then(({ code, signal, spawnError }): RunResult => {
    clearTimeout(timer);
    return {
      code,
      signal,
      stdout: Buffer.concat(stdout).toString('utf8'),
      stderr: Buffer.concat(stderr).toString('utf8').slice(0, limits.maxStderrBytes),
      ...(killedFor !== undefined ? { killedFor } : {}),
      ...(spawnError !== undefined ? { spawnError } : {}),
    };
  });
  return { result, stop };
}

/**
 * The runs a spawner has under way: `wait` kills a run when its signal aborts,
 * `close` kills every run (and any started after it).
 */
export class RunningChildren {
  private readonly runs = new Set<SupervisedRun>();
  private closed = false;

  /** The run's result; the run is killed at once if the signal aborted, or the spawner closed, while the child was being started. */
  async wait(run: SupervisedRun, signal?: AbortSignal): Promise<RunResult> {
    this.runs.add(run);
    const onAbort = () => run.stop('abort');
    if (signal?.aborted || this.closed) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await run.result;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.runs.delete(run);
    }
  }

  close(): void {
    this.closed = true;
    for (const run of this.runs) run.stop('abort');
  }
}

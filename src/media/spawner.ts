/**
 * Runs short-lived binaries (ffprobe) from a small helper process instead of
 * from the service's own process.
 *
 * Node's `child_process.spawn` forks the calling process, and the event loop
 * waits until the child has exec'd. The fork copies the caller's page tables,
 * so its cost grows with the caller's resident memory: with PGlite loaded the
 * service holds 500–850 MB and each spawn took 12–22 ms of main-thread CPU
 * (bench/media-info.bench.ts, "service process spawning bare"), against
 * ~2 ms from a ~55 MB process. The helper is forked once, holds nothing but
 * this loop, and spawns on its own thread, off the service's event loop.
 *
 * Protocol (IPC, one message each way per run): `{ id, binary, args,
 * timeoutMs, maxStdoutBytes, maxStderrBytes }` → `{ id, code, signal, stdout,
 * stderr, killedFor?, spawnError? }`; `{ kill: id }` kills a run (abort). The
 * helper replies only after the child has exited and been reaped.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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
  /** Set when the helper killed the child, and why. */
  readonly killedFor?: 'timeout' | 'output-limit' | 'abort';
  /** Set when the binary could not be started, or the helper itself died. */
  readonly spawnError?: string;
}

interface Pending {
  readonly resolve: (result: RunResult) => void;
}

const here = fileURLToPath(import.meta.url);
// spawn-helper.ts under tsx (the loader is inherited through execArgv), spawn-helper.js when compiled.
const HELPER = path.join(path.dirname(here), `spawn-helper${path.extname(here)}`);

export class Spawner {
  private helper: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  /** Runs one binary to completion; aborting `signal` kills it (the result then has `killedFor: 'abort'`). */
  run(request: RunRequest, signal?: AbortSignal): Promise<RunResult> {
    const helper = this.ensureHelper();
    const id = this.nextId++;
    return new Promise<RunResult>((resolve) => {
      const onAbort = () => helper.send({ kill: id });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        resolve: (result) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(result);
        },
      });
      this.setBusy(true);
      helper.send({ id, ...request });
    });
  }

  /** Stops the helper; runs still pending end with a spawnError. */
  close(): void {
    this.helper?.kill();
  }

  private ensureHelper(): ChildProcess {
    if (this.helper?.connected) return this.helper;
    const helper = fork(HELPER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    helper.on('message', (message: RunResult & { id: number }) => {
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      if (this.pending.size === 0) this.setBusy(false);
      pending.resolve(message);
    });
    helper.on('exit', () => {
      if (this.helper === helper) this.helper = undefined;
      for (const [id, pending] of this.pending) {
        this.pending.delete(id);
        pending.resolve({ code: null, signal: null, stdout: '', stderr: '', spawnError: 'the spawn helper process exited' });
      }
    });
    this.helper = helper;
    this.setBusy(false);
    return helper;
  }

  /** The helper keeps the service process alive only while a run is pending. */
  private setBusy(busy: boolean): void {
    const helper = this.helper as (ChildProcess & { channel?: { ref(): void; unref(): void } }) | undefined;
    if (!helper) return;
    if (busy) {
      helper.ref();
      helper.channel?.ref();
    } else {
      helper.unref();
      helper.channel?.unref();
    }
  }
}

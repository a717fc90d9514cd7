/**
 * The fallback Spawner (see spawner.ts): runs binaries from a small helper
 * process (spawn-helper.ts) instead of from the service's own process.
 *
 * Node's `child_process.spawn` forks the calling process, and the event loop
 * waits until the child has exec'd. The fork copies the caller's page tables,
 * so its cost grows with the caller's resident memory: with PGlite loaded the
 * service holds 500–850 MB and each spawn took 12–22 ms of main-thread CPU,
 * against ~2 ms from a ~55 MB process. The helper is forked once, holds
 * nothing but its loop, and spawns on its own thread, off the service's event
 * loop.
 *
 * Protocol (IPC, one message each way per run): `{ id, ...RunRequest }` →
 * `{ id, ...RunResult }`; `{ kill: id }` kills a run (abort). The helper
 * replies only after the child has exited and been reaped.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunRequest, RunResult, Spawner } from './spawner.js';

interface Pending {
  readonly resolve: (result: RunResult) => void;
}

const here = fileURLToPath(import.meta.url);
// spawn-helper.ts under tsx (the loader is inherited through execArgv), spawn-helper.js when compiled.
const HELPER = path.join(path.dirname(here), `spawn-helper${path.extname(here)}`);

export class HelperSpawner implements Spawner {
  readonly kind = 'helper';
  private helper: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

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

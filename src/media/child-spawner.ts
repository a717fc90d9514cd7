/**
 * The fallback Spawner (see spawner.ts), for a machine where the vfork addon
 * is not built (no C compiler): Node's own `child_process.spawn`, from this
 * process.
 *
 * libuv forks here, on the main thread: the kernel copies this process's page
 * tables and the child takes copy-on-write faults until its exec, so a spawn
 * costs more than the addon's vfork and grows with this process's memory.
 * Measured on the MediaInfo benchmark (bench/README.md, "Spawning tools"):
 * ~1.6 ms more of the service process's CPU per tool, ~1 ms more in the
 * tool's own process, ~20 % fewer jobs/s. Same behaviour otherwise
 * (process group, kills, limits, via `superviseChild`), except one: a worker
 * killed outright (SIGKILL, the OOM killer) leaves its running tools behind
 * until they end, where the addon's PR_SET_PDEATHSIG takes them with it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { RunningChildren, superviseChild, type ExitStatus } from './child-run.js';
import type { RunRequest, RunResult, Spawner } from './spawner.js';

export class ChildProcessSpawner implements Spawner {
  readonly kind = 'child';
  private readonly running = new RunningChildren();

  async run(request: RunRequest, signal?: AbortSignal): Promise<RunResult> {
    if (signal?.aborted) return { code: null, signal: null, stdout: '', stderr: '', killedFor: 'abort' };
    let child: ChildProcess;
    try {
      // detached: the tool leads a process group (and session) of its own, killed whole (see native-spawner.ts).
      child = spawn(request.binary, request.args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, windowsHide: true });
    } catch (err) {
      // Arguments Node refuses before any spawn (a NUL in them).
      return { code: null, signal: null, stdout: '', stderr: '', spawnError: (err as Error).message };
    }
    let spawnError: string | undefined;
    child.on('error', (err) => {
      if (child.pid === undefined) spawnError = err.message;
    });
    let gone = false;
    const exited = new Promise<ExitStatus>((resolve) => {
      child.on('close', (code, exitSignal) => {
        gone = true;
        resolve({ code, signal: exitSignal, ...(spawnError !== undefined ? { spawnError } : {}) });
      });
    });
    const run = superviseChild({
      stdout: child.stdout!,
      stderr: child.stderr!,
      exited,
      // Never after 'close' (the pid may belong to another process by then).
      kill: () => {
        if (gone || child.pid === undefined) return;
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // Already exiting; 'close' reports how it ended.
        }
      },
    }, request);
    return this.running.wait(run, signal);
  }

  close(): void {
    this.running.close();
  }
}

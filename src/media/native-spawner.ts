/**
 * The Spawner of the normal path (see spawner.ts): vfork + exec from this
 * process, through build/vfork-spawn.node (src/media/vfork-spawn.c, built by
 * the Makefile).
 *
 * Node's own `child_process.spawn` forks: the kernel copies the caller's page
 * tables and the child takes copy-on-write faults until it has exec'd, a cost
 * that grows with the caller's memory (12–22 ms per spawn from a service with
 * PGlite loaded; from today's ~140 MB service still ~1.6 ms more of its CPU
 * and ~1 ms more in the child per tool, MediaInfo jobs/s ×1.28 with vfork:
 * bench/README.md, "Spawning tools"). A vfork child borrows the caller's
 * memory until its exec, as glibc's posix_spawn does, so spawning costs the
 * same from any process. The addon also sets PR_SET_PDEATHSIG, which
 * posix_spawn cannot: a worker killed outright takes its tools with it.
 *
 * The vfork runs on a libuv pool thread: on a loaded machine the child can
 * wait a few milliseconds for a CPU before its exec, and the thread that
 * vforked waits with it; the main thread must not (every job's I/O runs there).
 *
 * The addon only starts and reaps; the pipes are read as ordinary Node
 * streams and the limits are applied by `superviseChild`. libuv reaps only
 * the children it spawned itself, so these are ours to reap: once both pipes
 * have closed, `waitpid(WNOHANG)` is polled until the child is gone (a child
 * that closes its output early and lingers is still bounded by the timeout).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RunningChildren, superviseChild, type ExitStatus } from './child-run.js';
import type { RunRequest, RunResult, Spawner } from './spawner.js';

interface SpawnAddon {
  /** Runs on a libuv pool thread: the vfork blocks that thread, not this one, until the child has exec'd. */
  spawn(file: string, argv: readonly string[]): Promise<[pid: number, stdoutFd: number, stderrFd: number]>;
  reap(pid: number): [code: number, signal: number] | undefined;
}

/** The addon, or the reason it cannot be used here. */
const addon: SpawnAddon | Error = loadAddon();

function loadAddon(): SpawnAddon | Error {
  if (process.platform !== 'linux') return new Error('vfork-spawn.node is built for Linux only');
  // Found from src/media (tsx) and from dist/src/media (compiled) alike: build/ sits next to package.json.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  const file = path.join(dir, 'build', 'vfork-spawn.node');
  try {
    return createRequire(import.meta.url)(file) as SpawnAddon;
  } catch (err) {
    return new Error(`cannot load ${file}: ${(err as Error).message}`);
  }
}

const SIGNAL_NAMES = new Map(Object.entries(os.constants.signals).map(([name, number]) => [number, name]));

const REAP_POLL_MAX_MS = 50;

async function reaped(pid: number): Promise<ExitStatus> {
  const { reap } = addon as SpawnAddon;
  for (let delay = 0; ; delay = Math.min(Math.max(1, delay * 2), REAP_POLL_MAX_MS)) {
    let status: ReturnType<SpawnAddon['reap']>;
    try {
      status = reap(pid);
    } catch (err) {
      return { code: null, signal: null, spawnError: `lost track of the child: ${(err as Error).message}` };
    }
    if (status) return { code: status[0] >= 0 ? status[0] : null, signal: status[1] ? (SIGNAL_NAMES.get(status[1]) ?? String(status[1])) : null };
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

function readEnd(fd: number): net.Socket {
  return new net.Socket({ fd, readable: true, writable: false });
}

/** Resolves when `stream` has closed, whether or not it failed first (how the child ended is what counts). */
function closed(stream: net.Socket): Promise<void> {
  stream.on('error', () => undefined);
  return new Promise((resolve) => stream.once('close', () => resolve()));
}

export class NativeSpawner implements Spawner {
  readonly kind = 'native';
  private readonly running = new RunningChildren();

  /** Why the addon cannot be used here (not built, not Linux), or undefined when it can. */
  static unavailableReason(): string | undefined {
    return addon instanceof Error ? addon.message : undefined;
  }

  async run(request: RunRequest, signal?: AbortSignal): Promise<RunResult> {
    if (addon instanceof Error) throw addon;
    if (signal?.aborted) return { code: null, signal: null, stdout: '', stderr: '', killedFor: 'abort' };
    let pid: number;
    let stdoutFd: number;
    let stderrFd: number;
    try {
      [pid, stdoutFd, stderrFd] = await addon.spawn(request.binary, [request.binary, ...request.args]);
    } catch (err) {
      return { code: null, signal: null, stdout: '', stderr: '', spawnError: (err as Error).message };
    }
    const stdout = readEnd(stdoutFd);
    const stderr = readEnd(stderrFd);
    let gone = false;
    const exited = Promise.all([closed(stdout), closed(stderr)])
      .then(() => reaped(pid))
      .then((status) => {
        gone = true;
        return status;
      });
    const run = superviseChild({
      stdout,
      stderr,
      exited,
      // Never after the reap: the pid may already belong to another process. The whole group,
      // so that a wrapper script's own children (MEDIAJOBS_FFPROBE_PATH may name one) die too
      // and release the pipes.
      kill: () => {
        if (gone) return;
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // Already exiting; the reap reports how it ended.
        }
      },
    }, request);
    return this.running.wait(run, signal);
  }

  close(): void {
    this.running.close();
  }
}

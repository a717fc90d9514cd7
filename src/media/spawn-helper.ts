/**
 * The helper process of `helper-spawner.ts`: spawns what it is asked to,
 * applies the time and output limits, and reports each run once the child is
 * reaped. Exits when the service process goes away.
 */
import { spawn } from 'node:child_process';
import { superviseChild, type ExitStatus, type SupervisedRun } from './child-run.js';
import type { RunRequest } from './spawner.js';

type Request = RunRequest & { readonly id: number };

const running = new Map<number, SupervisedRun>();

process.on('disconnect', () => {
  for (const run of running.values()) run.stop('abort');
  process.exit(0);
});

process.on('message', (message: Request | { kill: number }) => {
  if ('kill' in message) {
    running.get(message.kill)?.stop('abort');
    return;
  }
  const { id, binary, args } = message;
  // detached: a process group of its own, killed whole (see native-spawner.ts).
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true, detached: true });
  let spawnError: string | undefined;
  child.on('error', (err) => {
    if (child.pid === undefined) spawnError = err.message;
  });
  const exited = new Promise<ExitStatus>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, ...(spawnError !== undefined ? { spawnError } : {}) }));
  });
  const run = superviseChild({ stdout: child.stdout, stderr: child.stderr, exited, kill: () => killGroup(child.pid) }, message);
  running.set(id, run);
  void run.result.then((result) => {
    running.delete(id);
    process.send!({ id, ...result });
  });
});

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone; 'close' reports how it ended.
  }
}

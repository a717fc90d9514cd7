/**
 * The helper process of `spawner.ts`: spawns what it is asked to, applies the
 * time and output limits, and reports each run once the child is reaped.
 * Exits when the service process goes away.
 */
import { spawn, type ChildProcess } from 'node:child_process';

interface Request {
  readonly id: number;
  readonly binary: string;
  readonly args: readonly string[];
  readonly timeoutMs: number;
  readonly maxStdoutBytes: number;
  readonly maxStderrBytes: number;
}

const running = new Map<number, { child: ChildProcess; kill: (why: 'abort') => void }>();

process.on('disconnect', () => {
  for (const { child } of running.values()) child.kill('SIGKILL');
  process.exit(0);
});

process.on('message', (message: Request | { kill: number }) => {
  if ('kill' in message) {
    running.get(message.kill)?.kill('abort');
    return;
  }
  const { id, binary, args, timeoutMs, maxStdoutBytes, maxStderrBytes } = message;
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
  const stdout: Buffer[] = [];
  let stdoutBytes = 0;
  const stderr: Buffer[] = [];
  let stderrBytes = 0;
  let killedFor: 'timeout' | 'output-limit' | 'abort' | undefined;
  let spawnError: string | undefined;
  const kill = (why: NonNullable<typeof killedFor>): void => {
    if (killedFor !== undefined) return;
    killedFor = why;
    child.kill('SIGKILL');
  };
  running.set(id, { child, kill });
  const timer = setTimeout(() => kill('timeout'), timeoutMs);
  child.stdout!.on('data', (chunk: Buffer) => {
    stdoutBytes += chunk.length;
    if (stdoutBytes > maxStdoutBytes) kill('output-limit');
    else stdout.push(chunk);
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    if (stderrBytes >= maxStderrBytes) return;
    stderr.push(chunk);
    stderrBytes += chunk.length;
  });
  child.on('error', (err) => {
    if (child.pid === undefined) spawnError = err.message;
  });
  child.on('close', (code, signal) => {
    clearTimeout(timer);
    running.delete(id);
    process.send!({
      id,
      code,
      signal,
      stdout: Buffer.concat(stdout).toString('utf8'),
      stderr: Buffer.concat(stderr).toString('utf8').slice(0, maxStderrBytes),
      killedFor,
      spawnError,
    });
  });
});

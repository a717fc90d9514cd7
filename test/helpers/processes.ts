import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundledFfprobePath } from '../../src/media/ffprobe.js';

/**
 * A real ffprobe that takes `seconds` longer: a shell wrapper around the
 * bundled binary, so jobs are slow enough to be caught mid-run.
 */
export function slowFfprobe(seconds: number): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-slow-ffprobe-'));
  const script = path.join(dir, 'ffprobe');
  writeFileSync(script, `#!/bin/sh\nsleep ${seconds}\nexec "${bundledFfprobePath()}" "$@"\n`);
  chmodSync(script, 0o755);
  return script;
}

export interface WorkerProcess {
  readonly child: ChildProcess;
  /** Resolves once the worker has logged that it started. */
  readonly ready: Promise<void>;
  /** Everything it has written so far, stdout and stderr, for failure messages. */
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** `mediajobs worker` in a child process of its own, as an operator would run it. */
export function spawnWorker(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'worker'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', MEDIAJOBS_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start: ${output}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('worker started')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited with ${code}: ${output}`));
    });
  });
  ready.catch(() => undefined);
  return {
    child,
    ready,
    output: () => output,
    kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill(signal);
      });
    },
  };
}

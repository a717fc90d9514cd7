import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { bundledFfmpegPath } from '../../src/media/ffmpeg-capabilities.js';
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

/** Pids of ffmpeg processes whose arguments name the job's work folder. */
export function ffmpegPidsOf(jobId: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes('ffmpeg') && cmdline.includes(jobId)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/**
 * A 10 s 1280x720 25 fps MPEG-4 Part 2 clip (~10 MB, made in ~2 s by the
 * bundled ffmpeg, into a temporary folder): large enough that jobs probe it
 * and report progress, and slow enough to re-encode as H.264 that a test can
 * cancel the job while its ffmpeg runs.
 */
export function makeSlowClip(): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'mediajobs-slow-clip-')), 'slow.mp4');
  execFileSync(bundledFfmpegPath(), ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=25:duration=10', '-c:v', 'mpeg4', '-q:v', '3', file]);
  return file;
}

/** The frame of the video file `file` at `seconds`, decoded by the bundled ffmpeg, as raw RGB. */
export async function decodedFrame(file: string, seconds: number): Promise<{ data: Buffer; width: number; height: number }> {
  const png = execFileSync(bundledFfmpegPath(), ['-v', 'error', '-ss', String(seconds), '-i', file, '-frames:v', '1', '-f', 'image2', '-c:v', 'png', 'pipe:1']);
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

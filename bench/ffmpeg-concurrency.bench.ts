/**
 * How many ffmpeg transcodes should run at once on this machine
 * (MEDIAJOBS_VIDEO_CONCURRENCY, issue 18): bare ffmpeg only, no service.
 *
 *   npx tsx bench/ffmpeg-concurrency.bench.ts
 *
 * The bench's Transcode (the 8 s 640x480 clip → H.264 320 px, veryfast, Crf
 * 28, AAC 64k; the service's own argv) run as a burst of N jobs at C at once,
 * for C in BENCH_LEVELS (1,2,4), each with ffmpeg's default threads (x264 and
 * the decoder size their pools from the cores) and with `-threads 1`. Every
 * round runs all the settings, each round in a rotated order, so that a busy
 * moment of the shared host falls on different settings. Per setting, the
 * medians over rounds of:
 *
 * - jobs/s for the burst;
 * - one ffmpeg run's wall time (p50 within the round): what a job's Running
 *   phase lasts;
 * - the mean time from the burst's start to a job's end: what a submitter
 *   of the burst waits, queueing included;
 * - ffmpeg's CPU per job.
 *
 * Settings: BENCH_JOBS (8), BENCH_ROUNDS (3), BENCH_LEVELS (1,2,4).
 */
import { mkdtempSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ffmpegArgv } from '../src/media/ffmpeg.js';
import { resolveFfmpegPath } from '../src/media/ffmpeg-capabilities.js';
import { INPUT_OPTIONS } from '../src/media/input-policy.js';
import { createSpawner } from '../src/media/spawner.js';
import { buildTranscodeArgs, parseTranscode } from '../src/processors/transcode.js';
import { childrenCpuMs, envInt, fmt, makeTranscodeInput, median, percentile, printBlock, printTable, runPool } from './lib.js';

const JOBS = envInt('BENCH_JOBS', 8);
const ROUNDS = envInt('BENCH_ROUNDS', 3);
const LEVELS = (process.env.BENCH_LEVELS ?? '1,2,4').split(',').map(Number);
const FFMPEG = process.env.MEDIAJOBS_FFMPEG_PATH ?? '';
const SPEC = parseTranscode({
  Container: { Format: 'mp4' },
  Video: { Codec: 'H.264', Width: '320', Preset: 'veryfast', Crf: '28' },
  Audio: { Codec: 'aac', Bitrate: '64' },
});

interface Setting { readonly concurrency: number; readonly threads: 'default' | '1' }
interface Round { jobsPerSec: number; runP50Ms: number; meanDoneMs: number; cpuMs: number }

async function burst(input: string, outDir: string, setting: Setting): Promise<Round> {
  const spawner = createSpawner();
  const tool = { options: INPUT_OPTIONS, url: `file:${input}`, filePath: input };
  const runs: number[] = [];
  const done: number[] = [];
  const cpu = childrenCpuMs();
  const start = performance.now();
  try {
    await runPool(JOBS, setting.concurrency, async (i) => {
      const args = buildTranscodeArgs(SPEC, { input: tool, output: path.join(outDir, `${i}.mp4`) });
      // Output options go before the output file, the last argument.
      if (setting.threads === '1') args.splice(args.length - 1, 0, '-threads', '1');
      const began = performance.now();
      const run = await spawner.run({ binary: resolveFfmpegPath(FFMPEG), args: ffmpegArgv(args), timeoutMs: 300_000, maxStdoutBytes: 1 << 20, maxStderrBytes: 16 << 10 });
      if (run.code !== 0) throw new Error(`ffmpeg failed (${run.code ?? run.signal}): ${run.stderr || run.spawnError}`);
      const now = performance.now();
      runs.push(now - began);
      done.push(now - start);
    });
  } finally {
    spawner.close();
  }
  const elapsed = performance.now() - start;
  return {
    jobsPerSec: JOBS / (elapsed / 1000),
    runP50Ms: percentile(runs.sort((a, b) => a - b), 50),
    meanDoneMs: done.reduce((a, b) => a + b, 0) / done.length,
    cpuMs: (childrenCpuMs() - cpu) / JOBS,
  };
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-ffmpeg-conc-'));
try {
  const input = await makeTranscodeInput(dir, FFMPEG);
  const settings: Setting[] = LEVELS.flatMap((concurrency) => [{ concurrency, threads: 'default' as const }, { concurrency, threads: '1' as const }]);
  printBlock('ffmpeg concurrency', [
    ['operation', `8 s 640x480 → H.264 320 px, veryfast, Crf 28, AAC 64k; bursts of ${JOBS}, ${ROUNDS} rounds, ${os.availableParallelism()} CPUs`],
    ['load average at start', os.loadavg().map((l) => l.toFixed(2)).join(' ')],
  ]);
  await burst(input, dir, { concurrency: 1, threads: 'default' });
  const results = new Map<Setting, Round[]>(settings.map((s) => [s, []]));
  const loads: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < settings.length; k++) {
      const setting = settings[(k + round) % settings.length];
      results.get(setting)!.push(await burst(input, dir, setting));
    }
    loads.push(os.loadavg()[0]);
  }
  printTable(['C', '-threads', 'jobs/s', 'run p50 ms', 'mean burst start → end ms', 'ffmpeg CPU ms/job'], settings.map((s) => {
    const rounds = results.get(s)!;
    const m = (f: (r: Round) => number) => median(rounds.map(f));
    return [String(s.concurrency), s.threads, `${fmt(m((r) => r.jobsPerSec), 2)} (${rounds.map((r) => fmt(r.jobsPerSec, 2)).join(', ')})`,
      fmt(m((r) => r.runP50Ms), 0), fmt(m((r) => r.meanDoneMs), 0), fmt(m((r) => r.cpuMs), 0)];
  }));
  console.log(`\nload average (1 min) after each round: ${loads.map((l) => l.toFixed(2)).join(', ')}`);
} finally {
  await fs.rm(dir, { recursive: true, force: true });
}

/**
 * Snapshot throughput: the service against bare ffmpeg with the same arguments.
 *
 *   node dist/bench/snapshot.bench.js        (after tsc -p tsconfig.json)
 *   npx tsx bench/snapshot.bench.ts
 *
 * The operation: three JPEG frames, 3 s apart from 1 s, 128 px wide, of
 * fixtures/media/clip-12s.mp4, N times at concurrency C, in one run:
 *
 * - bare: the ffmpeg binary the service runs, with the argv the service's
 *   builder makes for this Operation (`buildSnapshotArgs` + `ffmpegArgv`),
 *   through the service's own Spawner, C at a time, each into its own folder;
 * - service: N Snapshot jobs POSTed over loopback HTTP and run by the
 *   in-process worker (MEDIAJOBS_CONCURRENCY = C): each runs ffmpeg (no probe:
 *   Interval without IsCheckCount needs no duration) and stores the three
 *   images. Time runs from the database clock before the first POST to the
 *   last job's ended_at.
 *
 * Rounds alternate which side goes first; the verdict uses the median ratio
 * (service ÷ bare). Settings: BENCH_JOBS (40), BENCH_ROUNDS (3), BENCH_WARMUP
 * (8), MEDIAJOBS_CONCURRENCY (CPUs; the service's MEDIAJOBS_VIDEO_CONCURRENCY is set to
 * the same, so both sides run C ffmpeg at once, unless given). Target: ratio ≥ 0.85.
 *
 * On a host other work keeps busy the ratio swings widely from round to round
 * (a ~30 ms job gets whatever CPU share is left), so each round also prints the
 * CPU per job of both sides: ffmpeg's (this process's waited-for children,
 * from /proc/self/stat) and this process's own (the service: HTTP, queue,
 * storage; plus the benchmark's client and polling, a few tenths of a ms).
 * The database server's share is not counted.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ffmpegArgv } from '../src/media/ffmpeg.js';
import { buildSnapshotArgs, parseSnapshot, pickInterval } from '../src/processors/snapshot.js';
import {
  bareAndService, bareFfmpegJobsPerSec, benchConcurrency, BUCKET, envInt, environmentRows, fitQueueToConcurrency, fmt, measureCpu, median, printBlock, printTable, REPO_ROOT, runBenchmark,
  serviceJobsPerSec, startBenchService, type BenchService, type CpuRound,
} from './lib.js';

const JOBS = envInt('BENCH_JOBS', 40);
const ROUNDS = envInt('BENCH_ROUNDS', 3);
const WARMUP = envInt('BENCH_WARMUP', 8, 0);
const CONCURRENCY = benchConcurrency();
const TARGET_RATIO = 0.85;
const FIXTURE = path.join(REPO_ROOT, 'fixtures', 'media', 'clip-12s.mp4');
const KEY = 'bench/clip.mp4';
const SNAPSHOT = { Mode: 'Interval', Start: '1', TimeInterval: '3', Count: '3', Width: '128' };

function snapshotRequest(index: number): string {
  return `<Request><Tag>Snapshot</Tag><Input><Object>${KEY}</Object></Input><Operation>`
    + '<Snapshot><Mode>Interval</Mode><Start>1</Start><TimeInterval>3</TimeInterval><Count>3</Count><Width>128</Width></Snapshot>'
    + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>bench/out/${index}/\${Number}.jpg</Object></Output></Operation></Request>`;
}

/** Jobs per second through the API and the worker. */
function runService(bench: BenchService, jobs: number): Promise<CpuRound> {
  return measureCpu(jobs, () => serviceJobsPerSec(bench, jobs, snapshotRequest));
}

/** Jobs per second for the same ffmpeg command run directly. */
function runBare(input: string, jobs: number, outDir: string, ffmpegPath: string): Promise<CpuRound> {
  return measureCpu(jobs, () => bareJobsPerSec(input, jobs, outDir, ffmpegPath));
}

function bareJobsPerSec(input: string, jobs: number, outDir: string, ffmpegPath: string): Promise<number> {
  const spec = parseSnapshot(SNAPSHOT);
  return bareFfmpegJobsPerSec({
    input, jobs, concurrency: CONCURRENCY, outDir, ffmpegPath,
    argsFor: async (tool, i) => {
      const dir = path.join(outDir, String(i));
      await fs.mkdir(dir, { recursive: true });
      // The service's Snapshot run: no -progress (it reports no fraction for snapshots), the interval from the probed 12 s.
      return ffmpegArgv(buildSnapshotArgs(spec, { input: tool, dir, format: 'jpg' }, pickInterval(spec, 12)));
    },
  });
}

await runBenchmark('snapshot', async (db, use) => {
  const bench = use(await startBenchService(db, { env: { MEDIAJOBS_CONCURRENCY: String(CONCURRENCY) } }));
  await bench.service.storage.put(BUCKET, KEY, await fs.readFile(FIXTURE));
  const input = path.join(bench.config.dataDir, 'buckets', BUCKET, KEY);
  await fitQueueToConcurrency(bench);
  const outDir = path.join(db.dataDir, 'bare-out');
  printBlock('Snapshot benchmark', [
    ...(await environmentRows(bench, db)),
    ['operation', `${path.basename(FIXTURE)} → 3 JPEGs 128 px wide (Interval, Start 1, TimeInterval 3); ${JOBS} jobs, concurrency ${CONCURRENCY}, ${os.availableParallelism()} CPUs`],
  ]);
  if (WARMUP > 0) {
    await runBare(input, WARMUP, outDir, bench.config.ffmpegPath);
    await runService(bench, WARMUP);
  }
  const rows: string[][] = [];
  const ratios: number[] = [];
  const added: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const { bare, service } = await bareAndService(round, () => runBare(input, JOBS, outDir, bench.config.ffmpegPath), () => runService(bench, JOBS));
    ratios.push(service.jobsPerSec / bare.jobsPerSec);
    added.push(service.ownCpuMs - bare.ownCpuMs);
    rows.push([
      String(round), fmt(bare.jobsPerSec, 2), fmt(service.jobsPerSec, 2), fmt(service.jobsPerSec / bare.jobsPerSec, 3),
      `${fmt(bare.toolsCpuMs, 1)} / ${fmt(service.toolsCpuMs, 1)}`, `${fmt(bare.ownCpuMs, 1)} / ${fmt(service.ownCpuMs, 1)}`,
    ]);
  }
  printTable(['round', 'bare ffmpeg jobs/s', 'service jobs/s', 'ratio', 'ffmpeg CPU ms/job bare / service', 'own CPU ms/job bare / service'], rows);
  const ratio = median(ratios);
  console.log(`\nratio (service ÷ bare ffmpeg), median of ${ROUNDS}: ${fmt(ratio, 3)}  (target ≥ ${TARGET_RATIO}: ${ratio >= TARGET_RATIO ? 'met' : 'missed'})`);
  console.log(`CPU the service adds per job in its own process (median): ${fmt(median(added), 1)} ms`);
});

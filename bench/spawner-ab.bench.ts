/**
 * The two spawners on one service, A/B: vfork + exec through the addon
 * (native-spawner.ts) against Node's own child_process (child-spawner.ts).
 *
 *   node dist/bench/spawner-ab.bench.js        (after tsc -p tsconfig.json)
 *
 * One service (API + in-process worker, MEDIAJOBS_CONCURRENCY = C), its
 * processors built on a spawner that is switched between rounds, so both
 * sides share the process, the database, the warm-up and the machine's
 * drift: rounds of BENCH_JOBS MediaInfo jobs (submitted over loopback HTTP
 * and drained as in media-info.bench.ts), alternating, the order flipped
 * every pair. Per round: jobs/s (database clock, first POST → last end), the
 * CPU of this process per job (service, worker and the benchmark's client),
 * and the CPU of its reaped children per job (the ffprobes, including what a
 * fork's child spends before its exec). On a host loaded by others the
 * per-round jobs/s swing far more than the spawners differ; the paired
 * ratios' median and the CPU figures are what to read.
 *
 * Settings: BENCH_JOBS (100), BENCH_ROUNDS (10 pairs), BENCH_WARMUP (1000),
 * BENCH_SUBMITTERS (4), BENCH_POLL_MS (50), MEDIAJOBS_CONCURRENCY (CPUs).
 */
import {
  assertAllSucceeded, benchConcurrency, childrenCpuMs, cpuMs, dbClockMs, envInt, environmentRows, fitQueueToConcurrency, fmt, jobTimings, maxJobSeq,
  mediaInfoRequest, median, printBlock, printTable, putFixture, runBenchmark, runPool, startBenchService, waitUntilIdle, type BenchService,
} from './lib.js';
import { ChildProcessSpawner } from '../src/media/child-spawner.js';
import { NativeSpawner } from '../src/media/native-spawner.js';
import type { Spawner } from '../src/media/spawner.js';
import { createProcessorRegistry } from '../src/processors/index.js';

const JOBS = envInt('BENCH_JOBS', 100);
const PAIRS = envInt('BENCH_ROUNDS', 10);
const WARMUP = envInt('BENCH_WARMUP', 1000, 0);
const SUBMITTERS = envInt('BENCH_SUBMITTERS', 4);
const POLL_MS = envInt('BENCH_POLL_MS', 50);
const CONCURRENCY = benchConcurrency();
const KEY = 'bench/h264-aac.mp4';

type Side = 'vfork' | 'child';
const SIDES: readonly Side[] = ['vfork', 'child'];

interface Round {
  readonly jobsPerSecond: number;
  readonly serviceCpuMs: number;
  readonly childrenCpuMs: number;
}

async function round(bench: BenchService, jobs: number): Promise<Round> {
  const body = mediaInfoRequest(KEY);
  const afterSeq = await maxJobSeq(bench);
  const dbStart = await dbClockMs(bench);
  const cpu = process.cpuUsage();
  const children = childrenCpuMs();
  await runPool(jobs, SUBMITTERS, async () => { await bench.client.submit(body); });
  await waitUntilIdle(bench, POLL_MS);
  const serviceCpuMs = cpuMs(process.cpuUsage(cpu)) / jobs;
  const childrenMs = (childrenCpuMs() - children) / jobs;
  const timings = await jobTimings(bench, afterSeq);
  assertAllSucceeded(timings, jobs);
  const lastEnd = Math.max(...timings.map((t) => t.endedMs ?? NaN));
  return { jobsPerSecond: jobs / ((lastEnd - dbStart) / 1000), serviceCpuMs, childrenCpuMs: childrenMs };
}

await runBenchmark('spawner-ab.bench', async (db, use) => {
  if (NativeSpawner.unavailableReason() !== undefined) throw new Error(`the vfork addon is not built: ${NativeSpawner.unavailableReason()}`);
  const spawners: Record<Side, Spawner> = { vfork: new NativeSpawner(), child: new ChildProcessSpawner() };
  let current: Spawner = spawners.vfork;
  const switchable: Spawner = {
    get kind() { return current.kind; },
    run: (request, signal) => current.run(request, signal),
    close: () => { for (const spawner of Object.values(spawners)) spawner.close(); },
  };
  const bench = use(await startBenchService(db, {
    env: { MEDIAJOBS_CONCURRENCY: String(CONCURRENCY) },
    processors: createProcessorRegistry({ spawner: switchable }),
  }));
  await fitQueueToConcurrency(bench);
  await putFixture(bench, KEY);
  printBlock('Spawners A/B: vfork addon vs child_process, MediaInfo on one service', [
    ...(await environmentRows(bench, db)),
    ['workload', `${PAIRS} pairs of rounds of ${JOBS} jobs, C=${CONCURRENCY}, ${SUBMITTERS} HTTP submitters, warm-up ${WARMUP} (half on each)`],
  ]);
  for (const side of SIDES) {
    current = spawners[side];
    if (WARMUP > 0) await round(bench, Math.ceil(WARMUP / 2));
  }

  const results: Record<Side, Round[]> = { vfork: [], child: [] };
  for (let pair = 0; pair < PAIRS; pair++) {
    for (const side of pair % 2 === 0 ? SIDES : [...SIDES].reverse()) {
      current = spawners[side];
      results[side].push(await round(bench, JOBS));
    }
  }
  switchable.close();

  console.log('\nPer pair (jobs/s; CPU ms per job of this process and of its children, the ffprobes):');
  printTable(
    ['pair', 'vfork jobs/s', 'child jobs/s', 'vfork ÷ child', 'vfork CPU', 'child CPU', 'vfork ffprobe', 'child ffprobe'],
    results.vfork.map((v, i) => {
      const c = results.child[i];
      return [String(i + 1), fmt(v.jobsPerSecond, 1), fmt(c.jobsPerSecond, 1), fmt(v.jobsPerSecond / c.jobsPerSecond, 3),
        fmt(v.serviceCpuMs), fmt(c.serviceCpuMs), fmt(v.childrenCpuMs), fmt(c.childrenCpuMs)];
    }),
  );
  const med = (side: Side, pick: (r: Round) => number) => median(results[side].map(pick));
  const range = (values: number[], digits = 2) => `${fmt(Math.min(...values), digits)}–${fmt(Math.max(...values), digits)}`;
  const ratios = results.vfork.map((v, i) => v.jobsPerSecond / results.child[i].jobsPerSecond);
  printBlock('Spawners A/B: result (medians)', [
    ['jobs/s', `vfork ${fmt(med('vfork', (r) => r.jobsPerSecond), 1)}, child_process ${fmt(med('child', (r) => r.jobsPerSecond), 1)}`],
    ['vfork ÷ child_process', `${fmt(median(ratios), 3)}  (pairs ${range(ratios, 3)})`],
    ['service CPU per job, ms', `vfork ${fmt(med('vfork', (r) => r.serviceCpuMs))} (${range(results.vfork.map((r) => r.serviceCpuMs))}), child_process ${fmt(med('child', (r) => r.serviceCpuMs))} (${range(results.child.map((r) => r.serviceCpuMs))})`],
    ['ffprobe CPU per job, ms', `vfork ${fmt(med('vfork', (r) => r.childrenCpuMs))} (${range(results.vfork.map((r) => r.childrenCpuMs))}), child_process ${fmt(med('child', (r) => r.childrenCpuMs))} (${range(results.child.map((r) => r.childrenCpuMs))})`],
  ]);
});

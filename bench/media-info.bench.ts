/**
 * MediaInfo throughput: the service against the bare ffprobe binary.
 *
 *   node dist/bench/media-info.bench.js        (after tsc -p tsconfig.json)
 *   npx tsx bench/media-info.bench.ts
 *
 * One process starts the service (API + in-process worker,
 * MEDIAJOBS_CONCURRENCY = C, default one per CPU) on a scratch database
 * (PostgreSQL when DATABASE_URL is set, else the embedded one), stores
 * fixtures/media/h264-aac.mp4 in the default bucket, and then, each round:
 *
 * - bare: runs the ffprobe-static binary N times on that same stored file, C
 *   at a time, with the service's exact arguments and the service's own
 *   Spawner (vfork + exec when the addon is built, else Node's child_process;
 *   BENCH_SPAWNER=child forces the latter on both sides; no shell, output
 *   piped and drained), from a fresh small Node process (bench/ffprobe-loop.ts);
 *   throughput = N ÷ wall time. The same loop run from the service's own
 *   process is printed as a diagnostic (BENCH_BARE_IN_PROCESS=0 skips it).
 * - service: POSTs N MediaInfo jobs over loopback HTTP (BENCH_SUBMITTERS
 *   requests in flight) and waits until none is Submitted or Running (one
 *   count query every BENCH_POLL_MS). Time runs from the database clock read
 *   just before the first POST to the last job's ended_at (the same clock),
 *   so the polling interval does not blur the end; the client-observed wall
 *   time is printed too. Every job must end Success at its first attempt.
 *
 * A warm-up of BENCH_WARMUP service jobs runs first (and each bare loop
 * process runs up to 200 uncounted probes before its N): the
 * service's JavaScript is still being compiled by V8 for the first thousand
 * jobs or so (a job's own CPU falls by half between job 200 and job 2000),
 * and a throughput figure is about the service that has been running. Rounds
 * alternate which side goes first; the verdict uses the median round ratio.
 * Also printed: the CPU time of the service's process per job (the API, the
 * worker, and this benchmark's own HTTP client), since
 * one core bounds what one process can do.
 *
 * Settings: BENCH_JOBS (200), BENCH_ROUNDS (3),
 * BENCH_WARMUP (1000), BENCH_SUBMITTERS (4), BENCH_POLL_MS (50), BENCH_BARE_IN_PROCESS (1), BENCH_SPAWNER (unset),
 * MEDIAJOBS_CONCURRENCY (CPUs); other MEDIAJOBS_* reach the service as is.
 */
import { performance } from 'node:perf_hooks';
import {
  assertAllSucceeded, BENCH_SPAWNER, bareProbes, bareProbesInChild, benchConcurrency, cpuMs, dbClockMs, envInt, environmentRows,
  ffprobeArgs, ffprobeBinary, fitQueueToConcurrency, fmt, fmtSummary, jobTimings, maxJobSeq, median, mediaInfoRequest,
  printBlock, printTable, putFixture, runBenchmark, runPool, startBenchService, summarize, waitUntilIdle,
  type BareRun, type BenchService,
} from './lib.js';
import { NativeSpawner } from '../src/media/native-spawner.js';
import { createSpawner } from '../src/media/spawner.js';
import { createProcessorRegistry } from '../src/processors/index.js';

const JOBS = envInt('BENCH_JOBS', 200);
const ROUNDS = envInt('BENCH_ROUNDS', 3);
const WARMUP = envInt('BENCH_WARMUP', 1000, 0);
const SUBMITTERS = envInt('BENCH_SUBMITTERS', 4);
const POLL_MS = envInt('BENCH_POLL_MS', 50);
const CONCURRENCY = benchConcurrency();
const IN_PROCESS_TOO = envInt('BENCH_BARE_IN_PROCESS', 1, 0, 1) === 1;
const TARGET_RATIO = 0.8;
/** Each round's bare loop runs in a fresh process, which warms up on this many probes first. */
const BARE_WARMUP = Math.min(WARMUP, 200);
const KEY = 'bench/h264-aac.mp4';

interface ServiceRun {
  /** Database clock: just before the first POST → the last ended_at. */
  readonly seconds: number;
  /** Client clock: first POST → the poll that saw no job left. */
  readonly clientSeconds: number;
  /** Client clock: first POST → last POST answered. */
  readonly submitSeconds: number;
  /** Per job, database clock: created → started, started → ended. */
  readonly waitMs: number[];
  readonly runMs: number[];
  /** CPU time of this whole process (service, its worker, and the benchmark's own client) per job; ffprobe's not included. */
  readonly nodeCpuMsPerJob: number;
}

async function runService(bench: BenchService, jobs: number): Promise<ServiceRun> {
  const body = mediaInfoRequest(KEY);
  const afterSeq = await maxJobSeq(bench);
  const dbStart = await dbClockMs(bench);
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  await runPool(jobs, SUBMITTERS, async () => { await bench.client.submit(body); });
  const submitted = performance.now();
  await waitUntilIdle(bench, POLL_MS);
  const seen = performance.now();
  const nodeCpuMsPerJob = cpuMs(process.cpuUsage(cpu)) / jobs;
  const timings = await jobTimings(bench, afterSeq);
  assertAllSucceeded(timings, jobs);
  const lastEnd = Math.max(...timings.map((t) => t.endedMs ?? NaN));
  return {
    seconds: (lastEnd - dbStart) / 1000,
    clientSeconds: (seen - t0) / 1000,
    submitSeconds: (submitted - t0) / 1000,
    waitMs: timings.map((t) => (t.startedMs ?? NaN) - t.createdMs),
    runMs: timings.map((t) => (t.endedMs ?? NaN) - (t.startedMs ?? NaN)),
    nodeCpuMsPerJob,
  };
}

await runBenchmark('media-info.bench', async (db, use) => {
  const spawner = createSpawner(BENCH_SPAWNER);
  const bench = use(await startBenchService(db, {
    env: { MEDIAJOBS_CONCURRENCY: String(CONCURRENCY) },
    // The service's own processors, on the spawner BENCH_SPAWNER asks for.
    ...(BENCH_SPAWNER ? { processors: createProcessorRegistry({ spawner }) } : {}),
  }));
  await fitQueueToConcurrency(bench);
  await putFixture(bench, KEY);
  const binary = ffprobeBinary(bench.config);
  const args = ffprobeArgs(await bench.localPath(KEY));

  printBlock('MediaInfo throughput: service vs bare ffprobe', [
    ...(await environmentRows(bench, db)),
    ['workload', `${JOBS} jobs × ${ROUNDS} rounds on fixtures/media/h264-aac.mp4, C=${CONCURRENCY}, ${SUBMITTERS} HTTP submitters, poll ${POLL_MS} ms, warm-up ${WARMUP}`],
    ['bare', `${binary} ${args.join(' ')}`],
    ['spawner', spawner.kind === 'native' ? 'native: vfork + exec from the calling process (both sides)'
      : `Node's child_process from the calling process, both sides (${BENCH_SPAWNER ? 'BENCH_SPAWNER=child' : NativeSpawner.unavailableReason()})`],
  ]);

  const runBare = (jobs: number) => bareProbesInChild({ binary, args, jobs, concurrency: CONCURRENCY, warmup: BARE_WARMUP });
  if (WARMUP > 0) {
    // Each round's bare loop warms itself up in its own process; this warms the in-process diagnostic.
    if (IN_PROCESS_TOO) await bareProbes(binary, args, BARE_WARMUP, CONCURRENCY);
    await runService(bench, WARMUP);
  }

  const bare: BareRun[] = [];
  const service: ServiceRun[] = [];
  const bareHere: BareRun[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate the order so slow drift (page cache, CPU frequency, autovacuum) hits both sides alike.
    if (round % 2 === 0) {
      bare.push(await runBare(JOBS));
      service.push(await runService(bench, JOBS));
    } else {
      service.push(await runService(bench, JOBS));
      bare.push(await runBare(JOBS));
    }
    // Diagnostic only: the same loop spawned from the service's own (bigger) process.
    if (IN_PROCESS_TOO) bareHere.push(await bareProbes(binary, args, JOBS, CONCURRENCY));
  }

  const ratios = service.map((s, i) => bare[i].seconds / s.seconds);
  console.log('\nPer round (jobs/s; "service" by the database clock, "client-seen" until the poll that found no job left):');
  printTable(
    ['round', 'bare', 'service', 'ratio', 'client-seen', 'submit phase s', ...(IN_PROCESS_TOO ? ['bare from service process'] : [])],
    service.map((s, i) => [
      String(i + 1),
      fmt(JOBS / bare[i].seconds, 1),
      fmt(JOBS / s.seconds, 1),
      fmt(ratios[i], 3),
      fmt(JOBS / s.clientSeconds, 1),
      fmt(s.submitSeconds, 2),
      ...(IN_PROCESS_TOO ? [fmt(JOBS / bareHere[i].seconds, 1)] : []),
    ]),
  );

  const pooled = (runs: ReadonlyArray<{ seconds: number }>) => runs.reduce((a, r) => a + r.seconds, 0);
  const ratio = median(ratios);
  const perJob = (values: number[]) => fmtSummary(summarize(values));
  const serviceCpu = median(service.map((s) => s.nodeCpuMsPerJob));
  printBlock('MediaInfo throughput: result', [
    ['bare ffprobe', `${fmt((JOBS * ROUNDS) / pooled(bare), 1)} jobs/s  (C=${CONCURRENCY}, from a fresh Node process; rounds pooled)`],
    ['service', `${fmt((JOBS * ROUNDS) / pooled(service), 1)} jobs/s  (first POST → last job ended; rounds pooled)`],
    ['ratio service ÷ bare', `${fmt(ratio, 3)}  (median of rounds ${ratios.map((r) => fmt(r, 3)).join(', ')}; pooled ${fmt(pooled(bare) / pooled(service), 3)})`],
    ['target', `ratio ≥ ${TARGET_RATIO}: ${ratio >= TARGET_RATIO ? 'MET' : 'MISSED'}`],
    ['', ''],
    ['per job / probe, ms', ''],
    ['service created → started', `${perJob(service.flatMap((s) => s.waitMs))}  (queue wait: all ${JOBS} are submitted at once)`],
    ['service started → ended', perJob(service.flatMap((s) => s.runMs))],
    ['bare probe', perJob(bare.flatMap((b) => b.perProbeMs))],
    ...(IN_PROCESS_TOO ? [['bare probe from service process', perJob(bareHere.flatMap((b) => b.perProbeMs))] as const] : []),
    ['', ''],
    ['Node CPU per job, ms', '(ffprobe\'s own CPU not included)'],
    ['service process', `${fmt(serviceCpu)}  (API, worker and this benchmark's client: one core caps it at ${fmt(1000 / serviceCpu, 0)} jobs/s)`],
    ['bare spawner process', `${fmt(median(bare.map((b) => b.nodeCpuMsPerProbe)))}  (RSS ${fmt(bare[0].rssMb, 0)} MB)`],
    ...(IN_PROCESS_TOO ? [['service process spawning bare', `${fmt(median(bareHere.map((b) => b.nodeCpuMsPerProbe)))}  (RSS ${fmt(bareHere[0].rssMb, 0)} MB)`] as const] : []),
  ]);
});

/**
 * Enqueue-to-start latency on an idle system.
 *
 *   node dist/bench/enqueue-latency.bench.js   (after tsc -p tsconfig.json)
 *   npx tsx bench/enqueue-latency.bench.ts
 *
 * One process starts the service (API + in-process worker, MEDIAJOBS_CONCURRENCY
 * default one per CPU) on a scratch database (PostgreSQL when DATABASE_URL is
 * set, else the embedded PostgreSQL) and submits N MediaInfo jobs over loopback HTTP, one at a
 * time: each job must have started and finished, and the system then rests for
 * BENCH_IDLE_MS, before the next is POSTed. So every job meets an idle worker,
 * and how fast it starts is down to the submitting transaction, the NOTIFY
 * wake-up and the claim.
 *
 * The measure is `started_at − created_at`, both stamped by the database
 * clock (created_at is the submitting transaction's start, started_at the
 * claiming statement's), so there is no clock skew; read to the microsecond
 * on PostgreSQL. Also printed,
 * on the client's clock: POST sent → processor called (everything, HTTP and
 * the claim statement included) and the POST round trip.
 *
 * BENCH_PROCESSOR=trivial (default) registers a MediaInfo processor that
 * returns at once; BENCH_PROCESSOR=mediainfo runs the real one (ffprobe).
 * Either way it is wrapped to note when the worker calls it.
 *
 * Settings: BENCH_JOBS (200), BENCH_WARMUP (20), BENCH_IDLE_MS (20),
 * BENCH_PROCESSOR (trivial), MEDIAJOBS_CONCURRENCY (CPUs).
 */
import { performance } from 'node:perf_hooks';
import { createSpawner } from '../src/media/spawner.js';
import { createMediaInfoProcessor } from '../src/processors/media-info.js';
import type { Processor } from '../src/processors/processor.js';
import {
  assertAllSucceeded, benchConcurrency, envInt, environmentRows, fitQueueToConcurrency, fmt, fmtSummary, jobTimings, maxJobSeq,
  mediaInfoRequest, printBlock, putFixture, runBenchmark, sleep, startBenchService, summarize, type BenchService,
} from './lib.js';

const JOBS = envInt('BENCH_JOBS', 200);
const WARMUP = envInt('BENCH_WARMUP', 20, 0);
const IDLE_MS = envInt('BENCH_IDLE_MS', 20, 0);
const CONCURRENCY = benchConcurrency();
const PROCESSOR = process.env.BENCH_PROCESSOR?.trim() || 'trivial';
const TARGET_P50_MS = 5;
const TARGET_P99_MS = 20;
const KEY = 'bench/h264-aac.mp4';
/** A job that has not started after this long means the wake-up path is broken; say so instead of hanging. */
const START_TIMEOUT_MS = 10_000;

if (PROCESSOR !== 'trivial' && PROCESSOR !== 'mediainfo') throw new Error(`BENCH_PROCESSOR=${PROCESSOR}: expected trivial or mediainfo`);

/** When the worker called the processor for each job (client clock). */
const processorCalledAt = new Map<string, number>();
const startWaiters = new Map<string, () => void>();

const trivialProcessor: Processor = {
  tag: 'MediaInfo',
  async run() {
    return { MediaInfo: { Format: { FormatName: 'bench' } } };
  },
};

function instrumented(inner: Processor): Processor {
  return {
    tag: inner.tag,
    run(ctx) {
      processorCalledAt.set(ctx.job.jobId, performance.now());
      startWaiters.get(ctx.job.jobId)?.();
      return inner.run(ctx);
    },
  };
}

function processorStarted(jobId: string): Promise<number> {
  const at = processorCalledAt.get(jobId);
  if (at !== undefined) return Promise.resolve(at);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      startWaiters.delete(jobId);
      reject(new Error(`job ${jobId} did not start within ${START_TIMEOUT_MS} ms`));
    }, START_TIMEOUT_MS);
    startWaiters.set(jobId, () => {
      clearTimeout(timer);
      startWaiters.delete(jobId);
      resolve(processorCalledAt.get(jobId)!);
    });
  });
}

/** Until the worker has finished with the job (its final state committed and the job off its running list). */
async function workerDone(bench: BenchService, jobId: string): Promise<void> {
  const worker = bench.service.worker!;
  const deadline = Date.now() + 60_000;
  while (worker.activeJobIds.includes(jobId)) {
    if (Date.now() > deadline) throw new Error(`job ${jobId} still running after 60 s`);
    await sleep(1);
  }
}

interface ClientTimes {
  readonly roundTripMs: number;
  readonly sentToStartMs: number;
}

async function oneJob(bench: BenchService, body: string): Promise<ClientTimes> {
  const sent = performance.now();
  const jobId = await bench.client.submit(body);
  const answered = performance.now();
  const started = await processorStarted(jobId);
  await workerDone(bench, jobId);
  return { roundTripMs: answered - sent, sentToStartMs: started - sent };
}

async function series(bench: BenchService, count: number): Promise<ClientTimes[]> {
  const body = mediaInfoRequest(KEY);
  const times: ClientTimes[] = [];
  for (let i = 0; i < count; i++) {
    times.push(await oneJob(bench, body));
    if (IDLE_MS > 0) await sleep(IDLE_MS);
  }
  return times;
}

await runBenchmark('enqueue-latency.bench', async (db, use) => {
  const inner = PROCESSOR === 'mediainfo' ? createMediaInfoProcessor(createSpawner()) : trivialProcessor;
  const processors = new Map([[inner.tag, instrumented(inner)]]);
  const bench = use(await startBenchService(db, { env: { MEDIAJOBS_CONCURRENCY: String(CONCURRENCY) }, processors }));
  await fitQueueToConcurrency(bench);
  await putFixture(bench, KEY);

  printBlock('Enqueue-to-start latency (idle system, one job at a time)', [
    ...(await environmentRows(bench, db)),
    ['workload', `${JOBS} jobs, one at a time, ${IDLE_MS} ms rest between jobs, processor ${PROCESSOR}, warm-up ${WARMUP}`],
  ]);

  if (WARMUP > 0) await series(bench, WARMUP);
  const afterSeq = await maxJobSeq(bench);
  const client = await series(bench, JOBS);
  const timings = await jobTimings(bench, afterSeq);
  assertAllSucceeded(timings, JOBS);

  const startLatency = summarize(timings.map((t) => t.startedMs! - t.createdMs));
  const total = summarize(timings.map((t) => t.endedMs! - t.createdMs));
  const met = startLatency.p50 <= TARGET_P50_MS && startLatency.p99 <= TARGET_P99_MS;
  printBlock('Enqueue-to-start latency: result (ms)', [
    ['started_at − created_at', fmtSummary(startLatency)],
    ['target', `p50 ≤ ${TARGET_P50_MS} ms and p99 ≤ ${TARGET_P99_MS} ms: ${met ? 'MET' : 'MISSED'} (p50 ${fmt(startLatency.p50)}, p99 ${fmt(startLatency.p99)})`],
    ['', 'from the submitting transaction\'s start, through its COMMIT, NOTIFY and the wake-up, to the start of the claim statement'],
    ['', ''],
    ['ended_at − created_at', fmtSummary(total)],
    ['client: POST sent → processor called', fmtSummary(summarize(client.map((c) => c.sentToStartMs)))],
    ['', 'adds HTTP, parsing and validation before the transaction, and the claim statement itself'],
    ['client: POST round trip', fmtSummary(summarize(client.map((c) => c.roundTripMs)))],
  ]);
});

/**
 * The queue core against graphile-worker: N no-op jobs drained at
 * concurrency C, by our engine and by graphile-worker (0.18, unbatched:
 * its defaults, no local queue, no batched completions), on the same
 * PostgreSQL server, in the same process, in alternating rounds.
 *
 *   node dist/bench/queue-core.bench.js   (after tsc -p tsconfig.json; needs DATABASE_URL)
 *   npx tsx bench/queue-core.bench.ts
 *
 * Each side has a scratch database of its own on the DATABASE_URL server.
 * Ours: a no-op processor registered by this bench under the MediaInfo Tag
 * (a Map passed to startService, as the tests do: nothing is shipped), the
 * jobs stored by the engine's own insert (`insertJobs`, what a submission
 * runs, without HTTP), one worker at MEDIAJOBS_CONCURRENCY = C in this
 * process. graphile-worker: a task `noop`, `graphile_worker.add_jobs`,
 * `run({ concurrency: C })` in this process.
 *
 * Per round and side:
 * - drain: N jobs stored while no worker runs, then a worker is started and
 *   timed until the database shows every job finished (ours: no job
 *   Submitted or Running; graphile: its jobs table empty), polled every 5 ms;
 *   jobs/s = N / that time, worker start-up included (both ~ms);
 * - latency: BENCH_LATENCY_JOBS jobs enqueued one at a time every
 *   BENCH_LATENCY_GAP_MS (5 ms) into the running worker; enqueue→start is
 *   from the moment the enqueue call is made to the moment the task function
 *   is called, both on this process's clock.
 *
 * Settings: BENCH_JOBS (N, 5000), BENCH_CONCURRENCY (C, 8), BENCH_ROUNDS (3),
 * BENCH_LATENCY_JOBS (300), BENCH_LATENCY_GAP_MS (5).
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { run as runGraphile, makeWorkerUtils, Logger as GraphileLogger, type Runner, type WorkerUtils } from 'graphile-worker';
import { sql } from 'kysely';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { CHANNELS } from '../src/engine/channels.js';
import { startService, type Service } from '../src/main.js';
import type { Processor } from '../src/processors/processor.js';
import { insertJobs, type NewJob } from '../src/store/jobs.repository.js';
import { ensureDefaultQueue } from '../src/store/queues.repository.js';
import { BUCKET, envInt, fmt, median, printBlock, printTable, scratchDatabase, sleep, summarize, type ScratchDatabase } from './lib.js';

const N = envInt('BENCH_JOBS', 5000);
const C = envInt('BENCH_CONCURRENCY', 8, 1, 256);
const ROUNDS = envInt('BENCH_ROUNDS', 3);
const LATENCY_JOBS = envInt('BENCH_LATENCY_JOBS', 300);
const LATENCY_GAP_MS = envInt('BENCH_LATENCY_GAP_MS', 5, 0);
const DRAIN_TIMEOUT_MS = 600_000;

if (!process.env.DATABASE_URL) {
  console.log('queue-core: skipped (needs DATABASE_URL: a PostgreSQL server)');
  process.exit(0);
}

/** When each job was enqueued and when its task began (performance.now()), by id. */
const enqueuedAt = new Map<string, number>();
const startedAt = new Map<string, number>();
/** When each enqueue call returned (its statement committed). */
const enqueueReturnedAt = new Map<string, number>();

interface RoundResult {
  readonly jobsPerSecond: number;
  readonly p50: number;
  readonly p99: number;
  /** p50 of the enqueue call alone (its statement and commit), part of enqueue→start. */
  readonly callP50: number;
  /** CPU per job while draining: this process (both sides' client code runs here, one at a time), and the side's PostgreSQL backends. */
  readonly nodeCpuMsPerJob: number;
  readonly dbCpuMsPerJob: number;
}

/** CPU time (user + system, ms) of each PostgreSQL backend connected to `database`, from /proc (same machine). */
async function backendCpu(database: string): Promise<Map<number, number>> {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [database]);
    const ticks = new Map<number, number>();
    for (const { pid } of rows) {
      try {
        const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
        ticks.set(pid, (Number(fields[11]) + Number(fields[12])) * 10);
      } catch {
        // Gone, or another machine: not counted.
      }
    }
    return ticks;
  } finally {
    await client.end();
  }
}

function cpuSince(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, ms] of after) total += ms - (before.get(pid) ?? 0);
  return total;
}

/** Waits until `remaining()` is 0, polling every 5 ms; throws `stuck` after DRAIN_TIMEOUT_MS. */
async function waitForNone(remaining: () => Promise<number>, stuck: string): Promise<void> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  while ((await remaining()) > 0) {
    if (Date.now() > deadline) throw new Error(stuck);
    await sleep(5);
  }
}

/** Enqueues LATENCY_JOBS jobs one at a time, LATENCY_GAP_MS apart, noting when each call began and returned; returns their ids. */
async function enqueueTimed(prefix: string, enqueue: (id: string) => Promise<unknown>): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < LATENCY_JOBS; i++) {
    const id = nextId(prefix);
    ids.push(id);
    enqueuedAt.set(id, performance.now());
    await enqueue(id);
    enqueueReturnedAt.set(id, performance.now());
    if (LATENCY_GAP_MS) await sleep(LATENCY_GAP_MS);
  }
  return ids;
}

interface Side {
  readonly name: string;
  readonly database: string;
  drain(): Promise<number>;
  /** Enqueues the latency jobs into the running worker, waits for them, stops the worker; returns their ids. */
  latency(): Promise<string[]>;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Ours

const noop: Processor = {
  tag: 'MediaInfo',
  async run(ctx) {
    startedAt.set(ctx.job.jobId, performance.now());
    return { MediaInfo: {} };
  },
};

function newJob(jobId: string): NewJob {
  return {
    jobId,
    bucket: BUCKET,
    region: 'ap-local',
    tag: 'MediaInfo',
    priority: 0,
    inputObject: 'bench/noop',
    operation: { JobLevel: '0' },
    callback: { url: 'no', format: undefined, type: undefined },
    maxAttempts: 3,
    expiresAt: new Date(Date.now() + 3_600_000),
  };
}

let counter = 0;
const nextId = (prefix: string) => `${prefix}${(++counter).toString(16).padStart(32, '0')}`;

async function ours(db: ScratchDatabase): Promise<Side> {
  // Any MEDIAJOBS_* of the environment (MEDIAJOBS_LOOKAHEAD, …) passes through, as in lib.ts.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith('MEDIAJOBS_')));
  const env = { ...inherited, MEDIAJOBS_PORT: '0', MEDIAJOBS_DATA_DIR: db.dataDir, DATABASE_URL: db.databaseUrl, MEDIAJOBS_LOG_LEVEL: 'silent', MEDIAJOBS_CONCURRENCY: String(C) };
  const logger = pino({ level: 'silent' });
  // The store: an API-less service without a worker (migrates, keeps the pool).
  const store = await startService(loadConfig({ ...env, MEDIAJOBS_WORKERS: '0' }), { api: false, worker: false, logger });
  const kysely = store.db.kysely;
  const queue = await ensureDefaultQueue(kysely, BUCKET);
  await sql`UPDATE queues SET max_concurrent = ${Math.max(10, 4 * C)} WHERE queue_id = ${queue.queueId}`.execute(kysely);
  const workerConfig = loadConfig(env);
  let worker: Service | undefined;
  const startWorker = async () => { worker = await startService(workerConfig, { api: false, worker: true, processors: new Map([[noop.tag, noop]]), logger }); };
  const stopWorker = async () => { await worker?.stop(); worker = undefined; };
  const unfinished = async () => Number((await sql<{ n: string }>`SELECT ((SELECT count(*) FROM jobs WHERE state = 'Submitted') + (SELECT count(*) FROM jobs WHERE state = 'Running'))::text AS n`.execute(kysely)).rows[0].n);
  const waitIdle = () => waitForNone(unfinished, 'ours: jobs still unfinished');
  return {
    name: 'mediajobs',
    database: db.label,
    async drain() {
      for (let done = 0; done < N; done += 1000) {
        const batch = Array.from({ length: Math.min(1000, N - done) }, () => newJob(nextId('j')));
        await insertJobs(kysely, { bucket: BUCKET }, batch, CHANNELS.jobsAvailable);
      }
      await sql`VACUUM ANALYZE jobs`.execute(kysely);
      const updates = async () => (await sql<{ upd: string; hot: string }>`
        SELECT n_tup_upd::text AS upd, n_tup_hot_upd::text AS hot FROM pg_stat_user_tables WHERE relname = 'jobs'`.execute(kysely)).rows[0];
      const before = await updates();
      const t0 = performance.now();
      await startWorker();
      await waitIdle();
      const elapsed = performance.now() - t0;
      // Row versions written per job, and how many were HOT (no index entries): statistics arrive within ~0.5 s.
      await sleep(1000);
      const after = await updates();
      const upd = Number(after.upd) - Number(before.upd);
      const hot = Number(after.hot) - Number(before.hot);
      console.log(`    mediajobs: ${fmt(upd / N, 2)} updates of a jobs row per job, ${fmt((100 * hot) / Math.max(1, upd), 0)} % of them HOT`);
      return elapsed;
    },
    async latency() {
      const ids = await enqueueTimed('j', (id) => insertJobs(kysely, { bucket: BUCKET }, [newJob(id)], CHANNELS.jobsAvailable));
      await waitIdle();
      await stopWorker();
      return ids;
    },
    async stop() {
      await stopWorker();
      await store.stop();
    },
  };
}

// ---------------------------------------------------------------------------
// graphile-worker

async function graphile(db: ScratchDatabase): Promise<Side> {
  const connectionString = db.databaseUrl!;
  const logger = new GraphileLogger(() => () => undefined);
  const utils: WorkerUtils = await makeWorkerUtils({ connectionString, logger });
  await utils.migrate();
  let runner: Runner | undefined;
  const taskList = {
    noop: async (payload: unknown) => {
      const id = (payload as { id: string }).id;
      startedAt.set(id, performance.now());
    },
  };
  const startWorker = async () => { runner = await runGraphile({ connectionString, concurrency: C, noHandleSignals: true, pollInterval: 1000, logger, taskList }); };
  const stopWorker = async () => { await runner?.stop(); runner = undefined; };
  const remaining = async () => Number((await utils.withPgClient((client) => client.query<{ n: string }>('SELECT count(*)::text AS n FROM graphile_worker._private_jobs'))).rows[0].n);
  const waitIdle = () => waitForNone(remaining, 'graphile-worker: jobs still waiting');
  return {
    name: 'graphile-worker',
    database: db.label,
    async drain() {
      for (let done = 0; done < N; done += 1000) {
        const specs = Array.from({ length: Math.min(1000, N - done) }, () => ({ identifier: 'noop', payload: { id: nextId('g') } }));
        await utils.addJobs(specs);
      }
      await utils.withPgClient((client) => client.query('VACUUM ANALYZE graphile_worker._private_jobs'));
      const t0 = performance.now();
      await startWorker();
      await waitIdle();
      return performance.now() - t0;
    },
    async latency() {
      const ids = await enqueueTimed('g', (id) => utils.addJob('noop', { id }));
      await waitIdle();
      await stopWorker();
      return ids;
    },
    async stop() {
      await stopWorker();
      await utils.release();
    },
  };
}

// ---------------------------------------------------------------------------

const dbs: ScratchDatabase[] = [];
const sides: Side[] = [];
let failed = false;
try {
  const ourDb = await scratchDatabase();
  dbs.push(ourDb);
  const theirDb = await scratchDatabase();
  dbs.push(theirDb);
  sides.push(await ours(ourDb), await graphile(theirDb));
  printBlock('Queue core: no-op jobs, mediajobs against graphile-worker', [
    ['node', `${process.version}; ${os.availableParallelism()} CPUs; load avg ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`],
    ['workload', `drain ${N} jobs stored beforehand; then ${LATENCY_JOBS} jobs one every ${LATENCY_GAP_MS} ms into a running worker; concurrency ${C}; ${ROUNDS} rounds alternating`],
    ['peer', 'graphile-worker 0.18.0, defaults (unbatched: no local queue, no batched completion), pollInterval 1 s, LISTEN/NOTIFY'],
  ]);
  const results: RoundResult[][] = sides.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate who goes first, so neither always meets the quieter moment.
    const order = round % 2 === 0 ? [0, 1] : [1, 0];
    for (const s of order) {
      const dbBefore = await backendCpu(sides[s].database);
      const nodeBefore = process.cpuUsage();
      const elapsed = await sides[s].drain();
      const nodeCpu = process.cpuUsage(nodeBefore);
      const dbCpuMs = cpuSince(dbBefore, await backendCpu(sides[s].database));
      const ids = await sides[s].latency();
      const lat = summarize(ids.map((id) => startedAt.get(id)! - enqueuedAt.get(id)!));
      const call = summarize(ids.map((id) => enqueueReturnedAt.get(id)! - enqueuedAt.get(id)!));
      const result = {
        jobsPerSecond: N / (elapsed / 1000), p50: lat.p50, p99: lat.p99, callP50: call.p50,
        nodeCpuMsPerJob: (nodeCpu.user + nodeCpu.system) / 1000 / N, dbCpuMsPerJob: dbCpuMs / N,
      };
      results[s].push(result);
      console.log(`  round ${round + 1} ${sides[s].name.padEnd(16)} ${fmt(result.jobsPerSecond, 0).padStart(6)} jobs/s   enqueue→start p50 ${fmt(result.p50)} ms  p99 ${fmt(result.p99)} ms (enqueue call p50 ${fmt(result.callP50)} ms)   CPU/job: node ${fmt(result.nodeCpuMsPerJob, 3)} ms, PostgreSQL ${fmt(result.dbCpuMsPerJob, 3)} ms`);
    }
  }
  const range = (values: number[], digits: number) => `${fmt(Math.min(...values), digits)}–${fmt(Math.max(...values), digits)} (median ${fmt(median(values), digits)})`;
  console.log('');
  printTable(['', 'jobs/s', 'enqueue→start p50 ms', 'p99 ms', 'CPU ms/job node + PostgreSQL'], sides.map((side, s) => [
    side.name,
    range(results[s].map((r) => r.jobsPerSecond), 0),
    range(results[s].map((r) => r.p50), 2),
    range(results[s].map((r) => r.p99), 2),
    `${fmt(median(results[s].map((r) => r.nodeCpuMsPerJob)), 3)} + ${fmt(median(results[s].map((r) => r.dbCpuMsPerJob)), 3)}`,
  ]));
  const ratios = results[0].map((r, i) => r.jobsPerSecond / results[1][i].jobsPerSecond);
  console.log(`\n  jobs/s ratio mediajobs / graphile-worker, per round: ${ratios.map((r) => fmt(r)).join(', ')}; median ${fmt(median(ratios))} (goal ≥ 1.0: ${median(ratios) >= 1 ? 'MET' : 'MISSED'})`);
} catch (err) {
  failed = true;
  console.error('queue-core failed:', err);
} finally {
  for (const side of sides) await side.stop().catch((err: Error) => console.error(`stopping ${side.name}: ${err.message}`));
  for (const db of dbs) await db.dispose().catch((err: Error) => console.error(`dropping ${db.label}: ${err.message}`));
}
process.exit(failed ? 1 : 0);

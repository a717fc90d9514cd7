/**
 * History that stays fast: the claim statement, `GET /jobs` (each filter,
 * both orders, first and deep pages) and `GET /jobs/<id>` on a small table
 * against the same with 1 M finished jobs behind it.
 *
 *   node dist/bench/scale.js   (after tsc -p tsconfig.json; needs DATABASE_URL)
 *   npx tsx bench/scale.ts
 *
 * Two scratch databases on the DATABASE_URL server, each with an API-only
 * service (no worker: the claims are the bench's):
 * - "small": 1,000 finished jobs and 200 Submitted ones;
 * - "1 M":   BENCH_SCALE_ROWS (1,000,000) older finished jobs made by one
 *            INSERT … SELECT generate_series, then the same 1,200 as "small".
 * Both get VACUUM ANALYZE after loading (what autovacuum does on its own,
 * sql/0009), then every query is timed in rounds that alternate between the
 * two databases (the machine is shared: a slow moment hits both), BENCH_RUNS
 * (200) runs per query and database after BENCH_WARMUP (20). Printed: p50 of
 * each on each, the ratio (goal ≤ 1.2), and the indexes the plan on the 1 M
 * database reads (EXPLAIN of the exact SQL the service sends, captured from
 * Kysely's log).
 *
 * The claim is timed as the statement the worker sends (claimStatement, one
 * job), in a transaction that is rolled back, so each run finds the same 200
 * jobs waiting.
 */
import { performance } from 'node:perf_hooks';
import { Kysely, PostgresDialect, sql, type CompiledQuery } from 'kysely';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { claimStatement } from '../src/engine/queue.sql.js';
import { startService, type Service } from '../src/main.js';
import { findJobs, listJobs, type JobListFilter } from '../src/store/jobs.repository.js';
import type { Database } from '../src/store/schema.js';
import { BUCKET, envInt, fmt, HttpClient, printBlock, printTable, scratchDatabase, summarize, type ScratchDatabase } from './lib.js';

const ROWS = envInt('BENCH_SCALE_ROWS', 1_000_000);
const RUNS = envInt('BENCH_RUNS', 200);
const WARMUP = envInt('BENCH_WARMUP', 20, 0);
const SERVER_RUNS = envInt('BENCH_SERVER_RUNS', 30);
const SMALL_FINISHED = 1000;
const WAITING = 200;
const GOAL = 1.2;

if (!process.env.DATABASE_URL) {
  console.log('scale: skipped (needs DATABASE_URL: a PostgreSQL server)');
  process.exit(0);
}

interface Side {
  readonly name: string;
  readonly db: ScratchDatabase;
  readonly service: Service;
  readonly client: HttpClient;
  /** A Kysely on the same database that remembers the last statement it ran (for EXPLAIN). */
  readonly capture: Kysely<Database>;
  lastQuery?: CompiledQuery;
  queueId: string;
  /** seq of the middle job, for deep pages. */
  midSeq: string;
  /** seq of the middle job of the creation-time window (a token that window's listing returns). */
  midWindowSeq: string;
  /** seq of the middle job of `sampleInput`'s 20. */
  midInputSeq: string;
  sampleJobIds: string[];
  sampleInput: string;
  /** A creation-time window of one day, a week back. */
  windowStart: Date;
  windowEnd: Date;
}

/**
 * `count` finished jobs ending before the jobs already there, in one statement:
 * 90 % Success, 8 % Failed, 2 % Cancel; MediaInfo and PicProcess in turn; one
 * input object per 20 jobs; created from `fromDaysAgo` to `toDaysAgo` days ago,
 * in seq order, each ended 2 s after it was created.
 */
function finishedJobsInsert(queueId: string, count: number, fromDaysAgo: number, toDaysAgo: number, prefix: string) {
  return sql`
    INSERT INTO jobs (job_id, bucket, region, queue_id, tag, state, priority, input_object, operation, result, code, message,
                      progress, attempts, max_attempts, run_after, expires_at, created_at, started_at, ended_at, updated_at)
    SELECT 'j' || md5(${prefix} || i::text), ${BUCKET}, 'ap-local', ${queueId},
           CASE WHEN i % 2 = 0 THEN 'MediaInfo' ELSE 'PicProcess' END,
           CASE WHEN i % 50 = 7 THEN 'Cancel' WHEN i % 25 IN (3, 11) THEN 'Failed' ELSE 'Success' END,
           0, 'input/' || ${prefix} || (i / 20)::text || '.mp4',
           '{"JobLevel":"0"}'::json,
           CASE WHEN i % 50 = 7 OR i % 25 IN (3, 11) THEN NULL ELSE '{"MediaInfo":{"Format":{"FormatName":"mov,mp4,m4a,3gp,3g2,mj2","Duration":"2.000000"}}}'::json END,
           CASE WHEN i % 50 = 7 THEN 'Cancel' WHEN i % 25 IN (3, 11) THEN 'InvalidMedia' ELSE 'Success' END,
           '', 100, 1, 3, t, t + interval '1 day', t, t + interval '1 second', t + interval '2 seconds', t + interval '2 seconds'
    FROM generate_series(1, ${count}::int) AS i,
         LATERAL (SELECT now() - ${fromDaysAgo} * interval '1 day' + (i::float8 / ${count}) * (${fromDaysAgo - toDaysAgo} * interval '1 day') AS t) AS at`;
}

function waitingJobsInsert(queueId: string) {
  return sql`
    INSERT INTO jobs (job_id, bucket, region, queue_id, tag, state, priority, input_object, operation, max_attempts, expires_at)
    SELECT 'j' || md5('waiting' || i::text), ${BUCKET}, 'ap-local', ${queueId}, 'MediaInfo', 'Submitted', i % 3,
           'input/waiting.mp4', '{"JobLevel":"0"}'::json, 3, now() + interval '1 day'
    FROM generate_series(1, ${WAITING}::int) AS i`;
}

async function startSide(name: string, historyRows: number): Promise<Side> {
  const db = await scratchDatabase();
  try {
    return await fillSide(name, historyRows, db);
  } catch (err) {
    await db.dispose().catch(() => undefined);
    throw err;
  }
}

async function fillSide(name: string, historyRows: number, db: ScratchDatabase): Promise<Side> {
  const config = loadConfig({ MEDIAJOBS_PORT: '0', MEDIAJOBS_DATA_DIR: db.dataDir, DATABASE_URL: db.databaseUrl, MEDIAJOBS_LOG_LEVEL: 'silent', MEDIAJOBS_RETENTION: '0', MEDIAJOBS_REQUIRE_AUTH: 'false' });
  const service = await startService(config, { api: true, worker: false, logger: pino({ level: 'silent' }) });
  const client = new HttpClient(`http://127.0.0.1:${service.port}`);
  // The default queue is made by the first request that needs it.
  const listing = await client.request('GET', '/queue');
  const queueId = /<QueueId>(p[0-9a-f]{32})<\/QueueId>/.exec(listing.text)?.[1];
  if (!queueId) throw new Error(`GET /queue: ${listing.text.slice(0, 300)}`);
  const kysely = service.db.kysely;
  // Room for every waiting job, so the claim is never refused for want of a slot.
  await sql`UPDATE queues SET max_concurrent = 1000 WHERE queue_id = ${queueId}`.execute(kysely);
  const loadStart = performance.now();
  if (historyRows > 0) await finishedJobsInsert(queueId, historyRows, 60, 2, 'old').execute(kysely);
  const loadMs = performance.now() - loadStart;
  await finishedJobsInsert(queueId, SMALL_FINISHED, 2, 0, 'new').execute(kysely);
  await waitingJobsInsert(queueId).execute(kysely);
  await sql`VACUUM ANALYZE jobs`.execute(kysely);
  await sql`VACUUM ANALYZE queues`.execute(kysely);
  if (historyRows > 0) console.log(`  ${name}: ${historyRows} finished jobs inserted in ${fmt(loadMs / 1000, 1)} s (one statement)`);

  const side: Side = {
    name, db, service, client, queueId,
    capture: undefined as unknown as Kysely<Database>,
    midSeq: '', midWindowSeq: '', midInputSeq: '', sampleJobIds: [], sampleInput: '', windowStart: new Date(), windowEnd: new Date(),
  };
  (side as { capture: Kysely<Database> }).capture = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: db.databaseUrl, max: 1 }) }),
    log: (event) => { side.lastQuery = event.query; },
  });
  const { rows: [mid] } = await sql<{ seq: string }>`SELECT seq::text FROM jobs ORDER BY seq OFFSET (SELECT count(*) / 2 FROM jobs) LIMIT 1`.execute(kysely);
  side.midSeq = mid.seq;
  const { rows: samples } = await sql<{ job_id: string }>`SELECT job_id FROM jobs WHERE state <> 'Submitted' ORDER BY random() LIMIT 50`.execute(kysely);
  side.sampleJobIds = samples.map((r) => r.job_id);
  side.sampleInput = `input/old${Math.floor(historyRows / 40)}.mp4`;
  if (historyRows === 0) side.sampleInput = 'input/new10.mp4';
  side.windowStart = new Date(Date.now() - 8 * 86_400_000);
  side.windowEnd = new Date(Date.now() - 7 * 86_400_000);
  if (historyRows === 0) {
    side.windowStart = new Date(Date.now() - 1.5 * 86_400_000);
    side.windowEnd = new Date(Date.now() - 0.5 * 86_400_000);
  }
  const { rows: [midWindow] } = await sql<{ seq: string }>`
    SELECT seq::text FROM jobs WHERE created_at BETWEEN ${side.windowStart} AND ${side.windowEnd} ORDER BY created_at, seq
    OFFSET (SELECT count(*) / 2 FROM jobs WHERE created_at BETWEEN ${side.windowStart} AND ${side.windowEnd}) LIMIT 1`.execute(kysely);
  side.midWindowSeq = midWindow.seq;
  const { rows: [midInput] } = await sql<{ seq: string }>`SELECT seq::text FROM jobs WHERE bucket = ${BUCKET} AND input_object = ${side.sampleInput} ORDER BY seq OFFSET 10 LIMIT 1`.execute(kysely);
  side.midInputSeq = midInput.seq;
  return side;
}

async function stopSide(side: Side): Promise<void> {
  side.client.close();
  await side.capture.destroy();
  await side.service.stop();
  await side.db.dispose();
}

// ---------------------------------------------------------------------------
// The queries

interface Probe {
  readonly label: string;
  /** Runs the query once as a client would (HTTP, or the claim statement). */
  run(side: Side): Promise<void>;
  /** The same SQL through the capturing Kysely, for EXPLAIN. */
  explainable(side: Side): Promise<CompiledQuery>;
}

const ciTime = (d: Date) => d.toISOString().replace(/\.\d+Z$/, '+0000');

interface ListCase {
  readonly label: string;
  readonly query: (side: Side) => Record<string, string>;
  /** The deep page's token, when the middle of the table is not one this listing returns. */
  readonly deepToken?: (side: Side) => string;
}

const LIST_CASES: ListCase[] = [
  { label: 'no filter', query: () => ({}) },
  { label: 'tag=PicProcess', query: () => ({ tag: 'PicProcess' }) },
  { label: 'queueId', query: (s) => ({ queueId: s.queueId }) },
  { label: 'states=Failed', query: () => ({ states: 'Failed' }) },
  { label: 'states=Success,Failed', query: () => ({ states: 'Success,Failed' }) },
  { label: 'states=Submitted', query: () => ({ states: 'Submitted' }) },
  { label: 'inputObject', query: (s) => ({ inputObject: s.sampleInput }), deepToken: (s) => s.midInputSeq },
  { label: 'creation time (1 day)', query: (s) => ({ startCreationTime: ciTime(s.windowStart), endCreationTime: ciTime(s.windowEnd) }), deepToken: (s) => s.midWindowSeq },
  { label: 'tag+states=Failed', query: () => ({ tag: 'MediaInfo', states: 'Failed' }) },
];

function listFilter(params: Record<string, string>): JobListFilter {
  return {
    bucket: BUCKET,
    tag: params.tag,
    queueId: params.queueId,
    states: params.states?.split(',') as JobListFilter['states'],
    order: params.orderByTime === 'Asc' ? 'Asc' : 'Desc',
    size: Number(params.size ?? 10),
    afterSeq: params.nextToken,
    startCreationTime: params.startCreationTime ? new Date(params.startCreationTime.replace(/\+0000$/, 'Z')) : undefined,
    endCreationTime: params.endCreationTime ? new Date(params.endCreationTime.replace(/\+0000$/, 'Z')) : undefined,
    inputObject: params.inputObject,
  };
}

function listProbes(): Probe[] {
  const probes: Probe[] = [];
  for (const c of LIST_CASES) {
    for (const order of ['Desc', 'Asc'] as const) {
      for (const deep of [false, true]) {
        const params = (side: Side) => ({ ...c.query(side), orderByTime: order, size: '10', ...(deep ? { nextToken: c.deepToken?.(side) ?? side.midSeq } : {}) });
        probes.push({
          label: `GET /jobs ${c.label}, ${order}${deep ? ', deep page' : ''}`,
          async run(side) {
            const res = await side.client.request('GET', `/jobs?${new URLSearchParams(params(side))}`);
            if (res.status !== 200) throw new Error(`GET /jobs answered ${res.status}: ${res.text.slice(0, 300)}`);
          },
          async explainable(side) {
            await listJobs(side.capture, listFilter(params(side)));
            return side.lastQuery!;
          },
        });
      }
    }
  }
  return probes;
}

let sampleIndex = 0;
const PROBES: Probe[] = [
  {
    label: 'claim statement (1 job, rolled back)',
    async run(side) {
      await side.service.db.kysely.transaction().execute(async (tx) => {
        const { rows } = await claimStatement('bench-worker', 30_000, 1).execute(tx);
        if (rows.length !== 1) throw new Error(`the claim took ${rows.length} jobs`);
        throw ROLLBACK;
      }).catch((err: unknown) => { if (err !== ROLLBACK) throw err; });
    },
    async explainable(side) {
      return claimStatement('bench-worker', 30_000, 1).compile(side.capture);
    },
  },
  {
    label: 'GET /jobs/<id>',
    async run(side) {
      const id = side.sampleJobIds[sampleIndex++ % side.sampleJobIds.length];
      const res = await side.client.request('GET', `/jobs/${id}`);
      if (res.status !== 200 || !res.text.includes(`<JobId>${id}</JobId>`)) throw new Error(`GET /jobs/${id} answered ${res.status}`);
    },
    async explainable(side) {
      await findJobs(side.capture, BUCKET, [side.sampleJobIds[0]]);
      return side.lastQuery!;
    },
  },
  ...listProbes(),
];

const ROLLBACK = new Error('rollback');

/** The index names a plan reads, and whether it reads a table sequentially. */
async function planIndexes(side: Side, query: CompiledQuery): Promise<string> {
  const client = new pg.Client({ connectionString: side.db.databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${query.sql}`, query.parameters as unknown[]);
    const found = new Set<string>();
    const walk = (node: Record<string, unknown>) => {
      if (typeof node['Index Name'] === 'string') found.add(`${node['Index Name']}`);
      if (node['Node Type'] === 'Seq Scan') found.add(`SEQ SCAN ${node['Relation Name']}`);
      for (const child of (node.Plans as Array<Record<string, unknown>> | undefined) ?? []) walk(child);
    };
    walk(((rows[0]['QUERY PLAN'] as Array<{ Plan: Record<string, unknown> }>)[0]).Plan);
    return [...found].join(', ');
  } finally {
    await client.end();
  }
}

/**
 * Planning and execution time as the server measures them (EXPLAIN ANALYZE,
 * TIMING OFF, in a transaction rolled back: the claim runs for real), without
 * the HTTP and the client: p50 of `runs`, ms.
 */
async function serverTimes(side: Side, query: CompiledQuery, runs: number): Promise<{ plan: number; exec: number }> {
  const client = new pg.Client({ connectionString: side.db.databaseUrl });
  await client.connect();
  try {
    const plan: number[] = [];
    const exec: number[] = [];
    for (let i = 0; i < runs; i++) {
      await client.query('BEGIN');
      const { rows } = await client.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (ANALYZE, TIMING OFF, SUMMARY, FORMAT JSON) ${query.sql}`, query.parameters as unknown[]);
      await client.query('ROLLBACK');
      const summary = (rows[0]['QUERY PLAN'] as Array<{ 'Planning Time': number; 'Execution Time': number }>)[0];
      plan.push(summary['Planning Time']);
      exec.push(summary['Execution Time']);
    }
    return { plan: summarize(plan).p50, exec: summarize(exec).p50 };
  } finally {
    await client.end();
  }
}

async function timeRuns(side: Side, probe: Probe, runs: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await probe.run(side);
    times.push(performance.now() - t0);
  }
  return times;
}

const sides: Side[] = [];
let failed = false;
try {
  const small = await startSide('small', 0);
  sides.push(small);
  const large = await startSide('1 M', ROWS);
  sides.push(large);
  printBlock('History at scale: latencies with 1 M finished jobs against a small table', [
    ['database', (await sql<{ v: string }>`SELECT version() AS v`.execute(small.service.db.kysely)).rows[0].v.split(' on ')[0]],
    ['small', `${SMALL_FINISHED} finished + ${WAITING} Submitted jobs (${small.db.label})`],
    ['1 M', `${ROWS} older finished jobs + the same (${large.db.label})`],
    ['runs', `${RUNS} per query and table after ${WARMUP} warm-up, the two tables alternating in rounds of 10; p50 in ms`],
  ]);
  const rows: string[][] = [];
  let worst = 0;
  for (const probe of PROBES) {
    for (const side of sides) await timeRuns(side, probe, WARMUP);
    const times: number[][] = [[], []];
    for (let done = 0; done < RUNS; done += 10) {
      for (let s = 0; s < 2; s++) times[s].push(...(await timeRuns(sides[s], probe, Math.min(10, RUNS - done))));
    }
    const [a, b] = times.map((t) => summarize(t));
    const ratio = b.p50 / a.p50;
    worst = Math.max(worst, ratio);
    const server: string[] = [];
    for (const side of sides) {
      const t = await serverTimes(side, await probe.explainable(side), SERVER_RUNS);
      server.push(`${fmt(t.plan, 3)}+${fmt(t.exec, 3)}`);
    }
    rows.push([probe.label, fmt(a.p50), fmt(b.p50), fmt(ratio), ratio <= GOAL ? 'ok' : 'SLOW', server[0], server[1], await planIndexes(large, await probe.explainable(large))]);
  }
  console.log('');
  printTable(['query', 'small p50', '1 M p50', 'ratio', `≤ ${GOAL}`, 'server small', 'server 1 M', 'indexes (plan on 1 M)'], rows);
  console.log('  server: planning + execution time (ms, p50 of EXPLAIN ANALYZE runs) of the same SQL, without HTTP and client');
  console.log(`\n  worst ratio ${fmt(worst)}: goal ≤ ${GOAL} ${worst <= GOAL ? 'MET' : 'MISSED'}`);
} catch (err) {
  failed = true;
  console.error('scale failed:', err);
} finally {
  for (const side of sides) await stopSide(side).catch((err: Error) => console.error(`cleaning up ${side.name}: ${err.message}`));
}
process.exit(failed ? 1 : 0);

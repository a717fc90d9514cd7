import { sql, type Kysely } from 'kysely';
import type { Database } from '../store/schema.js';
import type { JobRow } from '../store/jobs.repository.js';
import { formatCiTime } from '../xml/time.js';

/*
 * The console's reads that no API has in this shape: the one list of jobs and
 * tasks across buckets, the overview's counts. Each says which index it walks
 * (measured with 1 M jobs: README, "The console").
 */

/** What the console shows where it shows who may see a row: all, or one APPID's rows. */
export interface Scope {
  /** undefined: the admin, who sees everything. */
  readonly appid: string | undefined;
}

/** A row of the jobs list, and of the live feed's job events. */
export interface JobSummary {
  readonly job_id: string;
  /** The keyset cursor; also the task_id of a task. */
  readonly seq: string;
  readonly kind: 'job' | 'task';
  readonly bucket: string;
  readonly appid: string | null;
  readonly queue_id: string;
  readonly tag: string;
  readonly state: string;
  readonly progress: number;
  readonly code: string;
  readonly message: string;
  readonly input_object: string;
  readonly attempts: number;
  readonly max_attempts: number;
  readonly worker: string | null;
  readonly created_at: string;
  readonly started_at: string | null;
  readonly ended_at: string | null;
  /** The same instants as CI writes them (2022-06-27T15:23:10+0800), for the hover. */
  readonly ci_times: { created: string; started: string; ended: string };
}

const SUMMARY_COLUMNS = sql`job_id, seq, external, bucket, appid, queue_id, tag, state, progress, code, message, input_object, attempts, max_attempts, lease_owner, created_at, started_at, ended_at`;

type SummaryRow = Pick<JobRow, 'job_id' | 'seq' | 'external' | 'bucket' | 'appid' | 'queue_id' | 'tag' | 'state' | 'progress' | 'code' | 'message' | 'input_object' | 'attempts' | 'max_attempts' | 'lease_owner' | 'created_at' | 'started_at' | 'ended_at'>;

function iso(value: Date | string | null): string | null {
  return value === null ? null : new Date(value).toISOString();
}

export function toSummary(row: SummaryRow): JobSummary {
  return {
    job_id: row.job_id,
    seq: String(row.seq),
    kind: row.external ? 'task' : 'job',
    bucket: row.bucket,
    appid: row.appid,
    queue_id: row.queue_id,
    tag: row.tag,
    state: row.state,
    progress: row.progress,
    code: row.code,
    message: row.message,
    input_object: row.input_object,
    attempts: row.attempts,
    max_attempts: row.max_attempts,
    worker: row.lease_owner,
    created_at: new Date(row.created_at).toISOString(),
    started_at: iso(row.started_at),
    ended_at: iso(row.ended_at),
    ci_times: {
      created: formatCiTime(new Date(row.created_at)),
      started: formatCiTime(row.started_at ? new Date(row.started_at) : null),
      ended: formatCiTime(row.ended_at ? new Date(row.ended_at) : null),
    },
  };
}

export interface ConsoleJobFilter {
  readonly appid?: string;
  readonly queueId?: string;
  readonly tag?: string;
  readonly states?: readonly string[];
  readonly kind?: 'job' | 'task';
  readonly inputObject?: string;
  readonly from?: Date;
  readonly to?: Date;
  /** The seq of the last row of the previous page (newest first). */
  readonly before?: string;
  readonly size: number;
}

/**
 * One page of jobs and tasks, newest first, keyset-paged on seq. Indexes:
 * an APPID walks jobs_by_appid (appid, seq); a queue, jobs_list_by_queue
 * (bucket, queue_id, seq) with the queue's own bucket; an input object,
 * jobs_list_by_input; otherwise the seq index backwards, stopping at a
 * page. A time window bounds that walk at both ends (below). The limit is
 * a literal: with a parameter, the generic plan of a prepared statement
 * (src/store/prepared-statements.ts) guessed a tenth of the table.
 */
export async function listConsoleJobs(db: Kysely<Database>, scope: Scope, filter: ConsoleJobFilter): Promise<{ jobs: JobSummary[]; next: string | undefined }> {
  const where = [sql`true`];
  const appid = scope.appid ?? filter.appid;
  if (appid !== undefined) where.push(sql`appid = ${appid}`);
  if (filter.queueId !== undefined) where.push(sql`queue_id = ${filter.queueId}`, sql`bucket = (SELECT bucket FROM queues WHERE queue_id = ${filter.queueId})`);
  if (filter.inputObject !== undefined) {
    where.push(sql`input_object = ${filter.inputObject}`);
    // jobs_list_by_input leads with the bucket: list the buckets that have one (few), then walk each.
    where.push(sql`bucket IN (SELECT bucket FROM queues${appid !== undefined ? sql` WHERE substring(bucket from '-([0-9]+)$') = ${appid}` : sql``})`);
  }
  if (filter.tag !== undefined) where.push(sql`tag = ${filter.tag}`);
  // States (checked against JOB_STATES by the caller) and the kind are literals, so that a prepared statement's generic plan
  // still sees Running or Submitted as the few rows of jobs_running or jobs_waiting (a parameter: 170 ms walking seq).
  if (filter.states !== undefined && filter.states.length) where.push(sql`state IN (${sql.join(filter.states.map((s) => sql.lit(s)))})`);
  if (filter.kind !== undefined) where.push(sql`external = ${sql.lit(filter.kind === 'task')}`);
  // A time window: the seq walk is bounded first. The planner takes created_at as spread evenly over
  // the seq index, so a window in the past walked every newer job (74-147 ms at 10 days back in 1 M);
  // seq follows created_at, and each bucket's jobs_by_created (bucket, created_at, seq) gives the seq at
  // each end in one probe (0.2 ms). A minute of slack covers transactions whose inserts committed out of order.
  const buckets = sql`(SELECT array_agg(DISTINCT bucket) FROM queues${appid !== undefined ? sql` WHERE substring(bucket from '-([0-9]+)$') = ${appid}` : sql``})`;
  if (filter.from) {
    where.push(sql`created_at >= ${filter.from}`);
    where.push(sql`seq >= coalesce((SELECT min(x.seq) FROM unnest(${buckets}) AS b(bucket), LATERAL (
      SELECT j.seq FROM jobs j WHERE j.bucket = b.bucket AND j.created_at >= ${filter.from}::timestamptz - interval '1 minute' ORDER BY j.created_at, j.seq LIMIT 1) x), 9223372036854775807)`);
  }
  if (filter.to) {
    where.push(sql`created_at <= ${filter.to}`);
    where.push(sql`seq <= coalesce((SELECT max(x.seq) FROM unnest(${buckets}) AS b(bucket), LATERAL (
      SELECT j.seq FROM jobs j WHERE j.bucket = b.bucket AND j.created_at <= ${filter.to}::timestamptz + interval '1 minute' ORDER BY j.created_at DESC, j.seq DESC LIMIT 1) x), 0)`);
  }
  if (filter.before !== undefined) where.push(sql`seq < ${filter.before}::bigint`);
  const { rows } = await sql<SummaryRow>`
    SELECT ${SUMMARY_COLUMNS} FROM jobs
    WHERE ${sql.join(where, sql` AND `)}
    ORDER BY seq DESC LIMIT ${sql.lit(filter.size + 1)}`.execute(db);
  const jobs = rows.slice(0, filter.size).map(toSummary);
  return { jobs, next: rows.length > filter.size ? jobs.at(-1)?.seq : undefined };
}

/** Summaries of the given jobs (the feed's batch), by the unique job_id index. */
export async function jobSummaries(db: Kysely<Database>, jobIds: readonly string[]): Promise<JobSummary[]> {
  if (jobIds.length === 0) return [];
  const { rows } = await sql<SummaryRow>`SELECT ${SUMMARY_COLUMNS} FROM jobs WHERE job_id = ANY(${[...jobIds]}::text[])`.execute(db);
  return rows.map(toSummary);
}

/** One run of a job (sql/0014: job_attempts, written by a trigger as the job enters and leaves Running). */
export interface JobAttempt {
  readonly attempt: number;
  readonly worker: string | null;
  readonly started_at: string;
  readonly ended_at: string | null;
  /** Running, Success, Failed, Cancel; Retry (back to its queue, counted); Released (back, not counted). */
  readonly state: string;
  readonly code: string | null;
  readonly message: string | null;
}

/** A job's attempts, first first, on job_attempts' primary key (job_id, attempt). */
export async function jobAttempts(db: Kysely<Database>, jobId: string): Promise<JobAttempt[]> {
  const { rows } = await sql<{ attempt: number; worker: string | null; started_at: Date; ended_at: Date | null; state: string; code: string | null; message: string | null }>`
    SELECT attempt, worker, started_at, ended_at, state, code, message FROM job_attempts WHERE job_id = ${jobId} ORDER BY attempt LIMIT 1000`.execute(db);
  return rows.map((r) => ({ ...r, started_at: new Date(r.started_at).toISOString(), ended_at: iso(r.ended_at) }));
}

export interface QueueSummary {
  readonly queue_id: string;
  readonly bucket: string;
  readonly name: string;
  readonly state: string;
  readonly max_concurrent: number;
  readonly running: number;
  readonly waiting: number;
  readonly paused: number;
  readonly oldest_waiting_s: number | null;
  readonly notify_config: unknown;
  readonly is_default: boolean;
}

/** Queues with their depths: counts on jobs_waiting, running from the queue row (sql/0004). */
export async function queueSummaries(db: Kysely<Database>, scope: Scope): Promise<QueueSummary[]> {
  const { rows } = await sql<QueueSummary & { waiting: string; paused: string }>`
    SELECT q.queue_id, q.bucket, q.name, q.state, q.max_concurrent, q.running, q.notify_config, q.is_default,
           (SELECT count(*) FROM jobs j WHERE j.queue_id = q.queue_id AND j.state = 'Submitted') AS waiting,
           (SELECT count(*) FROM jobs j WHERE j.queue_id = q.queue_id AND j.state = 'Pause') AS paused,
           extract(epoch FROM now() - (SELECT j.created_at FROM jobs j WHERE j.queue_id = q.queue_id AND j.state = 'Submitted' ORDER BY j.seq LIMIT 1))::float8 AS oldest_waiting_s
    FROM queues q
    ${scope.appid !== undefined ? sql`WHERE substring(q.bucket from '-([0-9]+)$') = ${scope.appid}` : sql``}
    ORDER BY q.bucket, q.created_at LIMIT 1000`.execute(db);
  return rows.map((r) => ({ ...r, waiting: Number(r.waiting), paused: Number(r.paused) }));
}

export interface Overview {
  /** Jobs and tasks waiting, paused and running now. */
  readonly now: { Submitted: number; Pause: number; Running: number };
  /** Ended within the last hour, by final state. */
  readonly lastHour: Record<string, number>;
  /** Per minute of the last hour (unix seconds of the minute): ended by state. */
  readonly series: Array<{ t: number; Success: number; Failed: number; Cancel: number }>;
  readonly oldestWaitingS: number | null;
  readonly workersUp: number;
  readonly callbacks: { pending: number; givenUp: number };
  readonly queues: QueueSummary[];
}

/**
 * The overview. Waiting and running from the partial indexes jobs_waiting
 * and jobs_running; the last hour from jobs_ended (ended_at); pending
 * callbacks from callback_deliveries_due. Given-up callbacks have no index:
 * counted up to 10,000.
 */
export async function overview(db: Kysely<Database>, scope: Scope, workerGoneMs: { internal: number; external: number }): Promise<Overview> {
  const app = scope.appid;
  const byApp = app !== undefined ? sql`AND appid = ${app}` : sql``;
  const [waiting, running, ended, counts, queues] = await Promise.all([
    sql<{ state: string; n: number }>`SELECT state, count(*)::int AS n FROM jobs WHERE state IN ('Submitted', 'Pause') ${byApp} GROUP BY state`.execute(db),
    sql<{ n: number }>`SELECT count(*)::int AS n FROM jobs WHERE state = 'Running' ${byApp}`.execute(db),
    sql<{ t: number; state: string; n: number }>`
      SELECT extract(epoch FROM date_trunc('minute', ended_at))::bigint::float8 AS t, state, count(*)::int AS n
      FROM jobs WHERE ended_at > now() - interval '1 hour' ${byApp} GROUP BY 1, 2`.execute(db),
    sql<{ workers: number; pending: number; given_up: number }>`
      SELECT (SELECT count(*)::int FROM workers w WHERE w.last_seen_at > now() - (CASE WHEN w.kind = 'internal' THEN ${workerGoneMs.internal}::float8 ELSE ${workerGoneMs.external}::float8 END) * interval '1 millisecond'
                ${app !== undefined ? sql`AND (w.kind = 'internal' OR w.app_id = (SELECT app_id FROM apps WHERE appid = ${app}))` : sql``}) AS workers,
             (SELECT count(*)::int FROM callback_deliveries d WHERE d.state = 'Pending'
                ${app !== undefined ? sql`AND EXISTS (SELECT 1 FROM jobs j WHERE j.job_id = d.job_id AND j.appid = ${app})` : sql``}) AS pending,
             (SELECT count(*)::int FROM (SELECT 1 FROM callback_deliveries d WHERE d.state = 'GivenUp'
                ${app !== undefined ? sql`AND EXISTS (SELECT 1 FROM jobs j WHERE j.job_id = d.job_id AND j.appid = ${app})` : sql``} LIMIT 10000) g) AS given_up`.execute(db),
    queueSummaries(db, scope),
  ]);
  const now = { Submitted: 0, Pause: 0, Running: running.rows[0]?.n ?? 0 };
  for (const r of waiting.rows) now[r.state as 'Submitted' | 'Pause'] = r.n;
  const lastHour: Record<string, number> = { Success: 0, Failed: 0, Cancel: 0 };
  const minute = Math.floor(Date.now() / 60_000) * 60;
  const series = Array.from({ length: 60 }, (_, i) => ({ t: minute - (59 - i) * 60, Success: 0, Failed: 0, Cancel: 0 }));
  for (const r of ended.rows) {
    if (!(r.state in lastHour)) continue;
    lastHour[r.state] += r.n;
    const point = series.find((p) => p.t === Number(r.t));
    if (point) point[r.state as 'Success' | 'Failed' | 'Cancel'] += r.n;
  }
  const oldest = queues.reduce<number | null>((max, q) => (q.oldest_waiting_s !== null && (max === null || q.oldest_waiting_s > max) ? q.oldest_waiting_s : max), null);
  const c = counts.rows[0];
  return { now, lastHour, series, oldestWaitingS: oldest, workersUp: c.workers, callbacks: { pending: c.pending, givenUp: c.given_up }, queues };
}

export interface DeliverySummary {
  readonly delivery_id: string;
  readonly job_id: string;
  readonly url: string;
  readonly state: string;
  readonly attempts: number;
  readonly next_attempt_at: string;
  readonly created_at: string;
  readonly delivered_at: string | null;
  readonly last_status: number | null;
  readonly last_error: string | null;
}

/**
 * Callback deliveries in one state, newest first: Pending walks
 * callback_deliveries_due; Delivered and GivenUp read the table newest
 * first (no index of their own: the outbox's writes stay cheap), a page at a time.
 */
export async function listDeliveries(db: Kysely<Database>, scope: Scope, state: 'Pending' | 'Delivered' | 'GivenUp', size: number): Promise<DeliverySummary[]> {
  const { rows } = await sql<DeliverySummary>`
    SELECT d.delivery_id, d.job_id, d.url, d.state, d.attempts, d.next_attempt_at, d.created_at, d.delivered_at,
           a.http_status AS last_status, a.error AS last_error
    FROM callback_deliveries d
    LEFT JOIN LATERAL (SELECT http_status, error FROM callback_attempts WHERE delivery_id = d.delivery_id ORDER BY attempt DESC LIMIT 1) a ON true
    WHERE d.state = ${state}
      ${scope.appid !== undefined ? sql`AND EXISTS (SELECT 1 FROM jobs j WHERE j.job_id = d.job_id AND j.appid = ${scope.appid})` : sql``}
    ORDER BY ${state === 'Pending' ? sql`d.next_attempt_at` : sql`d.updated_at DESC`} LIMIT ${size}`.execute(db);
  return rows.map((r) => ({
    ...r,
    next_attempt_at: new Date(r.next_attempt_at).toISOString(),
    created_at: new Date(r.created_at).toISOString(),
    delivered_at: r.delivered_at === null ? null : new Date(r.delivered_at).toISOString(),
  }));
}

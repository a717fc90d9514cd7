import { sql, type Kysely, type Selectable, type Transaction, type Updateable } from 'kysely';
import { canTransition, type JobState } from '../engine/job-state.js';
import type { XmlObject } from '../xml/tree.js';
import type { Database, JobsTable } from './schema.js';
import { DB_NOW } from './now.js';
import { TASKS_CHANNEL } from './tasks.repository.js';

export type Executor = Kysely<Database> | Transaction<Database>;

/** A job as the service works with it. */
export interface Job {
  readonly jobId: string;
  /** Creation order; the listing cursor. */
  readonly seq: string;
  readonly bucket: string;
  readonly region: string;
  readonly queueId: string;
  readonly tag: string;
  readonly state: JobState;
  readonly priority: number;
  readonly inputObject: string;
  readonly operation: XmlObject;
  readonly result: XmlObject | null;
  readonly callback: JobCallback;
  readonly code: string;
  readonly message: string;
  readonly progress: number;
  readonly attempts: number;
  readonly maxAttempts: number;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly endedAt: Date | null;
}

/** The request's CallBack settings; all undefined means "use the queue's NotifyConfig". */
export interface JobCallback {
  readonly url: string | undefined;
  readonly format: 'XML' | 'JSON' | undefined;
  readonly type: string | undefined;
}

export type JobRow = Selectable<JobsTable>;

export function jobRowToJob(row: JobRow): Job {
  return {
    jobId: row.job_id,
    seq: String(row.seq),
    bucket: row.bucket,
    region: row.region,
    queueId: row.queue_id,
    tag: row.tag,
    state: row.state as JobState,
    priority: row.priority,
    inputObject: row.input_object,
    operation: row.operation,
    result: row.result,
    callback: {
      url: row.callback_url ?? undefined,
      format: (row.callback_format ?? undefined) as JobCallback['format'],
      type: row.callback_type ?? undefined,
    },
    code: row.code,
    message: row.message,
    progress: row.progress,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    createdAt: new Date(row.created_at),
    startedAt: row.started_at ? new Date(row.started_at) : null,
    endedAt: row.ended_at ? new Date(row.ended_at) : null,
  };
}

/** A job to store; its queue (and so its first state) is resolved by `insertJobs`. */
export interface NewJob {
  readonly jobId: string;
  readonly bucket: string;
  readonly region: string;
  readonly tag: string;
  readonly priority: number;
  readonly inputObject: string;
  readonly operation: XmlObject;
  readonly callback: JobCallback;
  readonly maxAttempts: number;
  readonly expiresAt: Date;
  /** For external workers (the task API), never ours; `taskData` is what get_next_task hands them. */
  readonly external?: boolean;
  readonly taskData?: unknown;
}

/** Which queue new jobs go to: the bucket's default queue, or the bucket's queue `queueId`. */
export interface QueueChoice {
  readonly bucket: string;
  readonly queueId?: string;
}

/**
 * Inserts jobs into a queue, in the given order (their seq follows it), and
 * returns them as stored: `Pause` in a paused queue, else `Submitted`. One
 * statement reads the queue and inserts, so a submission costs one round
 * trip; jobs that become Submitted send a NOTIFY on `notifyChannel`,
 * delivered when the insert commits. Returns [] when the queue does not
 * exist (for the default queue: not yet).
 */
export async function insertJobs(db: Executor, queue: QueueChoice, jobs: readonly NewJob[], notifyChannel: string): Promise<Job[]> {
  const records = jobs.map((job, ord) => ({
    ord,
    job_id: job.jobId,
    bucket: job.bucket,
    region: job.region,
    tag: job.tag,
    priority: job.priority,
    input_object: job.inputObject,
    operation: job.operation,
    callback_url: job.callback.url ?? null,
    callback_format: job.callback.format ?? null,
    callback_type: job.callback.type ?? null,
    max_attempts: job.maxAttempts,
    expires_at: job.expiresAt.toISOString(),
    external: job.external ?? false,
    task_data: job.taskData ?? null,
  }));
  const { rows } = await sql<JobRow>`
    INSERT INTO jobs (job_id, bucket, region, queue_id, tag, state, priority, input_object, operation,
                      callback_url, callback_format, callback_type, max_attempts, expires_at, external, task_data)
    SELECT r.job_id, r.bucket, r.region, q.queue_id, r.tag,
           CASE WHEN q.state = 'Paused' THEN 'Pause' ELSE 'Submitted' END,
           r.priority, r.input_object, r.operation, r.callback_url, r.callback_format, r.callback_type, r.max_attempts, r.expires_at,
           r.external, r.task_data
    FROM queues q,
         json_to_recordset(${JSON.stringify(records)}::json) AS r(
           ord int, job_id text, bucket text, region text, tag text, priority smallint, input_object text, operation json,
           callback_url text, callback_format text, callback_type text, max_attempts int, expires_at timestamptz,
           external boolean, task_data json)
    WHERE q.bucket = ${queue.bucket} AND ${queue.queueId === undefined ? sql`q.is_default` : sql`q.queue_id = ${queue.queueId}`}
    ORDER BY r.ord
    RETURNING *, CASE WHEN state = 'Submitted' THEN
      pg_notify(CASE WHEN external THEN ${TASKS_CHANNEL} ELSE ${notifyChannel} END, CASE WHEN external THEN appid ELSE '' END) END AS notified`.execute(db);
  return rows.map(jobRowToJob).sort((a, b) => compareSeq(a.seq, b.seq));
}

function compareSeq(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

export async function findJobs(db: Executor, bucket: string, jobIds: readonly string[]): Promise<Job[]> {
  if (jobIds.length === 0) return [];
  const rows = await db.selectFrom('jobs').selectAll().where('bucket', '=', bucket).where('job_id', 'in', jobIds).execute();
  return rows.map(jobRowToJob);
}

export interface JobListFilter {
  readonly bucket: string;
  readonly tag?: string;
  readonly queueId?: string;
  readonly states?: readonly JobState[];
  readonly order: 'Asc' | 'Desc';
  readonly size: number;
  /** Seq of the last job of the previous page. */
  readonly afterSeq?: string;
  readonly startCreationTime?: Date;
  readonly endCreationTime?: Date;
  readonly inputObject?: string;
}

/**
 * One page of jobs, keyset-paged on seq: a job created while a client pages
 * through lands before the first page (Desc) or after the last (Asc), so no
 * job is skipped or repeated. Returns the next page's cursor when there may be more.
 */
export async function listJobs(db: Executor, filter: JobListFilter): Promise<{ jobs: Job[]; nextSeq: string | undefined }> {
  let query = db.selectFrom('jobs').selectAll().where('bucket', '=', filter.bucket);
  if (filter.tag !== undefined) query = query.where('tag', '=', filter.tag);
  if (filter.queueId !== undefined) query = query.where('queue_id', '=', filter.queueId);
  if (filter.inputObject !== undefined) query = query.where('input_object', '=', filter.inputObject);
  if (filter.states !== undefined) query = query.where('state', 'in', filter.states);
  if (filter.startCreationTime) query = query.where('created_at', '>=', filter.startCreationTime);
  if (filter.endCreationTime) query = query.where('created_at', '<=', filter.endCreationTime);
  const direction = filter.order === 'Desc' ? 'desc' : 'asc';
  const byTime = filter.startCreationTime !== undefined || filter.endCreationTime !== undefined;
  if (filter.afterSeq !== undefined) {
    const after = sql`${filter.afterSeq}::bigint`;
    // A time window pages on (created_at, seq), the order of jobs_by_created
    // (sql/0009): walking seq and filtering on created_at read every job
    // between the newest and the window (25 ms on 1 M rows, against 1 ms).
    query = byTime
      ? query.where(sql`(created_at, seq)`, filter.order === 'Desc' ? '<' : '>', sql`(SELECT created_at, seq FROM jobs WHERE seq = ${after})`)
      : query.where(sql`seq`, filter.order === 'Desc' ? '<' : '>', after);
  }
  if (byTime) query = query.orderBy('created_at', direction);
  const rows = await query.orderBy('seq', direction).limit(filter.size + 1).execute();
  const more = rows.length > filter.size;
  const jobs = rows.slice(0, filter.size).map(jobRowToJob);
  return { jobs, nextSeq: more ? jobs.at(-1)?.seq : undefined };
}

export type JobPatch = Omit<Updateable<JobsTable>, 'state' | 'job_id' | 'seq'>;

/**
 * The one place a job changes state. `from` lists the states the caller
 * expects the job to be in; the update applies only if it still is (a
 * concurrent cancel or reaper wins otherwise) and only along an allowed
 * transition. Returns the updated job, or undefined when nothing matched.
 */
export async function transitionJob(...args: Parameters<typeof transitionJobQuery>): Promise<Job | undefined> {
  const row = await transitionJobQuery(...args).executeTakeFirst();
  return row && jobRowToJob(row);
}

/**
 * `transitionJob`'s UPDATE … RETURNING *, not yet executed: for a statement
 * that changes a job's state along with other work (queue.sql.ts embeds it
 * as a CTE). Refuses a transition that is not allowed, like `transitionJob`;
 * `extraCondition.leaseOwner` also requires the job to be held by that worker.
 */
export function transitionJobQuery(
  db: Executor,
  jobId: string,
  from: readonly JobState[],
  to: JobState,
  patch: JobPatch = {},
  extraCondition?: { leaseOwner: string },
) {
  for (const state of from) {
    if (!canTransition(state, to)) throw new Error(`illegal job transition ${state} → ${to}`);
  }
  let query = db
    .updateTable('jobs')
    .set({ ...patch, state: to, updated_at: DB_NOW })
    .where('job_id', '=', jobId)
    .where('state', 'in', from);
  if (extraCondition) query = query.where('lease_owner', '=', extraCondition.leaseOwner);
  return query.returningAll();
}

/**
 * Moves every job of a queue that is in `from` to `to` (pause and resume).
 * Same transition rules as `transitionJob`. Returns how many moved.
 */
export async function transitionQueueJobs(db: Executor, queueId: string, from: JobState, to: JobState): Promise<number> {
  if (!canTransition(from, to)) throw new Error(`illegal job transition ${from} → ${to}`);
  const result = await db
    .updateTable('jobs')
    .set({ state: to, updated_at: DB_NOW })
    .where('queue_id', '=', queueId)
    .where('state', '=', from)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

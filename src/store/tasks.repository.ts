import { sql } from 'kysely';
import type { Executor, JobRow } from './jobs.repository.js';
import { CHANNELS } from '../engine/channels.js';

/** A task to store: a job row with the task API's columns (sql/0010). */
export interface NewTask {
  readonly jobId: string;
  readonly queueId: string;
  readonly region: string;
  readonly taskType: string;
  readonly priority: number;
  readonly taskData: unknown;
  readonly callbackUrl: string | undefined;
  readonly maxAttempts: number;
  readonly expiresAt: Date;
  readonly external: boolean;
  readonly uniqueKey: string | undefined;
}

/** What create_task answers from a stored task. */
export type StoredTask = Pick<JobRow, 'job_id' | 'seq' | 'state' | 'code'>;

/** The channel get_next_task's long polls listen on; the payload is the app's APPID. */
export const TASKS_CHANNEL = 'mediajobs_tasks_available';

/**
 * Inserts tasks, each into its queue: `Pause` in a paused queue, else
 * `Submitted`, in the given order (their task ids follow it), and wakes the
 * long polls of their app (external tasks) or our workers (the others) when
 * the statement commits. One statement, atomic by itself, for any number of
 * tasks (the task API groups concurrent creates, src/tasks/batcher.ts).
 * Returns the tasks stored (the columns create_task answers with: the rest
 * of the row would be sent, parsed and dropped), by job id. A task whose
 * `uniqueKey` is held by an unfinished task of its app (or by an earlier
 * task of the same statement) is not stored, nor is one whose queue does
 * not exist.
 */
export async function insertTasks(db: Executor, tasks: readonly NewTask[]): Promise<Map<string, StoredTask>> {
  const records = tasks.map((task, ord) => ({
    ord,
    job_id: task.jobId,
    queue_id: task.queueId,
    region: task.region,
    tag: task.taskType,
    priority: task.priority,
    callback_url: task.callbackUrl ?? null,
    max_attempts: task.maxAttempts,
    expires_at: task.expiresAt.toISOString(),
    external: task.external,
    task_data: task.taskData,
    unique_key: task.uniqueKey ?? null,
  }));
  const { rows } = await sql<StoredTask>`
    INSERT INTO jobs (job_id, bucket, region, queue_id, tag, state, priority, input_object, operation,
                      callback_url, callback_format, callback_type, max_attempts, expires_at, external, task_data, unique_key)
    SELECT r.job_id, q.bucket, r.region, q.queue_id, r.tag,
           CASE WHEN q.state = 'Paused' THEN 'Pause' ELSE 'Submitted' END,
           r.priority, '', '{}'::json, r.callback_url, 'JSON', 'Task', r.max_attempts, r.expires_at, r.external, r.task_data, r.unique_key
    FROM json_to_recordset(${JSON.stringify(records)}::json) AS r(
           ord int, job_id text, queue_id text, region text, tag text, priority smallint, callback_url text,
           max_attempts int, expires_at timestamptz, external boolean, task_data json, unique_key text)
    JOIN queues q ON q.queue_id = r.queue_id
    ORDER BY r.ord
    ON CONFLICT (appid, unique_key) WHERE unique_key IS NOT NULL AND state IN ('Submitted', 'Running', 'Pause') DO NOTHING
    RETURNING job_id, seq, state, code, CASE WHEN state = 'Submitted' THEN
      pg_notify(CASE WHEN external THEN ${TASKS_CHANNEL} ELSE ${CHANNELS.jobsAvailable} END, CASE WHEN external THEN appid ELSE '' END) END AS notified`.execute(db);
  return new Map(rows.map((row) => [row.job_id, row]));
}

/** The unfinished task of an app holding `uniqueKey`, if any. */
export async function findTaskByUniqueKey(db: Executor, appid: string, uniqueKey: string): Promise<JobRow | undefined> {
  return db.selectFrom('jobs').selectAll().where('appid', '=', appid).where('unique_key', '=', uniqueKey)
    .where('state', 'in', ['Submitted', 'Running', 'Pause']).executeTakeFirst();
}

/** An app's task (any job row of its buckets) by task id. */
export async function findTask(db: Executor, appid: string, taskId: number): Promise<JobRow | undefined> {
  return db.selectFrom('jobs').selectAll().where(sql`seq`, '=', sql`${String(taskId)}::bigint`).where('appid', '=', appid).executeTakeFirst();
}

/** How list_tasks filters by status: each status is a condition on CI's state (and Code, for expired). */
const STATUS_CONDITIONS = {
  pending: sql<boolean>`state IN ('Submitted', 'Pause')`,
  processing: sql<boolean>`state = 'Running'`,
  completed: sql<boolean>`state = 'Success'`,
  failed: sql<boolean>`state = 'Failed' AND code <> 'JobExpired'`,
  expired: sql<boolean>`state = 'Failed' AND code = 'JobExpired'`,
  cancelled: sql<boolean>`state = 'Cancel'`,
} as const;

export interface TaskListFilter {
  readonly appid: string;
  readonly status?: keyof typeof STATUS_CONDITIONS;
  readonly taskType?: string;
  readonly order: 'asc' | 'desc';
  readonly limit: number;
  /** The last task id of the previous page. */
  readonly after?: number;
}

/**
 * One page of an app's tasks, keyset-paged on the task id (seq, from
 * jobs_by_appid): a task created while a client pages lands before its first
 * page (desc) or after its last (asc), never in between.
 */
export async function listTasks(db: Executor, filter: TaskListFilter): Promise<{ rows: JobRow[]; next: number | undefined }> {
  let query = db.selectFrom('jobs').selectAll().where('appid', '=', filter.appid);
  if (filter.taskType !== undefined) query = query.where('tag', '=', filter.taskType);
  if (filter.status !== undefined) query = query.where(STATUS_CONDITIONS[filter.status]);
  if (filter.after !== undefined) query = query.where(sql`seq`, filter.order === 'desc' ? '<' : '>', sql`${String(filter.after)}::bigint`);
  const rows = await query.orderBy('seq', filter.order).limit(filter.limit + 1).execute();
  const page = rows.slice(0, filter.limit);
  return { rows: page, next: rows.length > filter.limit ? Number(page.at(-1)?.seq) : undefined };
}

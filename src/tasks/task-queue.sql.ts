import { sql } from 'kysely';
import { canTransition } from '../engine/job-state.js';
import type { Outcome } from '../engine/outcomes.js';
import type { Executor, JobRow } from '../store/jobs.repository.js';
import { DB_NOW } from '../store/now.js';

/*
 * The task API's queue statements. They work on the same rows, columns and
 * rules as our workers' (src/engine/queue.sql.ts): a claim takes a queue slot
 * (`queues.running`, given back by the same trigger when the row leaves
 * Running, so MaxConcurrent and pauses hold for external workers too), sets
 * the lease and counts the attempt; an abandoned task is taken back by the
 * same `reapExpiredLeases`, a failed one retried by the same `retryOrFail`,
 * a waiting one expired by the same `expireWaitingJobs`, and a cancel is
 * `cancelJobs`. Only the choice of rows differs: one app's external rows of
 * the asked types, instead of our workers' Tags in every queue.
 */

for (const [from, to] of [['Submitted', 'Running'], ['Running', 'Success'], ['Running', 'Failed']] as const) {
  if (!canTransition(from, to)) throw new Error(`the task statements need ${from} → ${to}`);
}

/**
 * Hands the app's best waiting external tasks of `types` (any when empty)
 * to `owners`, one task each, in order: the first owner gets the highest
 * priority, oldest task. Concurrent get_next_task calls of one app and
 * types share this statement, in a round with the creates and ends that
 * arrived with them (runRound in src/tasks/task-service.ts). Rows come from the
 * `jobs_task_head` index, skipping tasks whose queue is paused or full.
 *
 * 1. `candidate`: up to one row per owner, locked with SKIP LOCKED:
 *    concurrent claims never wait on each other's rows and never take the
 *    same one (each sees the other's lock and moves on);
 * 2. `fitting`: no more rows from a queue than it has slots free;
 * 3. `slot`: takes those slots, re-checked against the newest queue row
 *    after waiting for its lock, as claimStatement does (sql/0004);
 * 4. the rows become Running under their owner's lease, the attempt counted.
 * Returns the rows claimed, in owner order: fewer than the owners when
 * fewer tasks are available.
 */
export async function claimTasks(db: Executor, appid: string, types: readonly string[], owners: readonly string[], leaseMs: number): Promise<JobRow[]> {
  const { rows } = await sql<JobRow & { owner_ord: string }>`
    WITH owner AS (
      SELECT o.name, o.ord FROM unnest(${owners as string[]}::text[]) WITH ORDINALITY AS o(name, ord)
    ), candidate AS (
      SELECT j.job_id, j.queue_id, j.priority, j.seq FROM jobs j
      JOIN queues q ON q.queue_id = j.queue_id
      WHERE j.appid = ${appid} AND j.state = 'Submitted' AND j.external
        AND (cardinality(${types as string[]}::text[]) = 0 OR j.tag = ANY(${types as string[]}::text[]))
        AND j.run_after <= now() AND j.expires_at > now()
        AND q.state = 'Active' AND q.running < q.max_concurrent
      ORDER BY j.priority DESC, j.seq
      LIMIT ${owners.length}::int
      FOR UPDATE OF j SKIP LOCKED
    ), fitting AS (
      SELECT c.* FROM (
        SELECT c.*, row_number() OVER (PARTITION BY c.queue_id ORDER BY c.priority DESC, c.seq) AS in_queue FROM candidate c
      ) c JOIN queues q ON q.queue_id = c.queue_id
      WHERE c.in_queue <= q.max_concurrent - q.running
    ), wanted AS (
      SELECT queue_id, count(*)::int AS slots FROM fitting GROUP BY queue_id
    ), slot AS (
      UPDATE queues SET running = running + wanted.slots
      FROM wanted
      WHERE queues.queue_id = wanted.queue_id AND queues.state = 'Active' AND queues.running + wanted.slots <= queues.max_concurrent
      RETURNING queues.queue_id
    ), chosen AS (
      SELECT f.job_id, row_number() OVER (ORDER BY f.priority DESC, f.seq) AS ord
      FROM fitting f JOIN slot ON slot.queue_id = f.queue_id
    )
    UPDATE jobs SET
      state = 'Running',
      lease_owner = owner.name,
      lease_expires_at = now() + ${leaseMs} * interval '1 millisecond',
      attempts = attempts + 1,
      started_at = coalesce(started_at, now()),
      progress = 0,
      updated_at = now()
    FROM chosen JOIN owner ON owner.ord = chosen.ord
    WHERE jobs.job_id = chosen.job_id
    RETURNING jobs.*, owner.ord AS owner_ord`.execute(db);
  return rows.sort((a, b) => Number(a.owner_ord) - Number(b.owner_ord));
}

/** Which running task a call is about: the app's task id, held by `owner` when the caller named its worker. */
export interface HeldTask {
  readonly appid: string;
  readonly taskId: number;
  readonly owner?: string;
}

function held(db: Executor, task: HeldTask) {
  let query = db.updateTable('jobs')
    .where(sql`seq`, '=', sql`${String(task.taskId)}::bigint`)
    .where('appid', '=', task.appid)
    .where('state', '=', 'Running');
  if (task.owner !== undefined) query = query.where('lease_owner', '=', task.owner);
  return query;
}

/** update_progress: stores progress and message and renews the lease. Undefined when the task is not Running (under `owner`). */
export async function saveTaskProgress(db: Executor, task: HeldTask, progress: number, message: string | undefined, leaseMs: number): Promise<JobRow | undefined> {
  return held(db, task).set({
    progress,
    ...(message !== undefined ? { message } : {}),
    lease_expires_at: sql<Date>`now() + ${leaseMs} * interval '1 millisecond'` as unknown as Date,
    updated_at: DB_NOW,
  }).returningAll().executeTakeFirst();
}

/** A task to end by `endTasksWithoutCallback`. */
export interface TaskEnd {
  readonly task: HeldTask;
  readonly to: 'Success' | 'Failed';
  readonly outcome: Outcome;
  /** complete_task's result (any JSON), or undefined. */
  readonly taskResult: unknown;
}

/**
 * Ends running tasks, each as its `to`, in one statement, but only those
 * whose end records no notification: tasks of the task API without a
 * callback_url. Concurrent complete_task and fail_task calls share it
 * (src/tasks/batcher.ts). It writes what `endPatch` writes (restated here
 * as claimStatement restates it; the tests compare the rows with endJob's),
 * and the result. Returns, per end, the row or undefined when the task was
 * not Running (under its owner) or has a callback to record: the caller then
 * ends it through endJob in a transaction, or explains why not. Only which
 * ones ended comes back: the callers need nothing else of the row.
 */
export async function endTasksWithoutCallback(db: Executor, ends: readonly TaskEnd[]): Promise<boolean[]> {
  const records = ends.map(({ task, to, outcome, taskResult }, ord) => ({
    ord,
    seq: String(task.taskId),
    appid: task.appid,
    owner: task.owner ?? null,
    state: to,
    code: outcome.code,
    message: outcome.message,
    task_result: taskResult === undefined ? null : JSON.stringify(taskResult),
  }));
  const { rows } = await sql<{ end_ord: number }>`
    UPDATE jobs SET
      state = e.state,
      code = e.code,
      message = e.message,
      progress = CASE WHEN e.state = 'Success' THEN 100 ELSE jobs.progress END,
      lease_owner = NULL,
      lease_expires_at = NULL,
      ended_at = now(),
      task_result = coalesce(e.task_result::json, jobs.task_result),
      updated_at = now()
    FROM json_to_recordset(${JSON.stringify(records)}::json) AS e(ord int, seq bigint, appid text, owner text, state text, code text, message text, task_result text)
    WHERE jobs.seq = e.seq AND jobs.appid = e.appid AND jobs.state = 'Running'
      AND (e.owner IS NULL OR jobs.lease_owner = e.owner)
      AND jobs.callback_type = 'Task' AND jobs.callback_url IS NULL
      AND e.state IN ('Success', 'Failed')
    RETURNING e.ord AS end_ord`.execute(db);
  const ended = new Set(rows.map((row) => Number(row.end_ord)));
  return ends.map((_, ord) => ended.has(ord));
}

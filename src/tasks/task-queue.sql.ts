import { sql } from 'kysely';
import { canTransition } from '../engine/job-state.js';
import { endPatch, type Outcome } from '../engine/outcomes.js';
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
 * Hands the app's best waiting external task of `types` (any when empty) to
 * `owner`: highest priority, then oldest, from the `jobs_task_head` index,
 * skipping tasks whose queue is paused or full.
 *
 * 1. `candidate`: the first such row, locked with SKIP LOCKED: concurrent
 *    get_next_task calls never wait on each other's rows and never get the
 *    same one (each statement sees the other's lock and moves on);
 * 2. `slot`: takes a slot of its queue, re-checked against the newest queue
 *    row after waiting for its lock, as claimStatement does;
 * 3. the row becomes Running under the lease, its attempt counted.
 * Returns undefined when no task is available (or its queue filled up meanwhile).
 */
export async function claimTask(db: Executor, appid: string, types: readonly string[], owner: string, leaseMs: number): Promise<JobRow | undefined> {
  const { rows } = await sql<JobRow>`
    WITH candidate AS (
      SELECT j.job_id, j.queue_id FROM jobs j
      JOIN queues q ON q.queue_id = j.queue_id
      WHERE j.appid = ${appid} AND j.state = 'Submitted' AND j.external
        AND (cardinality(${types as string[]}::text[]) = 0 OR j.tag = ANY(${types as string[]}::text[]))
        AND j.run_after <= now() AND j.expires_at > now()
        AND q.state = 'Active' AND q.running < q.max_concurrent
      ORDER BY j.priority DESC, j.seq
      LIMIT 1
      FOR UPDATE OF j SKIP LOCKED
    ), slot AS (
      UPDATE queues SET running = running + 1
      FROM candidate
      WHERE queues.queue_id = candidate.queue_id AND queues.state = 'Active' AND queues.running < queues.max_concurrent
      RETURNING queues.queue_id
    )
    UPDATE jobs SET
      state = 'Running',
      lease_owner = ${owner},
      lease_expires_at = now() + ${leaseMs} * interval '1 millisecond',
      attempts = attempts + 1,
      started_at = coalesce(started_at, now()),
      progress = 0,
      updated_at = now()
    FROM candidate, slot
    WHERE jobs.job_id = candidate.job_id AND slot.queue_id = candidate.queue_id
    RETURNING jobs.*`.execute(db);
  return rows[0];
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

/**
 * Ends a running task as `to`, with `endPatch` (the same columns endJob
 * writes) and its result, in one statement, but only when ending it records
 * no notification: a task of the task API without a callback_url. Undefined
 * otherwise (or when it is not Running under `owner`): the caller then ends
 * it through endJob in a transaction, with its notification.
 */
export async function endTaskWithoutCallback(db: Executor, task: HeldTask, to: 'Success' | 'Failed', outcome: Outcome, taskResult: unknown): Promise<JobRow | undefined> {
  return held(db, task)
    .where('callback_type', '=', 'Task')
    .where('callback_url', 'is', null)
    .set({
      ...endPatch(to, outcome),
      ...(taskResult !== undefined ? { task_result: JSON.stringify(taskResult) } : {}),
      state: to,
      updated_at: DB_NOW,
    })
    .returningAll()
    .executeTakeFirst();
}

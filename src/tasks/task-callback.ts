import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { CHANNELS } from '../engine/channels.js';
import type { Executor, Job } from '../store/jobs.repository.js';
import { taskCallbackBody } from './task-view.js';

/** `jobs.callback_type` of rows created by create_task: their callback is the task API's JSON, not CI's TaskFinish. */
export const TASK_CALLBACK_TYPE = 'Task';

/**
 * Records the callback of a task that has just ended, inside the caller's
 * transaction (the one that ended it), into the same outbox as CI's
 * TaskFinish: same delivery, retries, signature headers, URL policy and
 * delivery log. A task without a callback_url has none (a queue's
 * NotifyConfig speaks CI's format, and applies to CI jobs only).
 */
export async function enqueueTaskCallback(tx: Executor, job: Job): Promise<void> {
  if (!job.callback.url) return;
  const row = await tx.selectFrom('jobs').selectAll().where('job_id', '=', job.jobId).executeTakeFirstOrThrow();
  await tx.insertInto('callback_deliveries').values({
    delivery_id: `d${randomBytes(16).toString('hex')}`,
    job_id: job.jobId,
    url: job.callback.url,
    format: 'JSON',
    body: taskCallbackBody(row),
    content_type: 'application/json',
  }).execute();
  await sql`SELECT pg_notify(${CHANNELS.deliveriesAvailable}, '')`.execute(tx);
}

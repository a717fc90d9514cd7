import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Executor, Job } from '../store/jobs.repository.js';
import { buildJobsDetail } from '../xml/jobs-detail.js';
import { buildTaskFinishBody, type CallbackFormat } from './notification.js';
import { CHANNELS } from '../engine/channels.js';
import type { NotifyConfig } from '../store/schema.js';
import { enqueueTaskCallback, TASK_CALLBACK_TYPE } from '../tasks/task-callback.js';

/** Queue events that mean "tell me when a job finishes"; TransCodingFinish is CI's legacy name. */
const TASK_FINISH_EVENTS = ['TaskFinish', 'TransCodingFinish'];

export interface CallbackTarget {
  readonly url: string;
  readonly format: CallbackFormat;
}

/**
 * Where a finished job's TaskFinish goes (`shared/ci-api.md` §6.1): the job's
 * own CallBack wins; `no` silences the queue's; otherwise the queue's
 * NotifyConfig, when it is On and subscribes to TaskFinish. The job's
 * CallBackFormat wins over the queue's ResultFormat. Undefined: no callback.
 */
export function resolveCallbackTarget(job: Job, notify: NotifyConfig | null): CallbackTarget | undefined {
  const queueFormat = notify?.ResultFormat === 'JSON' ? 'JSON' : 'XML';
  const format: CallbackFormat = job.callback.format ?? queueFormat;
  if (job.callback.url === 'no') return undefined;
  if (job.callback.url) return { url: job.callback.url, format };
  const events = (notify?.Event ?? '').split(',').map((e) => e.trim());
  if (notify?.State !== 'On' || !notify.Url || !events.some((e) => TASK_FINISH_EVENTS.includes(e))) return undefined;
  return { url: notify.Url, format };
}

/**
 * Records the TaskFinish notification of a job that has just ended, inside
 * the caller's transaction, and wakes the senders when it commits.
 * `queueNotify`, when given, is the queue's NotifyConfig as read when the job
 * was claimed; otherwise it is read now.
 */
export async function enqueueTaskFinish(tx: Executor, job: Job, queueNotify?: NotifyConfig | null): Promise<void> {
  if (job.callback.type === TASK_CALLBACK_TYPE) return enqueueTaskCallback(tx, job);
  const notify = queueNotify !== undefined
    ? queueNotify
    : (await tx.selectFrom('queues').select('notify_config').where('queue_id', '=', job.queueId).executeTakeFirst())?.notify_config ?? null;
  const target = resolveCallbackTarget(job, notify);
  if (!target) return;
  const { body, contentType } = buildTaskFinishBody(buildJobsDetail(job), target.format);
  await tx.insertInto('callback_deliveries').values({
    delivery_id: `d${randomBytes(16).toString('hex')}`,
    job_id: job.jobId,
    url: target.url,
    format: target.format,
    body,
    content_type: contentType,
  }).execute();
  await sql`SELECT pg_notify(${CHANNELS.deliveriesAvailable}, '')`.execute(tx);
}

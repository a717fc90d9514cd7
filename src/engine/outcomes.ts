import { enqueueTaskFinish, resolveCallbackTarget } from '../callbacks/outbox.js';
import { transitionJob, type Executor, type Job, type JobPatch } from '../store/jobs.repository.js';
import type { NotifyConfig } from '../store/schema.js';
import type { XmlObject } from '../xml/tree.js';
import type { JobState } from './job-state.js';
import { DB_NOW } from '../store/now.js';

export interface Outcome {
  readonly code: string;
  readonly message: string;
  readonly result?: XmlObject;
}

/**
 * Ends a job (Success, Failed or Cancel) and, in the same transaction, records
 * its TaskFinish notification, so a job can never end without its callback
 * being on its way. Returns undefined when the job was no longer in `from`.
 * Call it inside a transaction unless `callbackExpected` says there is no
 * callback to record, in which case the single UPDATE is atomic by itself.
 */
export async function endJob(
  tx: Executor,
  jobId: string,
  from: readonly JobState[],
  to: 'Success' | 'Failed' | 'Cancel',
  outcome: Outcome,
  leaseOwner?: string,
  queueNotify?: NotifyConfig | null,
  /** More columns to write with the end (the task API's task_result). */
  extra: JobPatch = {},
): Promise<Job | undefined> {
  const job = await transitionJob(tx, jobId, from, to, { ...endPatch(to, outcome), ...extra }, leaseOwner ? { leaseOwner } : undefined);
  if (job) await enqueueTaskFinish(tx, job, queueNotify);
  return job;
}

/** What ending a job writes besides its state (the task API's one-statement ends use it too). */
export function endPatch(to: 'Success' | 'Failed' | 'Cancel', outcome: Outcome): JobPatch {
  return {
    code: outcome.code,
    message: outcome.message,
    lease_owner: null,
    lease_expires_at: null,
    ended_at: DB_NOW,
    ...(to === 'Success' ? { progress: 100 } : {}),
    ...(outcome.result ? { result: JSON.stringify(outcome.result) } : {}),
  };
}

/** Whether ending `job` records a notification, given its queue's NotifyConfig. */
export function callbackExpected(job: Job, queueNotify: NotifyConfig | null): boolean {
  return resolveCallbackTarget(job, queueNotify) !== undefined;
}

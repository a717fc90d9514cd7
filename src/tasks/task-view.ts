import type { Job } from '../store/jobs.repository.js';
import type { JobRow } from '../store/jobs.repository.js';
import { jobRowToJob } from '../store/jobs.repository.js';
import { JOB_FAILURE_CODES } from '../engine/job-errors.js';

/*
 * Glossary. A *task* is a job row seen through the task API (`/api.php`):
 * its task_id is the row's seq, its task_type the Tag, its status read from
 * the CI state. An *external* task is run by a worker outside this service
 * that polls get_next_task; other tasks run in our own workers.
 */

/** Task statuses, as the seed names them; each is a reading of CI's states. */
export const TASK_STATUSES = Object.freeze(['pending', 'processing', 'completed', 'failed', 'cancelled', 'expired'] as const);
export type TaskStatus = (typeof TASK_STATUSES)[number];

/** Lease owners of external workers carry this prefix, so that they never pass for one of ours. */
export const EXTERNAL_OWNER_PREFIX = 'task:';

export function externalOwner(workerId: string): string {
  return EXTERNAL_OWNER_PREFIX + workerId;
}

/**
 * Submitted and Pause → pending; Running → processing; Success → completed;
 * Failed → expired when it was never started in time (JobExpired), else
 * failed; Cancel → cancelled.
 */
export function taskStatus(state: string, code: string): TaskStatus {
  switch (state) {
    case 'Submitted':
    case 'Pause':
      return 'pending';
    case 'Running':
      return 'processing';
    case 'Success':
      return 'completed';
    case 'Cancel':
      return 'cancelled';
    default:
      return code === JOB_FAILURE_CODES.JobExpired ? 'expired' : 'failed';
  }
}

/** A task as the task API shows it (get_task, list_tasks). */
export interface TaskView {
  readonly task_id: number;
  readonly task_type: string;
  readonly status: TaskStatus;
  readonly priority: number;
  readonly progress: number;
  readonly message: string;
  readonly task_data: unknown;
  readonly result: unknown;
  readonly error_message: string | null;
  readonly attempt: number;
  readonly max_retries: number;
  readonly worker_id: string | null;
  readonly external: boolean;
  readonly queue_id: string;
  readonly job_id: string;
  readonly callback_url: string | null;
  readonly unique_key: string | null;
  readonly created_at: string;
  readonly started_at: string | null;
  readonly finished_at: string | null;
  readonly lease_expires_at: string | null;
}

/** The task id of a row: its seq, a number (safe: seq stays far below 2^53). */
export function taskIdOf(row: Pick<JobRow, 'seq'>): number {
  return Number(row.seq);
}

function iso(value: Date | string | null): string | null {
  return value === null ? null : new Date(value).toISOString();
}

/** A job's task_data: as given to create_task, or for a CI job its Input and Operation. */
function taskDataOf(row: JobRow, job: Job): unknown {
  if (row.task_data !== null && row.task_data !== undefined) return row.task_data;
  return { Input: { Object: job.inputObject }, Operation: job.operation };
}

/** A job row as a task. */
export function taskView(row: JobRow): TaskView {
  const job = jobRowToJob(row);
  const status = taskStatus(job.state, job.code);
  const ended = status === 'failed' || status === 'expired' || status === 'cancelled';
  return {
    task_id: taskIdOf(row),
    task_type: job.tag,
    status,
    priority: job.priority,
    progress: job.progress,
    message: job.message,
    task_data: taskDataOf(row, job),
    result: row.task_result ?? job.result ?? null,
    error_message: ended ? job.message : null,
    attempt: job.attempts,
    max_retries: job.maxAttempts - 1,
    worker_id: row.lease_owner === null ? null : row.lease_owner.startsWith(EXTERNAL_OWNER_PREFIX) ? row.lease_owner.slice(EXTERNAL_OWNER_PREFIX.length) : row.lease_owner,
    external: row.external,
    queue_id: job.queueId,
    job_id: job.jobId,
    callback_url: job.callback.url ?? null,
    unique_key: row.unique_key,
    created_at: job.createdAt.toISOString(),
    started_at: iso(job.startedAt),
    finished_at: iso(job.endedAt),
    lease_expires_at: iso(row.lease_expires_at),
  };
}

/** What get_next_task hands a worker. */
export function handedOutTask(row: JobRow): Record<string, unknown> {
  const view = taskView(row);
  return {
    id: view.task_id,
    task_type: view.task_type,
    task_data: view.task_data,
    priority: view.priority,
    max_retries: view.max_retries,
    attempt: view.attempt,
    lease_expires_at: view.lease_expires_at,
  };
}

/** The body of a task's callback (issue 16, item 5): what ended, and its result or error. */
export function taskCallbackBody(row: JobRow): string {
  const view = taskView(row);
  return JSON.stringify({
    task_id: view.task_id,
    task_type: view.task_type,
    status: view.status,
    ...(view.status === 'completed' ? { result: view.result } : { error_message: view.error_message }),
    progress: view.progress,
    attempt: view.attempt,
    created_at: view.created_at,
    finished_at: view.finished_at,
  });
}

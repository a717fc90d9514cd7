import { sql } from 'kysely';
import type { Db } from '../store/database.js';
import { transitionJob, type Job } from '../store/jobs.repository.js';
import { DB_NOW } from '../store/now.js';
import { CHANNELS } from './channels.js';

/**
 * Retries a Failed job (the console's Retry; issue 19): the same job, same
 * JobId, goes back to its queue as a new attempt. Its attempts count goes on
 * (the next claim makes it attempts + 1) and it is given exactly one attempt
 * more (MaxAttempts = attempts + 1), so a job that keeps failing ends Failed
 * again after one run rather than after a fresh set of retries. Its error,
 * result, progress and times are cleared; it expires like a new job
 * (`ttlMs` from now); a paused queue holds it as `Pause`. Its TaskFinish
 * notification is recorded again when it ends again. Returns undefined when
 * the job is not Failed (any more).
 */
export async function retryFailedJob(db: Db, jobId: string, ttlMs: number): Promise<Job | undefined> {
  return db.kysely.transaction().execute(async (tx) => {
    const queue = await tx.selectFrom('jobs').innerJoin('queues', 'queues.queue_id', 'jobs.queue_id')
      .select(['queues.state', 'jobs.attempts']).where('jobs.job_id', '=', jobId).where('jobs.state', '=', 'Failed')
      .forUpdate().executeTakeFirst();
    if (!queue) return undefined;
    const patch = {
      code: '',
      message: '',
      result: null,
      task_result: null,
      progress: 0,
      started_at: null,
      ended_at: null,
      lease_owner: null,
      lease_expires_at: null,
      run_after: DB_NOW,
      expires_at: sql<Date>`now() + ${ttlMs} * interval '1 millisecond'` as unknown as Date,
      max_attempts: queue.attempts + 1,
    };
    const paused = queue.state === 'Paused';
    // Failed → Submitted, then → Pause in a paused queue: the two transitions job-state.ts allows.
    let job = await transitionJob(tx, jobId, ['Failed'], 'Submitted', patch);
    if (job && paused) job = await transitionJob(tx, jobId, ['Submitted'], 'Pause');
    if (job && !paused) await sql`SELECT pg_notify(${CHANNELS.jobsAvailable}, '')`.execute(tx);
    return job;
  });
}

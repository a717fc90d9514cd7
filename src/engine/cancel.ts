import { sql } from 'kysely';
import { CiError } from '../errors.js';
import type { Db } from '../store/database.js';
import { findJobs } from '../store/jobs.repository.js';
import { CHANNELS } from './channels.js';
import { FINAL_STATES } from './job-state.js';
import { endJob } from './outcomes.js';

/**
 * CancelMediaJob for one or more ids. Waiting jobs (Submitted, Pause) end
 * `Cancel` at once. A Running job ends `Cancel` too, and its worker is told
 * (NOTIFY, and its next lease renewal finds the job gone) to kill the work and
 * remove partial outputs. Unknown ids and jobs already final are refused
 * before anything changes.
 */
export async function cancelJobs(db: Db, bucket: string, jobIds: readonly string[]): Promise<void> {
  await db.kysely.transaction().execute(async (tx) => {
    const jobs = await findJobs(tx, bucket, jobIds);
    for (const id of jobIds) {
      const job = jobs.find((j) => j.jobId === id);
      if (!job) throw new CiError('InvalidArgument', `The job ${id} does not exist.`);
      if (FINAL_STATES.has(job.state)) {
        throw new CiError('InvalidArgument', `The job ${id} is already ${job.state} and cannot be cancelled.`);
      }
    }
    for (const job of jobs) {
      const ended = await endJob(tx, job.jobId, ['Submitted', 'Pause', 'Running'], 'Cancel', { code: 'Cancel', message: 'The job was cancelled.' });
      if (!ended) throw new CiError('InvalidArgument', `The job ${job.jobId} has just finished and cannot be cancelled.`);
      // Whatever state it was read in: a claim may have committed while this UPDATE waited for its lock.
      await sql`SELECT pg_notify(${CHANNELS.jobCancelled}, ${job.jobId})`.execute(tx);
    }
  });
}

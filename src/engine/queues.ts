import { sql } from 'kysely';
import { CiError } from '../errors.js';
import type { Db } from '../store/database.js';
import { transitionQueueJobs } from '../store/jobs.repository.js';
import { findQueue, updateQueue, type Queue, type QueueUpdate } from '../store/queues.repository.js';
import { CHANNELS } from './channels.js';

/**
 * UpdateMediaQueue. Pausing moves the queue's waiting jobs to `Pause` (running
 * jobs go on); resuming makes them `Submitted` again. Their seq is untouched,
 * so they run in their original order.
 */
export async function updateMediaQueue(db: Db, bucket: string, queueId: string, update: QueueUpdate): Promise<Queue> {
  return db.kysely.transaction().execute(async (tx) => {
    const current = await findQueue(tx, bucket, queueId);
    if (!current) throw new CiError('InvalidArgument', `The queue ${queueId} does not exist.`);
    // Jobs first, then the queue row: claim() locks in the same order (job,
    // then queue), so the two never deadlock. A job claimed meanwhile is
    // Running and simply goes on; claim() re-checks the queue's state when it
    // takes a slot, so nothing is claimed once the pause commits.
    // Moved whatever the queue's state was: a request that read a stale state
    // (another pause or resume in flight) still leaves jobs and queue agreeing,
    // and a repeated Active repairs them.
    if (update.state === 'Paused') {
      await transitionQueueJobs(tx, queueId, 'Submitted', 'Pause');
    } else if (await transitionQueueJobs(tx, queueId, 'Pause', 'Submitted') > 0) {
      await sql`SELECT pg_notify(${CHANNELS.jobsAvailable}, '')`.execute(tx);
    }
    const updated = await updateQueue(tx, queueId, update);
    if (!updated) throw new CiError('InvalidArgument', `The queue ${queueId} does not exist.`);
    return updated;
  });
}

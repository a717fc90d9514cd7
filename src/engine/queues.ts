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
    // Lock the queue row: claim() holds the same lock, so no job is claimed from a queue mid-pause.
    const current = await findQueue(tx, bucket, queueId);
    if (!current) throw new CiError('InvalidArgument', `The queue ${queueId} does not exist.`);
    await sql`SELECT 1 FROM queues WHERE queue_id = ${queueId} FOR UPDATE`.execute(tx);
    const updated = await updateQueue(tx, queueId, update);
    if (!updated) throw new CiError('InvalidArgument', `The queue ${queueId} does not exist.`);
    if (current.state !== 'Paused' && update.state === 'Paused') {
      await transitionQueueJobs(tx, queueId, 'Submitted', 'Pause');
    } else if (current.state !== 'Active' && update.state === 'Active') {
      await transitionQueueJobs(tx, queueId, 'Pause', 'Submitted');
      await sql`SELECT pg_notify(${CHANNELS.jobsAvailable}, '')`.execute(tx);
    }
    return updated;
  });
}

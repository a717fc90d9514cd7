import { sql, type Selectable } from 'kysely';
import { newId } from '../ids.js';
import type { Executor } from './jobs.repository.js';
import type { NotifyConfig, QueuesTable } from './schema.js';
import { DB_NOW } from './now.js';

export interface Queue {
  readonly queueId: string;
  readonly bucket: string;
  readonly name: string;
  readonly state: 'Active' | 'Paused';
  readonly category: string;
  readonly maxSize: number;
  readonly maxConcurrent: number;
  readonly notifyConfig: NotifyConfig | null;
  readonly isDefault: boolean;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export function queueRowToQueue(row: Selectable<QueuesTable>): Queue {
  return {
    queueId: row.queue_id,
    bucket: row.bucket,
    name: row.name,
    state: row.state,
    category: row.category,
    maxSize: row.max_size,
    maxConcurrent: row.max_concurrent,
    notifyConfig: row.notify_config,
    isDefault: row.is_default,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

/**
 * The bucket's default queue, created on first use. Concurrent callers race on
 * the partial unique index; the loser's insert does nothing and it reads the
 * winner's row. The index predicate is a literal: PostgreSQL cannot match a
 * `$1` against it once the statement is prepared and planned generically.
 */
export async function ensureDefaultQueue(db: Executor, bucket: string): Promise<Queue> {
  const existing = await db.selectFrom('queues').selectAll().where('bucket', '=', bucket).where('is_default', '=', true).executeTakeFirst();
  if (existing) return queueRowToQueue(existing);
  await db
    .insertInto('queues')
    .values({ queue_id: newId('p'), bucket, name: 'queue-default', is_default: true })
    .onConflict((oc) => oc.column('bucket').where('is_default', '=', sql.lit(true)).doNothing())
    .execute();
  const row = await db.selectFrom('queues').selectAll().where('bucket', '=', bucket).where('is_default', '=', true).executeTakeFirstOrThrow();
  return queueRowToQueue(row);
}

export async function findQueue(db: Executor, bucket: string, queueId: string): Promise<Queue | undefined> {
  const row = await db.selectFrom('queues').selectAll().where('bucket', '=', bucket).where('queue_id', '=', queueId).executeTakeFirst();
  return row && queueRowToQueue(row);
}

export interface QueueListFilter {
  readonly bucket: string;
  readonly queueIds?: readonly string[];
  readonly state?: 'Active' | 'Paused';
  readonly category?: string;
  readonly pageNumber: number;
  readonly pageSize: number;
}

export async function listQueues(db: Executor, filter: QueueListFilter): Promise<{ queues: Queue[]; total: number }> {
  let query = db.selectFrom('queues').where('bucket', '=', filter.bucket);
  if (filter.queueIds) query = query.where('queue_id', 'in', filter.queueIds.length ? filter.queueIds : ['']);
  if (filter.state) query = query.where('state', '=', filter.state);
  if (filter.category) query = query.where('category', '=', filter.category);
  const { total } = await query.select(sql<string>`count(*)`.as('total')).executeTakeFirstOrThrow();
  const rows = await query
    .selectAll()
    .orderBy('created_at')
    .orderBy('queue_id')
    .limit(filter.pageSize)
    .offset((filter.pageNumber - 1) * filter.pageSize)
    .execute();
  return { queues: rows.map(queueRowToQueue), total: Number(total) };
}

export interface QueueUpdate {
  readonly name: string;
  readonly state: 'Active' | 'Paused';
  readonly maxConcurrent?: number;
  readonly notifyConfig?: NotifyConfig;
}

/** Updates the queue row only; moving its waiting jobs between Submitted and Pause is the engine's part. */
export async function updateQueue(db: Executor, queueId: string, update: QueueUpdate): Promise<Queue | undefined> {
  const row = await db
    .updateTable('queues')
    .set({
      name: update.name,
      state: update.state,
      ...(update.maxConcurrent !== undefined ? { max_concurrent: update.maxConcurrent } : {}),
      ...(update.notifyConfig !== undefined ? { notify_config: JSON.stringify(update.notifyConfig) } : {}),
      updated_at: DB_NOW,
    })
    .where('queue_id', '=', queueId)
    .returningAll()
    .executeTakeFirst();
  return row && queueRowToQueue(row);
}

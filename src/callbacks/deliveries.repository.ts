import { type Selectable } from 'kysely';
import type { Executor } from '../store/jobs.repository.js';
import type { CallbackAttemptsTable, CallbackDeliveriesTable } from '../store/schema.js';
import { DB_NOW } from '../store/now.js';

export interface DeliveryWithAttempts {
  readonly delivery: Selectable<CallbackDeliveriesTable>;
  readonly attempts: Array<Selectable<CallbackAttemptsTable>>;
}

/** A job's deliveries, oldest first, each with its attempts in order. */
export async function findDeliveriesOfJob(db: Executor, jobId: string): Promise<DeliveryWithAttempts[]> {
  const deliveries = await db.selectFrom('callback_deliveries').selectAll().where('job_id', '=', jobId).orderBy('created_at').execute();
  if (deliveries.length === 0) return [];
  const attempts = await db.selectFrom('callback_attempts').selectAll()
    .where('delivery_id', 'in', deliveries.map((d) => d.delivery_id))
    .orderBy('delivery_id').orderBy('attempt').execute();
  return deliveries.map((delivery) => ({ delivery, attempts: attempts.filter((a) => a.delivery_id === delivery.delivery_id) }));
}

/**
 * Makes a delivery due again now, with a fresh retry window, whatever its
 * state (a receiver that lost a delivered notification can ask for it again).
 */
export async function redeliver(db: Executor, deliveryId: string): Promise<boolean> {
  const result = await db.updateTable('callback_deliveries')
    .set({
      state: 'Pending',
      next_attempt_at: DB_NOW,
      window_started_at: DB_NOW,
      lease_owner: null,
      lease_expires_at: null,
      updated_at: DB_NOW,
    })
    .where('delivery_id', '=', deliveryId)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

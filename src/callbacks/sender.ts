import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { sql, type Selectable } from 'kysely';
import type { Logger } from 'pino';
import type { CallbackConfig } from '../config.js';
import { CHANNELS } from '../engine/channels.js';
import type { Db } from '../store/database.js';
import type { CallbackDeliveriesTable } from '../store/schema.js';
import { nextAttemptAt } from './backoff.js';
import { deliverOnce, type DeliveryAttemptResult } from './deliver.js';
import { callbackHeaders } from './signature.js';

type DeliveryRow = Selectable<CallbackDeliveriesTable>;

/** Deliveries one sender attempts at once. */
const BATCH_SIZE = 32;
const POLL_INTERVAL_MS = 1000;

/**
 * Delivers the callback outbox. Runs in every worker and API process; several
 * senders share the table safely: each claims due deliveries with SKIP LOCKED
 * and holds a lease (longer than one attempt can take) while it attempts them,
 * so the same attempt is never made twice at once. If a sender dies
 * mid-attempt its lease runs out and another sender makes the attempt again:
 * delivery is at least once, and the stable delivery id lets receivers drop
 * the duplicate.
 */
export class CallbackSender {
  readonly senderId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => Promise<void>) | undefined;
  private running = false;
  private rerun = false;
  private stopped = false;
  private current: Promise<void> = Promise.resolve();

  /** `secret` signs every request: MEDIAJOBS_CALLBACK_SECRET, else the generated one (`loadCallbackSecret`). */
  constructor(private readonly db: Db, private readonly config: CallbackConfig, private readonly secret: string, private readonly logger: Logger) {}

  async start(): Promise<void> {
    this.unsubscribe = await this.db.listen(CHANNELS.deliveriesAvailable, () => this.wake());
    this.timer = setInterval(() => this.wake(), POLL_INTERVAL_MS);
    this.timer.unref();
    this.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.unsubscribe?.().catch(() => undefined);
    await this.current;
  }

  private wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.rerun = true;
      return;
    }
    this.running = true;
    this.current = this.drain()
      .catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'callback sender pass failed'))
      .finally(() => {
        this.running = false;
        if (this.rerun) {
          this.rerun = false;
          this.wake();
        }
      });
  }

  private async drain(): Promise<void> {
    while (!this.stopped) {
      const batch = await this.claim();
      if (batch.length === 0) return;
      await Promise.all(batch.map((delivery) => this.attempt(delivery)));
    }
  }

  private async claim(): Promise<DeliveryRow[]> {
    const leaseMs = this.config.timeoutMs + 30_000;
    const result = await sql<DeliveryRow>`
      UPDATE callback_deliveries SET
        lease_owner = ${this.senderId},
        lease_expires_at = now() + ${leaseMs} * interval '1 millisecond'
      WHERE delivery_id IN (
        SELECT delivery_id FROM callback_deliveries
        WHERE state = 'Pending' AND next_attempt_at <= now()
          AND (lease_expires_at IS NULL OR lease_expires_at < now())
        ORDER BY next_attempt_at
        LIMIT ${BATCH_SIZE}
        FOR UPDATE SKIP LOCKED
      )
      RETURNING *`.execute(this.db.kysely);
    return result.rows;
  }

  private async attempt(delivery: DeliveryRow): Promise<void> {
    const result = await deliverOnce({
      url: delivery.url,
      body: delivery.body,
      contentType: delivery.content_type,
      headers: callbackHeaders({ deliveryId: delivery.delivery_id, body: delivery.body, secret: this.secret }),
      timeoutMs: this.config.timeoutMs,
      allowPrivateAddresses: this.config.allowPrivateAddresses,
    });
    await this.record(delivery, result).catch((err: unknown) => {
      // The attempt happened but could not be recorded (database down): the
      // lease runs out and the delivery is attempted again later.
      this.logger.warn({ err: (err as Error).message, deliveryId: delivery.delivery_id }, 'could not record a callback attempt');
    });
  }

  private async record(delivery: DeliveryRow, result: DeliveryAttemptResult): Promise<void> {
    const attempt = delivery.attempts + 1;
    const next = result.ok || result.permanent
      ? null
      : nextAttemptAt({ attempt, firstAttemptAt: new Date(delivery.window_started_at), retryForMs: this.config.retryForMs });
    const state = result.ok ? 'Delivered' : next === null ? 'GivenUp' : 'Pending';
    if (state !== 'Delivered') {
      this.logger.info({ deliveryId: delivery.delivery_id, jobId: delivery.job_id, attempt, error: result.error, state }, 'callback attempt failed');
    }
    await this.db.kysely.transaction().execute(async (tx) => {
      const updated = await tx
        .updateTable('callback_deliveries')
        .set({
          state,
          attempts: attempt,
          next_attempt_at: next ?? new Date(),
          delivered_at: result.ok ? new Date() : null,
          lease_owner: null,
          lease_expires_at: null,
          updated_at: new Date(),
        })
        .where('delivery_id', '=', delivery.delivery_id)
        .where('lease_owner', '=', this.senderId)
        .executeTakeFirst();
      // Our lease ran out and another sender took the delivery over: its record wins.
      if (Number(updated.numUpdatedRows) === 0) return;
      await tx.insertInto('callback_attempts').values({
        delivery_id: delivery.delivery_id,
        attempt,
        http_status: result.status ?? null,
        latency_ms: Math.round(result.latencyMs),
        error: result.error?.slice(0, 1000) ?? null,
      }).execute();
    });
  }
}

/** The generated service-wide callback secret (see sql/0003_callbacks.sql). */
export async function loadCallbackSecret(db: Db): Promise<string> {
  const row = await db.kysely.selectFrom('service_settings').select('value').where('name', '=', 'callback_secret').executeTakeFirst();
  return row?.value ?? '';
}

import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { sql, type Selectable, type Transaction } from 'kysely';
import type { Logger } from 'pino';
import type { CallbackConfig } from '../config.js';
import { CHANNELS } from '../engine/channels.js';
import type { Db } from '../store/database.js';
import type { CallbackDeliveriesTable, Database } from '../store/schema.js';
import { nextAttemptAt } from './backoff.js';
import { deliverOnce, type DeliveryAttemptResult } from './deliver.js';
import { callbackHeaders } from './signature.js';

type DeliveryRow = Selectable<CallbackDeliveriesTable>;

/** Deliveries one sender attempts at once. */
const BATCH_SIZE = 32;
const POLL_INTERVAL_MS = 1000;
/**
 * Deliveries to one receiver (origin) made due at once, or being attempted,
 * when a delivery to it succeeds (`wakeOrigin`): enough to drain a backlog of
 * hundreds in a second or two on a receiver answering in tens of milliseconds,
 * few enough not to flood one that has just come back.
 */
export const ORIGIN_CONCURRENCY = 8;
/** The advisory-lock namespace of `wakeOrigin` ('mcbo' in ASCII), keyed by the origin's hash. */
const ORIGIN_LOCK_NAMESPACE = 1835229807;

/**
 * Delivers the callback outbox. Runs in every worker and API process; several
 * senders share the table safely: each claims due deliveries with SKIP LOCKED
 * and holds a lease (longer than one attempt can take) while it attempts them,
 * so the same attempt is never made twice at once. If a sender dies
 * mid-attempt its lease runs out and another sender makes the attempt again:
 * delivery is at least once, and the stable delivery id lets receivers drop
 * the duplicate.
 *
 * After an outage: a receiver that was down has its deliveries spread over
 * their backoff (full jitter, up to 30 min apart). When one of them succeeds,
 * the receiver is back: the sender makes the others waiting for the same
 * origin due at once, keeping at most ORIGIN_CONCURRENCY of them due or in
 * flight, and each success makes the next due (`wakeOrigin`). 200
 * notifications held by a 60 s outage took 198–234 s to arrive after the
 * receiver returned; now about a second (test/callbacks/outage-recovery.test.ts).
 * A receiver that stays down is not touched: it keeps its backoff, its jitter
 * and its 24 h horizon. Attempts run as a pool of BATCH_SIZE, each slot
 * refilled as its attempt ends, so a receiver that times out does not hold
 * back the deliveries to one that answers.
 */
export class CallbackSender {
  readonly senderId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => Promise<void>) | undefined;
  private running = false;
  private rerun = false;
  private stopped = false;
  private current: Promise<void> = Promise.resolve();
  /** Attempts under way (claimed, not yet recorded). */
  private readonly inFlight = new Set<Promise<void>>();

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
    // An attempt that succeeds may start others (`wakeOrigin`): wait for those too.
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
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

  /** Claims due deliveries into the free attempt slots until none is due or no slot is free; each ended attempt wakes it again. */
  private async drain(): Promise<void> {
    while (!this.stopped && this.inFlight.size < BATCH_SIZE) {
      const batch = await this.claim(BATCH_SIZE - this.inFlight.size);
      for (const delivery of batch) this.launch(delivery);
      if (batch.length === 0) return;
    }
  }

  /** Attempts a delivery this sender has leased, in a slot of its own; its end wakes the sender. */
  private launch(delivery: DeliveryRow): void {
    const attempt: Promise<void> = this.attempt(delivery)
      .catch((err: unknown) => this.logger.warn({ err: (err as Error).message, deliveryId: delivery.delivery_id }, 'callback attempt failed unexpectedly'))
      .finally(() => {
        this.inFlight.delete(attempt);
        this.wake();
      });
    this.inFlight.add(attempt);
  }

  private async claim(limit: number): Promise<DeliveryRow[]> {
    const leaseMs = this.leaseMs();
    const result = await sql<DeliveryRow>`
      UPDATE callback_deliveries SET
        lease_owner = ${this.senderId},
        lease_expires_at = now() + ${leaseMs} * interval '1 millisecond'
      WHERE delivery_id IN (
        SELECT delivery_id FROM callback_deliveries
        WHERE state = 'Pending' AND next_attempt_at <= now()
          AND (lease_expires_at IS NULL OR lease_expires_at < now())
        ORDER BY next_attempt_at
        LIMIT ${limit}
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
    const woken = await this.record(delivery, result).catch((err: unknown) => {
      // The attempt happened but could not be recorded (database down): the
      // lease runs out and the delivery is attempted again later.
      this.logger.warn({ err: (err as Error).message, deliveryId: delivery.delivery_id }, 'could not record a callback attempt');
      return [];
    });
    for (const next of woken) this.launch(next);
  }

  /**
   * The receiver at `url`'s origin has just taken a delivery (in the
   * transaction that records it): leases to this sender, to be attempted at
   * once, the deliveries waiting in backoff for that origin, soonest first, so
   * that at most ORIGIN_CONCURRENCY of them are due or being attempted. Each
   * of those that succeeds does the same, so the backlog drains
   * ORIGIN_CONCURRENCY at a time across every sender: the count is taken under
   * a per-origin transaction lock, in a statement of its own (its own
   * snapshot); without the lock, eight successes ending together each counted
   * the others' woken deliveries as not yet due and woke eight more (28–32
   * requests open at once in the test instead of 8). Deliveries whose own
   * backoff runs out meanwhile come on top, as before. The delivery's attempt
   * count and window are untouched: one that fails goes back to its backoff.
   * Uses callback_deliveries_pending_by_origin (sql/0008).
   */
  private async wakeOrigin(tx: Transaction<Database>, url: string, room: number): Promise<DeliveryRow[]> {
    if (room <= 0) return [];
    // Nearly always nothing waits (a healthy receiver): one index probe, and no lock, decides it. Taking the
    // lock and counting after every success serialized the records of 1,000 deliveries to one receiver
    // (65 s instead of 12 s in task-finish.test.ts).
    const { rows: [{ waiting }] } = await sql<{ waiting: boolean }>`
      SELECT EXISTS (
        SELECT 1 FROM callback_deliveries
        WHERE state = 'Pending' AND callback_origin(url) = callback_origin(${url})
          AND next_attempt_at > now() AND (lease_expires_at IS NULL OR lease_expires_at < now())
      ) AS waiting`.execute(tx);
    if (!waiting) return [];
    await sql`SELECT pg_advisory_xact_lock(${ORIGIN_LOCK_NAMESPACE}, hashtext(callback_origin(${url})))`.execute(tx);
    const { rows } = await sql<DeliveryRow>`
      WITH busy AS (
        SELECT count(*)::int AS n FROM (
          SELECT 1 FROM callback_deliveries
          WHERE state = 'Pending' AND callback_origin(url) = callback_origin(${url})
            AND (next_attempt_at <= now() OR lease_expires_at > now())
          LIMIT ${ORIGIN_CONCURRENCY}::int
        ) due
      )
      UPDATE callback_deliveries SET
        next_attempt_at = now(),
        lease_owner = ${this.senderId},
        lease_expires_at = now() + ${this.leaseMs()} * interval '1 millisecond'
      WHERE delivery_id IN (
        SELECT delivery_id FROM callback_deliveries
        WHERE state = 'Pending' AND callback_origin(url) = callback_origin(${url})
          AND next_attempt_at > now() AND (lease_expires_at IS NULL OR lease_expires_at < now())
        ORDER BY next_attempt_at
        LIMIT least(${room}::int, greatest(0, ${ORIGIN_CONCURRENCY}::int - (SELECT n FROM busy)))
        FOR UPDATE SKIP LOCKED
      )
      RETURNING *`.execute(tx);
    return rows;
  }

  /** Longer than one attempt can take. */
  private leaseMs(): number {
    return this.config.timeoutMs + 30_000;
  }

  /** Records an attempt; after a success, returns the deliveries to the same receiver it woke (`wakeOrigin`). */
  private async record(delivery: DeliveryRow, result: DeliveryAttemptResult): Promise<DeliveryRow[]> {
    const attempt = delivery.attempts + 1;
    const next = result.ok || result.permanent
      ? null
      : nextAttemptAt({ attempt, firstAttemptAt: new Date(delivery.window_started_at), retryForMs: this.config.retryForMs });
    const state = result.ok ? 'Delivered' : next === null ? 'GivenUp' : 'Pending';
    if (state !== 'Delivered') {
      this.logger.info({ deliveryId: delivery.delivery_id, jobId: delivery.job_id, attempt, error: result.error, state }, 'callback attempt failed');
    }
    return this.db.kysely.transaction().execute(async (tx) => {
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
      if (Number(updated.numUpdatedRows) === 0) return [];
      await tx.insertInto('callback_attempts').values({
        delivery_id: delivery.delivery_id,
        attempt,
        http_status: result.status ?? null,
        latency_ms: Math.round(result.latencyMs),
        error: result.error?.slice(0, 1000) ?? null,
      }).execute();
      // This attempt's own slot frees as it returns.
      return result.ok && !this.stopped ? this.wakeOrigin(tx, delivery.url, BATCH_SIZE - this.inFlight.size + 1) : [];
    });
  }
}

/** The generated service-wide callback secret (see sql/0003_callbacks.sql). */
export async function loadCallbackSecret(db: Db): Promise<string> {
  const row = await db.kysely.selectFrom('service_settings').select('value').where('name', '=', 'callback_secret').executeTakeFirst();
  return row?.value ?? '';
}

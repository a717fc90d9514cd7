import { sql, type Kysely } from 'kysely';
import type { Database } from '../store/schema.js';

/**
 * History retention: finished jobs (Success, Failed, Cancel) that ended more
 * than `MEDIAJOBS_RETENTION` ago are deleted with their callback deliveries
 * and attempts. Objects (inputs, outputs) are left alone. Run by every
 * worker's maintenance pass; one worker at a time does the work.
 */

/** `pg_try_advisory_xact_lock` key: one pruner at a time across every process (migrate.ts uses another). */
export const RETENTION_LOCK_KEY = 7_314_200_915;

export interface PruneOptions {
  /** Jobs per batch: each batch is one short transaction. */
  readonly batchSize?: number;
  /** A pass stops starting batches after this long, and leaves the rest to the next pass. */
  readonly budgetMs?: number;
}

export interface PruneResult {
  readonly jobs: number;
  readonly deliveries: number;
  readonly batches: number;
  /** Another worker held the lock: this one did nothing. */
  readonly skipped: boolean;
}

const DEFAULT_BATCH = 1000;
const DEFAULT_BUDGET_MS = 1000;

/**
 * Deletes finished jobs that ended more than `retentionMs` ago, oldest first,
 * in batches of `batchSize` while batches come back full and the pass is
 * within `budgetMs`. `retentionMs` 0 keeps everything.
 *
 * Each batch is its own transaction of two statements: a
 * `pg_try_advisory_xact_lock` (another worker holding it means it is pruning
 * already, and this one returns), then one DELETE whose CTEs pick the batch
 * from `jobs_ended` (sql/0009) and delete its attempts, deliveries and jobs;
 * the foreign keys are checked at the statement's end, when all three are
 * gone. The jobs are locked `SKIP LOCKED`, so a batch never waits for a
 * cancel or a listing's row lock, and none holds a lock for longer than one
 * batch (a few milliseconds per thousand jobs). A job whose delivery is still
 * Pending (being retried, or redelivered by hand) is kept until it is not.
 */
export async function pruneHistory(db: Kysely<Database>, retentionMs: number, options: PruneOptions = {}): Promise<PruneResult> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH;
  const budgetMs = options.budgetMs ?? DEFAULT_BUDGET_MS;
  let jobs = 0;
  let deliveries = 0;
  let batches = 0;
  if (retentionMs <= 0) return { jobs, deliveries, batches, skipped: false };
  const started = Date.now();
  for (;;) {
    const batch = await db.transaction().execute(async (tx) => {
      const { rows: [lock] } = await sql<{ held: boolean }>`SELECT pg_try_advisory_xact_lock(${RETENTION_LOCK_KEY}::bigint) AS held`.execute(tx);
      if (!lock.held) return undefined;
      const { rows: [counts] } = await sql<{ jobs: number; deliveries: number }>`
        WITH doomed AS (
          SELECT j.job_id FROM jobs j
          WHERE j.ended_at IS NOT NULL
            AND j.ended_at < now() - ${retentionMs} * interval '1 millisecond'
            AND j.state IN ('Success', 'Failed', 'Cancel')
            AND NOT EXISTS (SELECT 1 FROM callback_deliveries p WHERE p.job_id = j.job_id AND p.state = 'Pending')
          ORDER BY j.ended_at
          LIMIT ${batchSize}::int
          FOR UPDATE OF j SKIP LOCKED
        ), doomed_deliveries AS (
          SELECT d.delivery_id FROM callback_deliveries d WHERE d.job_id IN (SELECT job_id FROM doomed)
        ), attempts AS (
          DELETE FROM callback_attempts a WHERE a.delivery_id IN (SELECT delivery_id FROM doomed_deliveries)
        ), deleted_deliveries AS (
          DELETE FROM callback_deliveries d WHERE d.delivery_id IN (SELECT delivery_id FROM doomed_deliveries)
          RETURNING 1
        ), deleted_jobs AS (
          DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM doomed)
          RETURNING 1
        )
        SELECT (SELECT count(*) FROM deleted_jobs)::int AS jobs, (SELECT count(*) FROM deleted_deliveries)::int AS deliveries`.execute(tx);
      return counts;
    });
    if (!batch) return { jobs, deliveries, batches, skipped: batches === 0 };
    batches++;
    jobs += batch.jobs;
    deliveries += batch.deliveries;
    if (batch.jobs < batchSize || Date.now() - started >= budgetMs) return { jobs, deliveries, batches, skipped: false };
  }
}

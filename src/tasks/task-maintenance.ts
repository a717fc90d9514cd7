import { sql } from 'kysely';
import type { Logger } from 'pino';
import { expireWaitingJobs, reapExpiredLeases } from '../engine/queue.sql.js';
import type { Db } from '../store/database.js';
import { TASKS_CHANNEL } from '../store/tasks.repository.js';

/**
 * The engine's maintenance for tasks, run by every API process: abandoned
 * tasks (lease run out: no update_progress, no end) go back to pending,
 * counting an attempt, through the same `reapExpiredLeases` our workers run;
 * tasks not started in time end expired (`expireWaitingJobs`). An API-only
 * node (MEDIAJOBS_WORKERS=0) serving external workers needs nobody else.
 * Long polls are woken when tasks came back. Returns the stop function.
 */
export function startTaskMaintenance(db: Db, taskLeaseMs: number, logger: Logger): () => void {
  let running = false;
  const pass = async () => {
    if (running) return;
    running = true;
    try {
      const reaped = await reapExpiredLeases(db.kysely);
      if (reaped.length) {
        logger.warn({ jobIds: reaped.map((j) => j.jobId) }, 'took back jobs and tasks whose worker stopped renewing its lease');
        await sql`SELECT pg_notify(${TASKS_CHANNEL}, '')`.execute(db.kysely);
      }
      await expireWaitingJobs(db.kysely);
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'task maintenance failed');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void pass(), Math.max(200, Math.min(taskLeaseMs / 2, 5000)));
  return () => clearInterval(timer);
}

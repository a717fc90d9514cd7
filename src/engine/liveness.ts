import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Db } from '../store/database.js';

/**
 * The namespace of workers' advisory locks, in PostgreSQL's two-int key
 * space ('mjob' in ASCII): `pg_advisory_lock(WORKER_LOCK_NAMESPACE, key)`.
 * sql/0008_worker_liveness.sql explains the scheme.
 */
export const WORKER_LOCK_NAMESPACE = 1835691874;

/** How often the lock's connection is checked, and so how soon a worker knows it lost its lock. */
const HEARTBEAT_MS = 500;
/**
 * Waits between attempts to take a lock again after its connection was lost:
 * short, and never more than 500 ms, so that a live worker re-adopts its jobs
 * before other workers' reapers decide it is dead (DEAD_WORKER_GRACE_MS in
 * worker.ts), also right after a database restart.
 */
const RELOCK_BACKOFF_MS = [50, 100, 250, 500];

export interface LivenessEvents {
  /** The lock's connection is gone: the server has released the lock, and other workers may take this worker's jobs back. */
  lost(key: number): void;
  /** A new lock is held (a new key: the old one may have been taken by a reaper). Claims may go on once this resolves. */
  relocked(key: number): Promise<void>;
}

/**
 * A worker's proof of life: a session-level advisory lock held on a pooled
 * connection kept for the worker's whole life. When the process dies
 * (kill -9, a lost machine) or the connection does, the server releases the
 * lock at once; other workers' maintenance then takes it (`reapDeadWorkersJobs`)
 * and hands the jobs out again within a second instead of after their lease,
 * as Que does. The lease stays as the fallback for a worker that is alive but
 * hung, whose lock connection answers while its jobs do not move.
 *
 * The lock is checked every HEARTBEAT_MS by a `SELECT 1` on its connection: a
 * worker whose lock connection broke (the backend terminated, a blip) learns
 * of it within that time, stops claiming, takes a lock with a new key and
 * re-adopts the jobs still its own (`readoptJobs`); any job missing by then
 * was taken back and its run here is stopped. A server that vanished without a
 * reset keeps the lock until it notices the dead connection itself; then the
 * lease decides, as before.
 */
export class WorkerLiveness {
  private stopped = false;
  private wakeHeartbeat: (() => void) | undefined;
  private loop: Promise<void> = Promise.resolve();

  constructor(private readonly db: Db, private readonly log: Logger, private readonly events: LivenessEvents) {}

  /** Takes the first lock (retrying while the database is unreachable) and returns its key. */
  start(): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      let first = true;
      this.loop = (async () => {
        for (let failures = 0; !this.stopped;) {
          try {
            await this.hold(async (key) => {
              failures = 0;
              if (first) {
                first = false;
                resolve(key);
              } else {
                await this.events.relocked(key);
              }
            }, (key) => this.events.lost(key));
          } catch (err) {
            if (this.stopped) break;
            this.log.warn({ err: (err as Error).message }, 'worker lock connection lost; taking a new lock');
            await new Promise((r) => setTimeout(r, RELOCK_BACKOFF_MS[Math.min(failures++, RELOCK_BACKOFF_MS.length - 1)]));
          }
        }
        if (first) reject(new Error('worker stopped before it held its lock'));
      })();
    });
  }

  /** Releases the lock (by ending the heartbeat; the connection goes back to the pool unlocked). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeHeartbeat?.();
    await this.loop;
  }

  /**
   * One connection's life: a fresh key from the sequence, its lock, then a
   * heartbeat until stopped or until the connection fails. Throws when the
   * connection is lost (after calling `lost` if a lock had been held).
   */
  private async hold(held: (key: number) => Promise<void>, lost: (key: number) => void): Promise<void> {
    let key: number | undefined;
    try {
      await this.db.kysely.connection().execute(async (conn) => {
        // A cycled sequence could hand out a key still held by a (very) long-lived worker: try the next.
        while (key === undefined) {
          const { rows } = await sql<{ key: number; locked: boolean }>`
            SELECT k AS key, pg_try_advisory_lock(${WORKER_LOCK_NAMESPACE}, k) AS locked
            FROM (SELECT nextval('worker_lock_keys')::int AS k) next`.execute(conn);
          if (rows[0].locked) key = rows[0].key;
        }
        await held(key);
        while (!this.stopped) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, HEARTBEAT_MS);
            this.wakeHeartbeat = () => { clearTimeout(timer); resolve(); };
          });
          if (this.stopped) break;
          await sql`SELECT 1`.execute(conn);
        }
        await sql`SELECT pg_advisory_unlock(${WORKER_LOCK_NAMESPACE}, ${key}::int)`.execute(conn).catch(() => undefined);
      });
    } catch (err) {
      if (key !== undefined && !this.stopped) lost(key);
      throw err;
    }
  }
}

import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Db } from '../store/database.js';
import { touchWorker } from '../store/workers.repository.js';

/** An external worker is written at most this often: a task-API call costs no extra statement most of the time. */
const EXTERNAL_TOUCH_MS = 1000;

/**
 * External workers as the task API sees them: each call that names a
 * worker_id records it as seen (at most once a second per worker, in the
 * background: a failed write costs the call nothing).
 */
export class ExternalWorkers {
  private readonly lastWrite = new Map<string, number>();

  constructor(private readonly db: Db, private readonly logger: Logger) {}

  /** `host`: the address the call came from (an external worker's only trace of where it runs). */
  seen(appId: string, workerId: string, taskTypes: readonly string[] | undefined, host: string): void {
    const key = `${appId}/${workerId}`;
    const now = Date.now();
    if (now - (this.lastWrite.get(key) ?? 0) < EXTERNAL_TOUCH_MS) return;
    if (this.lastWrite.size > 10_000) this.lastWrite.clear();
    this.lastWrite.set(key, now);
    touchWorker(this.db.kysely, { workerKey: key, workerId, kind: 'external', appId, taskTypes, host })
      .catch((err: Error) => this.logger.warn({ err: err.message, workerId }, 'could not record an external worker'));
  }
}

/**
 * Registers one of our workers and heartbeats it every `everyMs` until
 * stopped. Returns the stop function.
 */
export function heartbeatInternalWorker(db: Db, worker: { workerId: string }, tags: readonly string[], concurrency: number, everyMs: number, logger: Logger): () => void {
  const beat = () => touchWorker(db.kysely, {
    workerKey: worker.workerId,
    workerId: worker.workerId,
    kind: 'internal',
    host: hostname(),
    pid: process.pid,
    taskTypes: tags,
    concurrency,
  }).catch((err: Error) => logger.warn({ err: err.message }, 'worker heartbeat failed'));
  void beat();
  const timer = setInterval(beat, everyMs);
  return () => clearInterval(timer);
}

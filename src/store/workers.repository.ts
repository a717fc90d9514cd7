import { sql } from 'kysely';
import type { Executor } from './jobs.repository.js';

/** A worker to record as seen now. */
export interface SeenWorker {
  /** Ours: their workerId; external: `<app_id>/<worker_id>`. */
  readonly workerKey: string;
  readonly workerId: string;
  readonly kind: 'internal' | 'external';
  readonly appId?: string;
  readonly host?: string;
  readonly pid?: number;
  readonly taskTypes?: readonly string[];
  readonly concurrency?: number;
}

/** Records a worker as seen now, registering it on first sight. */
export async function touchWorker(db: Executor, worker: SeenWorker): Promise<void> {
  await db.insertInto('workers').values({
    worker_key: worker.workerKey,
    worker_id: worker.workerId,
    kind: worker.kind,
    app_id: worker.appId ?? null,
    host: worker.host ?? null,
    pid: worker.pid ?? null,
    task_types: [...(worker.taskTypes ?? [])],
    concurrency: worker.concurrency ?? null,
  }).onConflict((oc) => oc.column('worker_key').doUpdateSet({
    last_seen_at: sql<Date>`now()` as unknown as Date,
    host: sql<string | null>`excluded.host`,
    ...(worker.taskTypes !== undefined ? { task_types: sql<string[]>`excluded.task_types` } : {}),
    ...(worker.kind === 'internal' ? { concurrency: sql<number>`excluded.concurrency` } : {}),
  })).execute();
}

/** A worker as GET /admin/workers shows it. */
export interface WorkerView {
  readonly worker_id: string;
  readonly kind: 'internal' | 'external';
  readonly app_id: string | null;
  readonly host: string | null;
  readonly pid: number | null;
  readonly task_types: string[];
  readonly concurrency: number | null;
  readonly started_at: string;
  readonly last_seen_at: string;
  /** Not seen for `goneAfterMs` (three leases): shown, but as gone. */
  readonly state: 'active' | 'gone';
  /** The task ids (seq) and JobIds of the rows it holds now. */
  readonly running: Array<{ task_id: number; job_id: string; task_type: string }>;
}

/**
 * Every worker, most recently seen first, with what each runs now: the rows
 * whose lease it holds (ours by workerId, external ones by `task:<worker_id>`
 * within their app).
 */
export async function listWorkers(db: Executor, goneAfterMs: { internal: number; external: number }): Promise<WorkerView[]> {
  const { rows } = await sql<{
    worker_id: string; kind: 'internal' | 'external'; app_id: string | null; host: string | null; pid: number | null;
    task_types: string[]; concurrency: number | null; started_at: Date; last_seen_at: Date; gone: boolean;
    running: Array<{ task_id: number; job_id: string; task_type: string }> | null;
  }>`
    SELECT w.worker_id, w.kind, w.app_id, w.host, w.pid, w.task_types, w.concurrency, w.started_at, w.last_seen_at,
           w.last_seen_at < now() - (CASE WHEN w.kind = 'internal' THEN ${goneAfterMs.internal}::float8 ELSE ${goneAfterMs.external}::float8 END) * interval '1 millisecond' AS gone,
           (SELECT json_agg(json_build_object('task_id', j.seq, 'job_id', j.job_id, 'task_type', j.tag) ORDER BY j.seq)
              FROM jobs j
              LEFT JOIN apps a ON a.app_id = w.app_id
             WHERE j.state = 'Running'
               AND ((w.kind = 'internal' AND j.lease_owner = w.worker_id)
                 OR (w.kind = 'external' AND j.lease_owner = 'task:' || w.worker_id AND j.appid = a.appid))) AS running
    FROM workers w
    ORDER BY w.last_seen_at DESC
    LIMIT 1000`.execute(db);
  return rows.map((r) => ({
    worker_id: r.worker_id,
    kind: r.kind,
    app_id: r.app_id,
    host: r.host,
    pid: r.pid,
    task_types: r.task_types,
    concurrency: r.concurrency,
    started_at: new Date(r.started_at).toISOString(),
    last_seen_at: new Date(r.last_seen_at).toISOString(),
    state: r.gone ? 'gone' : 'active',
    running: (r.running ?? []).map((t) => ({ ...t, task_id: Number(t.task_id) })),
  }));
}

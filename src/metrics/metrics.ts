import { readdir } from 'node:fs/promises';
import type { Middleware } from 'koa';
import { sql } from 'kysely';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { constantTimeEqual } from '../auth/credentials.js';
import { parseChange, type Change } from '../console/changes.js';
import { CHANNELS } from '../engine/channels.js';
import type { RequestState } from '../http/context.js';
import type { AppDeps } from '../http/handler.js';
import { MIGRATIONS_DIR } from '../store/migrate.js';

/*
 * GET /metrics (Prometheus text, prom-client), GET /healthz and GET /readyz.
 *
 * Two sources:
 * - Counters and histograms of jobs and callbacks come from the changes feed
 *   (sql/0012, one LISTEN per process): every job of the cluster is counted,
 *   whichever process created, claimed or ended it (a worker-only process
 *   serves no /metrics). Each API process counts the same events, so sum
 *   them over one instance, or use max() across instances.
 * - Gauges (queue depth, running, oldest waiting job, workers, pending
 *   callbacks) are read at scrape time by one statement, each part on an
 *   index (jobs_waiting, the queues' running count, callback_deliveries_due),
 *   cached for a second so that several scrapers cost one read.
 * HTTP counters and the latency histogram are this process's own.
 */

/** Buckets in seconds for job run times: from a 5 ms probe to a two-hour transcode. */
const RUN_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 7200];
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const FINAL = new Set(['Success', 'Failed', 'Cancel']);
const GAUGE_CACHE_MS = 1000;

export interface Metrics {
  /** Counts every request (first in the chain, so it sees the final status). */
  readonly http: Middleware<RequestState>;
  /** Answers /metrics, /healthz and /readyz. */
  readonly endpoints: Middleware<RequestState>;
  /** Starts listening to the changes feed. */
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly registry: Registry;
}

/** Distinct Tag (task type) labels the job counters keep; later ones are counted as "other". */
export const MAX_TAG_LABELS = 200;

/** Operation names with ids in them (the admin API's) reduced to their shape, so labels stay few. */
export function operationLabel(operation: string | undefined): string {
  if (!operation) return 'unrouted';
  return operation.replace(/\/[0-9a-f]{16,}(?=\/|$)/g, '/:id').slice(0, 80);
}

export function createMetrics(deps: AppDeps): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const db = deps.db.kysely;

  const jobsCreated = new Counter({ name: 'mediajobs_jobs_created_total', help: 'Jobs and tasks created, by APPID and Tag (task type).', labelNames: ['app', 'tag'], registers: [registry] });
  const jobsEnded = new Counter({ name: 'mediajobs_jobs_ended_total', help: 'Jobs and tasks that reached a final state, by APPID, Tag and state (Success, Failed, Cancel).', labelNames: ['app', 'tag', 'state'], registers: [registry] });
  const runTime = new Histogram({ name: 'mediajobs_job_run_seconds', help: 'Run time of ended jobs (ended - started of the last attempt), by Tag.', labelNames: ['tag'], buckets: RUN_BUCKETS, registers: [registry] });
  const claimLatency = new Histogram({ name: 'mediajobs_claim_latency_seconds', help: 'Time from a job becoming runnable (created, resumed, or its retry due) to a worker claiming it.', labelNames: ['tag'], buckets: LATENCY_BUCKETS, registers: [registry] });
  const callbackAttempts = new Counter({ name: 'mediajobs_callback_attempts_total', help: 'Callback delivery attempts by outcome (delivered, failed: retried later, given_up: failed for the last time).', labelNames: ['outcome'], registers: [registry] });
  const httpRequests = new Counter({ name: 'mediajobs_http_requests_total', help: 'HTTP requests by operation and status.', labelNames: ['operation', 'status'], registers: [registry] });
  const httpLatency = new Histogram({ name: 'mediajobs_http_request_duration_seconds', help: 'HTTP request latency by operation.', labelNames: ['operation'], buckets: LATENCY_BUCKETS, registers: [registry] });
  const feedEvents = new Counter({ name: 'mediajobs_changes_feed_events_total', help: 'Notifications read from the changes feed by this process.', registers: [registry] });

  let gauges: Promise<void> | undefined;
  let gaugesAt = 0;
  const queueWaiting = new Gauge({ name: 'mediajobs_queue_waiting_jobs', help: 'Jobs waiting (Submitted) per queue.', labelNames: ['queue_id', 'queue', 'bucket'], registers: [registry] });
  const queuePaused = new Gauge({ name: 'mediajobs_queue_paused_jobs', help: 'Jobs held in a paused queue (Pause) per queue.', labelNames: ['queue_id', 'queue', 'bucket'], registers: [registry] });
  const queueRunning = new Gauge({ name: 'mediajobs_queue_running_jobs', help: 'Jobs running per queue.', labelNames: ['queue_id', 'queue', 'bucket'], registers: [registry] });
  const queueOldest = new Gauge({ name: 'mediajobs_queue_oldest_waiting_seconds', help: 'Age of the oldest waiting (Submitted) job per queue; 0 when none waits.', labelNames: ['queue_id', 'queue', 'bucket'], registers: [registry] });
  const workers = new Gauge({ name: 'mediajobs_workers', help: 'Workers seen within three leases, by kind (internal: ours; external: task-API workers).', labelNames: ['kind'], registers: [registry] });
  const callbacksPending = new Gauge({ name: 'mediajobs_callbacks_pending', help: 'Callback deliveries not yet delivered nor given up.', registers: [registry] });

  const readGauges = async () => {
    const { rows } = await sql<{ queue_id: string; name: string; bucket: string; running: number; waiting: string; paused: string; oldest_s: number | null }>`
      SELECT q.queue_id, q.name, q.bucket, q.running,
             (SELECT count(*) FROM jobs j WHERE j.queue_id = q.queue_id AND j.state = 'Submitted') AS waiting,
             (SELECT count(*) FROM jobs j WHERE j.queue_id = q.queue_id AND j.state = 'Pause') AS paused,
             extract(epoch FROM now() - (SELECT j.created_at FROM jobs j WHERE j.queue_id = q.queue_id AND j.state = 'Submitted' ORDER BY j.seq LIMIT 1))::float8 AS oldest_s
      FROM queues q ORDER BY q.created_at LIMIT 1000`.execute(db);
    const { leaseMs, tasks } = deps.config;
    const { rows: [other] } = await sql<{ internal: number; external: number; pending: number }>`
      SELECT (SELECT count(*)::int FROM workers WHERE kind = 'internal' AND last_seen_at > now() - ${3 * leaseMs}::float8 * interval '1 millisecond') AS internal,
             (SELECT count(*)::int FROM workers WHERE kind = 'external' AND last_seen_at > now() - ${3 * tasks.leaseMs}::float8 * interval '1 millisecond') AS external,
             (SELECT count(*)::int FROM callback_deliveries WHERE state = 'Pending') AS pending`.execute(db);
    for (const g of [queueWaiting, queuePaused, queueRunning, queueOldest]) g.reset();
    for (const r of rows) {
      const labels = { queue_id: r.queue_id, queue: r.name, bucket: r.bucket };
      queueWaiting.set(labels, Number(r.waiting));
      queuePaused.set(labels, Number(r.paused));
      queueRunning.set(labels, Number(r.running));
      queueOldest.set(labels, Math.max(0, r.oldest_s ?? 0));
    }
    workers.set({ kind: 'internal' }, other.internal);
    workers.set({ kind: 'external' }, other.external);
    callbacksPending.set(other.pending);
  };
  const freshGauges = () => {
    if (!gauges || Date.now() - gaugesAt > GAUGE_CACHE_MS) {
      gaugesAt = Date.now();
      gauges = readGauges().catch((err: unknown) => {
        gaugesAt = 0;
        throw err;
      });
    }
    return gauges;
  };

  // Task types are any app's own words: past MAX_TAG_LABELS distinct ones, the rest count as "other" (each is a series kept for good).
  const tagLabels = new Set<string>();
  const tagLabel = (tag: string) => {
    if (tagLabels.has(tag)) return tag;
    if (tagLabels.size >= MAX_TAG_LABELS) return 'other';
    tagLabels.add(tag);
    return tag;
  };

  const count = (change: Change) => {
    feedEvents.inc();
    if (change.kind === 'job') {
      const app = change.appid ?? '';
      const tag = tagLabel(change.tag);
      if (change.created) jobsCreated.inc({ app, tag });
      if (change.waitMs !== null) claimLatency.observe({ tag }, change.waitMs / 1000);
      if (FINAL.has(change.state)) {
        jobsEnded.inc({ app, tag, state: change.state });
        if (change.runMs !== null) runTime.observe({ tag }, change.runMs / 1000);
      }
    } else if (change.kind === 'delivery' && change.attempts > change.attemptsBefore) {
      callbackAttempts.inc({ outcome: change.state === 'Delivered' ? 'delivered' : change.state === 'GivenUp' ? 'given_up' : 'failed' });
    }
  };

  let migrationFiles: Promise<string[]> | undefined;
  let unsubscribe: (() => Promise<void>) | undefined;
  const token = deps.config.metricsToken;

  return {
    registry,
    async start() {
      unsubscribe = await deps.db.listen(CHANNELS.changes, (payload) => {
        const change = parseChange(payload);
        if (change) count(change);
      });
    },
    async stop() {
      await unsubscribe?.();
    },
    http: async (ctx, next) => {
      const started = performance.now();
      try {
        await next();
      } finally {
        const operation = operationLabel(ctx.state.operation);
        // An SSE stream's "latency" is how long the browser stayed: counted, not timed.
        if (ctx.state.operation !== 'console:events') httpLatency.observe({ operation }, (performance.now() - started) / 1000);
        httpRequests.inc({ operation, status: String(ctx.status) });
      }
    },
    endpoints: async (ctx, next) => {
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
      if (ctx.path === '/healthz') {
        ctx.state.operation = 'Healthz';
        ctx.body = { status: 'ok' };
        return;
      }
      if (ctx.path === '/readyz') {
        ctx.state.operation = 'Readyz';
        try {
          migrationFiles ??= readdir(MIGRATIONS_DIR).then((files) => files.filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f)));
          const applied = new Set((await db.selectFrom('schema_migrations').select('name').execute()).map((r) => r.name));
          const missing = (await migrationFiles).filter((f) => !applied.has(f));
          ctx.status = missing.length ? 503 : 200;
          ctx.body = missing.length ? { status: 'migrations pending', missing } : { status: 'ready' };
        } catch (err) {
          ctx.status = 503;
          ctx.body = { status: 'database unreachable', error: (err as Error).message };
        }
        return;
      }
      if (ctx.path !== '/metrics') return next();
      ctx.state.operation = 'Metrics';
      if (token) {
        const given = /^Bearer\s+(\S+)$/i.exec(ctx.get('authorization'))?.[1];
        if (!given || !constantTimeEqual(given, token)) {
          ctx.status = 401;
          ctx.set('WWW-Authenticate', 'Bearer realm="metrics"');
          ctx.body = 'send Authorization: Bearer <MEDIAJOBS_METRICS_TOKEN>\n';
          return;
        }
      }
      try {
        await freshGauges();
      } catch (err) {
        // The counters are still worth a scrape; the gauges keep their last values.
        ctx.state.log.warn({ err: (err as Error).message }, 'metrics: could not read the queue gauges');
      }
      ctx.type = registry.contentType;
      ctx.body = await registry.metrics();
    },
  };
}

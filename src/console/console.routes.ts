import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Middleware } from 'koa';
import { sql } from 'kysely';
import { constantTimeEqual } from '../auth/credentials.js';
import { findDeliveriesOfJob, redeliver } from '../callbacks/deliveries.repository.js';
import { cancelJobs } from '../engine/cancel.js';
import { CHANNELS } from '../engine/channels.js';
import { isRetryableDbError } from '../engine/db-retry.js';
import { isJobState } from '../engine/job-state.js';
import { updateMediaQueue } from '../engine/queues.js';
import { retryFailedJob } from '../engine/retry-job.js';
import { CiError } from '../errors.js';
import { appJson, changeApp } from '../http/admin.handlers.js';
import { readBody } from '../http/body.js';
import type { AppContext, RequestState } from '../http/context.js';
import type { AppDeps } from '../http/handler.js';
import { JOB_ID_PATTERN, QUEUE_ID_PATTERN } from '../ids.js';
import { ObjectNotFoundError } from '../storage/storage.js';
import { findApp, findEnabledAppBySecretId, insertApp, listApps, loadAdminToken, type App } from '../store/apps.repository.js';
import { jobRowToJob } from '../store/jobs.repository.js';
import { findQueue } from '../store/queues.repository.js';
import { listWorkers } from '../store/workers.repository.js';
import { taskView } from '../tasks/task-view.js';
import { buildDescribeMediaJobResponse } from '../xml/responses.js';
import { formatCiTime } from '../xml/time.js';
import type { XmlObject, XmlValue } from '../xml/tree.js';
import { jobAttempts, jobSummaries, listConsoleJobs, listDeliveries, overview, queueSummaries, toSummary, type Scope } from './console.queries.js';
import { ConsoleFeed } from './feed.js';
import { SESSION_COOKIE, SESSION_TTL_MS, decodeSession, encodeSession, newSession, sessionKey, type Session } from './session.js';

/*
 * The console (issue 19): `/console/` serves the page and its assets (ours
 * from src/console/static, Preact, htm and uPlot from node_modules: nothing
 * from a CDN), `/console/api/…` the JSON it renders from, and
 * `/console/api/events` the live feed. Reads use the repositories the APIs
 * use where one fits (findDeliveriesOfJob, listWorkers, listApps, the
 * JobsDetail builder); actions call the same engine functions as the APIs:
 * cancelJobs (CancelMediaJob, cancel_task), retryFailedJob (the engine's
 * one retry of a Failed job, which only the console offers), updateMediaQueue
 * (UpdateMediaQueue), redeliver + NOTIFY (POST /callbacks/<id>), and the
 * apps repository (the admin API).
 *
 * Access: POST /console/api/login with the admin token, or an app's
 * SecretId and SecretKey (that app's rows only), sets a signed, HttpOnly,
 * SameSite=Strict cookie (src/console/session.ts). Every other API path
 * needs it; every action (POST) also needs the session's CSRF token in
 * X-CSRF-Token and, when the browser sends one, an Origin of this host.
 */

const here = fileURLToPath(import.meta.url);
/** src/console/static from both src/console and dist/src/console (tsc copies no assets; see src/store/migrate.ts). */
export const STATIC_DIR = path.resolve(path.dirname(here), here.includes(`${path.sep}dist${path.sep}`) ? '../../../src/console' : '.', 'static');
const require = createRequire(import.meta.url);
/** An npm package's folder, from its entry point (htm exports no package.json to resolve). */
function packageDir(name: string): string {
  let dir = path.dirname(require.resolve(name));
  while (path.basename(dir) !== name && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

/** The npm files the page imports, by the name it imports them under. Bare `preact` imports are pointed at our URL when served. */
const VENDOR: Record<string, () => string> = {
  'preact.mjs': () => path.join(packageDir('preact'), 'dist/preact.mjs'),
  'hooks.mjs': () => path.join(packageDir('preact'), 'hooks/dist/hooks.mjs'),
  'htm.mjs': () => path.join(packageDir('htm'), 'dist/htm.mjs'),
  'uplot.mjs': () => path.join(packageDir('uplot'), 'dist/uPlot.esm.js'),
  'uplot.css': () => path.join(packageDir('uplot'), 'dist/uPlot.min.css'),
};
const STATIC_FILES = new Set(['index.html', 'app.js', 'i18n.js', 'style.css']);
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const CONSOLE_RESOURCES = new Set(['', 'login', 'logout', 'session', 'overview', 'events', 'jobs', 'queues', 'workers', 'apps', 'callbacks', 'objects']);
const CONSOLE_VERBS = new Set(['cancel', 'retry', 'rotate', 'disable', 'redeliver']);

class ConsoleError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

interface Who {
  readonly session: Session;
  /** The app of an app session. */
  readonly app: App | undefined;
  readonly scope: Scope;
}

export interface ConsoleUi {
  readonly middleware: Middleware<RequestState>;
  stop(): Promise<void>;
}

export function createConsole(deps: AppDeps): ConsoleUi {
  const db = deps.db.kysely;
  const feed = new ConsoleFeed(deps.db, deps.logger);
  let key: Promise<Buffer> | undefined;
  let token: Promise<string> | undefined;
  const adminToken = () => {
    token ??= loadAdminToken(db, deps.config.apps.adminToken).catch((err: unknown) => {
      token = undefined;
      throw err;
    });
    return token;
  };
  const signingKey = () => (key ??= adminToken().then(sessionKey).catch((err: unknown) => {
    key = undefined;
    throw err;
  }));
  const assets = new Map<string, { body: Buffer; etag: string; type: string }>();
  const workerGoneMs = () => ({ internal: 3 * deps.config.leaseMs, external: 3 * deps.config.tasks.leaseMs });

  const asset = async (file: string, vendor: boolean) => {
    const cacheKey = `${vendor ? 'v' : 's'}:${file}`;
    let found = assets.get(cacheKey);
    if (!found) {
      let body = await readFile(vendor ? VENDOR[file]() : path.join(STATIC_DIR, file));
      if (file === 'hooks.mjs') body = Buffer.from(body.toString('utf8').replace(/from\s*"preact"/g, 'from"./preact.mjs"'));
      found = { body, etag: `"${createHash('sha1').update(body).digest('base64url')}"`, type: TYPES[path.extname(file)] ?? 'application/octet-stream' };
      assets.set(cacheKey, found);
    }
    return found;
  };

  const who = async (ctx: AppContext): Promise<Who> => {
    const session = decodeSession(await signingKey(), ctx.cookies.get(SESSION_COOKIE));
    if (!session) throw new ConsoleError(401, 'Unauthorized', 'log in first');
    if (session.kind === 'admin') return { session, app: undefined, scope: { appid: undefined } };
    const app = await findApp(db, session.appId!);
    if (!app || app.disabledAt || app.secretId !== session.secretId) throw new ConsoleError(401, 'Unauthorized', 'the app was disabled or its keys rotated: log in again');
    return { session, app, scope: { appid: app.appid } };
  };

  /** Actions: the session's CSRF token, and a same-origin Origin when the browser sends one. */
  const checkAction = (ctx: AppContext, w: Who) => {
    if (!sameOrigin(ctx)) throw new ConsoleError(403, 'Forbidden', 'cross-origin request refused');
    const given = ctx.get('x-csrf-token');
    if (!given || !constantTimeEqual(given, w.session.csrf)) throw new ConsoleError(403, 'Forbidden', 'missing or wrong X-CSRF-Token');
  };

  const requireAdmin = (w: Who) => {
    if (w.session.kind !== 'admin') throw new ConsoleError(403, 'Forbidden', 'only the admin may do this');
  };

  const jobInScope = async (w: Who, jobId: string) => {
    if (!JOB_ID_PATTERN.test(jobId)) throw new ConsoleError(404, 'NotFound', `no job ${jobId}`);
    const row = await db.selectFrom('jobs').selectAll().where('job_id', '=', jobId).executeTakeFirst();
    if (!row || (w.scope.appid !== undefined && row.appid !== w.scope.appid)) throw new ConsoleError(404, 'NotFound', `no job ${jobId}`);
    return row;
  };

  const api = async (ctx: AppContext, parts: string[]): Promise<unknown> => {
    const [resource, id, verb] = parts;
    const method = ctx.method;
    // A label of /metrics: known resources and verbs only, or any client could mint series without end.
    ctx.state.operation = `console:${CONSOLE_RESOURCES.has(resource ?? '') ? resource ?? '' : '?'}${verb ? `:${CONSOLE_VERBS.has(verb) ? verb : '?'}` : ''}`;
    if (resource === 'login' && method === 'POST') return login(ctx);
    if (resource === 'logout' && method === 'POST') {
      // Another site's form must not end the session either.
      if (!sameOrigin(ctx)) throw new ConsoleError(403, 'Forbidden', 'cross-origin request refused');
      ctx.cookies.set(SESSION_COOKIE, '', { httpOnly: true, sameSite: 'strict', path: '/console', expires: new Date(0) });
      return { ok: true };
    }
    const w = await who(ctx);
    if (method === 'POST') checkAction(ctx, w);
    else if (method !== 'GET') throw new ConsoleError(405, 'MethodNotAllowed', `${method} is not used here`);
    switch (resource) {
      case 'session':
        return { kind: w.session.kind, csrf: w.session.csrf, expires: new Date(w.session.expires).toISOString(), ...(w.app ? { app: { app_id: w.app.appId, name: w.app.name, appid: w.app.appid, bucket: w.app.bucket } } : {}) };
      case 'overview':
        return overview(db, w.scope, workerGoneMs());
      case 'events':
        ctx.state.operation = 'console:events';
        await events(ctx, w);
        return undefined;
      case 'jobs':
        if (id === undefined) return listJobs(ctx, w);
        if (verb === undefined) return jobDetail(w, id);
        if (verb === 'cancel' && method === 'POST') return cancel(w, id);
        if (verb === 'retry' && method === 'POST') return retry(w, id);
        break;
      case 'queues':
        if (id === undefined) return { queues: await queueSummaries(db, w.scope) };
        if (method === 'POST') return updateQueue(ctx, w, id);
        break;
      case 'workers': {
        const all = await listWorkers(db, workerGoneMs());
        // What each runs, with its progress (one read by job_id for all of them); an app sees its own jobs on our workers.
        const running = new Map((await jobSummaries(db, all.flatMap((x) => x.running.map((r) => r.job_id)))).map((j) => [j.job_id, j]));
        const workers = all
          .filter((x) => !w.app || x.kind === 'internal' || x.app_id === w.app.appId)
          .map((x) => ({
            ...x,
            running: x.running
              .filter((r) => !w.app || running.get(r.job_id)?.appid === w.app.appid)
              .map((r) => ({ ...r, progress: running.get(r.job_id)?.progress ?? 0 })),
          }));
        return { workers };
      }
      case 'apps':
        requireAdmin(w);
        if (id === undefined && method === 'GET') return { apps: (await listApps(db)).map((a) => appJson(a, false)) };
        if (id === undefined && method === 'POST') {
          const body = await readJson(ctx);
          const name = typeof body.name === 'string' ? body.name.trim() : '';
          if (!/^[^\u0000-\u001f]{1,64}$/.test(name)) throw new ConsoleError(400, 'BadRequest', 'name is required: 1 to 64 printable characters');
          ctx.status = 201;
          return appJson(await insertApp(db, name), true);
        }
        if (id !== undefined && method === 'POST' && (verb === 'rotate' || verb === 'disable')) {
          if (!/^[0-9a-f]{16}$/.test(id)) throw new ConsoleError(404, 'NotFound', `no app ${id}`);
          const app = await changeApp(deps.db, id, verb);
          if (!app) throw new ConsoleError(404, 'NotFound', `no app ${id}`);
          return appJson(app, verb === 'rotate');
        }
        break;
      case 'callbacks': {
        if (id === undefined) {
          const state = String(ctx.query.state ?? 'Pending');
          if (state !== 'Pending' && state !== 'Delivered' && state !== 'GivenUp') throw new ConsoleError(400, 'BadRequest', 'state is Pending, Delivered or GivenUp');
          return { deliveries: await listDeliveries(db, w.scope, state, 100) };
        }
        if (verb === 'redeliver' && method === 'POST') return redeliverOne(w, id);
        break;
      }
      case 'objects':
        await download(ctx, w);
        return undefined;
    }
    throw new ConsoleError(404, 'NotFound', 'no such console resource');
  };

  const login = async (ctx: AppContext) => {
    if (!sameOrigin(ctx)) throw new ConsoleError(403, 'Forbidden', 'cross-origin request refused');
    const body = await readJson(ctx);
    let session: Session | undefined;
    if (typeof body.token === 'string' && body.token) {
      if (constantTimeEqual(body.token, await adminToken())) session = newSession('admin');
    } else if (typeof body.secretId === 'string' && typeof body.secretKey === 'string') {
      const app = await findEnabledAppBySecretId(db, body.secretId);
      if (app && constantTimeEqual(body.secretKey, app.secretKey)) session = newSession('app', { appId: app.appId, secretId: app.secretId });
    }
    if (!session) throw new ConsoleError(401, 'Unauthorized', 'wrong admin token, or wrong SecretId/SecretKey');
    ctx.cookies.set(SESSION_COOKIE, encodeSession(await signingKey(), session), { httpOnly: true, sameSite: 'strict', path: '/console', maxAge: SESSION_TTL_MS, overwrite: true });
    return { kind: session.kind, csrf: session.csrf };
  };

  const listJobs = async (ctx: AppContext, w: Who) => {
    const q = (name: string) => {
      const v = ctx.query[name];
      return typeof v === 'string' && v !== '' ? v : undefined;
    };
    const states = q('state')?.split(',').filter(Boolean);
    if (states?.some((s) => !isJobState(s))) throw new ConsoleError(400, 'BadRequest', 'state is one or more of Submitted, Running, Success, Failed, Pause, Cancel');
    const queueId = q('queue');
    if (queueId !== undefined && !QUEUE_ID_PATTERN.test(queueId)) throw new ConsoleError(400, 'BadRequest', 'queue is a queue id');
    const before = q('before');
    if (before !== undefined && !/^[1-9]\d{0,17}$/.test(before)) throw new ConsoleError(400, 'BadRequest', 'before is a cursor this API returned');
    const app = q('app');
    if (app !== undefined && !/^\d{1,12}$/.test(app)) throw new ConsoleError(400, 'BadRequest', 'app is an APPID');
    const kind = q('kind');
    if (kind !== undefined && kind !== 'job' && kind !== 'task') throw new ConsoleError(400, 'BadRequest', 'kind is job or task');
    const time = (name: string) => {
      const v = q(name);
      if (v === undefined) return undefined;
      const d = new Date(v);
      if (Number.isNaN(d.getTime())) throw new ConsoleError(400, 'BadRequest', `${name} is a date and time`);
      return d;
    };
    const size = Math.min(200, Math.max(1, Number(q('size') ?? 50) || 50));
    const started = performance.now();
    const page = await listConsoleJobs(db, w.scope, { appid: app, queueId, tag: q('tag'), states, kind, inputObject: q('input'), from: time('from'), to: time('to'), before, size });
    return { ...page, query_ms: Math.round((performance.now() - started) * 10) / 10 };
  };

  const jobDetail = async (w: Who, jobId: string) => {
    const started = performance.now();
    const row = await jobInScope(w, jobId);
    const job = jobRowToJob(row);
    const deliveries = await findDeliveriesOfJob(db, jobId);
    const attempts = await jobAttempts(db, jobId);
    const outputs = await outputsOf(row.bucket, job.operation, job.result, row.appid);
    const timeline: Array<{ at: string; ci: string; what: string; detail?: string }> = [];
    const point = (at: Date | null, what: string, detail?: string) => {
      if (at) timeline.push({ at: at.toISOString(), ci: formatCiTime(at), what, ...(detail ? { detail } : {}) });
    };
    point(job.createdAt, 'created', `${row.external ? 'task' : 'job'} in queue ${job.queueId}`);
    // Each attempt (sql/0014) with its worker and how it ended; a job that ran before 0014 has none: its last start stands in.
    for (const a of attempts) {
      point(new Date(a.started_at), 'started', `attempt ${a.attempt} of ${job.maxAttempts}${a.worker ? ` on ${a.worker}` : ''}`);
      if (a.ended_at) point(new Date(a.ended_at), a.state, [a.code, a.message].filter(Boolean).join(': '));
    }
    if (attempts.length === 0) point(job.startedAt, 'started', `attempt ${job.attempts} of ${job.maxAttempts}${row.lease_owner ? ` on ${row.lease_owner}` : ''}`);
    if (job.state === 'Running') timeline.push({ at: new Date().toISOString(), ci: formatCiTime(new Date()), what: 'progress', detail: `${job.progress}%` });
    // The job's end, unless its last attempt's end (the same statement, the same now()) already says it: a waiting job cancelled or expired.
    if (job.endedAt && !attempts.some((a) => a.ended_at === job.endedAt!.toISOString() && a.state === job.state)) {
      point(job.endedAt, job.state, [job.code, job.message].filter(Boolean).join(': '));
    }
    for (const d of deliveries) {
      for (const a of d.attempts) point(new Date(a.attempted_at), 'callback', `${d.delivery.url} → ${a.http_status ?? a.error ?? ''} (${a.latency_ms} ms)`);
    }
    timeline.sort((a, b) => a.at.localeCompare(b.at));
    return {
      job: toSummary(row),
      ...(row.external ? { task: taskView(row) } : { xml: buildDescribeMediaJobResponse([job], []) }),
      timeline,
      attempts,
      outputs,
      deliveries: deliveries.map((d) => ({
        delivery_id: d.delivery.delivery_id,
        url: d.delivery.url,
        format: d.delivery.format,
        state: d.delivery.state,
        attempts: d.attempts.map((a) => ({ attempt: a.attempt, at: new Date(a.attempted_at).toISOString(), http_status: a.http_status, latency_ms: a.latency_ms, error: a.error })),
        next_attempt_at: new Date(d.delivery.next_attempt_at).toISOString(),
      })),
      query_ms: Math.round((performance.now() - started) * 10) / 10,
    };
  };

  /**
   * Output objects the job names (Output/Object, SpriteObject, the result's ObjectName), those that exist, in
   * its own app's buckets only: an external worker's result may name any Bucket, and its size would tell an app
   * session of another app's object.
   */
  const outputsOf = async (bucket: string, operation: XmlObject, result: XmlObject | null, appid: string | null) => {
    const found = new Map<string, { bucket: string; key: string }>();
    const walk = (value: XmlValue | undefined, inBucket: string) => {
      if (value === undefined || typeof value === 'string') return;
      if (Array.isArray(value)) return value.forEach((v) => walk(v, inBucket));
      const b = typeof value.Bucket === 'string' ? value.Bucket : inBucket;
      const prefix = typeof value.ObjectPrefix === 'string' ? value.ObjectPrefix : '';
      for (const [name, v] of Object.entries(value)) {
        if ((name === 'Object' || name === 'SpriteObject' || name === 'ObjectName') && v !== undefined) {
          for (const key of (Array.isArray(v) ? v : [v])) if (typeof key === 'string' && key) found.set(`${b}/${prefix}${key}`, { bucket: b, key: `${name === 'ObjectName' ? prefix : ''}${key}` });
        } else walk(v, b);
      }
    };
    walk(operation.Output, bucket);
    if (result) walk(result, bucket);
    const out: Array<{ bucket: string; key: string; size: number }> = [];
    for (const o of [...found.values()].filter((x) => appid === null || x.bucket.endsWith(`-${appid}`)).slice(0, 50)) {
      // headObject: the size from the file's stat (stat() read the whole object into memory for its MD5).
      const info = await deps.storage.headObject(o.bucket, o.key).catch(() => undefined);
      if (info) out.push({ ...o, size: info.size });
    }
    return out;
  };

  const download = async (ctx: AppContext, w: Who) => {
    const bucket = String(ctx.query.bucket ?? '');
    const objectKey = String(ctx.query.key ?? '');
    if (!bucket || !objectKey) throw new ConsoleError(400, 'BadRequest', 'bucket and key are required');
    if (w.scope.appid !== undefined && !bucket.endsWith(`-${w.scope.appid}`)) throw new ConsoleError(404, 'NotFound', 'no such object');
    // Streamed: get() held the whole object in memory (a few large downloads, and the process ran out).
    let object: Awaited<ReturnType<typeof deps.storage.getObjectStream>>;
    try {
      object = await deps.storage.getObjectStream(bucket, objectKey);
    } catch (err) {
      if (err instanceof ObjectNotFoundError || err instanceof CiError) throw new ConsoleError(404, 'NotFound', 'no such object');
      throw err;
    }
    ctx.set('Content-Disposition', `attachment; filename="${path.posix.basename(objectKey).replace(/[^\w.-]/g, '_')}"`);
    ctx.type = 'application/octet-stream';
    ctx.length = object.info.size;
    ctx.body = object.body;
  };

  const cancel = async (w: Who, jobId: string) => {
    const row = await jobInScope(w, jobId);
    try {
      await cancelJobs(deps.db, row.bucket, [jobId]);
    } catch (err) {
      if (err instanceof CiError) throw new ConsoleError(409, 'Conflict', err.message);
      throw err;
    }
    return { job: (await jobSummaries(db, [jobId]))[0] };
  };

  const retry = async (w: Who, jobId: string) => {
    await jobInScope(w, jobId);
    const job = await retryFailedJob(deps.db, jobId, deps.config.jobTtlMs);
    if (!job) throw new ConsoleError(409, 'Conflict', `the job ${jobId} is not Failed`);
    return { job: (await jobSummaries(db, [jobId]))[0] };
  };

  const updateQueue = async (ctx: AppContext, w: Who, queueId: string) => {
    if (!QUEUE_ID_PATTERN.test(queueId)) throw new ConsoleError(404, 'NotFound', `no queue ${queueId}`);
    const queue = await db.selectFrom('queues').select(['bucket']).where('queue_id', '=', queueId).executeTakeFirst();
    if (!queue || (w.scope.appid !== undefined && !queue.bucket.endsWith(`-${w.scope.appid}`))) throw new ConsoleError(404, 'NotFound', `no queue ${queueId}`);
    const current = await findQueue(db, queue.bucket, queueId);
    if (!current) throw new ConsoleError(404, 'NotFound', `no queue ${queueId}`);
    const body = await readJson(ctx);
    const state = body.state ?? current.state;
    if (state !== 'Active' && state !== 'Paused') throw new ConsoleError(400, 'BadRequest', 'state is Active or Paused');
    const max = body.maxConcurrent;
    if (max !== undefined && !(Number.isInteger(max) && (max as number) >= 1 && (max as number) <= 10_000)) throw new ConsoleError(400, 'BadRequest', 'maxConcurrent is an integer from 1 to 10000');
    try {
      await updateMediaQueue(deps.db, queue.bucket, queueId, { name: current.name, state, ...(max !== undefined ? { maxConcurrent: max as number } : {}) });
    } catch (err) {
      if (err instanceof CiError) throw new ConsoleError(400, 'BadRequest', err.message);
      throw err;
    }
    return { queues: await queueSummaries(db, w.scope) };
  };

  const redeliverOne = async (w: Who, deliveryId: string) => {
    if (!/^d[0-9a-f]{32}$/.test(deliveryId)) throw new ConsoleError(404, 'NotFound', `no delivery ${deliveryId}`);
    const row = await db.selectFrom('callback_deliveries').innerJoin('jobs', 'jobs.job_id', 'callback_deliveries.job_id')
      .select(['callback_deliveries.job_id', 'jobs.appid']).where('delivery_id', '=', deliveryId).executeTakeFirst();
    if (!row || (w.scope.appid !== undefined && row.appid !== w.scope.appid)) throw new ConsoleError(404, 'NotFound', `no delivery ${deliveryId}`);
    // As POST /callbacks/<DeliveryId> does.
    await db.transaction().execute(async (tx) => {
      await redeliver(tx, deliveryId);
      await sql`SELECT pg_notify(${CHANNELS.deliveriesAvailable}, '')`.execute(tx);
    });
    return { ok: true, job_id: row.job_id };
  };

  const events = async (ctx: AppContext, w: Who) => {
    ctx.req.socket.setTimeout(0);
    ctx.req.socket.setNoDelay(true);
    ctx.respond = false;
    const res = ctx.res;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Accel-Buffering': 'no',
      Connection: 'keep-alive',
      'x-ci-request-id': ctx.state.requestId,
    });
    const app = w.app;
    await feed.add(res, w.scope.appid, {
      expires: w.session.expires,
      // As `who` checks on every request: the app still enabled, under the SecretId this session logged in with.
      ...(app ? { stillValid: async () => { const now = await findApp(db, app.appId); return Boolean(now && !now.disabledAt && now.secretId === w.session.secretId); } } : {}),
    });
  };

  const readJson = async (ctx: AppContext): Promise<Record<string, unknown>> => {
    let value: unknown;
    try {
      value = JSON.parse((await readBody(ctx, 64 * 1024)) || '{}');
    } catch (err) {
      if (isRetryableDbError(err)) throw err;
      throw new ConsoleError(400, 'BadRequest', 'the body must be a JSON object');
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ConsoleError(400, 'BadRequest', 'the body must be a JSON object');
    return value as Record<string, unknown>;
  };

  const middleware: Middleware<RequestState> = async (ctx, next) => {
    const p = ctx.path;
    if (p === '/' && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
      ctx.state.operation = 'console:redirect';
      return ctx.redirect('/console/');
    }
    if (p !== '/console' && !p.startsWith('/console/')) return next();
    ctx.set('Content-Security-Policy', CSP);
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    if (p === '/console') return ctx.redirect('/console/');
    if (p.startsWith('/console/api/')) {
      ctx.set('Cache-Control', 'no-store');
      try {
        const body = await api(ctx as AppContext, p.slice('/console/api/'.length).split('/').filter(Boolean).map(decodePathPart));
        if (body !== undefined) ctx.body = body;
      } catch (err) {
        const error = err instanceof ConsoleError ? err
          : isRetryableDbError(err) ? new ConsoleError(503, 'Unavailable', 'the database is not reachable; retry in a second')
            // PostgreSQL's class 22 (data exception): a NUL or a value out of range in a query parameter or body, the client's fault.
            : /^22/.test(String((err as { code?: unknown } | null)?.code ?? '')) ? new ConsoleError(400, 'BadRequest', 'a value is malformed or out of range (text cannot hold a NUL character)')
              : new ConsoleError(500, 'InternalError', 'internal error; the server has logged it');
        if (error.code === 'InternalError') ctx.state.log.error({ err }, 'console request failed');
        ctx.status = error.status;
        ctx.body = { error: { code: error.code, message: error.message } };
      }
      return;
    }
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405;
      ctx.body = 'GET only';
      return;
    }
    ctx.state.operation = 'console:asset';
    const rest = p.slice('/console/'.length);
    const vendor = rest.startsWith('vendor/');
    const file = vendor ? rest.slice('vendor/'.length) : rest === '' ? 'index.html' : rest;
    // Own keys only: `in` also found __proto__, toString, constructor… (each a 500).
    if (vendor ? !Object.hasOwn(VENDOR, file) : !STATIC_FILES.has(file)) {
      ctx.status = 404;
      ctx.body = 'not found';
      return;
    }
    const found = await asset(file, vendor);
    ctx.set('Cache-Control', 'no-cache');
    ctx.set('ETag', found.etag);
    ctx.type = found.type;
    ctx.status = 200;
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    ctx.body = found.body;
  };

  return { middleware, stop: () => feed.stop() };
}

/** One segment of a console API path, percent-decoded; a malformed escape (`%E0%A4%A`) is the client's 400, not a URIError's 500. */
function decodePathPart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new ConsoleError(400, 'BadRequest', `the path segment ${JSON.stringify(part.slice(0, 64))} is not valid percent-encoded UTF-8`);
  }
}

/**
 * Whether the request's Origin, when the browser sends one, names this host. The host alone: behind a
 * proxy that ends TLS the browser says https while the service sees http.
 */
function sameOrigin(ctx: AppContext): boolean {
  const origin = ctx.get('origin');
  if (!origin) return true;
  try {
    return new URL(origin).host === ctx.host;
  } catch {
    return false;
  }
}

import type { Middleware } from 'koa';
import { constantTimeEqual } from '../auth/credentials.js';
import { isRetryableDbError } from '../engine/db-retry.js';
import { disableApp, insertApp, listApps, loadAdminToken, rotateAppKeys, type App } from '../store/apps.repository.js';
import { listWorkers } from '../store/workers.repository.js';
import { appKeysOf } from '../tasks/app-keys.js';
import { readBody } from './body.js';
import type { AppContext, RequestState } from './context.js';
import type { AppDeps } from './handler.js';
import { jsonSchemaProblem } from '../validation/json-body.js';

/*
 * The admin API (issue 16): apps and workers, JSON in and out, under
 * /admin/, authorized by `Authorization: Bearer <admin token>`
 * (MEDIAJOBS_ADMIN_TOKEN, else the token generated at first start; `serve`
 * prints it). Its errors are `{"error": {"code", "message"}}` with the
 * statuses of ADMIN_ERRORS: a front door of its own, like MinIO's admin API
 * beside its S3 API.
 */

const ADMIN_ERRORS = {
  BadRequest: 400,
  Unauthorized: 401,
  NotFound: 404,
  MethodNotAllowed: 405,
  InternalError: 500,
  Unavailable: 503,
} as const;

class AdminError extends Error {
  constructor(readonly code: keyof typeof ADMIN_ERRORS, message: string) {
    super(message);
  }
}

const APP_ID = /^[0-9a-f]{16}$/;

/** An app as the admin API and the console show it; secrets only when it was just created or rotated. */
export function appJson(app: App, withSecrets: boolean): Record<string, unknown> {
  return {
    app_id: app.appId,
    name: app.name,
    appid: app.appid,
    bucket: app.bucket,
    secret_id: app.secretId,
    ...(withSecrets ? { secret_key: app.secretKey, app_key: app.appKey } : {}),
    created_at: app.createdAt.toISOString(),
    disabled: app.disabledAt !== null,
    ...(app.disabledAt ? { disabled_at: app.disabledAt.toISOString() } : {}),
  };
}

/**
 * Rotates an app's keys or disables it, then drops the task API's remembered app_keys here and in
 * every process, so that the old key stops at once: what the admin API and the console both do.
 * Undefined when there is no such app.
 */
export async function changeApp(db: AppDeps['db'], id: string, change: 'rotate' | 'disable'): Promise<App | undefined> {
  const app = change === 'rotate' ? await rotateAppKeys(db.kysely, id) : await disableApp(db.kysely, id);
  if (app) await appKeysOf(db).changed(db.kysely);
  return app;
}

export function adminApi(deps: AppDeps): Middleware<RequestState> {
  let token: Promise<string> | undefined;
  const adminToken = () => {
    token ??= loadAdminToken(deps.db.kysely, deps.config.apps.adminToken).catch((err: unknown) => {
      token = undefined;
      throw err;
    });
    return token;
  };
  return async (ctx, next) => {
    if (ctx.path !== '/admin' && !ctx.path.startsWith('/admin/')) return next();
    // A label of /metrics: known resources only (ids folded by operationLabel), or unauthenticated clients could mint series without end.
    ctx.state.operation = `admin:${ctx.method} ${/^\/admin\/(?:workers|apps(?:\/[0-9a-f]{16}(?:\/rotate)?)?)\/?$/.test(ctx.path) ? ctx.path : '/admin/?'}`;
    try {
      const given = /^Bearer\s+(\S+)$/i.exec(ctx.get('authorization'))?.[1];
      if (!given) throw new AdminError('Unauthorized', 'send Authorization: Bearer <admin token> (MEDIAJOBS_ADMIN_TOKEN, or the token `mediajobs serve` prints)');
      if (!constantTimeEqual(given, await adminToken())) throw new AdminError('Unauthorized', 'the admin token is wrong');
      const { status, body } = await route(ctx as AppContext, deps);
      ctx.status = status;
      ctx.body = body;
    } catch (err) {
      const error = err instanceof AdminError ? err
        : isRetryableDbError(err) ? new AdminError('Unavailable', 'the database is not reachable; retry in a second')
          : new AdminError('InternalError', 'internal error; the server has logged it');
      if (error.code === 'InternalError') ctx.state.log.error({ err }, 'admin request failed');
      if (error.code === 'Unavailable') ctx.set('Retry-After', '1');
      ctx.status = ADMIN_ERRORS[error.code];
      ctx.body = { error: { code: error.code, message: error.message } };
    }
  };
}

async function route(ctx: AppContext, deps: AppDeps): Promise<{ status: number; body: unknown }> {
  const db = deps.db.kysely;
  const parts = ctx.path.split('/').filter(Boolean).slice(1);
  const [resource, id, verb] = parts;
  if (resource === 'apps' && parts.length === 1) {
    if (ctx.method === 'GET') return { status: 200, body: { apps: (await listApps(db)).map((app) => appJson(app, false)) } };
    if (ctx.method === 'POST') {
      const body = await readJson(ctx, deps.config.maxBodyBytes);
      const problem = jsonSchemaProblem('admin.create-app.request.json', body);
      if (problem) throw new AdminError('BadRequest', problem);
      const app = await insertApp(db, body.name as string);
      await appKeysOf(deps.db).changed(db);
      return { status: 201, body: appJson(app, true) };
    }
    throw methodNotAllowed(ctx, 'GET, POST');
  }
  if (resource === 'apps' && id !== undefined && (parts.length === 2 || (parts.length === 3 && verb === 'rotate'))) {
    if (!APP_ID.test(id)) throw new AdminError('NotFound', `app ${id} does not exist`);
    if (verb === 'rotate') {
      if (ctx.method !== 'POST') throw methodNotAllowed(ctx, 'POST');
      const app = await changeApp(deps.db, id, 'rotate');
      if (!app) throw new AdminError('NotFound', `app ${id} does not exist`);
      return { status: 200, body: appJson(app, true) };
    }
    if (ctx.method !== 'DELETE') throw methodNotAllowed(ctx, 'DELETE');
    const app = await changeApp(deps.db, id, 'disable');
    if (!app) throw new AdminError('NotFound', `app ${id} does not exist`);
    return { status: 200, body: appJson(app, false) };
  }
  if (resource === 'workers' && parts.length === 1) {
    if (ctx.method !== 'GET') throw methodNotAllowed(ctx, 'GET');
    const { leaseMs, tasks } = deps.config;
    return { status: 200, body: { workers: await listWorkers(db, { internal: 3 * leaseMs, external: 3 * tasks.leaseMs }) } };
  }
  throw new AdminError('NotFound', 'no such admin resource; there are /admin/apps, /admin/apps/<app_id>, /admin/apps/<app_id>/rotate and /admin/workers');
}

function methodNotAllowed(ctx: AppContext, allow: string): AdminError {
  ctx.set('Allow', allow);
  return new AdminError('MethodNotAllowed', `use ${allow} here`);
}

async function readJson(ctx: AppContext, maxBytes: number): Promise<Record<string, unknown>> {
  let value: unknown;
  try {
    value = JSON.parse((await readBody(ctx, maxBytes)) || '{}');
  } catch (err) {
    if (isRetryableDbError(err)) throw err;
    throw new AdminError('BadRequest', `the body must be a JSON object (${(err as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new AdminError('BadRequest', 'the body must be a JSON object');
  return value as Record<string, unknown>;
}

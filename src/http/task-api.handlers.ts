import type { Middleware } from 'koa';
import type { App } from '../store/apps.repository.js';
import { TaskError, toTaskError } from '../tasks/task-errors.js';
import {
  cancelTask, completeTask, createTask, createTaskDeps, failTask, getTask, listTasks, nextTask, updateProgress, type TaskDeps,
} from '../tasks/task-service.js';
import { ExternalWorkers } from '../tasks/worker-registry.js';
import { appKeysOf } from '../tasks/app-keys.js';
import { readBody } from './body.js';
import type { AppContext, RequestState } from './context.js';
import type { AppDeps } from './handler.js';
import { jsonSchemaProblem } from '../validation/json-body.js';

/*
 * The task API's front door (issue 16): `POST /api.php?action=<name>` with a
 * JSON body, as the seed's cloud task system defines it. Every answer is
 * `{"code": 1, "msg": …, "data": …}` (HTTP 200) or `{"code": 0, "msg": "<what
 * is wrong and what to do>", "data": null}` with the status of its TaskError
 * (src/tasks/task-errors.ts). It sits before the CI API's error writer and
 * signature check: its errors are its own, and its key is the body's app_key.
 */

/** What an action does with a validated body, and the msg of its success. */
interface Action {
  readonly msg: string;
  run(deps: TaskDeps, app: App, body: any, signal: AbortSignal): Promise<unknown>;
}

const ACTIONS: Readonly<Record<string, Action>> = {
  create_task: { msg: 'task created', run: createTask },
  get_next_task: { msg: 'task handed out', run: nextTask },
  update_progress: { msg: 'progress saved', run: updateProgress },
  complete_task: { msg: 'task completed', run: completeTask },
  fail_task: { msg: 'failure recorded', run: failTask },
  get_task: { msg: 'ok', run: getTask },
  cancel_task: { msg: 'task cancelled', run: cancelTask },
  list_tasks: { msg: 'ok', run: listTasks },
};
const ACTION_LIST = Object.keys(ACTIONS).join(', ');

export const TASK_API_PATH = '/api.php';

export function taskApi(deps: AppDeps): Middleware<RequestState> {
  const taskDeps: TaskDeps = createTaskDeps(deps);
  const workers = new ExternalWorkers(deps.db, deps.logger);
  return async (ctx, next) => {
    if (ctx.path !== TASK_API_PATH) return next();
    const action = typeof ctx.query.action === 'string' ? ctx.query.action : '';
    // A label of /metrics and the request log: only our actions, or any client could mint series without end.
    ctx.state.operation = `task-api:${Object.hasOwn(ACTIONS, action) ? action : '?'}`;
    try {
      const data = await serve(ctx as AppContext, taskDeps, workers, action, deps.config.maxBodyBytes);
      ctx.status = 200;
      ctx.body = data === undefined
        ? { code: 0, msg: 'no task available', data: null }
        : { code: 1, msg: ACTIONS[action].msg, data };
    } catch (err) {
      const error = toTaskError(err);
      if (error.status >= 500 && error.code !== 'Unavailable') ctx.state.log.error({ err }, 'task API request failed');
      ctx.status = error.status;
      if (error.code === 'Unavailable') ctx.set('Retry-After', '1');
      if (error.code === 'MethodNotAllowed') ctx.set('Allow', 'POST');
      ctx.body = { code: 0, msg: error.message, data: null };
    }
  };
}

/** parse → authenticate → validate → run. Undefined: get_next_task found nothing. */
async function serve(ctx: AppContext, deps: TaskDeps, workers: ExternalWorkers, action: string, maxBodyBytes: number): Promise<unknown> {
  if (ctx.method !== 'POST') throw new TaskError('MethodNotAllowed', `use POST ${TASK_API_PATH}?action=<action> with a JSON body`);
  const handler = Object.hasOwn(ACTIONS, action) ? ACTIONS[action] : undefined;
  if (!handler) throw new TaskError('BadRequest', `${action ? `unknown action "${action}"` : 'action is missing'}; use ?action= one of ${ACTION_LIST}`);
  const body = parseJson(await readBody(ctx, maxBodyBytes));
  if (typeof body.app_key !== 'string' || body.app_key === '') throw new TaskError('Unauthorized', 'app_key is missing; send your app\'s app_key in the body');
  const app = await appKeysOf(deps.db).find(body.app_key);
  if (!app) throw new TaskError('Unauthorized', 'app_key is not valid (wrong, rotated or its app disabled)');
  const problem = jsonSchemaProblem(`task-api.${action}.json`, body);
  if (problem) throw new TaskError('BadRequest', `${problem} (action ${action})`);
  if (typeof body.worker_id === 'string') workers.seen(app.appId, body.worker_id, action === 'get_next_task' ? (body.task_types as string[] | undefined) ?? [] : undefined, ctx.request.ip);
  // Only get_next_task is held while a client may leave; the others run without a hang-up signal (each had cost a listener and an AbortController).
  if (action !== 'get_next_task') return handler.run(deps, app, body, NEVER_ABORTED);
  const hangUp = new AbortController();
  // 'close' also follows every answer sent; only a client gone before its answer is a hang-up.
  ctx.res.once('close', () => { if (!ctx.res.writableFinished) hangUp.abort(); });
  return handler.run(deps, app, body, hangUp.signal);
}

const NEVER_ABORTED = new AbortController().signal;

function parseJson(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new TaskError('BadRequest', `the body is not valid JSON (${(err as Error).message}); send a JSON object`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new TaskError('BadRequest', 'the body must be a JSON object');
  if (text.length > MAX_JSON_DEPTH && nestingDeeperThan(text, MAX_JSON_DEPTH)) throw new TaskError('BadRequest', `the body nests objects and arrays more than ${MAX_JSON_DEPTH} deep; flatten task_data or result`);
  return value as Record<string, unknown>;
}

/** JSON.parse takes any depth, but JSON.stringify (the size checks) and PostgreSQL's jsonb overflow their stacks far sooner: a 500, not the client's 400. */
const MAX_JSON_DEPTH = 128;

/** Whether valid JSON text opens more than `max` objects/arrays inside each other (brackets inside strings not counted). */
function nestingDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) { // a string: skip to its closing quote, over escapes
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}

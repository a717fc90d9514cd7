import { nextRetryDelayMs } from '../callbacks/backoff.js';
import { validateCallbackUrlSyntax } from '../callbacks/url-policy.js';
import type { Config } from '../config.js';
import { cancelJobs } from '../engine/cancel.js';
import type { JobInserter } from '../engine/job-inserter.js';
import { endJob, type Outcome } from '../engine/outcomes.js';
import { releaseJob, retryOrFail } from '../engine/queue.sql.js';
import { submitJobs } from '../engine/submit.js';
import { CiError } from '../errors.js';
import { newId } from '../ids.js';
import { isSupportedTag } from '../processors/tags.js';
import type { App } from '../store/apps.repository.js';
import type { Db } from '../store/database.js';
import { jobRowToJob, type Executor, type JobRow } from '../store/jobs.repository.js';
import { ensureDefaultQueue } from '../store/queues.repository.js';
import { findTask, findTaskByUniqueKey, insertTasks, listTasks as listTaskRows, type NewTask, type StoredTask } from '../store/tasks.repository.js';
import { Batcher } from './batcher.js';
import { ciResultProblem } from './ci-result.js';
import type { XmlObject, XmlValue } from '../xml/tree.js';
import { TaskError } from './task-errors.js';
import { claimTasks, endTasksWithoutCallback, saveTaskProgress, type HeldTask, type TaskEnd } from './task-queue.sql.js';
import { handedOutTask, externalOwner, taskIdOf, taskStatus, taskView, type TaskStatus } from './task-view.js';
import { TaskWaiters } from './task-waiters.js';

/*
 * The task API's operations, one function per action, on the engine below
 * both front doors: the same rows, the same claim/lease/retry/expiry/cancel.
 * Each takes the app the request authenticated as and the validated body.
 */

export interface TaskDeps {
  readonly db: Db;
  readonly config: Config;
  readonly jobInserter: JobInserter;
  readonly waiters: TaskWaiters;
  /** Queue ids by bucket and name: queues are never deleted, so an id once found stays right. */
  readonly queueIds: Map<string, string>;
  /** Concurrent creates, claims and ends, grouped into rounds of one transaction each (see runRound). */
  readonly rounds: Batcher<RoundCall, RoundAnswer>;
}

/** One call's part of a round: a create_task, a get_next_task's claim, or a complete_task/fail_task's end. */
export type RoundCall =
  | { readonly kind: 'create'; readonly task: NewTask }
  | { readonly kind: 'claim'; readonly appid: string; readonly types: readonly string[]; readonly owner: string }
  | { readonly kind: 'end'; readonly end: TaskEnd };
/** What the create stored (undefined: not stored), the claimed row (undefined: none), whether the end took effect. */
export type RoundAnswer = StoredTask | JobRow | boolean | undefined;

/**
 * The calls that arrived while the previous round was out, in one
 * transaction: the creates (insertTasks), then the ends
 * (endTasksWithoutCallback), then the claims (claimTasks, one statement per
 * app and types), so a claim sees the tasks created and the queue slots
 * freed in its own round. One commit for all three kinds: every statement
 * here notifies (the changes feed, sql/0012), and PostgreSQL serializes the
 * commits of notifying transactions on one lock held through their WAL
 * flush, so a create's, a claim's and an end's transactions cost three
 * flushes one after another where one round costs one. A round of one kind
 * is a single statement, without BEGIN/COMMIT. Atomic either way: when it
 * fails, the Batcher runs each call alone. (Creates in a line of their own,
 * beside the workers' rounds, were tried: more CPU per task on both sides
 * and a backlog of seconds, for no more tasks/s in bench/task-api.)
 */
async function runRound(db: Db, leaseMs: number, calls: readonly RoundCall[]): Promise<RoundAnswer[]> {
  const answers = new Array<RoundAnswer>(calls.length);
  const creates: number[] = [];
  const ends: number[] = [];
  const claims = new Map<string, number[]>();
  calls.forEach((call, i) => {
    if (call.kind === 'create') creates.push(i);
    else if (call.kind === 'end') ends.push(i);
    else {
      const key = `${call.appid}\n${call.types.join('\n')}`;
      const group = claims.get(key);
      if (group) group.push(i);
      else claims.set(key, [i]);
    }
  });
  const work = async (tx: Executor) => {
    if (creates.length > 0) {
      const tasks = creates.map((i) => (calls[i] as Extract<RoundCall, { kind: 'create' }>).task);
      const stored = await insertTasks(tx, tasks);
      creates.forEach((i, n) => { answers[i] = stored.get(tasks[n].jobId); });
    }
    if (ends.length > 0) {
      const ended = await endTasksWithoutCallback(tx, ends.map((i) => (calls[i] as Extract<RoundCall, { kind: 'end' }>).end));
      ends.forEach((i, n) => { answers[i] = ended[n]; });
    }
    for (const group of claims.values()) {
      const first = calls[group[0]] as Extract<RoundCall, { kind: 'claim' }>;
      const owners = group.map((i) => (calls[i] as Extract<RoundCall, { kind: 'claim' }>).owner);
      const rows = await claimTasks(tx, first.appid, first.types, owners, leaseMs);
      group.forEach((i, n) => { answers[i] = rows[n]; });
    }
  };
  if ((creates.length > 0 ? 1 : 0) + (ends.length > 0 ? 1 : 0) + claims.size > 1) await db.kysely.transaction().execute(work);
  else await work(db.kysely);
  return answers;
}

/** The task API's engine for one HTTP server: its long-poll waiters, queue-id cache and statement groups. */
export function createTaskDeps(base: { db: Db; config: Config; jobInserter: JobInserter }): TaskDeps {
  const { db, config } = base;
  return {
    ...base,
    waiters: new TaskWaiters(db),
    queueIds: new Map(),
    rounds: new Batcher((_key, calls) => runRound(db, config.tasks.leaseMs, calls)),
  };
}

/** task_data may be up to this large (as JSON). */
const MAX_TASK_DATA_BYTES = 256 * 1024;
const MAX_RESULT_BYTES = 256 * 1024;
/** Seconds a long poll may be held. */
const MAX_WAIT_S = 30;

async function resolveQueue({ db, queueIds }: TaskDeps, bucket: string, name: string | undefined): Promise<string> {
  const key = `${bucket}\n${name ?? ''}`;
  const known = queueIds.get(key);
  if (known) return known;
  let queueId: string | undefined;
  if (name === undefined) {
    queueId = (await ensureDefaultQueue(db.kysely, bucket)).queueId;
  } else {
    queueId = (await db.kysely.selectFrom('queues').select('queue_id').where('bucket', '=', bucket).where('name', '=', name)
      .orderBy('created_at').limit(1).executeTakeFirst())?.queue_id;
    if (!queueId) throw new TaskError('BadRequest', `queue "${name}" is not one of this app's queues; leave it out for the default queue`);
  }
  queueIds.set(key, queueId);
  return queueId;
}

/** JSON as CI's XML tree: numbers and booleans become text, null an empty element. */
export function jsonToXml(value: unknown): XmlValue {
  if (value === null || value === undefined) return '';
  if (Array.isArray(value)) return value.map(jsonToXml);
  if (typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, jsonToXml(v)]));
  }
  return String(value);
}

function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '');
}

export interface CreateTaskBody {
  readonly task_type: string;
  readonly task_data?: Record<string, unknown>;
  readonly priority?: number;
  readonly callback_url?: string;
  readonly max_retries?: number;
  readonly expire_in?: number;
  readonly queue?: string;
  readonly unique_key?: string;
}

/**
 * create_task. A type that is a Tag our workers run (MediaInfo, PicProcess,
 * …) is a CI job: its task_data holds the Request's Input and Operation and
 * it goes through CreateMediaJobs' own validation and insert. Any other type
 * is an external task, for get_next_task.
 */
export async function createTask(deps: TaskDeps, app: App, body: CreateTaskBody): Promise<{ task_id: number; status: TaskStatus }> {
  const { db, config } = deps;
  const taskData = body.task_data ?? {};
  if (jsonBytes(taskData) > MAX_TASK_DATA_BYTES) throw new TaskError('BadRequest', `task_data is larger than ${MAX_TASK_DATA_BYTES} bytes as JSON; store large inputs elsewhere and pass their location`);
  if (body.callback_url !== undefined) {
    try {
      validateCallbackUrlSyntax(body.callback_url, { allowPrivateAddresses: config.callbacks.allowPrivateAddresses });
    } catch (err) {
      throw new TaskError('BadRequest', `callback_url ${(err as Error).message}`);
    }
  }
  const queueId = await resolveQueue(deps, app.bucket, body.queue);
  if (isSupportedTag(body.task_type) && !config.tasks.externalTags.includes(body.task_type)) {
    return createCiTask(deps, app, body, queueId);
  }
  const maxAttempts = (body.max_retries ?? 3) + 1;
  const expiresAt = new Date(Date.now() + (body.expire_in !== undefined ? body.expire_in * 1000 : config.jobTtlMs));
  for (let tries = 0; tries < 3; tries++) {
    const row = await deps.rounds.submit('', { kind: 'create', task: {
      jobId: newId('j'),
      queueId,
      region: config.region,
      taskType: body.task_type,
      priority: body.priority ?? 3,
      taskData,
      callbackUrl: body.callback_url,
      maxAttempts,
      expiresAt,
      external: true,
      uniqueKey: body.unique_key,
    } }) as StoredTask | undefined;
    if (row) return { task_id: taskIdOf(row), status: taskStatus(row.state, row.code) };
    if (body.unique_key === undefined) break;
    const holder = await findTaskByUniqueKey(db.kysely, app.appid, body.unique_key);
    // The holder may have ended between the insert and this read: try the insert again.
    if (holder) return { task_id: taskIdOf(holder), status: taskStatus(holder.state, holder.code) };
  }
  throw new TaskError('Conflict', 'the task could not be stored; try again');
}

async function createCiTask(deps: TaskDeps, app: App, body: CreateTaskBody, queueId: string): Promise<{ task_id: number; status: TaskStatus }> {
  const data = jsonToXml(body.task_data ?? {}) as XmlObject;
  const request: XmlObject = { Tag: body.task_type, Input: data.Input ?? '', Operation: data.Operation ?? '', QueueId: queueId };
  if (body.callback_url !== undefined) Object.assign(request, { CallBack: body.callback_url, CallBackFormat: 'JSON' });
  const [job] = await submitJobs(deps, { bucket: app.bucket, region: deps.config.region }, request);
  const row = await findTask(deps.db.kysely, app.appid, Number(job.seq));
  if (!row) throw new TaskError('InternalError', 'the task was stored but cannot be read back');
  return { task_id: taskIdOf(row), status: taskStatus(row.state, row.code) };
}

export interface NextTaskBody {
  readonly worker_id: string;
  readonly task_types?: string[];
  readonly wait?: number;
}

/**
 * get_next_task: the app's best pending external task of those types, now
 * or, with `wait`, as soon as one arrives (woken by NOTIFY; a fallback look
 * every poll interval). `signal` fires when the client hangs up: nothing is
 * handed out to a client that is gone.
 */
export async function nextTask(deps: TaskDeps, app: App, body: NextTaskBody, signal: AbortSignal): Promise<Record<string, unknown> | undefined> {
  const { db, config, waiters } = deps;
  const owner = externalOwner(body.worker_id);
  const types = body.task_types ?? [];
  const claim = async () => {
    const row = await deps.rounds.submit('', { kind: 'claim', appid: app.appid, types: [...new Set(types)].sort(), owner }) as JobRow | undefined;
    if (row && signal.aborted) {
      // The client hung up while the claim was out: back to pending, its attempt uncounted.
      await releaseJob(db.kysely, jobRowToJob(row), owner);
      return undefined;
    }
    return row && handedOutTask(row);
  };
  const waitMs = Math.min(body.wait ?? 0, MAX_WAIT_S) * 1000;
  if (waitMs <= 0) return claim();
  const deadline = Date.now() + waitMs;
  const ticket = await waiters.ticket(app.appid);
  try {
    for (;;) {
      if (signal.aborted) return undefined;
      const task = await claim();
      if (task) return task;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await ticket.wait(Math.min(left, config.pollIntervalMs), signal);
    }
  } finally {
    ticket.release();
  }
}

export interface HeldTaskBody {
  readonly task_id: number;
  readonly worker_id?: string;
}

function heldTask(app: App, body: HeldTaskBody): HeldTask {
  return { appid: app.appid, taskId: body.task_id, ...(body.worker_id !== undefined ? { owner: externalOwner(body.worker_id) } : {}) };
}

/** Why a task is not running under the caller: 404 when it is not the app's, 409 otherwise. */
async function notHeld(deps: TaskDeps, app: App, body: HeldTaskBody, action: string): Promise<TaskError> {
  const row = await findTask(deps.db.kysely, app.appid, body.task_id);
  if (!row) return new TaskError('NotFound', `task ${body.task_id} does not exist`);
  const view = taskView(row);
  if (view.status !== 'processing') return new TaskError('Conflict', `task ${body.task_id} is ${view.status}; only a processing task can be given ${action}`);
  return new TaskError('Conflict', `task ${body.task_id} is held by worker ${view.worker_id ?? '?'}, not ${body.worker_id ?? '?'} (its lease ran out and it was handed out again)`);
}

/** update_progress: stores progress and message, renews the lease. */
export async function updateProgress(deps: TaskDeps, app: App, body: HeldTaskBody & { progress: number; message?: string }): Promise<Record<string, unknown>> {
  const row = await saveTaskProgress(deps.db.kysely, heldTask(app, body), Math.round(body.progress), body.message, deps.config.tasks.leaseMs);
  if (!row) throw await notHeld(deps, app, body, 'progress');
  return { task_id: body.task_id, progress: row.progress, lease_expires_at: taskView(row).lease_expires_at };
}

/**
 * Ends a running task: in one statement when that records no notification,
 * else with endJob in a transaction, which records the callback with the end.
 * For a CI job (an external Tag through POST /jobs) a JSON object result
 * becomes the result elements of its Operation, as GET /jobs/<id> shows them.
 */
async function endTask(deps: TaskDeps, app: App, body: HeldTaskBody, to: 'Success' | 'Failed', outcome: Outcome, result: unknown): Promise<boolean> {
  const task = heldTask(app, body);
  if (await deps.rounds.submit('', { kind: 'end', end: { task, to, outcome, taskResult: result } })) return true;
  const row = await findTask(deps.db.kysely, app.appid, body.task_id);
  if (!row || row.state !== 'Running' || (task.owner !== undefined && row.lease_owner !== task.owner)) return false;
  const ciResult = row.callback_type !== 'Task' && result !== null && typeof result === 'object' && !Array.isArray(result)
    ? jsonToXml(result) as XmlObject : undefined;
  const ciProblem = ciResult && ciResultProblem(result as Record<string, unknown>);
  if (ciProblem) throw new TaskError('BadRequest', `${ciProblem}; the task is still yours to complete`);
  return deps.db.kysely.transaction().execute(async (tx) => {
    const ended = await endJob(tx, row.job_id, ['Running'], to, { ...outcome, ...(ciResult ? { result: ciResult } : {}) }, row.lease_owner ?? undefined, undefined,
      result !== undefined ? { task_result: JSON.stringify(result) } : {});
    return Boolean(ended);
  });
}

/** complete_task: the task ends completed with its result. */
export async function completeTask(deps: TaskDeps, app: App, body: HeldTaskBody & { result?: unknown }): Promise<Record<string, unknown>> {
  const result = body.result ?? null;
  if (jsonBytes(result) > MAX_RESULT_BYTES) throw new TaskError('BadRequest', `result is larger than ${MAX_RESULT_BYTES} bytes as JSON; store large results elsewhere and pass their location`);
  if (!await endTask(deps, app, body, 'Success', { code: 'Success', message: '' }, result)) throw await notHeld(deps, app, body, 'a result');
  return { task_id: body.task_id, status: 'completed' };
}

/**
 * fail_task: with allow_retry and retries left the task goes back to pending
 * after the engine's backoff (retryOrFail, the rule our workers' jobs follow);
 * with none left it ends failed (MaxAttemptsExceeded); without allow_retry it
 * ends failed at once.
 */
export async function failTask(deps: TaskDeps, app: App, body: HeldTaskBody & { error_message?: string; allow_retry?: boolean }): Promise<Record<string, unknown>> {
  const message = body.error_message || 'The worker reported a failure.';
  if (!body.allow_retry) {
    if (!await endTask(deps, app, body, 'Failed', { code: 'TaskFailed', message }, undefined)) throw await notHeld(deps, app, body, 'a failure');
    return { task_id: body.task_id, status: 'failed' };
  }
  const task = heldTask(app, body);
  const row = await findTask(deps.db.kysely, app.appid, body.task_id);
  if (!row || row.state !== 'Running' || (task.owner !== undefined && row.lease_owner !== task.owner)) throw await notHeld(deps, app, body, 'a failure');
  const job = jobRowToJob(row);
  const delayMs = nextRetryDelayMs(job.attempts);
  const next = await deps.db.kysely.transaction().execute((tx) => retryOrFail(tx, job, row.lease_owner ?? undefined, delayMs, message));
  if (!next) throw await notHeld(deps, app, body, 'a failure');
  const status = taskStatus(next.state, next.code);
  return { task_id: body.task_id, status, ...(status === 'pending' ? { retry_in: Math.round(delayMs / 1000) } : {}) };
}

export async function getTask(deps: TaskDeps, app: App, body: { task_id: number }): Promise<Record<string, unknown>> {
  const row = await findTask(deps.db.kysely, app.appid, body.task_id);
  if (!row) throw new TaskError('NotFound', `task ${body.task_id} does not exist`);
  return { ...taskView(row) };
}

/** cancel_task: pending or processing tasks end cancelled (a processing one's next call answers 409). */
export async function cancelTask(deps: TaskDeps, app: App, body: { task_id: number }): Promise<Record<string, unknown>> {
  const row = await findTask(deps.db.kysely, app.appid, body.task_id);
  if (!row) throw new TaskError('NotFound', `task ${body.task_id} does not exist`);
  const status = taskStatus(row.state, row.code);
  if (status !== 'pending' && status !== 'processing') throw new TaskError('Conflict', `task ${body.task_id} is already ${status}`);
  try {
    await cancelJobs(deps.db, row.bucket, [row.job_id]);
  } catch (err) {
    if (err instanceof CiError && err.code === 'InvalidArgument') throw new TaskError('Conflict', `task ${body.task_id} has just ended and cannot be cancelled`);
    throw err;
  }
  return { task_id: body.task_id, status: 'cancelled' };
}

export async function listTasks(deps: TaskDeps, app: App, body: { status?: TaskStatus; task_type?: string; order?: 'asc' | 'desc'; limit?: number; after?: number }): Promise<Record<string, unknown>> {
  const page = await listTaskRows(deps.db.kysely, {
    appid: app.appid,
    status: body.status,
    taskType: body.task_type,
    order: body.order ?? 'desc',
    limit: body.limit ?? 20,
    after: body.after,
  });
  return { tasks: page.rows.map(taskView), next_after: page.next ?? null };
}

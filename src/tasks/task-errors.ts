import { isRetryableDbError } from '../engine/db-retry.js';
import { CiError } from '../errors.js';

/**
 * The task API's own small error table (G16): code → HTTP status. Every
 * failure answers `{"code": 0, "msg": "<what is wrong and what to do>", "data": null}`
 * with one of these statuses; the CI API's table (src/errors.ts) is not used here.
 */
export const TASK_ERRORS = {
  BadRequest: 400,
  Unauthorized: 401,
  NotFound: 404,
  MethodNotAllowed: 405,
  Conflict: 409,
  InternalError: 500,
  Unavailable: 503,
} as const satisfies Record<string, number>;

export type TaskErrorCode = keyof typeof TASK_ERRORS;

export class TaskError extends Error {
  readonly status: number;

  constructor(readonly code: TaskErrorCode, message: string) {
    super(message);
    this.name = 'TaskError';
    this.status = TASK_ERRORS[code];
  }
}

/** CI errors raised by the engine below (submit of a CI Tag, cancel) in the task API's terms. */
const FROM_CI: Partial<Record<string, TaskErrorCode>> = {
  InvalidArgument: 'BadRequest',
  MalformedXML: 'BadRequest',
  InvalidRequest: 'BadRequest',
  EntityTooLarge: 'BadRequest',
  AccessDenied: 'BadRequest',
  ServiceUnavailable: 'Unavailable',
};

/** Anything thrown while serving a task-API request, as the error the client sees. Unknown errors become InternalError (logged by the caller). */
export function toTaskError(err: unknown): TaskError {
  if (err instanceof TaskError) return err;
  if (err instanceof CiError) {
    const code = FROM_CI[err.code];
    if (code) return new TaskError(code, err.message);
  }
  if (isRetryableDbError(err)) return new TaskError('Unavailable', 'The database is not reachable; retry in a second.');
  const sqlstate = (err as { code?: unknown } | null)?.code;
  if (typeof sqlstate === 'string' && /^22/.test(sqlstate)) return new TaskError('BadRequest', 'A value is out of range or malformed: text fields (worker_id, message, unique_key, queue, error_message, the strings of task_data) cannot hold a NUL character (\\u0000) or an unpaired surrogate.');
  return new TaskError('InternalError', 'Internal error; the server has logged it.');
}

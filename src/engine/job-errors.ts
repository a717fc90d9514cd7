import { CiError } from '../errors.js';

/**
 * How a processor says what went wrong. The engine decides what happens next:
 *
 * - `PermanentJobError`: the input or the parameters are bad (corrupt media,
 *   missing object, malformed rule). The job ends `Failed` at once with this
 *   Code and Message in its JobsDetail.
 * - `RetryLaterError`: something outside the job is briefly unavailable
 *   (storage, a receiver). The job is retried after `delayMs` (or the backoff).
 * - anything else thrown is treated as transient and retried with backoff
 *   until the attempts run out.
 *
 * Cancellation is not an error a processor raises: it watches the
 * `AbortSignal` it is given and stops (throwing whatever it likes).
 */
export class PermanentJobError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'PermanentJobError';
  }
}

export class RetryLaterError extends Error {
  constructor(message: string, readonly delayMs?: number) {
    super(message);
    this.name = 'RetryLaterError';
  }
}

/**
 * A processor's error as the engine should take it: a `CiError` of the
 * client kind (4xx: a key or bucket refused, an output that collides with a
 * folder) says the request itself is wrong, so it ends the job at once with
 * its code; anything else is returned unchanged. Without this, such errors
 * from storage were retried as transient until the attempts ran out.
 */
export function toJobError(err: unknown): unknown {
  if (err instanceof CiError && err.status < 500) return new PermanentJobError(err.code, err.message);
  return err;
}

/** Codes a job can end `Failed` with (JobsDetail/Code), beside the processors' own. */
export const JOB_FAILURE_CODES = {
  /** Input/Object does not exist. */
  NoSuchKey: 'NoSuchKey',
  /** The input exists but cannot be decoded. */
  InvalidMedia: 'InvalidMedia',
  InvalidArgument: 'InvalidArgument',
  /** Not started before MEDIAJOBS_JOB_TTL. */
  JobExpired: 'JobExpired',
  /** Its processor ran longer than its Tag's run-time limit (MEDIAJOBS_JOB_TIMEOUT) and was stopped. */
  JobTimeout: 'JobTimeout',
  /** Every attempt failed with a transient error, or the worker died each time. */
  MaxAttemptsExceeded: 'MaxAttemptsExceeded',
  InternalError: 'InternalError',
} as const;

import { PermanentJobError } from '../engine/job-errors.js';

/** File-job failure codes beside `JOB_FAILURE_CODES` (NoSuchKey, InvalidMedia for an unreadable archive, InvalidArgument). */
export const FILE_JOB_FAILURE_CODES = {
  /** A file job reached one of its limits (MEDIAJOBS_FILE_*, or CI's 10,000 files); nothing was stored. */
  LimitExceeded: 'LimitExceeded',
} as const;

export function limitExceeded(message: string): PermanentJobError {
  return new PermanentJobError(FILE_JOB_FAILURE_CODES.LimitExceeded, message);
}

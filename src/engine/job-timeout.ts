import { JOB_FAILURE_CODES, PermanentJobError, toJobError } from './job-errors.js';

/**
 * How long a processor stopped by its run-time limit gets to return before
 * its job ends anyway. A tool process is SIGKILLed on the abort and reaped
 * within milliseconds; a sharp pipeline cannot be stopped at all.
 */
export const TIMEOUT_GRACE_MS = 1000;

const TIMED_OUT = Symbol('timed out');

function minutesOrSeconds(ms: number): string {
  return ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms / 1000} s`;
}

/**
 * Runs a job's processor (`run`) within its Tag's run-time limit
 * (`jobTimeoutMs` of the config) and says how its errors end the job.
 *
 * When the limit passes, the job's AbortSignal fires with a
 * `PermanentJobError('JobTimeout')` (processors kill their tool on it), the
 * processor gets `TIMEOUT_GRACE_MS` to return, and then this rejects with
 * that error whether it has or not: a sharp pipeline cannot be aborted, so
 * its work is abandoned. It keeps its tool slot until it finishes (bounded by
 * the rule limits of `images/mogr-rule.ts`; the next stage boundary checks
 * the signal), so the worker never runs more tools than it has slots, and its
 * result is dropped (PicProcess writes no output once aborted).
 *
 * Errors of the client kind (`toJobError`) become a `PermanentJobError`.
 */
export async function runWithinTimeout<T>(run: () => Promise<T>, options: { readonly timeoutMs: number; readonly controller: AbortController; readonly tag: string }): Promise<T> {
  const { timeoutMs, controller, tag } = options;
  const running = run();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<typeof TIMED_OUT>((resolve) => { timer = setTimeout(() => resolve(TIMED_OUT), timeoutMs); });
  try {
    const first = await Promise.race([running, timedOut]);
    if (first !== TIMED_OUT) return first;
  } catch (err) {
    throw toJobError(err);
  } finally {
    clearTimeout(timer);
  }
  const error = new PermanentJobError(JOB_FAILURE_CODES.JobTimeout, `The ${tag} job ran longer than its limit of ${minutesOrSeconds(timeoutMs)} and was stopped.`);
  controller.abort(error);
  // Whatever it ends with now is not the job's outcome.
  const settled = running.then(() => undefined, () => undefined);
  let grace: NodeJS.Timeout | undefined;
  await Promise.race([settled, new Promise((resolve) => { grace = setTimeout(resolve, TIMEOUT_GRACE_MS); })]);
  clearTimeout(grace);
  throw error;
}

/**
 * Job states, with CI's own names (`shared/ci-api.md` §3), mirrored by the
 * CHECK on `jobs.state`.
 *
 * - Submitted: accepted, waiting to be claimed (maybe after a retry delay).
 * - Running:   claimed by a worker that holds a lease on it.
 * - Success:   finished; results are in Operation. Final.
 * - Failed:    finished with Code/Message (bad input, expired, out of attempts). Final.
 * - Pause:     waiting in a paused queue; becomes Submitted when it resumes.
 * - Cancel:    cancelled by the user. Final.
 */
export const JOB_STATES = Object.freeze(['Submitted', 'Running', 'Success', 'Failed', 'Pause', 'Cancel'] as const);
export type JobState = (typeof JOB_STATES)[number];

export const FINAL_STATES: ReadonlySet<JobState> = new Set(['Success', 'Failed', 'Cancel']);

/**
 * Every allowed transition. The store's `transitionJob` refuses anything else,
 * so a state change can only happen through it.
 */
export const TRANSITIONS: Readonly<Record<JobState, readonly JobState[]>> = Object.freeze({
  // claimed; queue paused; cancelled; expired before it started
  Submitted: ['Running', 'Pause', 'Cancel', 'Failed'],
  // done; failed; cancelled while running; lease lost or retry → back in the queue
  Running: ['Success', 'Failed', 'Cancel', 'Submitted'],
  // queue resumed; cancelled; expired while paused
  Pause: ['Submitted', 'Cancel', 'Failed'],
  Success: [],
  // retried by hand as one more attempt of the same job (the console's Retry, src/engine/retry-job.ts)
  Failed: ['Submitted'],
  Cancel: [],
});

export function isJobState(value: string): value is JobState {
  return (JOB_STATES as readonly string[]).includes(value);
}

export function canTransition(from: JobState, to: JobState): boolean {
  return TRANSITIONS[from].includes(to);
}

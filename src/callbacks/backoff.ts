/*
 * When to try a failed callback again.
 *
 * Exponential backoff with "full jitter" (AWS Architecture Blog, "Exponential
 * Backoff And Jitter", 2015): the n-th retry waits a uniformly random time in
 * [0, min(cap, base * 2^(n-1))], floored at 1 s. Jitter matters here because
 * failures come in herds: a receiver that was down for ten minutes has every
 * job that finished meanwhile waiting on it, and un-jittered retries would all
 * arrive in the same second when it comes back. Full jitter spreads them best
 * for the least total work; decorrelated jitter would need the previous delay
 * stored per delivery and behaves about the same.
 *
 * Numbers (BASE 1 s, doubling, CAP 30 min):
 *
 *   after attempt   1    2    3    4     5     6     7      8      9     10     11     12+
 *   ceiling         1s   2s   4s   8s    16s   32s   64s    128s   256s  512s   1024s  30 min
 *
 * The ceilings of attempts 1–11 add up to 34 min, so the first eleven retries
 * take about 17 min on average, and from then on a receiver is tried roughly
 * every 15 min (at most every 30). Over the default 24 h window
 * (MEDIAJOBS_CALLBACK_RETRY_FOR) that is about 100 attempts; `nextAttemptAt`
 * puts a last attempt at the end of the window and then gives up.
 */

/** The smallest wait, and the scale of the first retry's ceiling. */
export const RETRY_BASE_MS = 1000;
/** No wait is longer than this, so a receiver that comes back is reached within 30 min. */
export const RETRY_CAP_MS = 30 * 60 * 1000;

/**
 * The wait before the next attempt, after `attempt` attempts have failed
 * (1 after the first failure). `random` returns [0, 1), like `Math.random`;
 * tests pass a fixed one.
 *
 * @example
 * nextRetryDelayMs(1, () => 0.5)  // 1000 (the floor)
 * nextRetryDelayMs(5, () => 0.5)  // 8000 (half of the 16 s ceiling)
 * nextRetryDelayMs(40, () => 0.5) // 900000 (half of the 30 min cap)
 */
export function nextRetryDelayMs(attempt: number, random: () => number = Math.random): number {
  const n = Number.isFinite(attempt) && attempt >= 1 ? Math.floor(attempt) : 1;
  // 2 ** 1e6 is Infinity, which min() turns into the cap: no overflow to guard.
  const ceiling = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** (n - 1));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.max(RETRY_BASE_MS, Math.floor(r * ceiling));
}

/**
 * When to make the next attempt of a delivery whose first attempt was at
 * `firstAttemptAt`, or null to give up: the window `retryForMs` has passed.
 * A wait that would overshoot the window is cut short, so the last attempt
 * happens at the end of the window rather than not at all.
 */
export function nextAttemptAt(options: {
  readonly attempt: number;
  readonly firstAttemptAt: Date;
  readonly retryForMs: number;
  readonly now?: Date;
  readonly random?: () => number;
}): Date | null {
  const now = (options.now ?? new Date()).getTime();
  const giveUpAt = options.firstAttemptAt.getTime() + options.retryForMs;
  if (now >= giveUpAt) return null;
  return new Date(Math.min(now + nextRetryDelayMs(options.attempt, options.random), giveUpAt));
}

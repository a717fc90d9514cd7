import type { Logger } from 'pino';
import { isRetryableDbError } from '../engine/db-retry.js';

/**
 * SQLSTATEs that are retryable but say nothing about the database being
 * reachable: a serialization failure or a deadlock is a conflict between
 * two transactions, answered 503 like an outage but not one.
 */
const CONFLICT_SQLSTATES = new Set(['40001', '40P01']);

/** True when `err` means the database could not be reached (down, restarting, connection lost). */
export function isDatabaseUnreachable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return isRetryableDbError(err) && !(typeof code === 'string' && CONFLICT_SQLSTATES.has(code));
}

/**
 * Logs a database outage as the API sees it: one warning when the first
 * request is answered 503 ServiceUnavailable because the database cannot be
 * reached, and one when it answers again, with how long it was down and how
 * many requests were refused meanwhile. Before, each refused request logged
 * an error with its full stack (101 lines for a 10 s outage under light load),
 * which buried the one fact that mattered.
 *
 * The end is found by probing the database once a second from the start of
 * the outage, not by waiting for the next request that happens to succeed: a
 * request that needs no database would end it too early, and with no
 * traffic it would never end.
 */
export class DatabaseOutageLog {
  private outage: { readonly since: number; refused: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly probe: () => Promise<unknown>,
    private readonly logger: Logger,
    private readonly probeIntervalMs = 1000,
  ) {}

  /** Counts one request answered 503 because of `err`; the first of an outage is logged. */
  refused(err: unknown): void {
    if (this.outage) {
      this.outage.refused++;
      return;
    }
    this.outage = { since: Date.now(), refused: 1 };
    this.logger.warn(
      { err: String((err as Error | null)?.message ?? err), code: (err as { code?: unknown } | null)?.code },
      'database unreachable: requests that need it are answered 503 ServiceUnavailable until it is back',
    );
    this.scheduleProbe();
  }

  /** Stops probing (the server is stopping); an outage still open is not logged as ended. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private scheduleProbe(): void {
    if (this.stopped) return;
    // Unref'd: a pending probe must not keep a process alive that is otherwise done.
    this.timer = setTimeout(() => void this.runProbe(), this.probeIntervalMs).unref();
  }

  private async runProbe(): Promise<void> {
    try {
      await this.probe();
    } catch {
      this.scheduleProbe();
      return;
    }
    const outage = this.outage;
    if (!outage || this.stopped) return;
    this.outage = undefined;
    this.logger.warn(
      { downMs: Date.now() - outage.since, refusedRequests: outage.refused },
      `database reachable again; ${outage.refused} request(s) were answered 503 ServiceUnavailable while it was not`,
    );
  }
}

/**
 * Postgres errors that mean "try again", not "this is wrong": serialization
 * failures and deadlocks, and the server restarting or the connection
 * dropping. Anything else is thrown at once.
 */
const RETRYABLE_SQLSTATES = new Set(['40001', '40P01', '57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006']);
const RETRYABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND']);
const RETRYABLE_MESSAGES = /Connection terminated|connection timeout|Client has encountered a connection error|timeout exceeded when trying to connect|Query read timeout|the database system is (starting up|shutting down)/i;

export function isRetryableDbError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  return RETRYABLE_SQLSTATES.has(code) || RETRYABLE_NODE_CODES.has(code) || RETRYABLE_MESSAGES.test(String(e?.message ?? ''));
}

/**
 * Runs `operation`, retrying retryable database errors with capped backoff
 * for up to `giveUpAfterMs`. Used where giving up would lose a fact that must
 * be recorded, such as a job's outcome after minutes of work.
 */
export async function withDbRetry<T>(operation: () => Promise<T>, giveUpAfterMs = 5 * 60_000, onRetry?: (err: unknown) => void): Promise<T> {
  const deadline = Date.now() + giveUpAfterMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await operation();
    } catch (err) {
      if (!isRetryableDbError(err) || Date.now() > deadline) throw err;
      onRetry?.(err);
      await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 50 * 2 ** attempt)));
    }
  }
}

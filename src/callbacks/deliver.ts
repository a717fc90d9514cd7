import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import { CallbackUrlRejected, hostOf, resolveCallbackTarget, type CallbackTarget, type HostResolver, type ResolvedAddress } from './url-policy.js';

/*
 * One POST of one callback body, and nothing else: no retries, no database.
 * The outbox sender calls this per attempt and decides what a result means.
 *
 * Choices, each against a way a hostile or broken receiver could hurt us:
 * - The URL is checked (`url-policy.ts`) and the socket is opened to exactly
 *   the addresses that were checked, through a `lookup` that answers from the
 *   check instead of asking DNS again. Without the pin, a name with a short
 *   TTL could answer "public" to the check and "127.0.0.1" to the connect
 *   (DNS rebinding). TLS still verifies the certificate against the host name.
 * - Redirects are not followed: a 3xx is a failed attempt like any other
 *   non-2xx. Following one would POST the job details to a URL nobody
 *   submitted, possibly a private one, and CI documents no redirect handling.
 * - One deadline (`timeoutMs`) covers DNS, connect, TLS, sending and the
 *   response headers, so a slow-drip receiver cannot hold a sender slot for
 *   longer. Node's socket `timeout` would only bound idle gaps.
 * - At most `maxResponseBytes` of the response body is read, then the socket
 *   is destroyed; receivers are told to answer 2xx with an empty body, and a
 *   gigabyte reply must not be buffered. No keep-alive (`agent: false`): each
 *   attempt is its own connection, pinned to its own checked addresses.
 */

/** Sent on every callback, so receivers can tell our requests apart in their logs. */
export const CALLBACK_USER_AGENT = 'mediajobs-callback/1.0';

/** Response bytes read by default; enough for an error page's first lines. */
export const DEFAULT_MAX_RESPONSE_BYTES = 4096;

/** Caller headers that would contradict the request we build, and are ignored. */
const RESERVED_HEADERS = new Set(['host', 'content-length', 'content-type', 'transfer-encoding', 'connection']);

/** One attempt's input: where, what, and the limits that protect the sender. */
export interface DeliveryRequest {
  readonly url: string;
  readonly body: string;
  readonly contentType: string;
  /** Extra headers, e.g. the signature headers from `signature.ts`. Host, Content-Length and the like are ignored. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Deadline for the whole attempt, from DNS lookup to response headers. Must be > 0. */
  readonly timeoutMs: number;
  readonly allowPrivateAddresses: boolean;
  readonly maxResponseBytes?: number;
  /** Host name resolver; defaults to the system's. For tests and custom DNS. */
  readonly resolve?: HostResolver;
}

/** What one attempt came to; the sender stores it and decides on a retry. */
export interface DeliveryAttemptResult {
  /** True for a 2xx answer: the receiver has the notification. */
  readonly ok: boolean;
  /** The HTTP status, when a response arrived. */
  readonly status?: number;
  /** From the start of the attempt to its outcome, DNS included. */
  readonly latencyMs: number;
  /**
   * Why it was not ok: `timeout`, `HTTP 500`, `HTTP 302 (redirects are not
   * followed)`, `connect ECONNREFUSED 127.0.0.1:8080`, `rejected: …`.
   */
  readonly error?: string;
  /** The first `maxResponseBytes` of the response body as UTF-8, for the delivery log. */
  readonly responseBody?: string;
  /**
   * Set when the URL itself breaks the policy (scheme, credentials, port):
   * retrying the same URL cannot succeed, so the sender may give up at once.
   */
  readonly permanent?: true;
}

/** The attempt's deadline passed. Internal; surfaces as `error: 'timeout'`. */
class DeliveryTimeout extends Error {
  constructor() {
    super('timeout');
    this.name = 'DeliveryTimeout';
  }
}

interface Outcome {
  readonly ok: boolean;
  readonly status: number;
  readonly error?: string;
  readonly responseBody: string;
}

/**
 * POSTs `body` to `url` once and reports what happened. Never throws: every
 * failure, a refused URL included, comes back as `{ ok: false, error }`.
 *
 * @example
 * const result = await deliverOnce({
 *   url: job.callbackUrl, body, contentType, headers: signedHeaders,
 *   timeoutMs: config.callbacks.timeoutMs,
 *   allowPrivateAddresses: config.callbacks.allowPrivateAddresses,
 * });
 * if (!result.ok) scheduleRetry(result.error);
 */
export async function deliverOnce(request: DeliveryRequest): Promise<DeliveryAttemptResult> {
  const started = performance.now();
  const latencyMs = (): number => Math.round(performance.now() - started);
  const deadline = new AbortController();
  // setTimeout fires at once for anything above 2^31-1 ms (24.8 days).
  const timer = setTimeout(() => deadline.abort(), Math.min(request.timeoutMs, 2 ** 31 - 1));
  try {
    // dns.lookup cannot be cancelled; racing it only stops us waiting for it.
    const target = await beforeDeadline(
      resolveCallbackTarget(request.url, { allowPrivateAddresses: request.allowPrivateAddresses, resolve: request.resolve }),
      deadline.signal,
    );
    const outcome = await post(target, request, deadline.signal);
    return { ...outcome, latencyMs: latencyMs() };
  } catch (err) {
    return { ok: false, latencyMs: latencyMs(), ...describeFailure(err) };
  } finally {
    clearTimeout(timer);
  }
}

function describeFailure(err: unknown): { error: string; permanent?: true } {
  if (err instanceof DeliveryTimeout) return { error: 'timeout' };
  if (err instanceof CallbackUrlRejected) return { error: `rejected: ${err.message}`, ...(err.permanent ? { permanent: true } : {}) };
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const message = err.message.trim();
    return { error: code !== undefined && !message.includes(code) ? `${code}: ${message}` : message };
  }
  return { error: String(err) };
}

function beforeDeadline<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new DeliveryTimeout());
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function post(target: CallbackTarget, request: DeliveryRequest, signal: AbortSignal): Promise<Outcome> {
  const maxResponseBytes = request.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const body = Buffer.from(request.body, 'utf8');
  const { url } = target;

  return new Promise<Outcome>((resolve, reject) => {
    let settled = false;
    let status: number | undefined;
    const chunks: Buffer[] = [];
    let received = 0;

    const outcome = (): Outcome => {
      const responseBody = Buffer.concat(chunks).toString('utf8');
      const code = status ?? 0;
      if (code >= 200 && code < 300) return { ok: true, status: code, responseBody };
      const error = code >= 300 && code < 400 ? `HTTP ${code} (redirects are not followed)` : `HTTP ${code}`;
      return { ok: false, status: code, error, responseBody };
    };
    const finish = (settle: () => void): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      req.destroy();
      settle();
    };
    const finishWithResponse = (): void => finish(() => resolve(outcome()));
    // Once the status line is in, the receiver has answered: a body that
    // stalls past the deadline does not turn a 200 into a failure.
    const onAbort = (): void => (status === undefined ? finish(() => reject(new DeliveryTimeout())) : finishWithResponse());

    const client = url.protocol === 'https:' ? https : http;
    const req = client.request(
      {
        protocol: url.protocol,
        hostname: hostOf(url),
        port: url.port === '' ? undefined : Number(url.port),
        path: `${url.pathname}${url.search}`,
        method: 'POST',
        headers: requestHeaders(request, body.length),
        agent: false,
        lookup: pinnedLookup(target.addresses),
      },
      (res) => {
        status = res.statusCode;
        res.on('data', (chunk: Buffer) => {
          const room = maxResponseBytes - received;
          chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
          received += Math.min(chunk.length, room);
          if (received >= maxResponseBytes) finishWithResponse();
        });
        res.on('end', finishWithResponse);
        // A reset mid-body still leaves us the status; 'close' covers it.
        res.on('error', () => undefined);
        res.on('close', finishWithResponse);
        if (maxResponseBytes <= 0) finishWithResponse();
      },
    );
    req.on('error', (err) => finish(() => reject(err)));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    req.end(body);
  });
}

function requestHeaders(request: DeliveryRequest, contentLength: number): Record<string, string> {
  const headers: Record<string, string> = { 'User-Agent': CALLBACK_USER_AGENT };
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    const lower = name.toLowerCase();
    if (RESERVED_HEADERS.has(lower)) continue;
    if (lower === 'user-agent') delete headers['User-Agent'];
    headers[name] = value;
  }
  headers['Content-Type'] = request.contentType;
  headers['Content-Length'] = String(contentLength);
  return headers;
}

/**
 * A `lookup` that answers from the addresses the policy already checked.
 * Handles `all: true`, which `net` asks for when it races IPv4 and IPv6
 * (autoSelectFamily, on by default since Node 20).
 */
function pinnedLookup(addresses: readonly ResolvedAddress[]): LookupFunction {
  return (hostname, options, callback) => {
    const family = options.family === 4 || options.family === 'IPv4' ? 4 : options.family === 6 || options.family === 'IPv6' ? 6 : 0;
    const candidates = family === 0 ? addresses : addresses.filter((a) => a.family === family);
    // net expects the answer asynchronously, as dns.lookup gives it.
    process.nextTick(() => {
      const first = candidates[0];
      if (first === undefined) {
        const err: NodeJS.ErrnoException = new Error(`No checked IPv${family} address for ${hostname}.`);
        err.code = 'ENOTFOUND';
        callback(err, '', undefined);
      } else if (options.all) {
        callback(null, candidates.map(({ address, family: f }) => ({ address, family: f })));
      } else {
        callback(null, first.address, first.family);
      }
    });
  };
}

/**
 * Test-side COS signer that reproduces cos-nodejs-sdk-v5 3.x byte for byte
 * (`sdk/util.js` `getAuth` plus the header filtering of `getAuthorizationAsync`
 * in `sdk/base.js`; `shared/sdk-wire-format.md` §3), and corrupters that break
 * one thing at a time. Written independently of `src/auth/cos-signature.ts`
 * on purpose, so the two check each other; the SDK parity tests check this one.
 */
import { createHash, createHmac } from 'node:crypto';
import type { SignedRequest } from '../../src/auth/cos-signature.js';

/** Headers the Node SDK signs besides any `x-cos-*` / `x-ci-*`. */
const SDK_SIGNED_HEADERS = new Set([
  'cache-control',
  'content-disposition',
  'content-encoding',
  'content-length',
  'content-md5',
  'content-type',
  'expect',
  'expires',
  'host',
  'if-match',
  'if-modified-since',
  'if-none-match',
  'if-unmodified-since',
  'origin',
  'range',
  'transfer-encoding',
  'pic-operations',
]);

type Values = Record<string, string | number | undefined>;

export interface SignRequestOptions {
  method: string;
  /** The signed pathname: the SDK's `'/' + Key`, not encoded (`/jobs/a,b`). */
  path: string;
  /** The SDK's `Query` option (these are the signed parameters). */
  query?: Values;
  /** The SDK's `Headers` option, any case; unsignable and empty-valued ones are skipped as the SDK does. */
  headers?: Values;
  secretId: string;
  secretKey: string;
  /** Unix seconds; default the real clock. The window starts 1 s earlier, as in the SDK. */
  now?: number;
  /** Window length in seconds; default 900, as in the SDK. */
  expiresIn?: number;
  /** Explicit `q-sign-time`/`q-key-time` (`start;end`), overriding `now`/`expiresIn`. */
  keyTime?: string;
}

/** The SDK's `camSafeUrlEncode`. */
function camSafeUrlEncode(s: string): string {
  return encodeURIComponent(s).replace(/!/g, '%21').replace(/'/g, '%27').replace(/\(/g, '%28').replace(/\)/g, '%29').replace(/\*/g, '%2A');
}

/** The SDK's `getObjectKeys`: sorted by the lower-cased name (raw or encoded). */
function sdkSortedKeys(obj: Values, forKey: boolean): string[] {
  const list = Object.keys(obj).map((k) => (forKey ? camSafeUrlEncode(k).toLowerCase() : k));
  return list.sort((a, b) => {
    const la = a.toLowerCase();
    const lb = b.toLowerCase();
    return la === lb ? 0 : la > lb ? 1 : -1;
  });
}

/** The SDK's `obj2str(obj, true)`. */
function sdkObj2str(obj: Values): string {
  return sdkSortedKeys(obj, false)
    .map((key) => {
      const value = obj[key] === undefined || obj[key] === null ? '' : String(obj[key]);
      return `${camSafeUrlEncode(key).toLowerCase()}=${camSafeUrlEncode(value)}`;
    })
    .join('&');
}

/** Returns the `Authorization` header value cos-nodejs-sdk-v5 would send. */
export function signRequest(opts: SignRequestOptions): string {
  const headers: Values = {};
  for (const [name, value] of Object.entries(opts.headers ?? {})) {
    if (value === '' || value === undefined) continue; // getAuthorizationAsync drops empty values
    const lower = name.toLowerCase();
    if (lower.includes('x-cos-') || lower.includes('x-ci-') || SDK_SIGNED_HEADERS.has(lower)) headers[name] = value;
  }
  const query = opts.query ?? {};
  const start = Math.floor(opts.now ?? Date.now() / 1000) - 1;
  const keyTime = opts.keyTime ?? `${start};${start + (opts.expiresIn ?? 900)}`;

  const signKey = createHmac('sha1', opts.secretKey).update(keyTime).digest('hex');
  const formatString = [opts.method.toLowerCase(), opts.path, sdkObj2str(query), sdkObj2str(headers), ''].join('\n');
  const digest = createHash('sha1').update(Buffer.from(formatString, 'utf8')).digest('hex');
  const stringToSign = ['sha1', keyTime, digest, ''].join('\n');
  const signature = createHmac('sha1', signKey).update(stringToSign).digest('hex');
  return [
    'q-sign-algorithm=sha1',
    `q-ak=${opts.secretId}`,
    `q-sign-time=${keyTime}`,
    `q-key-time=${keyTime}`,
    `q-header-list=${sdkSortedKeys(headers, true).join(';').toLowerCase()}`,
    `q-url-param-list=${sdkSortedKeys(query, true).join(';').toLowerCase()}`,
    `q-signature=${signature}`,
  ].join('&');
}

export interface SdkRequestOptions extends SignRequestOptions {
  /** Path on the wire; default `path` with each segment percent-encoded. */
  wirePath?: string;
  /** Headers sent but not given to the signer (User-Agent, Connection…). */
  unsignedHeaders?: Record<string, string>;
}

/**
 * The request as the server sees it: query in insertion order encoded like the
 * SDK's `qs` (`k=` for empty values), lower-case headers, and the
 * Authorization from {@link signRequest}.
 */
export function sdkRequest(opts: SdkRequestOptions): SignedRequest {
  const headers: SignedRequest['headers'] = {};
  for (const [name, value] of Object.entries({ ...opts.unsignedHeaders, ...opts.headers })) {
    if (value !== undefined) headers[name.toLowerCase()] = String(value);
  }
  headers['authorization'] = signRequest(opts);
  const query = Object.entries(opts.query ?? {})
    .map(([k, v]) => `${camSafeUrlEncode(k)}=${camSafeUrlEncode(v === undefined ? '' : String(v))}`)
    .join('&');
  return {
    method: opts.method.toUpperCase(),
    path: opts.wirePath ?? opts.path.split('/').map(camSafeUrlEncode).join('/'),
    query,
    headers,
  };
}

// ---- corrupters: each breaks exactly one thing ----

/** Flips the last hex digit of q-signature. */
export function flipSignature(authorization: string): string {
  return authorization.replace(/(q-signature=[0-9a-f]{39})([0-9a-f])/, (_, head: string, last: string) => head + (last === '0' ? '1' : '0'));
}

/** Replaces one Authorization field's value (or removes the field when `value` is undefined). */
export function replaceAuthField(authorization: string, field: string, value: string | undefined): string {
  return authorization
    .split('&')
    .flatMap((part) => (part.startsWith(`${field}=`) ? (value === undefined ? [] : [`${field}=${value}`]) : [part]))
    .join('&');
}

/** Sets a header (lower-cased name), or removes it when `value` is undefined. Returns a copy. */
export function withHeader(req: SignedRequest, name: string, value: string | undefined): SignedRequest {
  const headers = { ...req.headers };
  if (value === undefined) delete headers[name.toLowerCase()];
  else headers[name.toLowerCase()] = value;
  return { ...req, headers };
}

/** Replaces the Authorization header via `edit`. Returns a copy. */
export function withAuthorization(req: SignedRequest, edit: (authorization: string) => string): SignedRequest {
  return withHeader(req, 'authorization', edit(String(req.headers['authorization'])));
}

/**
 * The Query the CI docs' DescribeMediaJobs example passes to the Node SDK
 * (shared/sdk-wire-format.md §2), with an empty workflowId that is still signed.
 */
export function sdkListJobsQuery(queueId: string): Record<string, string | number> {
  return { queueId, tag: 'MediaInfo', size: 10, states: 'All', orderByTime: 'Desc', startCreationTime: '2001-01-01T00:00:00+0800', workflowId: '' };
}

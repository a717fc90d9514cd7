/**
 * COS request signature ("q-sign" v5, HMAC-SHA1), server side: parse, then
 * canonicalize, then constant-time compare (`shared/ci-api.md` §8).
 *
 * The client sends (one line, `&`-separated; the same seven fields may instead
 * travel as query parameters of a presigned URL):
 *
 *     Authorization: q-sign-algorithm=sha1
 *                    &q-ak=<SecretId>
 *                    &q-sign-time=<start>;<end>
 *                    &q-key-time=<start>;<end>
 *                    &q-header-list=<h1>;<h2>…      lower(enc(name)), sorted
 *                    &q-url-param-list=<p1>;<p2>…   lower(enc(name)), sorted
 *                    &q-signature=<40 lower-case hex>
 *
 * and signed, in the spec's own steps:
 *
 *     SignKey        = hex(HMAC-SHA1(SecretKey, KeyTime))
 *     HttpParameters = lower(enc(k1))=enc(v1)&lower(enc(k2))=enc(v2)…   listed params, sorted by key
 *     HttpHeaders    = lower(enc(h1))=enc(v1)&…                          listed headers, sorted by key
 *     HttpString     = lower(Method) \n UriPathname \n HttpParameters \n HttpHeaders \n
 *     StringToSign   = sha1 \n SignTime \n hex(SHA1(HttpString)) \n
 *     Signature      = hex(HMAC-SHA1(SignKey as ASCII hex, StringToSign))
 *
 * `enc()` is RFC 3986 percent-encoding that leaves only `A-Z a-z 0-9 - _ . ~`
 * (upper-case hex; keys are lower-cased after encoding, values keep case).
 *
 * What the server may not assume, and how this file copes:
 * - The lists are the client's choice (Go, Python and Node sign different
 *   header sets), so they are trusted as sent, never recomputed. A listed
 *   header or parameter the request does not carry is refused
 *   (`SignatureDoesNotMatch`), not read as empty: otherwise a signature for
 *   `PUT /jobs/<id>?cancel=` would also authorise `PUT /jobs/<id>`, a
 *   different operation. A header or parameter sent with an empty value is
 *   fine (`workflowId=`, `?cancel`).
 * - UriPathname is the percent-decoded path for Go and Python (Python sends
 *   `/jobs/a%2Cb` but signs `/jobs/a,b`), but the Node SDK signs `'/' + Key`
 *   as given, which is the still-encoded path when the caller left Key out.
 *   Both are tried.
 * - Python signs the host without its port while sending `Host: host:port`;
 *   when the host carries a port, the port-less host is tried as well.
 * Trying a few canonical forms does not weaken the check: each is still a
 * full HMAC over the method, path, listed parameters and headers.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { CiError } from '../errors.js';

/** The parts of an HTTP request the signature covers, as the server received them. */
export interface SignedRequest {
  /** HTTP method, any case. */
  method: string;
  /** Raw path from the request URL, still percent-encoded (e.g. Koa's `ctx.path` before decoding, `/jobs/a%2Cb`). */
  path: string;
  /** Raw query string without the leading `?` (`''` when there is none). */
  query: string;
  /** Node's header object: lower-case names. */
  headers: Record<string, string | string[] | undefined>;
}

/** The seven fields of a COS Authorization, parsed. */
export interface CosAuthorization {
  algorithm: 'sha1';
  /** `q-ak`: the SecretId that signed the request. */
  secretId: string;
  /** `q-sign-time` exactly as sent (`<start>;<end>`): it is part of StringToSign. */
  signTime: string;
  signStart: number;
  signEnd: number;
  /** `q-key-time` exactly as sent: it is what SignKey is derived from. */
  keyTime: string;
  keyStart: number;
  keyEnd: number;
  /** `q-header-list`, split on `;`, lower-cased. */
  headerList: string[];
  /** `q-url-param-list`, split on `;`, lower-cased. */
  urlParamList: string[];
  /** `q-signature`, lower-case hex. */
  signature: string;
}

export interface VerifyOptions {
  /** Seconds of clock difference tolerated at both ends of q-sign-time/q-key-time. Default 60. */
  maxSkewSeconds?: number;
  /**
   * The longest q-sign-time or q-key-time span accepted, in seconds
   * (`MEDIAJOBS_MAX_SIGNATURE_AGE`). Default 30 days.
   */
  maxSignatureAgeSeconds?: number;
}

/** Names of the Authorization fields, which are also the presigned-URL query parameters. */
export const AUTHORIZATION_FIELDS = [
  'q-sign-algorithm',
  'q-ak',
  'q-sign-time',
  'q-key-time',
  'q-header-list',
  'q-url-param-list',
  'q-signature',
] as const;

const AUTHORIZATION_FIELD_SET: ReadonlySet<string> = new Set(AUTHORIZATION_FIELDS);

/**
 * The exact code and message the Node SDK recognises as clock skew: on
 * `AccessDenied` + `Request has expired` (and a `Date` header ≥30 s off) it
 * corrects its clock and retries. Do not reword.
 */
export const REQUEST_EXPIRED_MESSAGE = 'Request has expired';

const DEFAULT_MAX_SKEW_SECONDS = 60;
/**
 * SDKs sign for 15 min (Node), 1 h (Go) or ~3 h (Python); a presigned URL
 * may be meant to last days. A span of years (`0;999999999999`) is a key
 * that never expires, so a leaked URL or header would work forever.
 */
export const DEFAULT_MAX_SIGNATURE_AGE_SECONDS = 30 * 86_400;
/**
 * What a SecretId may be: printable ASCII, as Tencent Cloud's (`AKID…`) and
 * ours are. Anything else (a NUL from `q-ak=%00` in a presigned URL, which
 * PostgreSQL refuses as text) cannot name a key, so it is refused here,
 * before the lookup.
 */
const SECRET_ID = /^[\x21-\x7e]{1,256}$/;
const TIME_RANGE = /^(\d{1,12});(\d{1,12})$/;
const HEX_SIGNATURE = /^[0-9a-fA-F]{40}$/;

/**
 * `enc()` of the spec: RFC 3986 percent-encoding, leaving only unreserved
 * characters, upper-case hex. Same as the SDKs' `camSafeUrlEncode` and
 * Python's `quote(s, '-_.~')`.
 *
 * @example cosEncode("a b/c*") === 'a%20b%2Fc%2A'
 */
export function cosEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/**
 * Step 1: splits an Authorization header into its fields.
 *
 * Throws `AccessDenied` with a message naming the problem when the header is
 * empty, a field is missing, repeated or malformed, or the algorithm is not
 * `sha1`. Unknown extra fields are ignored.
 */
export function parseAuthorization(header: string): CosAuthorization {
  if (typeof header !== 'string' || header.trim() === '') {
    throw new CiError('AccessDenied', 'Missing Authorization: sign the request with q-sign-algorithm=sha1.');
  }
  const fields = new Map<string, string>();
  for (const part of header.trim().split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    if (!AUTHORIZATION_FIELD_SET.has(name)) continue;
    if (fields.has(name)) throw new CiError('AccessDenied', `Malformed Authorization: ${name} is given twice.`);
    fields.set(name, eq < 0 ? '' : part.slice(eq + 1));
  }
  return parseAuthorizationFields((name) => fields.get(name));
}

/**
 * Step 1 for presigned URLs: reads the Authorization fields from the query
 * string. Returns `undefined` when the query carries no `q-sign-algorithm`.
 */
export function parsePresignedAuthorization(query: string): CosAuthorization | undefined {
  const params = new URLSearchParams(query);
  if (!params.has('q-sign-algorithm')) return undefined;
  for (const name of AUTHORIZATION_FIELDS) {
    if (params.getAll(name).length > 1) throw new CiError('AccessDenied', `Malformed presigned URL: ${name} is given twice.`);
  }
  return parseAuthorizationFields((name) => params.get(name) ?? undefined);
}

function parseAuthorizationFields(get: (name: string) => string | undefined): CosAuthorization {
  const required = (name: string): string => {
    const value = get(name);
    if (value === undefined) throw new CiError('AccessDenied', `Malformed Authorization: ${name} is missing.`);
    return value;
  };
  const algorithm = required('q-sign-algorithm');
  if (algorithm !== 'sha1') {
    throw new CiError('AccessDenied', `Unsupported q-sign-algorithm "${algorithm.slice(0, 32)}": only sha1 is supported.`);
  }
  const secretId = required('q-ak');
  if (secretId === '') throw new CiError('AccessDenied', 'Malformed Authorization: q-ak is empty.');
  if (!SECRET_ID.test(secretId)) throw new CiError('AccessDenied', 'Malformed Authorization: q-ak must be 1 to 256 printable ASCII characters.');
  const signTime = required('q-sign-time');
  const [signStart, signEnd] = parseTimeRange('q-sign-time', signTime);
  const keyTime = required('q-key-time');
  const [keyStart, keyEnd] = parseTimeRange('q-key-time', keyTime);
  const headerList = parseNameList(required('q-header-list'));
  const urlParamList = parseNameList(required('q-url-param-list'));
  const signature = required('q-signature');
  if (!HEX_SIGNATURE.test(signature)) {
    throw new CiError('AccessDenied', 'Malformed Authorization: q-signature must be 40 hexadecimal digits.');
  }
  return {
    algorithm: 'sha1',
    secretId,
    signTime,
    signStart,
    signEnd,
    keyTime,
    keyStart,
    keyEnd,
    headerList,
    urlParamList,
    signature: signature.toLowerCase(),
  };
}

function parseTimeRange(name: string, value: string): [number, number] {
  const m = TIME_RANGE.exec(value);
  if (!m) throw new CiError('AccessDenied', `Malformed Authorization: ${name} must be "<start>;<end>" in Unix seconds.`);
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (start > end) throw new CiError('AccessDenied', `Malformed Authorization: ${name} ends before it starts.`);
  return [start, end];
}

function parseNameList(value: string): string[] {
  return value === '' ? [] : value.split(';').filter((n) => n !== '').map((n) => n.toLowerCase());
}

/**
 * Splits a raw query string into decoded `[name, value]` pairs, in order,
 * with form semantics (`+` is a space, `?cancel` gives `['cancel', '']`).
 * Go and Python put spaces on the wire as `+`; the Node SDK uses `%20`.
 */
export function parseQuery(query: string): Array<[string, string]> {
  return [...new URLSearchParams(query)];
}

/**
 * Step 5: HttpParameters. For each listed name (already `lower(enc(name))`)
 * takes every matching request parameter, `lower(enc(name))=enc(value)`,
 * sorted by key then value, joined with `&`. Parameters not listed are
 * ignored (COS tolerates unsigned extras; the Node SDK sends the query of a
 * `Url` unsigned). Throws `SignatureDoesNotMatch` when a listed parameter is
 * absent.
 */
export function buildHttpParameters(params: Iterable<readonly [string, string]>, urlParamList: readonly string[]): string {
  return buildSignedPairs(params, urlParamList, 'parameter');
}

/**
 * Step 6: HttpHeaders, built like HttpParameters from the listed headers and
 * the request's values (a repeated header's values are joined with `,`).
 * Throws `SignatureDoesNotMatch` when a listed header is absent.
 */
export function buildHttpHeaders(headers: SignedRequest['headers'], headerList: readonly string[]): string {
  const pairs: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    pairs.push([name, Array.isArray(value) ? value.join(',') : value]);
  }
  return buildSignedPairs(pairs, headerList, 'header');
}

function buildSignedPairs(pairs: Iterable<readonly [string, string]>, list: readonly string[], what: 'header' | 'parameter'): string {
  const listed = new Map<string, string[]>(list.map((name) => [name, []]));
  for (const [name, value] of pairs) {
    const values = listed.get(cosEncode(name).toLowerCase());
    values?.push(cosEncode(value));
  }
  const entries: Array<[string, string]> = [];
  for (const [key, values] of listed) {
    if (values.length === 0) {
      throw new CiError('SignatureDoesNotMatch', `The request lacks the signed ${what} "${key.slice(0, 64)}".`);
    }
    for (const value of values) entries.push([key, value]);
  }
  entries.sort(([ak, av], [bk, bv]) => compareStrings(ak, bk) || compareStrings(av, bv));
  return entries.map(([k, v]) => `${k}=${v}`).join('&');
}

/** Code-unit order, as the SDKs sort (not `localeCompare`). */
function compareStrings(a: string, b: string): number {
  return a === b ? 0 : a < b ? -1 : 1;
}

/** Step 7: `lower(method) \n UriPathname \n HttpParameters \n HttpHeaders \n`. */
export function buildHttpString(method: string, uriPathname: string, httpParameters: string, httpHeaders: string): string {
  return `${method.toLowerCase()}\n${uriPathname}\n${httpParameters}\n${httpHeaders}\n`;
}

/** Step 8: `sha1 \n SignTime \n hex(SHA1(HttpString)) \n`. */
export function buildStringToSign(signTime: string, httpString: string): string {
  const digest = createHash('sha1').update(httpString, 'utf8').digest('hex');
  return `sha1\n${signTime}\n${digest}\n`;
}

/** Step 4: `hex(HMAC-SHA1(SecretKey, KeyTime))`. */
export function buildSignKey(secretKey: string, keyTime: string): string {
  return createHmac('sha1', secretKey).update(keyTime, 'utf8').digest('hex');
}

/** Step 9: `hex(HMAC-SHA1(SignKey, StringToSign))`; the key is the hex string's ASCII bytes. */
export function buildSignature(signKey: string, stringToSign: string): string {
  return createHmac('sha1', signKey).update(stringToSign, 'utf8').digest('hex');
}

/**
 * Authenticates a request: parse, check the time window, look up the
 * SecretKey, then compare the signature over each acceptable canonical form
 * (decoded/raw path × host as sent/without port). Returns the SecretId.
 *
 * The Authorization header is used when present; otherwise the fields are
 * read from the query string (presigned URL), and those seven parameters are
 * then left out of HttpParameters.
 *
 * Throws `CiError`:
 * - `AccessDenied`: no or malformed Authorization (a q-ak that is not
 *   printable ASCII among them); a q-sign-time or q-key-time spanning more
 *   than `maxSignatureAgeSeconds`; or, with the message
 *   exactly `Request has expired`, `nowSeconds` outside q-sign-time or
 *   q-key-time (± `maxSkewSeconds`) — also for a window in the future, since
 *   that is the answer the Node SDK's clock-skew retry understands;
 * - `InvalidAccessKeyId`: `lookupSecret` does not know q-ak;
 * - `SignatureDoesNotMatch`: no canonical form matches.
 *
 * @example
 * const secretId = await verifyCosSignature(
 *   { method: ctx.method, path: ctx.path, query: ctx.querystring, headers: ctx.headers },
 *   (id) => credentials.secretKeyFor(id),
 *   Math.floor(Date.now() / 1000),
 * );
 */
export async function verifyCosSignature(
  req: SignedRequest,
  lookupSecret: (secretId: string) => Promise<string | undefined>,
  nowSeconds: number,
  options: VerifyOptions = {},
): Promise<string> {
  const header = req.headers['authorization'];
  if (Array.isArray(header)) throw new CiError('AccessDenied', 'Malformed Authorization: the header is given twice.');
  const presigned = header === undefined ? parsePresignedAuthorization(req.query) : undefined;
  const auth = presigned ?? parseAuthorization(header ?? '');

  const maxAge = options.maxSignatureAgeSeconds ?? DEFAULT_MAX_SIGNATURE_AGE_SECONDS;
  for (const [name, start, end] of [['q-sign-time', auth.signStart, auth.signEnd], ['q-key-time', auth.keyStart, auth.keyEnd]] as const) {
    if (end - start > maxAge) {
      throw new CiError('AccessDenied', `The ${name} spans ${end - start} s; this server accepts signatures valid for at most ${maxAge} s (MEDIAJOBS_MAX_SIGNATURE_AGE).`);
    }
  }
  const skew = options.maxSkewSeconds ?? DEFAULT_MAX_SKEW_SECONDS;
  const inWindow = (start: number, end: number) => nowSeconds >= start - skew && nowSeconds <= end + skew;
  if (!inWindow(auth.signStart, auth.signEnd) || !inWindow(auth.keyStart, auth.keyEnd)) {
    throw new CiError('AccessDenied', REQUEST_EXPIRED_MESSAGE);
  }

  const secretKey = await lookupSecret(auth.secretId);
  if (secretKey === undefined) throw new CiError('InvalidAccessKeyId');

  let params = parseQuery(req.query);
  if (presigned) params = params.filter(([name]) => !AUTHORIZATION_FIELD_SET.has(name));
  const httpParameters = buildHttpParameters(params, auth.urlParamList);

  const signKey = buildSignKey(secretKey, auth.keyTime);
  const expected = Buffer.from(auth.signature, 'utf8');
  for (const httpString of httpStringCandidates(req, auth, httpParameters)) {
    const actual = Buffer.from(buildSignature(signKey, buildStringToSign(auth.signTime, httpString)), 'utf8');
    if (timingSafeEqual(actual, expected)) return auth.secretId;
  }
  throw new CiError('SignatureDoesNotMatch');
}

/** The distinct HttpStrings a legitimate client may have signed for this request, most likely first. */
function httpStringCandidates(req: SignedRequest, auth: CosAuthorization, httpParameters: string): string[] {
  const rawPath = req.path === '' ? '/' : req.path;
  const paths = [rawPath];
  try {
    paths.unshift(decodeURIComponent(rawPath));
  } catch {
    // Not valid percent-encoded UTF-8: only the raw form can have been signed.
  }

  const headerSets = [buildHttpHeaders(req.headers, auth.headerList)];
  const host = req.headers['host'];
  if (auth.headerList.includes('host') && typeof host === 'string') {
    const hostname = hostWithoutPort(host);
    if (hostname !== undefined) headerSets.push(buildHttpHeaders({ ...req.headers, host: hostname }, auth.headerList));
  }

  const candidates = new Set<string>();
  for (const httpHeaders of headerSets) {
    for (const path of paths) candidates.add(buildHttpString(req.method, path, httpParameters, httpHeaders));
  }
  return [...candidates];
}

/**
 * The host as Python's `urlparse(url).hostname` gives it (what
 * cos-python-sdk-v5 signs): port removed, IPv6 brackets removed, lower case.
 * `undefined` when the host has no port.
 */
function hostWithoutPort(host: string): string | undefined {
  const m = /^(\[[^\]]*\]|[^:]*):\d+$/.exec(host);
  if (!m) return undefined;
  return m[1]!.replace(/^\[(.*)\]$/, '$1').toLowerCase();
}

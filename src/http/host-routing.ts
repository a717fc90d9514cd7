import { CiError } from '../errors.js';
import { BUCKET_NAME_PATTERN } from '../storage/object-key.js';
import { ROUTES } from './routes.js';

/**
 * Which API a request is for, from its Host and path (README, "Objects and
 * the CI API on one endpoint"):
 *
 * 1. Host `<bucket>-<appid>.cos.<region>.<domain>`: the object API, always;
 *    the path is the key (`/jobs` is the object `jobs`).
 * 2. Host `<bucket>-<appid>.ci.<region>.<domain>` (or `.pic.`): the CI API.
 * 3. Any other Host (`127.0.0.1:8080`, `media.example.com`): a path whose
 *    first segment is a CI path (`/jobs`, `/queue`, `/template`, …, see
 *    CI_PATH_SEGMENTS) is the CI API; a path whose first segment is a bucket
 *    name (`/<name>-<appid>/<key>`, path style) is that bucket's object;
 *    every other path is an object of the default bucket (the signing app's
 *    own bucket, else MEDIAJOBS_DEFAULT_BUCKET). One exception: a bare
 *    host's unsigned `GET /` (or HEAD) without a query is the console's
 *    front page; signed, or with `?prefix=…` or any query, it is GetBucket.
 *
 * So on a bare host an object named `jobs/…` or `queue` is shadowed by the CI
 * API, and a default-bucket key whose first segment looks like a bucket name
 * is read as path style: reach those through the cos Host or path style.
 */
export type ApiTarget =
  | { readonly api: 'ci' }
  | {
    readonly api: 'object';
    /** The bucket named by the Host or path; undefined: the default one, decided once the signer is known. */
    readonly bucket: string | undefined;
    readonly region: string | undefined;
    /** The decoded key; '' addresses the bucket itself. */
    readonly key: string;
    readonly style: 'virtual-host' | 'path' | 'default-bucket';
  };

const COS_HOST = /^([a-z0-9][a-z0-9-]{0,48}-\d{1,12})\.cos\.([a-z0-9-]{1,40})\.[^:]+(?::\d+)?$/i;
const CI_HOST = /^[a-z0-9][a-z0-9-]{0,48}-\d{1,12}\.(?:ci|pic)\.[a-z0-9-]{1,40}\.[^:]+(?::\d+)?$/i;

/**
 * First path segments that belong to the CI API on a bare host: those of
 * ROUTES, and CI's other endpoint families (answered by the CI API's 404 or
 * 405 until they exist), plus the task and admin APIs, which answer first.
 */
export const CI_PATH_SEGMENTS: ReadonlySet<string> = new Set([
  ...ROUTES.map((route) => route.path.split('/')[1]!),
  'jobs', 'queue', 'mediaqueue', 'template', 'pic_jobs', 'ai_jobs', 'asr_jobs', 'doc_jobs', 'file_jobs',
  'workflow', 'workflowexecution', 'inventorytriggerjob', 'mediainfo', 'callbacks', 'admin', 'api.php',
  // Not CI, but answered on the same bare host: the console and the monitoring endpoints.
  'console', 'metrics', 'healthz', 'readyz',
]);

/**
 * Decides the API of a request (see ApiTarget). `rawPath` is still
 * percent-encoded. `browserRoot`: a bare host's `GET /` with no query and no
 * signature, which is the console's front page rather than GetBucket.
 */
export function routeRequest(host: string | undefined, rawPath: string, browserRoot = false): ApiTarget {
  const cos = host ? COS_HOST.exec(host) : null;
  if (cos) return { api: 'object', bucket: cos[1]!.toLowerCase(), region: cos[2]!.toLowerCase(), key: decodeKey(rawPath.slice(1)), style: 'virtual-host' };
  if (host && CI_HOST.test(host)) return { api: 'ci' };
  if (browserRoot && rawPath === '/') return { api: 'ci' };
  const path = rawPath.slice(1);
  const slash = path.indexOf('/');
  const first = decodeKey(slash < 0 ? path : path.slice(0, slash));
  if (CI_PATH_SEGMENTS.has(first)) return { api: 'ci' };
  if (BUCKET_NAME_PATTERN.test(first)) {
    return { api: 'object', bucket: first, region: undefined, key: slash < 0 ? '' : decodeKey(path.slice(slash + 1)), style: 'path' };
  }
  return { api: 'object', bucket: undefined, region: undefined, key: decodeKey(path), style: 'default-bucket' };
}

/** A key from the path, percent-decoded; an escape that is not UTF-8 names no key. */
function decodeKey(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new CiError('InvalidURI', 'The path is not valid percent-encoded UTF-8.');
  }
}

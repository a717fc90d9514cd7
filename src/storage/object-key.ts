import { CiError } from '../errors.js';

const MAX_KEY_BYTES = 850;
/** What a file-system name may take (ext4, xfs, …): a longer segment could be stored nowhere. */
const MAX_SEGMENT_BYTES = 255;

/**
 * Checks that an object key names a file inside its bucket and nothing else.
 *
 * Refused, before any file-system call: `..` and `.` segments, absolute paths,
 * empty segments (`a//b`, trailing `/`), segments too long for a file name,
 * backslashes (a path separator on some systems), NUL and other control
 * characters. Everything else that COS allows, including non-ASCII names, is
 * kept as is.
 */
export function assertSafeObjectKey(key: string, what = 'Object'): string {
  if (typeof key !== 'string' || key.length === 0) throw new CiError('InvalidArgument', `${what} must not be empty.`);
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new CiError('InvalidArgument', `${what} is longer than ${MAX_KEY_BYTES} bytes.`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(key)) throw new CiError('InvalidArgument', `${what} contains a control character or a backslash.`);
  if (key.startsWith('/')) throw new CiError('InvalidArgument', `${what} must not start with "/".`);
  for (const segment of key.split('/')) {
    if (segment === '') throw new CiError('InvalidArgument', `${what} must not contain empty path segments.`);
    if (segment === '.' || segment === '..') throw new CiError('InvalidArgument', `${what} must not contain "." or ".." segments.`);
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) throw new CiError('InvalidArgument', `${what} has a path segment longer than ${MAX_SEGMENT_BYTES} bytes.`);
  }
  return key;
}

/** Bucket names are `<name>-<appid>` in lower case, as in COS. */
export const BUCKET_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,48}-\d{1,12}$/;

export function assertSafeBucket(bucket: string, what = 'Bucket'): string {
  if (!BUCKET_NAME_PATTERN.test(bucket)) {
    throw new CiError('InvalidArgument', `${what} must be of the form <name>-<appid> (lower-case letters, digits and "-").`);
  }
  return bucket;
}

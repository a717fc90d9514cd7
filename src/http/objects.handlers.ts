import type { Readable } from 'node:stream';
import { CiError } from '../errors.js';
import { assertSafeObjectKey } from '../storage/object-key.js';
import { ObjectNotFoundError } from '../storage/storage.js';
import { MAX_PUT_BYTES, type ByteRange, type ObjectInfo, type ObjectMetadata } from '../storage/object-storage.js';
import { buildCopyObjectResult } from '../xml/object-responses.js';
import type { AppContext } from './context.js';
import { writeXml } from './handler.js';
import { routeRequest } from './host-routing.js';
import { ObjectProcessing } from './object-processing.js';
import { requireBucket, type ObjectHandler, type ObjectRequest } from './object-request.js';

const MAX_KEY_BYTES = 850;
/** COS: the x-cos-meta-* headers of an object, names and values, at most 2 KB. */
const MAX_USER_META_BYTES = 2048;

/** The object's key, checked: at most 850 bytes (KeyTooLong), then the file-system rules (no `..`, NUL, absolute paths). */
export function objectKey(req: ObjectRequest): string {
  if (Buffer.byteLength(req.key) > MAX_KEY_BYTES) throw new CiError('KeyTooLong');
  return assertSafeObjectKey(req.key, 'The object key');
}

/** The metadata COS keeps from an upload's headers. */
export function metadataFromHeaders(ctx: AppContext): ObjectMetadata {
  const meta: Record<string, string> = {};
  let metaBytes = 0;
  for (const [name, value] of Object.entries(ctx.headers)) {
    if (!name.startsWith('x-cos-meta-') || value === undefined) continue;
    const text = Array.isArray(value) ? value.join(',') : value;
    const short = name.slice('x-cos-meta-'.length);
    metaBytes += Buffer.byteLength(short) + Buffer.byteLength(text);
    meta[short] = text;
  }
  if (metaBytes > MAX_USER_META_BYTES) throw new CiError('MetadataTooLarge');
  const header = (name: string) => ctx.get(name) || undefined;
  return {
    ...(header('content-type') ? { contentType: header('content-type') } : {}),
    ...(header('cache-control') ? { cacheControl: header('cache-control') } : {}),
    ...(header('content-disposition') ? { contentDisposition: header('content-disposition') } : {}),
    ...(header('content-encoding') ? { contentEncoding: header('content-encoding') } : {}),
    ...(header('expires') ? { expires: header('expires') } : {}),
    meta,
  };
}

/** Content-MD5 as 16 bytes; InvalidDigest when it is not base64 of 16 bytes. */
export function contentMd5(ctx: AppContext): Buffer | undefined {
  const value = ctx.get('content-md5');
  if (value === '') return undefined;
  const digest = Buffer.from(value, 'base64');
  if (digest.length !== 16 || digest.toString('base64') !== value) throw new CiError('InvalidDigest');
  return digest;
}

/** The declared body length: required (MissingContentLength) unless the body is chunked. */
export function contentLength(ctx: AppContext): number | undefined {
  const value = ctx.get('content-length');
  if (value === '') {
    if (ctx.get('transfer-encoding') === '') throw new CiError('MissingContentLength');
    return undefined;
  }
  const length = Number(value);
  if (length > MAX_PUT_BYTES) throw new CiError('EntityTooLarge', `A single upload may hold at most ${MAX_PUT_BYTES} bytes; use a multipart upload.`);
  return length;
}

/** PutObject: the body streamed to storage, MD5 checked on the way; answers the ETag. */
export const putObject: ObjectHandler = async (ctx, _deps, req) => {
  const key = objectKey(req);
  const metadata = metadataFromHeaders(ctx);
  const md5 = contentMd5(ctx);
  const length = contentLength(ctx);
  const picOperations = ctx.get('pic-operations') ? req.processing.parsePicOperations(ctx.get('pic-operations'), req, key) : undefined;
  await requireBucket(req, true);
  const info = await req.storage.putObject(req.bucket, key, {
    body: ctx.req, metadata, maxBytes: MAX_PUT_BYTES,
    ...(md5 ? { contentMd5: md5 } : {}), ...(length !== undefined ? { contentLength: length } : {}),
  });
  if (picOperations) return req.processing.runPicOperations(ctx, req, key, picOperations, info.etag);
  ctx.set('ETag', info.etag);
  emptyAnswer(ctx, 200);
};

/** An answer with no body at all (an empty 2xx body is what the SDKs expect; Koa would otherwise write "OK"). */
export function emptyAnswer(ctx: AppContext, status: number): void {
  ctx.status = status;
  if (status !== 204 && status !== 304) {
    ctx.body = '';
    ctx.remove('Content-Type');
  }
}

/** The headers GetObject and HeadObject answer with, then `response-*` overrides of a signed or presigned request. */
function writeObjectHeaders(ctx: AppContext, info: ObjectInfo): void {
  const m = info.metadata;
  ctx.set('ETag', info.etag);
  ctx.set('Last-Modified', info.lastModified.toUTCString());
  ctx.set('Accept-Ranges', 'bytes');
  ctx.set('Content-Type', m.contentType ?? 'application/octet-stream');
  if (m.cacheControl) ctx.set('Cache-Control', m.cacheControl);
  if (m.contentDisposition) ctx.set('Content-Disposition', m.contentDisposition);
  if (m.contentEncoding) ctx.set('Content-Encoding', m.contentEncoding);
  if (m.expires) ctx.set('Expires', m.expires);
  for (const [name, value] of Object.entries(m.meta)) ctx.set(`x-cos-meta-${name}`, value);
  ctx.set('x-cos-storage-class', 'STANDARD');
  for (const [param, header] of RESPONSE_OVERRIDES) {
    const value = ctx.query[param];
    if (typeof value === 'string' && value !== '') ctx.set(header, value);
  }
}

const RESPONSE_OVERRIDES: ReadonlyArray<readonly [string, string]> = [
  ['response-content-type', 'Content-Type'],
  ['response-content-language', 'Content-Language'],
  ['response-expires', 'Expires'],
  ['response-cache-control', 'Cache-Control'],
  ['response-content-disposition', 'Content-Disposition'],
  ['response-content-encoding', 'Content-Encoding'],
];

/**
 * If-Match / If-Unmodified-Since (412 PreconditionFailed) and If-None-Match /
 * If-Modified-Since (304), in RFC 7232 §6's order: a -Match header makes its
 * date partner ignored. Returns true when the answer is 304.
 */
export function checkPreconditions(ctx: AppContext, info: ObjectInfo): boolean {
  const etagMatches = (header: string) => header.split(',').map((s) => s.trim()).some((tag) => tag === '*' || tag.replace(/^W\//, '') === info.etag || `"${tag}"` === info.etag);
  const seconds = Math.floor(info.lastModified.getTime() / 1000);
  const date = (header: string) => {
    const ms = Date.parse(header);
    return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
  };
  const ifMatch = ctx.get('if-match');
  if (ifMatch !== '') {
    if (!etagMatches(ifMatch)) throw new CiError('PreconditionFailed');
  } else {
    const since = date(ctx.get('if-unmodified-since'));
    if (since !== undefined && seconds > since) throw new CiError('PreconditionFailed');
  }
  const ifNoneMatch = ctx.get('if-none-match');
  if (ifNoneMatch !== '') return etagMatches(ifNoneMatch);
  const since = date(ctx.get('if-modified-since'));
  return since !== undefined && seconds <= since;
}

/**
 * The single byte range of a `Range: bytes=…` header: `a-b`, `a-` or `-n`.
 * A header this cannot read, or several ranges, is ignored (the whole object
 * is sent, as COS and S3 do); a range starting past the end is InvalidRange.
 */
export function parseRange(header: string, size: number): ByteRange | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw new CiError('InvalidRange');
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return undefined;
  }
  if (start >= size) throw new CiError('InvalidRange');
  return { start, end };
}

/**
 * A missing object's answer: NoSuchBucket when its bucket is missing too.
 * The bucket is looked at only then, which saves a stat on every read.
 */
async function noSuchKey(req: ObjectRequest): Promise<never> {
  await requireBucket(req, false);
  throw new CiError('NoSuchKey');
}

/** GetObject: the bytes (or a Range of them) with the stored headers; 304/412 by the conditional headers. */
export const getObject: ObjectHandler = async (ctx, _deps, req) => {
  const key = objectKey(req);
  const processing = ObjectProcessing.wanted(ctx);
  if (processing) {
    const p = req.processing;
    const run = processing.kind === 'image' ? p.image(ctx, req, key, processing.rule)
      : processing.kind === 'videoinfo' ? p.videoInfo(ctx, req, key)
        : processing.kind === 'imageInfo' ? p.imageInfo(ctx, req, key)
          : processing.kind === 'exif' ? p.exif(ctx, req, key)
          : p.snapshot(ctx, req, key);
    return run.catch(async (err: unknown) => {
      if (err instanceof ObjectNotFoundError || (err instanceof CiError && err.code === 'NoSuchKey')) await noSuchKey(req);
      throw err;
    });
  }
  const opened = await req.storage.openObject(req.bucket, key).catch(async (err: unknown) => {
    if (err instanceof ObjectNotFoundError) return noSuchKey(req);
    throw err;
  });
  let body: Readable;
  let range: ByteRange | undefined;
  const { info } = opened;
  try {
    try {
      range = ctx.get('range') ? parseRange(ctx.get('range'), info.size) : undefined;
    } catch (err) {
      ctx.set('Content-Range', `bytes */${info.size}`);
      throw err;
    }
    if (checkPreconditions(ctx, info)) {
      writeObjectHeaders(ctx, info);
      emptyAnswer(ctx, 304);
      await opened.close();
      return;
    }
    body = await opened.read(range);
  } catch (err) {
    await opened.close();
    throw err;
  }
  writeObjectHeaders(ctx, info);
  ctx.status = range ? 206 : 200;
  if (range) ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${info.size}`);
  const type = ctx.response.get('Content-Type');
  ctx.body = body;
  // Koa sets a type of its own for a stream body; the object's is the one to send.
  ctx.set('Content-Type', String(type));
  ctx.length = range ? range.end - range.start + 1 : info.size;
};

/** HeadObject: GetObject's headers without the body. */
export const headObject: ObjectHandler = async (ctx, _deps, req) => {
  const key = objectKey(req);
  const info = await req.storage.headObject(req.bucket, key) ?? await noSuchKey(req);
  const notModified = checkPreconditions(ctx, info);
  writeObjectHeaders(ctx, info);
  ctx.status = notModified ? 304 : 200;
  if (!notModified) ctx.set('Content-Length', String(info.size));
};

/** DeleteObject: 204 whether or not the object existed, as COS answers. */
export const deleteObject: ObjectHandler = async (ctx, _deps, req) => {
  const key = objectKey(req);
  if (await requireBucket(req, false)) await req.storage.delete(req.bucket, key);
  emptyAnswer(ctx, 204);
};

/**
 * CopyObject: `x-cos-copy-source` names `<bucket>-<appid>.cos.<region>.<domain>/<key>`
 * (or a path on this server, routed as a request would be). The source
 * must be a bucket of the same app. `x-cos-metadata-directive: Replaced`
 * takes the metadata from this request's headers, else it is copied.
 */
export const copyObject: ObjectHandler = async (ctx, _deps, req) => {
  const key = objectKey(req);
  const source = parseCopySource(ctx.get('x-cos-copy-source'), req);
  if (req.app && source.bucket.slice(source.bucket.lastIndexOf('-') + 1) !== req.app.appid) {
    throw new CiError('AccessDenied', 'The copy source is in a bucket of another APPID.');
  }
  if (!(await req.storage.bucketExists(source.bucket))) throw new CiError('NoSuchBucket', 'The copy source bucket does not exist.');
  const sourceInfo = await req.storage.headObject(source.bucket, source.key);
  if (!sourceInfo) throw new CiError('NoSuchKey', 'The copy source does not exist.');
  const directive = ctx.get('x-cos-metadata-directive') || 'Copy';
  if (directive !== 'Copy' && directive !== 'Replaced') throw new CiError('InvalidArgument', 'x-cos-metadata-directive must be Copy or Replaced.');
  if (directive === 'Copy' && source.bucket === req.bucket && source.key === key) {
    throw new CiError('InvalidRequest', 'Copying an object onto itself needs x-cos-metadata-directive: Replaced.');
  }
  await requireBucket(req, true);
  const info = await req.storage.copyObject(source, req.bucket, key, directive === 'Replaced' ? metadataFromHeaders(ctx) : undefined);
  writeXml(ctx, buildCopyObjectResult(info));
};

function parseCopySource(header: string, req: ObjectRequest): { bucket: string; key: string } {
  const raw = header.replace(/^https?:\/\//i, '');
  const slash = raw.indexOf('/');
  if (slash <= 0) throw new CiError('InvalidArgument', 'x-cos-copy-source must be <bucket>-<appid>.cos.<region>.<domain>/<key>.');
  const target = routeRequest(raw.slice(0, slash), raw.slice(slash).split('?')[0]!);
  if (target.api !== 'object' || target.key === '') throw new CiError('InvalidArgument', 'x-cos-copy-source does not name an object.');
  const bucket = target.bucket ?? req.app?.bucket ?? req.bucket;
  const key = assertSafeObjectKey(target.key, 'The copy source key');
  return { bucket, key };
}

import { createHash } from 'node:crypto';
import { CiError } from '../errors.js';
import { assertSafeObjectKey } from '../storage/object-key.js';
import { parseXmlDocument } from '../xml/codec.js';
import {
  buildDeleteResult, buildListBucketResult, buildListBucketV2Result, buildListMultipartUploadsResult, type DeleteOutcome,
} from '../xml/object-responses.js';
import { isXmlObject, type XmlValue } from '../xml/tree.js';
import { readBody } from './body.js';
import type { AppContext } from './context.js';
import { writeXml } from './handler.js';
import { requireBucket, type ObjectHandler, type ObjectRequest } from './object-request.js';
import { contentMd5, emptyAnswer } from './objects.handlers.js';

const MAX_KEYS = 1000;

function queryText(ctx: AppContext, name: string): string {
  const value = ctx.query[name];
  if (Array.isArray(value)) throw new CiError('InvalidArgument', `${name} may be given only once.`);
  return value ?? '';
}

/** max-keys: 1000 when absent, at most 1000 (a larger value is read as 1000, as COS does). */
function maxKeys(ctx: AppContext, name = 'max-keys'): number {
  const raw = queryText(ctx, name);
  if (raw === '') return MAX_KEYS;
  if (!/^\d{1,9}$/.test(raw)) throw new CiError('InvalidArgument', `${name} must be an integer from 0 to ${MAX_KEYS}.`);
  return Math.min(Number(raw), MAX_KEYS);
}

function appidOf(req: ObjectRequest): string {
  return req.bucket.slice(req.bucket.lastIndexOf('-') + 1);
}

/**
 * GetBucket (ListObjects): prefix, delimiter, marker, max-keys ≤ 1000,
 * encoding-type=url, CommonPrefixes; `list-type=2` answers ListObjectsV2
 * (continuation-token, start-after, KeyCount).
 */
export const getBucket: ObjectHandler = async (ctx, _deps, req) => {
  const exists = await requireBucket(req, false);
  const prefix = queryText(ctx, 'prefix');
  const delimiter = queryText(ctx, 'delimiter');
  const encodingType = queryText(ctx, 'encoding-type');
  if (encodingType !== '' && encodingType !== 'url') throw new CiError('InvalidArgument', 'encoding-type must be url.');
  const limit = maxKeys(ctx);
  const v2 = queryText(ctx, 'list-type') === '2';
  let marker = queryText(ctx, 'marker');
  const continuationToken = queryText(ctx, 'continuation-token');
  const startAfter = queryText(ctx, 'start-after');
  if (v2) marker = continuationToken !== '' ? Buffer.from(continuationToken, 'base64url').toString('utf8') : startAfter;
  const result = exists && limit > 0
    ? await req.storage.listObjects(req.bucket, { prefix, delimiter, marker, maxKeys: limit })
    : { contents: [], commonPrefixes: [], isTruncated: false, nextMarker: undefined };
  const params = { bucket: req.bucket, prefix, marker, delimiter, maxKeys: limit, encodingType };
  writeXml(ctx, v2 ? buildListBucketV2Result({ ...params, startAfter, continuationToken }, result) : buildListBucketResult(params, result, appidOf(req)));
};

/** HeadBucket: 200 when the bucket exists (and is the signer's), else NoSuchBucket with no body. */
export const headBucket: ObjectHandler = async (ctx, _deps, req) => {
  if (!(await req.storage.bucketExists(req.bucket)) && !req.implicitBucket) throw new CiError('NoSuchBucket');
  ctx.status = 200;
};

/** PutBucket: makes the bucket (its APPID must be the signer's, checked at the door); BucketAlreadyOwnedByYou when it exists. */
export const putBucket: ObjectHandler = async (ctx, _deps, req) => {
  if (!(await req.storage.createBucket(req.bucket))) throw new CiError('BucketAlreadyOwnedByYou');
  ctx.set('Location', `/${req.bucket}`);
  emptyAnswer(ctx, 200);
};

/** DeleteBucket: only an empty one (BucketNotEmpty), 204. */
export const deleteBucket: ObjectHandler = async (ctx, _deps, req) => {
  await req.storage.deleteBucket(req.bucket);
  emptyAnswer(ctx, 204);
};

/**
 * DeleteMultipleObjects: `<Delete><Quiet/><Object><Key/></Object>…</Delete>`,
 * up to 1000 keys; each key answered Deleted or with its own Error.
 */
export const deleteMultipleObjects: ObjectHandler = async (ctx, deps, req) => {
  const md5 = contentMd5(ctx);
  const text = await readBody(ctx, deps.config.maxBodyBytes);
  if (md5 && !createHash('md5').update(text, 'utf8').digest().equals(md5)) throw new CiError('BadDigest');
  const body = parseXmlDocument(text, 'Delete');
  const objects = asList(body.Object);
  if (objects.length === 0) throw new CiError('MalformedXML', '<Delete> must list at least one <Object>.');
  if (objects.length > 1000) throw new CiError('MalformedXML', '<Delete> may list at most 1000 objects.');
  const quiet = body.Quiet === 'true';
  const exists = await requireBucket(req, false);
  const outcomes: DeleteOutcome[] = [];
  for (const object of objects) {
    const key = isXmlObject(object) && typeof object.Key === 'string' ? object.Key : undefined;
    if (key === undefined) throw new CiError('MalformedXML', 'Every <Object> needs a <Key>.');
    try {
      assertSafeObjectKey(key, 'The object key');
      if (exists) await req.storage.delete(req.bucket, key);
      outcomes.push({ key });
    } catch (err) {
      if (!(err instanceof CiError) || err.status >= 500) throw err;
      outcomes.push({ key, error: { code: err.code, message: err.message } });
    }
  }
  writeXml(ctx, buildDeleteResult(outcomes, quiet));
};

/** ListMultipartUploads: the bucket's unfinished uploads under `prefix`. */
export const listMultipartUploads: ObjectHandler = async (ctx, _deps, req) => {
  const exists = await requireBucket(req, false);
  const prefix = queryText(ctx, 'prefix');
  const uploads = exists ? await req.storage.listMultipartUploads(req.bucket, prefix) : [];
  writeXml(ctx, buildListMultipartUploadsResult(req.bucket, prefix, uploads, appidOf(req)));
};

function asList(value: XmlValue | undefined): XmlValue[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

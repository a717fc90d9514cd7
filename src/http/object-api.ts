import type { Middleware } from 'koa';
import { appidOfBucket } from '../auth/credentials.js';
import { CiError } from '../errors.js';
import { BUCKET_NAME_PATTERN } from '../storage/object-key.js';
import type { ObjectStorage } from '../storage/object-storage.js';
import { ObjectNotFoundError } from '../storage/storage.js';
import {
  deleteBucket, deleteMultipleObjects, getBucket, headBucket, listMultipartUploads, putBucket,
} from './buckets.handlers.js';
import type { AppContext, RequestState } from './context.js';
import type { ObjectHandler } from './object-request.js';
import type { AppDeps } from './handler.js';
import { routeRequest } from './host-routing.js';
import { signingApp } from './middleware/authenticate.js';
import { objectProcessingOf } from './object-processing.js';
import {
  abortMultipartUpload, completeMultipartUpload, initiateMultipartUpload, listParts, uploadPart,
} from './object-multipart.handlers.js';
import { copyObject, deleteObject, getObject, headObject, putObject } from './objects.handlers.js';

interface ObjectRoute {
  readonly name: string;
  readonly method: string;
  /** The request addresses the bucket (no key) or an object. */
  readonly target: 'bucket' | 'object';
  /** A query parameter that must be present (`?uploads`), or absent ones that must not (`!uploadId`). */
  readonly when?: (query: URLSearchParams, ctx: AppContext) => boolean;
  readonly handler: ObjectHandler;
}

/**
 * The object API's operations in one list (first match wins), as MinIO's
 * api-router.go: method, bucket or object, and the query or header that
 * tells the operations sharing a method apart.
 */
const OBJECT_ROUTES: readonly ObjectRoute[] = [
  { name: 'ListMultipartUploads', method: 'GET', target: 'bucket', when: (q) => q.has('uploads'), handler: listMultipartUploads },
  { name: 'GetBucket', method: 'GET', target: 'bucket', handler: getBucket },
  { name: 'HeadBucket', method: 'HEAD', target: 'bucket', handler: headBucket },
  { name: 'PutBucket', method: 'PUT', target: 'bucket', handler: putBucket },
  { name: 'DeleteBucket', method: 'DELETE', target: 'bucket', handler: deleteBucket },
  { name: 'DeleteMultipleObjects', method: 'POST', target: 'bucket', when: (q) => q.has('delete'), handler: deleteMultipleObjects },
  { name: 'UploadPart', method: 'PUT', target: 'object', when: (q) => q.has('uploadId') && q.has('partNumber'), handler: uploadPart },
  { name: 'CopyObject', method: 'PUT', target: 'object', when: (_q, ctx) => ctx.get('x-cos-copy-source') !== '', handler: copyObject },
  { name: 'PutObject', method: 'PUT', target: 'object', handler: putObject },
  { name: 'ListParts', method: 'GET', target: 'object', when: (q) => q.has('uploadId'), handler: listParts },
  { name: 'GetObject', method: 'GET', target: 'object', handler: getObject },
  { name: 'HeadObject', method: 'HEAD', target: 'object', handler: headObject },
  { name: 'AbortMultipartUpload', method: 'DELETE', target: 'object', when: (q) => q.has('uploadId'), handler: abortMultipartUpload },
  { name: 'DeleteObject', method: 'DELETE', target: 'object', handler: deleteObject },
  { name: 'InitiateMultipartUpload', method: 'POST', target: 'object', when: (q) => q.has('uploads'), handler: initiateMultipartUpload },
  { name: 'CompleteMultipartUpload', method: 'POST', target: 'object', when: (q) => q.has('uploadId'), handler: completeMultipartUpload },
];

/**
 * Sub-resources COS has and this server does not (ACLs, tagging, CORS, …):
 * refused with NotImplemented rather than mistaken for the plain operation
 * (a `PUT ?acl` must never overwrite the object with its ACL document).
 */
const UNSUPPORTED_SUBRESOURCES = [
  'acl', 'tagging', 'cors', 'lifecycle', 'policy', 'versioning', 'versions', 'website', 'referer', 'logging', 'inventory',
  'replication', 'encryption', 'domain', 'restore', 'append', 'select', 'object-lock', 'retention', 'legal-hold', 'intelligenttiering',
  'torrent', 'rename', 'symlink', 'accelerate', 'origin', 'notification',
];

/**
 * The object API's front door (G16): routes by Host and path
 * (host-routing.ts), passes CI API requests on, and for object requests
 * verifies the signature exactly as the CI API does (the same verifier and
 * app lookup), refuses a bucket of another APPID (AccessDenied), and runs
 * the operation. Errors are written by the one error responder.
 */
export function objectApi(deps: AppDeps): Middleware<RequestState> {
  const storage = deps.storage as ObjectStorage;
  const processing = objectProcessingOf(deps);
  return async (ctx, next) => {
    const browserRoot = (ctx.method === 'GET' || ctx.method === 'HEAD') && ctx.querystring === '' && ctx.get('authorization') === '';
    const target = routeRequest(ctx.get('host'), ctx.path, browserRoot);
    if (target.api === 'ci') return next();
    const context = ctx as unknown as AppContext;
    const query = new URLSearchParams(ctx.querystring);
    const route = OBJECT_ROUTES.find((r) => r.method === ctx.method && r.target === (target.key === '' ? 'bucket' : 'object') && (r.when?.(query, context) ?? true));
    ctx.state.operation = route?.name ?? `object:${ctx.method}`;
    const app = await signingApp(context, deps);
    const bucket = target.bucket ?? (app?.bucket || deps.config.defaultBucket);
    if (!BUCKET_NAME_PATTERN.test(bucket)) throw new CiError('InvalidBucketName');
    if (app && appidOfBucket(bucket) !== app.appid) {
      throw new CiError('AccessDenied', `The bucket ${bucket} belongs to another APPID than the key that signed the request.`);
    }
    ctx.state.bucket = bucket;
    if (target.region) ctx.state.region = target.region;
    ctx.state.appId = app?.appId;
    const unsupported = UNSUPPORTED_SUBRESOURCES.find((name) => query.has(name));
    if (unsupported) throw new CiError('NotImplemented', `The ${unsupported} sub-resource is not supported by this server.`);
    if (!route) throw new CiError('MethodNotAllowed', `${ctx.method} is not allowed on a ${target.key === '' ? 'bucket' : 'object'}.`);
    const implicitBucket = bucket === deps.config.defaultBucket || (app !== undefined && bucket === app.bucket);
    try {
      await route.handler(context, deps, { bucket, key: target.key, app, implicitBucket, storage, processing });
    } catch (err) {
      if (err instanceof ObjectNotFoundError) throw new CiError('NoSuchKey');
      throw err;
    }
  };
}


import type { App } from '../auth/credentials.js';
import { CiError } from '../errors.js';
import type { ObjectStorage } from '../storage/object-storage.js';
import type { AppContext } from './context.js';
import type { AppDeps } from './handler.js';
import type { ObjectProcessing } from './object-processing.js';

/** What every object-API handler knows about its request once it is routed and authenticated. */
export interface ObjectRequest {
  readonly bucket: string;
  /** '' for the bucket's own operations. */
  readonly key: string;
  /** The app that signed; undefined for an unsigned request (allowed only without MEDIAJOBS_REQUIRE_AUTH). */
  readonly app: App | undefined;
  /** Whether the bucket may be made on first write: the default bucket and the signing app's own. */
  readonly implicitBucket: boolean;
  readonly storage: ObjectStorage;
  /** GetObject's synchronous processing (imageMogr2 rules, ci-process=videoinfo). */
  readonly processing: ObjectProcessing;
}

export type ObjectHandler = (ctx: AppContext, deps: AppDeps, req: ObjectRequest) => Promise<void>;

/**
 * Makes sure the request's bucket exists: the default bucket and the
 * signing app's own are made on first write (and read as empty before);
 * any other must have been made by PutBucket, else NoSuchBucket.
 */
export async function requireBucket(req: ObjectRequest, forWrite: boolean): Promise<boolean> {
  if (await req.storage.bucketExists(req.bucket)) return true;
  if (!req.implicitBucket) throw new CiError('NoSuchBucket');
  if (forWrite) await req.storage.createBucket(req.bucket);
  return forWrite;
}

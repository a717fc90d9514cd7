import { appidOfBucket } from '../auth/credentials.js';
import { CiError } from '../errors.js';
import { findApp, findAppByAppid } from '../store/apps.repository.js';
import type { BucketInfo } from '../storage/object-storage.js';
import { buildCreateServiceBucketResponse, buildDescribeServiceBucketsResponse } from '../xml/responses.js';
import type { AppContext } from './context.js';
import { optionalPositiveQuery, optionalQuery, writeXml, type AppDeps, type Handler } from './handler.js';

/*
 * The "which buckets have this service on" endpoints of every CI service
 * (the Go SDK's Describe…/Create…ProcessBucket(s), ci_media.go and
 * ci_doc.go). Here every service runs on every bucket, so each family lists
 * the calling app's buckets: those its storage holds under the app's APPID,
 * plus its own bucket, which exists from the app's creation even before
 * anything is stored in it. "Creating" (turning the service on) answers for
 * the bucket of the Host, or the app's own bucket on a Host without one; a
 * bucket of another APPID was refused at the door (AccessDenied).
 */

/** One service's paths and element names, as the Go SDK decodes them. */
export interface BucketServiceFamily {
  readonly path: string;
  /** The element each listed bucket comes in (`MediaBucketList`, repeated). */
  readonly listElement: string;
  /** The element CreateXBucket answers in (`MediaBucket`). */
  readonly createdElement: string;
  readonly describeName: string;
  readonly createName: string;
}

export const BUCKET_SERVICE_FAMILIES: readonly BucketServiceFamily[] = [
  { path: '/mediabucket', listElement: 'MediaBucketList', createdElement: 'MediaBucket', describeName: 'DescribeMediaBuckets', createName: 'CreateMediaBucket' },
  { path: '/picbucket', listElement: 'PicBucketList', createdElement: 'PicBucket', describeName: 'DescribePicProcessBuckets', createName: 'CreatePicProcessBucket' },
  { path: '/ai_bucket', listElement: 'AiBucketList', createdElement: 'AiBucket', describeName: 'DescribeAIProcessBuckets', createName: 'CreateAIProcessBucket' },
  { path: '/asrbucket', listElement: 'AsrBucketList', createdElement: 'AsrBucket', describeName: 'DescribeASRProcessBuckets', createName: 'CreateASRProcessBucket' },
  { path: '/file_bucket', listElement: 'FileBucketList', createdElement: 'FileBucket', describeName: 'DescribeFileProcessBuckets', createName: 'CreateFileProcessBucket' },
  { path: '/docbucket', listElement: 'DocBucketList', createdElement: 'DocBucket', describeName: 'DescribeDocProcessBuckets', createName: 'CreateDocProcessBucket' },
];

/** The calling app's buckets, by name. */
async function appBuckets(ctx: AppContext, deps: AppDeps): Promise<BucketInfo[]> {
  // A signed request's bucket is already its app's (authenticate.ts); an unsigned one speaks for the APPID of its Host's bucket.
  const appid = appidOfBucket(ctx.state.bucket);
  const app = ctx.state.appId ? await findApp(deps.db.kysely, ctx.state.appId) : await findAppByAppid(deps.db.kysely, appid);
  const buckets = (await deps.storage.listBuckets()).filter((b) => appidOfBucket(b.name) === appid);
  if (app?.bucket && !buckets.some((b) => b.name === app.bucket)) buckets.push({ name: app.bucket, createdAt: app.createdAt });
  return buckets.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function listQuery(ctx: AppContext, name: string): string[] | undefined {
  return optionalQuery(ctx, name)?.split(',').map((s) => s.trim()).filter(Boolean);
}

/** `GET /mediabucket` and its kin: regions, bucketNames (exact), bucketName (prefix), pageNumber, pageSize ≤ 100. */
export function describeServiceBuckets(family: BucketServiceFamily): Handler {
  return async (ctx, deps) => {
    const regions = listQuery(ctx, 'regions');
    const names = listQuery(ctx, 'bucketNames');
    const prefix = optionalQuery(ctx, 'bucketName');
    const pageNumber = optionalPositiveQuery(ctx, 'pageNumber', 1, 1_000_000);
    const pageSize = optionalPositiveQuery(ctx, 'pageSize', 10, 100);
    // Every bucket lives on this one server, in the region the request addresses.
    const region = ctx.state.region;
    const inRegion = !regions || regions.some((r) => r === 'All' || r.toLowerCase() === region);
    const matching = inRegion
      ? (await appBuckets(ctx, deps)).filter((b) => (!names || names.includes(b.name)) && (!prefix || b.name.startsWith(prefix)))
      : [];
    writeXml(ctx, buildDescribeServiceBucketsResponse(family.listElement, {
      requestId: ctx.state.requestId,
      buckets: matching.slice((pageNumber - 1) * pageSize, pageNumber * pageSize),
      region,
      total: matching.length,
      pageNumber,
      pageSize,
    }));
  };
}

/** `POST /mediabucket` and its kin: the bucket, with the service already on. */
export function createServiceBucket(family: BucketServiceFamily): Handler {
  return async (ctx, deps) => {
    const bucket = (await appBuckets(ctx, deps)).find((b) => b.name === ctx.state.bucket);
    if (!bucket) throw new CiError('NoSuchBucket', `The bucket ${ctx.state.bucket} does not exist.`);
    writeXml(ctx, buildCreateServiceBucketResponse(family.createdElement, ctx.state.requestId, bucket, ctx.state.region));
  };
}

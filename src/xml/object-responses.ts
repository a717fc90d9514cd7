import type { ListObjectsResult, ObjectInfo, PartInfo, UploadInfo } from '../storage/object-storage.js';
import { encodeXml } from './codec.js';
import type { XmlObject } from './tree.js';

/*
 * Every body the object API answers with (COS's shapes, as cos-nodejs-sdk-v5
 * and the Python and Go SDKs parse them), as pure functions. Times are ISO
 * 8601 in UTC with milliseconds, as COS writes them.
 */

const OWNER = (appid: string): XmlObject => ({ ID: `qcs::cam::uin/${appid}:uin/${appid}`, DisplayName: appid });

export interface ListBucketParams {
  readonly bucket: string;
  readonly prefix: string;
  readonly marker: string;
  readonly delimiter: string;
  readonly maxKeys: number;
  readonly encodingType: string;
}

/** GetBucket (ListObjects): `<ListBucketResult>`; keys URL-encoded when `encoding-type=url` was asked. */
export function buildListBucketResult(params: ListBucketParams, result: ListObjectsResult, appid: string): string {
  const enc = params.encodingType === 'url' ? (s: string) => encodeURIComponent(s).replace(/%2F/g, '/') : (s: string) => s;
  const body: XmlObject = {
    Name: params.bucket,
    ...(params.encodingType ? { EncodingType: params.encodingType } : {}),
    Prefix: enc(params.prefix),
    Marker: enc(params.marker),
    MaxKeys: String(params.maxKeys),
    ...(params.delimiter ? { Delimiter: enc(params.delimiter) } : {}),
    IsTruncated: String(result.isTruncated),
    ...(result.nextMarker !== undefined ? { NextMarker: enc(result.nextMarker) } : {}),
    Contents: result.contents.map((info) => ({
      Key: enc(info.key),
      LastModified: info.lastModified.toISOString(),
      ETag: info.etag,
      Size: String(info.size),
      Owner: OWNER(appid),
      StorageClass: 'STANDARD',
    })),
    CommonPrefixes: result.commonPrefixes.map((prefix) => ({ Prefix: enc(prefix) })),
  };
  return encodeXml('ListBucketResult', body);
}

/** ListObjectsV2 (`list-type=2`): the same listing with KeyCount and continuation tokens. */
export function buildListBucketV2Result(params: ListBucketParams & { startAfter: string; continuationToken: string }, result: ListObjectsResult): string {
  const body: XmlObject = {
    Name: params.bucket,
    Prefix: params.prefix,
    ...(params.startAfter ? { StartAfter: params.startAfter } : {}),
    ...(params.continuationToken ? { ContinuationToken: params.continuationToken } : {}),
    KeyCount: String(result.contents.length + result.commonPrefixes.length),
    MaxKeys: String(params.maxKeys),
    ...(params.delimiter ? { Delimiter: params.delimiter } : {}),
    IsTruncated: String(result.isTruncated),
    ...(result.nextMarker !== undefined ? { NextContinuationToken: Buffer.from(result.nextMarker, 'utf8').toString('base64url') } : {}),
    Contents: result.contents.map((info) => ({
      Key: info.key,
      LastModified: info.lastModified.toISOString(),
      ETag: info.etag,
      Size: String(info.size),
      StorageClass: 'STANDARD',
    })),
    CommonPrefixes: result.commonPrefixes.map((prefix) => ({ Prefix: prefix })),
  };
  return encodeXml('ListBucketResult', body);
}

export function buildCopyObjectResult(info: ObjectInfo): string {
  return encodeXml('CopyObjectResult', { ETag: info.etag, LastModified: info.lastModified.toISOString() });
}

export interface DeleteOutcome {
  readonly key: string;
  readonly error?: { readonly code: string; readonly message: string };
}

/** DeleteMultipleObjects: `<DeleteResult>`, deleted keys left out in quiet mode. */
export function buildDeleteResult(outcomes: readonly DeleteOutcome[], quiet: boolean): string {
  return encodeXml('DeleteResult', {
    Deleted: outcomes.filter((o) => !o.error && !quiet).map((o) => ({ Key: o.key })),
    Error: outcomes.filter((o) => o.error).map((o) => ({ Key: o.key, Code: o.error!.code, Message: o.error!.message })),
  });
}

export function buildInitiateMultipartUploadResult(bucket: string, key: string, uploadId: string): string {
  return encodeXml('InitiateMultipartUploadResult', { Bucket: bucket, Key: key, UploadId: uploadId });
}

export function buildCompleteMultipartUploadResult(location: string, bucket: string, key: string, etag: string): string {
  return encodeXml('CompleteMultipartUploadResult', { Location: location, Bucket: bucket, Key: key, ETag: etag });
}

export interface ListPartsParams {
  readonly bucket: string;
  readonly key: string;
  readonly uploadId: string;
  readonly initiated: Date;
  readonly marker: number;
  readonly maxParts: number;
}

export function buildListPartsResult(params: ListPartsParams, parts: readonly PartInfo[], isTruncated: boolean, appid: string): string {
  return encodeXml('ListPartsResult', {
    Bucket: params.bucket,
    Key: params.key,
    UploadId: params.uploadId,
    Initiator: OWNER(appid),
    Owner: OWNER(appid),
    StorageClass: 'STANDARD',
    PartNumberMarker: String(params.marker),
    NextPartNumberMarker: String(parts.length ? parts[parts.length - 1]!.partNumber : params.marker),
    MaxParts: String(params.maxParts),
    IsTruncated: String(isTruncated),
    Part: parts.map((part) => ({
      PartNumber: String(part.partNumber),
      LastModified: part.lastModified.toISOString(),
      ETag: part.etag,
      Size: String(part.size),
    })),
  });
}

export function buildListMultipartUploadsResult(bucket: string, prefix: string, uploads: readonly UploadInfo[], appid: string): string {
  return encodeXml('ListMultipartUploadsResult', {
    Bucket: bucket,
    Prefix: prefix,
    KeyMarker: '',
    UploadIdMarker: '',
    MaxUploads: '1000',
    IsTruncated: 'false',
    Upload: uploads.map((upload) => ({
      Key: upload.key,
      UploadId: upload.uploadId,
      StorageClass: 'STANDARD',
      Initiator: OWNER(appid),
      Owner: OWNER(appid),
      Initiated: upload.initiated.toISOString(),
    })),
  });
}

import { CiError } from '../errors.js';
import { MAX_PART_NUMBER, MAX_PUT_BYTES, type CompletedPart } from '../storage/object-storage.js';
import { parseXmlDocument } from '../xml/codec.js';
import {
  buildCompleteMultipartUploadResult, buildInitiateMultipartUploadResult, buildListPartsResult,
} from '../xml/object-responses.js';
import { isXmlObject, type XmlValue } from '../xml/tree.js';
import { readBody } from './body.js';
import type { AppContext } from './context.js';
import { writeXml } from './handler.js';
import { requireBucket, type ObjectHandler } from './object-request.js';
import { contentLength, contentMd5, emptyAnswer, metadataFromHeaders, objectKey } from './objects.handlers.js';

function uploadId(ctx: AppContext): string {
  const value = ctx.query.uploadId;
  if (typeof value !== 'string' || value === '') throw new CiError('NoSuchUpload');
  return value;
}

/** InitiateMultipartUpload (`POST <key>?uploads`): the metadata is taken now, kept until Complete. */
export const initiateMultipartUpload: ObjectHandler = async (ctx, _deps, req) => {
  const key = objectKey(req);
  const metadata = metadataFromHeaders(ctx);
  await requireBucket(req, true);
  const id = await req.storage.createMultipartUpload(req.bucket, key, metadata);
  writeXml(ctx, buildInitiateMultipartUploadResult(req.bucket, key, id));
};

/** UploadPart (`PUT <key>?partNumber=N&uploadId=…`): streamed like PutObject; answers the part's ETag. */
export const uploadPart: ObjectHandler = async (ctx, _deps, req) => {
  const key = objectKey(req);
  const raw = String(ctx.query.partNumber);
  const partNumber = Number(raw);
  if (!/^\d{1,5}$/.test(raw) || partNumber < 1 || partNumber > MAX_PART_NUMBER) {
    throw new CiError('InvalidArgument', `partNumber must be an integer from 1 to ${MAX_PART_NUMBER}.`);
  }
  const id = uploadId(ctx);
  const md5 = contentMd5(ctx);
  const length = contentLength(ctx);
  const part = await req.storage.uploadPart(req.bucket, key, id, partNumber, {
    body: ctx.req, maxBytes: MAX_PUT_BYTES,
    ...(md5 ? { contentMd5: md5 } : {}), ...(length !== undefined ? { contentLength: length } : {}),
  });
  ctx.set('ETag', part.etag);
  emptyAnswer(ctx, 200);
};

/** ListParts (`GET <key>?uploadId=…`), paged by part-number-marker and max-parts (≤ 1000). */
export const listParts: ObjectHandler = async (ctx, _deps, req) => {
  const key = objectKey(req);
  const id = uploadId(ctx);
  const marker = Number(ctx.query['part-number-marker'] || 0);
  const maxParts = Math.min(Number(ctx.query['max-parts'] || 1000), 1000);
  if (!Number.isInteger(marker) || marker < 0 || !Number.isInteger(maxParts) || maxParts < 0) {
    throw new CiError('InvalidArgument', 'part-number-marker and max-parts must be non-negative integers.');
  }
  const { parts, initiated } = await req.storage.listParts(req.bucket, key, id);
  const after = parts.filter((p) => p.partNumber > marker);
  const page = after.slice(0, maxParts);
  const appid = req.bucket.slice(req.bucket.lastIndexOf('-') + 1);
  writeXml(ctx, buildListPartsResult({ bucket: req.bucket, key, uploadId: id, initiated, marker, maxParts }, page, after.length > page.length, appid));
};

/**
 * CompleteMultipartUpload (`POST <key>?uploadId=…` with
 * `<CompleteMultipartUpload><Part><PartNumber/><ETag/></Part>…`): the parts
 * joined into the object, ETag `"<md5 of the parts' md5s>-N"`.
 */
export const completeMultipartUpload: ObjectHandler = async (ctx, deps, req) => {
  const key = objectKey(req);
  const id = uploadId(ctx);
  const body = parseXmlDocument(await readBody(ctx, deps.config.maxBodyBytes), 'CompleteMultipartUpload');
  const parts: CompletedPart[] = asList(body.Part).map((part) => {
    if (!isXmlObject(part) || typeof part.PartNumber !== 'string' || typeof part.ETag !== 'string' || !/^\d{1,5}$/.test(part.PartNumber)) {
      throw new CiError('MalformedXML', 'Every <Part> needs a <PartNumber> and an <ETag>.');
    }
    return { partNumber: Number(part.PartNumber), etag: part.ETag };
  });
  const picOperations = ctx.get('pic-operations') ? req.processing.parsePicOperations(ctx.get('pic-operations'), req, key) : undefined;
  const info = await req.storage.completeMultipartUpload(req.bucket, key, id, parts);
  if (picOperations) return req.processing.runPicOperations(ctx, req, key, picOperations, info.etag);
  const location = `${req.bucket}.cos.${ctx.state.region}.myqcloud.com/${encodeURIComponent(key).replace(/%2F/g, '/')}`;
  writeXml(ctx, buildCompleteMultipartUploadResult(location, req.bucket, key, info.etag));
};

/** AbortMultipartUpload (`DELETE <key>?uploadId=…`): 204, the parts removed. */
export const abortMultipartUpload: ObjectHandler = async (ctx, _deps, req) => {
  const key = objectKey(req);
  await req.storage.abortMultipartUpload(req.bucket, key, uploadId(ctx));
  emptyAnswer(ctx, 204);
};

function asList(value: XmlValue | undefined): XmlValue[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CopyObjectCommand, CreateBucketCommand,
  CreateMultipartUploadCommand, DeleteBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadBucketCommand,
  HeadObjectCommand, ListBucketsCommand, ListMultipartUploadsCommand, ListObjectsV2Command, ListPartsCommand, PutObjectCommand,
  S3Client, UploadPartCommand, type HeadObjectCommandOutput,
} from '@aws-sdk/client-s3';
import type { S3Config } from '../config.js';
import { CI_ERRORS, CiError, type CiErrorCode } from '../errors.js';
import { hashBody } from './body-stream.js';
import { assertSafeBucket, assertSafeObjectKey, BUCKET_NAME_PATTERN } from './object-key.js';
import { guessContentType } from './object-metadata.js';
import {
  compareKeys, type BucketInfo, type ByteRange, type CompletedPart, type ListObjectsInput, type ListObjectsResult, type ObjectInfo,
  type ObjectMetadata, type ObjectStorage, type OpenedObject, type PartInfo, type PutObjectInput, type UploadInfo,
} from './object-storage.js';
import { ObjectNotFoundError, type ObjectStat } from './storage.js';

/** Greater, in UTF-8 byte order, than any key continuing a prefix: StartAfter = prefix + this skips the prefix. */
const AFTER_EVERY_CONTINUATION = '\u{10FFFF}';

/**
 * The `s3` backend (MEDIAJOBS_STORAGE=s3): every object in an S3-compatible
 * store (MinIO, Ceph RGW, COS through its S3 compatibility, AWS), so any
 * number of API and worker processes on any number of machines share the
 * objects. COS bucket `<name>-<appid>` is S3 bucket `<prefix><name>-<appid>`;
 * keys are the same; metadata is the store's own (Content-Type and the other
 * stored headers, `x-cos-meta-*` as `x-amz-meta-*`), and multipart uploads
 * are the store's multipart uploads (S3 and MinIO want parts of 5 MB but the
 * last; COS and this server's local backend accept 1 MB).
 *
 * Tools read inputs from a local file: `withLocalFile` streams the object to a
 * temporary file under `<dataDir>/tmp` and removes it afterwards (ffprobe,
 * ffmpeg and sharp then read a plain file, seekable, with the same input
 * policy as on local disk; a presigned URL would let ffmpeg open network
 * protocols, which the input policy refuses).
 *
 * Checksums: the client sends and checks only what S3 requires
 * (`WHEN_REQUIRED`); the default (CRC32 trailers in aws-chunked bodies) is
 * not understood by every S3-compatible server. Bodies are checked by their
 * MD5 on the way in, as on local disk, and Content-MD5 is passed on.
 */
export class S3Storage implements ObjectStorage {
  private readonly client: S3Client;

  constructor(private readonly config: S3Config, private readonly tmpDir: string) {
    this.client = new S3Client({
      region: config.region,
      ...(config.endpoint ? { endpoint: config.endpoint } : {}),
      forcePathStyle: config.forcePathStyle,
      ...(config.accessKeyId ? { credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey } } : {}),
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  /** Stops the client's sockets (tests, shutdown). */
  close(): void {
    this.client.destroy();
  }

  private s3Bucket(bucket: string): string {
    return this.config.bucketPrefix + assertSafeBucket(bucket);
  }

  /** Runs an S3 call, turning the store's S3 error codes into the same COS codes (NoSuchKey → ObjectNotFoundError). */
  private async call<T>(bucket: string, key: string | undefined, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw translate(err, bucket, key);
    }
  }

  async get(bucket: string, key: string): Promise<Buffer> {
    const { body } = await this.getObjectStream(bucket, key);
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async withLocalFile<T>(bucket: string, key: string, use: (filePath: string) => Promise<T>): Promise<T> {
    const { body } = await this.getObjectStream(bucket, key);
    await fs.mkdir(this.tmpDir, { recursive: true });
    const dir = await fs.mkdtemp(path.join(this.tmpDir, 's3-'));
    // The key's own name, so tools that look at the extension (ffmpeg's muxers, sharp) see it.
    const file = path.join(dir, path.basename(key));
    try {
      await pipeline(body, createWriteStream(file));
      return await use(file);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  async put(bucket: string, key: string, data: Buffer): Promise<ObjectStat> {
    const info = await this.putObject(bucket, key, { body: Readable.from([data]), metadata: { meta: {} }, contentLength: data.length, maxBytes: data.length });
    return { size: info.size, etag: info.etag };
  }

  async stat(bucket: string, key: string): Promise<ObjectStat | undefined> {
    const info = await this.headObject(bucket, key);
    return info && { size: info.size, etag: info.etag };
  }

  async delete(bucket: string, key: string): Promise<void> {
    assertSafeObjectKey(key);
    await this.call(bucket, key, () => this.client.send(new DeleteObjectCommand({ Bucket: this.s3Bucket(bucket), Key: key })));
  }

  async headObject(bucket: string, key: string): Promise<ObjectInfo | undefined> {
    assertSafeObjectKey(key);
    try {
      const head = await this.call(bucket, key, () => this.client.send(new HeadObjectCommand({ Bucket: this.s3Bucket(bucket), Key: key })));
      return infoFrom(key, head, head.ContentLength ?? 0);
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return undefined;
      throw err;
    }
  }

  /** The info from a HEAD, the bytes from a GET made when read (two requests; the etag is checked with If-Match so both are of one object). */
  async openObject(bucket: string, key: string): Promise<OpenedObject> {
    const info = await this.headObject(bucket, key);
    if (!info) throw new ObjectNotFoundError(bucket, key);
    return {
      info,
      read: async (range) => {
        const out = await this.call(bucket, key, () => this.client.send(new GetObjectCommand({
          Bucket: this.s3Bucket(bucket), Key: key, IfMatch: info.etag, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
        })));
        return out.Body as Readable;
      },
      close: async () => undefined,
    };
  }

  async getObjectStream(bucket: string, key: string, range?: ByteRange): Promise<{ info: ObjectInfo; body: Readable }> {
    assertSafeObjectKey(key);
    const out = await this.call(bucket, key, () => this.client.send(new GetObjectCommand({
      Bucket: this.s3Bucket(bucket), Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
    })));
    const total = range && out.ContentRange ? Number(out.ContentRange.split('/')[1]) : out.ContentLength ?? 0;
    return { info: infoFrom(key, out, total), body: out.Body as Readable };
  }

  async putObject(bucket: string, key: string, input: PutObjectInput): Promise<ObjectInfo> {
    assertSafeObjectKey(key);
    return this.withKnownLength(input, async (body, length) => {
      const out = await this.call(bucket, key, () => this.client.send(new PutObjectCommand({
        Bucket: this.s3Bucket(bucket), Key: key, Body: body, ContentLength: length,
        ...(input.contentMd5 ? { ContentMD5: input.contentMd5.toString('base64') } : {}),
        ...metadataParams({ ...input.metadata, contentType: input.metadata.contentType ?? guessContentType(key) }),
      })));
      const info = await this.headObject(bucket, key);
      return info ?? { key, size: length, etag: out.ETag ?? '', lastModified: new Date(), metadata: input.metadata };
    });
  }

  /**
   * Runs `send` with a body of known length, as an S3 PUT needs one, and
   * settles only when our own checks (length, MD5) have passed too. The
   * request's own stream is sent as it arrives when Content-Length was given
   * and no Content-MD5; a chunked body, or one with a Content-MD5, is spooled
   * to a temporary file and checked first, so that a bad digest never
   * replaces the object (not every S3-compatible store checks Content-MD5).
   */
  private async withKnownLength<T>(input: Omit<PutObjectInput, 'metadata'>, send: (body: Readable, length: number) => Promise<T>): Promise<T> {
    const hasher = hashBody(input.body, input);
    if (input.contentLength !== undefined && !input.contentMd5) {
      const [result] = await Promise.all([send(hasher, input.contentLength), finished(hasher)]);
      return result;
    }
    await fs.mkdir(this.tmpDir, { recursive: true });
    const spool = path.join(this.tmpDir, `.${randomBytes(8).toString('hex')}.spool`);
    try {
      await pipeline(hasher, createWriteStream(spool));
      return await send(createReadStream(spool), hasher.size);
    } finally {
      await fs.rm(spool, { force: true });
    }
  }

  async copyObject(source: { bucket: string; key: string }, bucket: string, key: string, metadata?: ObjectMetadata): Promise<ObjectInfo> {
    assertSafeObjectKey(key);
    const copySource = `${this.s3Bucket(source.bucket)}/${source.key.split('/').map(encodeURIComponent).join('/')}`;
    await this.call(bucket, key, () => this.client.send(new CopyObjectCommand({
      Bucket: this.s3Bucket(bucket), Key: key, CopySource: copySource,
      ...(metadata ? { MetadataDirective: 'REPLACE', ...metadataParams(metadata) } : { MetadataDirective: 'COPY' }),
    })));
    const info = await this.headObject(bucket, key);
    if (!info) throw new ObjectNotFoundError(bucket, key);
    return info;
  }

  async listObjects(bucket: string, input: ListObjectsInput): Promise<ListObjectsResult> {
    // A marker that is a common prefix (`photos/`, returned as NextMarker) must skip every key under it.
    const startAfter = input.delimiter !== '' && input.marker.endsWith(input.delimiter) ? input.marker + AFTER_EVERY_CONTINUATION : input.marker;
    const out = await this.call(bucket, undefined, () => this.client.send(new ListObjectsV2Command({
      Bucket: this.s3Bucket(bucket), MaxKeys: input.maxKeys,
      ...(input.prefix ? { Prefix: input.prefix } : {}),
      ...(input.delimiter ? { Delimiter: input.delimiter } : {}),
      ...(startAfter ? { StartAfter: startAfter } : {}),
    })));
    const contents: ObjectInfo[] = (out.Contents ?? []).map((o) => ({
      key: o.Key!, size: o.Size ?? 0, etag: o.ETag ?? '', lastModified: o.LastModified ?? new Date(0), metadata: { meta: {} },
    }));
    const prefixes = (out.CommonPrefixes ?? []).map((p) => p.Prefix!).filter((p) => compareKeys(p, input.marker) > 0);
    // Keys and prefixes count together against max-keys, as COS and S3 count them; some stores count
    // only the keys, so the merged page is cut here again.
    const merged = [...contents.map((c) => ({ at: c.key, content: c })), ...prefixes.map((p) => ({ at: p, content: undefined }))]
      .sort((a, b) => compareKeys(a.at, b.at));
    const page = merged.slice(0, input.maxKeys);
    const isTruncated = (out.IsTruncated ?? false) || page.length < merged.length;
    return {
      contents: page.flatMap((e) => (e.content ? [e.content] : [])),
      commonPrefixes: page.flatMap((e) => (e.content ? [] : [e.at])),
      isTruncated,
      nextMarker: isTruncated ? page.at(-1)?.at : undefined,
    };
  }

  async bucketExists(bucket: string): Promise<boolean> {
    try {
      await this.call(bucket, undefined, () => this.client.send(new HeadBucketCommand({ Bucket: this.s3Bucket(bucket) })));
      return true;
    } catch (err) {
      if (err instanceof CiError && err.code === 'NoSuchBucket') return false;
      throw err;
    }
  }

  /** The store's buckets under this server's prefix, named as COS buckets; others sharing the store are not listed. */
  async listBuckets(): Promise<BucketInfo[]> {
    const out = await this.call('', undefined, () => this.client.send(new ListBucketsCommand({})));
    const prefix = this.config.bucketPrefix;
    return (out.Buckets ?? [])
      .filter((b) => b.Name !== undefined && b.Name.startsWith(prefix) && BUCKET_NAME_PATTERN.test(b.Name.slice(prefix.length)))
      .map((b) => ({ name: b.Name!.slice(prefix.length), createdAt: b.CreationDate ?? new Date(0) }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async createBucket(bucket: string): Promise<boolean> {
    try {
      await this.call(bucket, undefined, () => this.client.send(new CreateBucketCommand({ Bucket: this.s3Bucket(bucket) })));
      return true;
    } catch (err) {
      if (err instanceof CiError && (err.code === 'BucketAlreadyOwnedByYou' || err.code === 'BucketAlreadyExists')) return false;
      throw err;
    }
  }

  async deleteBucket(bucket: string): Promise<void> {
    await this.call(bucket, undefined, () => this.client.send(new DeleteBucketCommand({ Bucket: this.s3Bucket(bucket) })));
  }

  async createMultipartUpload(bucket: string, key: string, metadata: ObjectMetadata): Promise<string> {
    assertSafeObjectKey(key);
    const out = await this.call(bucket, key, () => this.client.send(new CreateMultipartUploadCommand({
      Bucket: this.s3Bucket(bucket), Key: key, ...metadataParams({ ...metadata, contentType: metadata.contentType ?? guessContentType(key) }),
    })));
    return out.UploadId!;
  }

  async uploadPart(bucket: string, key: string, uploadId: string, partNumber: number, input: Omit<PutObjectInput, 'metadata'>): Promise<PartInfo> {
    assertSafeObjectKey(key);
    return this.withKnownLength(input, async (body, length) => {
      const out = await this.call(bucket, key, () => this.client.send(new UploadPartCommand({
        Bucket: this.s3Bucket(bucket), Key: key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: length,
        ...(input.contentMd5 ? { ContentMD5: input.contentMd5.toString('base64') } : {}),
      })));
      return { partNumber, etag: out.ETag ?? '', size: length, lastModified: new Date() };
    });
  }

  async listParts(bucket: string, key: string, uploadId: string): Promise<{ parts: PartInfo[]; initiated: Date }> {
    const parts: PartInfo[] = [];
    let marker: string | undefined;
    for (;;) {
      const out = await this.call(bucket, key, () => this.client.send(new ListPartsCommand({
        Bucket: this.s3Bucket(bucket), Key: key, UploadId: uploadId, ...(marker ? { PartNumberMarker: marker } : {}),
      })));
      for (const p of out.Parts ?? []) parts.push({ partNumber: p.PartNumber!, etag: p.ETag ?? '', size: p.Size ?? 0, lastModified: p.LastModified ?? new Date(0) });
      if (!out.IsTruncated || !out.NextPartNumberMarker) break;
      marker = out.NextPartNumberMarker;
    }
    return { parts, initiated: new Date() };
  }

  async completeMultipartUpload(bucket: string, key: string, uploadId: string, parts: readonly CompletedPart[]): Promise<ObjectInfo> {
    await this.call(bucket, key, () => this.client.send(new CompleteMultipartUploadCommand({
      Bucket: this.s3Bucket(bucket), Key: key, UploadId: uploadId,
      MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag.startsWith('"') ? p.etag : `"${p.etag}"` })) },
    })));
    const info = await this.headObject(bucket, key);
    if (!info) throw new ObjectNotFoundError(bucket, key);
    return info;
  }

  async abortMultipartUpload(bucket: string, key: string, uploadId: string): Promise<void> {
    await this.call(bucket, key, () => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.s3Bucket(bucket), Key: key, UploadId: uploadId })));
  }

  /** The store's unfinished uploads; none where the store cannot list them (s3rver), so that SDKs' resumable uploads start afresh. */
  async listMultipartUploads(bucket: string, prefix: string): Promise<UploadInfo[]> {
    const out = await this.call(bucket, undefined, () => this.client.send(new ListMultipartUploadsCommand({
      Bucket: this.s3Bucket(bucket), ...(prefix ? { Prefix: prefix } : {}),
    }))).catch((err: unknown) => {
      if ((err as { name?: string }).name === 'NotImplemented' || (err instanceof CiError && err.code === 'NotImplemented')) return { Uploads: [] };
      throw err;
    });
    return (out.Uploads ?? []).map((u) => ({ key: u.Key!, uploadId: u.UploadId!, initiated: u.Initiated ?? new Date(0) }));
  }
}

/** The S3 parameters that store an object's metadata. */
function metadataParams(m: ObjectMetadata) {
  return {
    ...(m.contentType ? { ContentType: m.contentType } : {}),
    ...(m.cacheControl ? { CacheControl: m.cacheControl } : {}),
    ...(m.contentDisposition ? { ContentDisposition: m.contentDisposition } : {}),
    ...(m.contentEncoding ? { ContentEncoding: m.contentEncoding } : {}),
    ...(m.expires && !Number.isNaN(Date.parse(m.expires)) ? { Expires: new Date(m.expires) } : {}),
    Metadata: { ...m.meta },
  };
}

function infoFrom(key: string, out: Pick<HeadObjectCommandOutput, 'ETag' | 'LastModified' | 'ContentType' | 'CacheControl' | 'ContentDisposition' | 'ContentEncoding' | 'Expires' | 'Metadata'>, size: number): ObjectInfo {
  return {
    key,
    size,
    etag: out.ETag ?? '',
    lastModified: out.LastModified ?? new Date(0),
    metadata: {
      ...(out.ContentType ? { contentType: out.ContentType } : {}),
      ...(out.CacheControl ? { cacheControl: out.CacheControl } : {}),
      ...(out.ContentDisposition ? { contentDisposition: out.ContentDisposition } : {}),
      ...(out.ContentEncoding ? { contentEncoding: out.ContentEncoding } : {}),
      ...(out.Expires ? { expires: out.Expires.toUTCString() } : {}),
      meta: { ...out.Metadata },
    },
  };
}

/**
 * An S3 error as the COS error of the same name (S3 and COS share NoSuchKey,
 * NoSuchBucket, NoSuchUpload, InvalidPart, BadDigest, BucketNotEmpty, …);
 * a HEAD's bodiless 404 is NoSuchKey or NoSuchBucket; a missing object is
 * ObjectNotFoundError, as from local disk. Anything else is passed on
 * (InternalError at the edge).
 */
function translate(err: unknown, bucket: string, key: string | undefined): unknown {
  if (err instanceof CiError) return err;
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  let name = e.name ?? '';
  if (name === 'NotFound' || (status === 404 && !(name in CI_ERRORS))) name = key === undefined ? 'NoSuchBucket' : 'NoSuchKey';
  if (name === 'NoSuchKey' && key !== undefined) return new ObjectNotFoundError(bucket, key);
  if (name in CI_ERRORS && status !== undefined && status < 500) return new CiError(name as CiErrorCode);
  return err;
}

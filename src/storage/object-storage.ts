/**
 * What the COS object API needs from a storage backend, on top of the five
 * calls jobs use (`Storage`): streams in and out, metadata, listing, buckets
 * and multipart uploads. Named after the API's verbs, as MinIO's ObjectLayer
 * is; the backends are `local-disk-objects.ts` (files, metadata in sidecars)
 * and `s3.ts` (any S3-compatible store, metadata in the store's own).
 *
 * Glossary: an object's *metadata* is what COS returns as headers beside the
 * bytes (Content-Type, Cache-Control, Content-Disposition, Content-Encoding,
 * Expires and every `x-cos-meta-*`); its *etag* is the quoted hex MD5 of the
 * bytes for a simple upload and `"<md5 of the parts' md5s>-<N>"` after a
 * multipart upload. Keys are checked by `assertSafeObjectKey` first.
 */
import type { Readable } from 'node:stream';
import type { ObjectStat, Storage } from './storage.js';

/** The headers an object keeps, as given at upload. */
export interface ObjectMetadata {
  readonly contentType?: string;
  readonly cacheControl?: string;
  readonly contentDisposition?: string;
  readonly contentEncoding?: string;
  readonly expires?: string;
  /** `x-cos-meta-<name>` → value; names in lower case without the prefix. */
  readonly meta: Readonly<Record<string, string>>;
}

export interface ObjectInfo extends ObjectStat {
  readonly key: string;
  readonly lastModified: Date;
  readonly metadata: ObjectMetadata;
}

/** An inclusive byte range, already checked against the object's size. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

export interface OpenedObject {
  readonly info: ObjectInfo;
  read(range?: ByteRange): Promise<Readable>;
  close(): Promise<void>;
}

export interface PutObjectInput {
  readonly body: Readable;
  readonly metadata: ObjectMetadata;
  /** The decoded Content-MD5, when the client sent one: a mismatch is BadDigest and nothing is stored. */
  readonly contentMd5?: Buffer;
  /** Declared Content-Length, when known; a body that ends short or runs long is refused. */
  readonly contentLength?: number;
  /** The most bytes accepted (COS: 5 GB for a PutObject or a part). */
  readonly maxBytes: number;
}

export interface ListObjectsInput {
  readonly prefix: string;
  readonly delimiter: string;
  /** Keys after this one (ListObjects' marker, V2's start-after or continuation token). */
  readonly marker: string;
  readonly maxKeys: number;
}

export interface ListObjectsResult {
  readonly contents: readonly ObjectInfo[];
  /** Sorted, each ending in the delimiter. */
  readonly commonPrefixes: readonly string[];
  readonly isTruncated: boolean;
  /** The last key or common prefix returned, when truncated. */
  readonly nextMarker: string | undefined;
}

export interface PartInfo {
  readonly partNumber: number;
  readonly etag: string;
  readonly size: number;
  readonly lastModified: Date;
}

export interface UploadInfo {
  readonly key: string;
  readonly uploadId: string;
  readonly initiated: Date;
}

export interface BucketInfo {
  readonly name: string;
  readonly createdAt: Date;
}

export interface CompletedPart {
  readonly partNumber: number;
  readonly etag: string;
}

export interface ObjectStorage extends Storage {
  /** The object's size, etag, time and metadata; `undefined` when it does not exist. */
  headObject(bucket: string, key: string): Promise<ObjectInfo | undefined>;
  /**
   * Opens the object for a GetObject: its info first (for Range and the
   * conditional headers), then `read` streams it (or a range); `close` when
   * not reading. Local disk reads the info and the bytes from one open file,
   * so they agree even when a PUT replaces the object meanwhile.
   * Throws ObjectNotFoundError.
   */
  openObject(bucket: string, key: string): Promise<OpenedObject>;
  /** A stream of the object (or of `range`). Throws ObjectNotFoundError. */
  getObjectStream(bucket: string, key: string, range?: ByteRange): Promise<{ info: ObjectInfo; body: Readable }>;
  /** Streams `input.body` into the object, MD5 computed on the way; readers never see it half-written. */
  putObject(bucket: string, key: string, input: PutObjectInput): Promise<ObjectInfo>;
  /** Copies an object; `metadata` replaces the source's when given (x-cos-metadata-directive: Replaced). */
  copyObject(source: { bucket: string; key: string }, bucket: string, key: string, metadata?: ObjectMetadata): Promise<ObjectInfo>;
  /** Keys in UTF-8 byte order after `marker`, grouped by `delimiter`. */
  listObjects(bucket: string, input: ListObjectsInput): Promise<ListObjectsResult>;

  bucketExists(bucket: string): Promise<boolean>;
  /** Every bucket the store holds, sorted by name, with the time it was made. */
  listBuckets(): Promise<BucketInfo[]>;
  /** Creates the bucket; false when it already existed. */
  createBucket(bucket: string): Promise<boolean>;
  /** Removes an empty bucket: BucketNotEmpty when it holds objects, NoSuchBucket when missing. */
  deleteBucket(bucket: string): Promise<void>;

  createMultipartUpload(bucket: string, key: string, metadata: ObjectMetadata): Promise<string>;
  /** NoSuchUpload when the upload is unknown (or belongs to another key). */
  uploadPart(bucket: string, key: string, uploadId: string, partNumber: number, input: Omit<PutObjectInput, 'metadata'>): Promise<PartInfo>;
  listParts(bucket: string, key: string, uploadId: string): Promise<{ parts: PartInfo[]; initiated: Date }>;
  /** Joins the listed parts (ascending, each etag matching) into the object; etag `"<md5 of md5s>-N"`. */
  completeMultipartUpload(bucket: string, key: string, uploadId: string, parts: readonly CompletedPart[]): Promise<ObjectInfo>;
  abortMultipartUpload(bucket: string, key: string, uploadId: string): Promise<void>;
  listMultipartUploads(bucket: string, prefix: string): Promise<UploadInfo[]>;
}

/** COS's limits on one PutObject and one part (5 GB), and on a part's size except the last (1 MB). */
export const MAX_PUT_BYTES = 5 * 1024 ** 3;
export const MIN_PART_BYTES = 1024 * 1024;
export const MAX_PART_NUMBER = 10_000;

/** The multipart etag: `"<hex md5 of the concatenated binary part md5s>-<N>"`, as COS and S3 compute it. */
export function multipartEtag(partEtags: readonly string[], md5: (data: Buffer) => string): string {
  const joined = Buffer.concat(partEtags.map((etag) => Buffer.from(etag.replace(/"/g, ''), 'hex')));
  return `"${md5(joined)}-${partEtags.length}"`;
}

/**
 * Groups keys (sorted, all after the marker and under the prefix) into
 * contents and common prefixes, up to `maxKeys` entries, as ListObjects
 * does: a key with the delimiter after the prefix counts once, as its prefix.
 * `infoFor` is called only for keys that are returned.
 */
export async function groupListing(
  sortedKeys: Iterable<string>,
  input: ListObjectsInput,
  infoFor: (key: string) => Promise<ObjectInfo | undefined>,
): Promise<ListObjectsResult> {
  const contents: ObjectInfo[] = [];
  const commonPrefixes: string[] = [];
  let last: string | undefined;
  let isTruncated = false;
  for (const key of sortedKeys) {
    if (!key.startsWith(input.prefix) || compareKeys(key, input.marker) <= 0) continue;
    let entry: string | undefined = key;
    let isPrefix = false;
    if (input.delimiter !== '') {
      const at = key.indexOf(input.delimiter, input.prefix.length);
      if (at >= 0) {
        entry = key.slice(0, at + input.delimiter.length);
        isPrefix = true;
        if (entry === last || compareKeys(entry, input.marker) <= 0) continue;
      }
    }
    if (contents.length + commonPrefixes.length >= input.maxKeys) {
      isTruncated = true;
      break;
    }
    if (isPrefix) {
      commonPrefixes.push(entry);
    } else {
      const info = await infoFor(key);
      if (!info) continue;
      contents.push(info);
    }
    last = entry;
  }
  return { contents, commonPrefixes, isTruncated, nextMarker: isTruncated ? last : undefined };
}

/** COS lists keys in the byte order of their UTF-8, which is not JavaScript's UTF-16 order. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

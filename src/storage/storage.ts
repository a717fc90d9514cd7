/**
 * Where job inputs are read and outputs written. Local disk implements it now;
 * an S3-compatible backend can implement the same five calls later.
 *
 * Keys are checked by `assertSafeObjectKey` before any call; implementations
 * check again, because they are the last line before the file system.
 */
import type { ListObjectsInput, ListObjectsResult } from './object-storage.js';

export interface ObjectStat {
  readonly size: number;
  /** Quoted hex MD5 of the bytes, as COS reports it: `"d5a4…"`. */
  readonly etag: string;
}

export interface Storage {
  /** Reads the whole object. Throws `ObjectNotFoundError` when it is missing. */
  get(bucket: string, key: string): Promise<Buffer>;
  /**
   * Runs `use` with a path to a local file holding the object (tools such as
   * ffprobe want a path). For local disk this is the file itself; remote
   * backends download to a temporary file and remove it afterwards. A missing
   * object rejects with ObjectNotFoundError (local disk: once `use` has failed
   * on it).
   */
  withLocalFile<T>(bucket: string, key: string, use: (filePath: string) => Promise<T>): Promise<T>;
  /** Writes atomically: readers never see a half-written object. */
  put(bucket: string, key: string, data: Buffer): Promise<ObjectStat>;
  /**
   * Stores a local file as the object, atomically like `put`, without reading
   * it into memory (an ffmpeg output can be gigabytes). The file may be moved
   * away (it is the caller's scratch file). Optional: callers fall back to
   * reading the file and calling `put`.
   */
  putFile?(bucket: string, key: string, filePath: string): Promise<ObjectStat>;
  stat(bucket: string, key: string): Promise<ObjectStat | undefined>;
  /**
   * Keys under a prefix, as the object API lists them (FileCompress's Prefix
   * source). Optional: the object API's backends list, the jobs-only local
   * disk store does not.
   */
  listObjects?(bucket: string, input: ListObjectsInput): Promise<ListObjectsResult>;
  delete(bucket: string, key: string): Promise<void>;
}

export class ObjectNotFoundError extends Error {
  constructor(readonly bucket: string, readonly key: string) {
    super(`The object ${key} does not exist in bucket ${bucket}.`);
    this.name = 'ObjectNotFoundError';
  }
}

import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { CiError } from '../errors.js';
import { assertSafeBucket, assertSafeObjectKey } from './object-key.js';
import { ObjectNotFoundError, type ObjectStat, type Storage } from './storage.js';

function md5Etag(data: Buffer): string {
  return `"${createHash('md5').update(data).digest('hex')}"`;
}

/** The quoted MD5 of a file, read as a stream, and its size: what was read, so no stat is needed. */
async function md5EtagOfFile(file: string): Promise<ObjectStat> {
  const hash = createHash('md5');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, etag: `"${hash.digest('hex')}"` };
}

/** Objects as files under `<root>/<bucket>/<key>`. */
export class LocalDiskStorage implements Storage {
  private readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  /** Resolves a key to its file, refusing anything that would land outside the bucket. */
  private filePath(bucket: string, key: string): string {
    assertSafeBucket(bucket);
    assertSafeObjectKey(key);
    const bucketDir = path.join(this.root, bucket);
    const file = path.resolve(bucketDir, key);
    // Unreachable after assertSafeObjectKey; a request's fault, not the server's, if it ever is not.
    if (!file.startsWith(bucketDir + path.sep)) throw new CiError('InvalidArgument', `The object key ${key} escapes its bucket.`);
    return file;
  }

  async get(bucket: string, key: string): Promise<Buffer> {
    const file = this.filePath(bucket, key);
    try {
      return await fs.readFile(file);
    } catch (err) {
      throw notFoundOr(err, bucket, key);
    }
  }

  async withLocalFile<T>(bucket: string, key: string, use: (filePath: string) => Promise<T>): Promise<T> {
    const file = this.filePath(bucket, key);
    try {
      return await use(file);
    } catch (err) {
      // The object is looked at only when its use failed: a stat before every
      // use cost a thread-pool round trip per job, and a missing object is rare.
      const stat = await fs.stat(file).catch((statErr: unknown) => {
        if (notFoundOr(statErr, bucket, key) instanceof ObjectNotFoundError) return undefined;
        throw err;
      });
      if (!stat?.isFile()) throw new ObjectNotFoundError(bucket, key);
      throw err;
    }
  }

  async put(bucket: string, key: string, data: Buffer): Promise<ObjectStat> {
    await this.writeInPlace(bucket, key, (temp) => fs.writeFile(temp, data));
    return { size: data.length, etag: md5Etag(data) };
  }

  async putFile(bucket: string, key: string, source: string): Promise<ObjectStat> {
    const stat = await md5EtagOfFile(source);
    // The scratch file is renamed straight into place when it is on the same file system
    // (<data dir>/tmp and <data dir>/buckets usually are): a rename is atomic by itself, and
    // a temporary name beside the object would cost a second rename per output (a Snapshot
    // job stores three). Copied beside the object and renamed otherwise.
    await this.placeFile(bucket, key, (file) => fs.rename(source, file)).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EXDEV') throw err;
      await this.writeInPlace(bucket, key, (temp) => fs.copyFile(source, temp));
    });
    return stat;
  }

  /**
   * Has `fill` make a temporary file beside the object, then renames it into
   * place, so a crash mid-write never leaves a truncated object under the real key.
   */
  private async writeInPlace(bucket: string, key: string, fill: (temp: string) => Promise<void>): Promise<void> {
    // Named apart from the key, so that a key segment of the longest allowed length still fits.
    let temp: string | undefined;
    try {
      await this.placeFile(bucket, key, async (file) => {
        temp ??= path.join(path.dirname(file), `.${randomBytes(6).toString('hex')}.partial`);
        await fill(temp);
        await fs.rename(temp, file);
      });
    } catch (err) {
      if (temp) await fs.rm(temp, { force: true }).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Runs `place` with the object's file name: it puts the file there (by one
   * rename, so that a crash never leaves a truncated object under the key).
   * Its folder is made, and `place` run again, only when it is missing.
   */
  private async placeFile(bucket: string, key: string, place: (file: string) => Promise<void>): Promise<void> {
    const file = this.filePath(bucket, key);
    try {
      await place(file).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
        // Folders are made only when missing: a mkdir on every write cost ~15 % of a put's CPU. One
        // found there was made by a write beside this one meanwhile, or the source vanished: then
        // the second try fails again.
        if (!(await fs.stat(path.dirname(file)).then(() => true, () => false))) await fs.mkdir(path.dirname(file), { recursive: true });
        await place(file);
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // A folder where the object should be, or an object where a folder should be: writing again cannot help.
      if (code === 'EISDIR' || code === 'ENOTDIR' || code === 'EEXIST' || code === 'ENOTEMPTY') {
        throw new CiError('InvalidArgument', `The object ${key} cannot be written in bucket ${bucket}: it collides with an existing object or folder.`);
      }
      throw err;
    }
  }

  async stat(bucket: string, key: string): Promise<ObjectStat | undefined> {
    try {
      const data = await this.get(bucket, key);
      return { size: data.length, etag: md5Etag(data) };
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return undefined;
      throw err;
    }
  }

  async delete(bucket: string, key: string): Promise<void> {
    await fs.rm(this.filePath(bucket, key), { force: true });
  }
}

function notFoundOr(err: unknown, bucket: string, key: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (err instanceof ObjectNotFoundError || code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') {
    return new ObjectNotFoundError(bucket, key);
  }
  return err;
}

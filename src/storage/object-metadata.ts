/**
 * Where the local-disk backend keeps what COS returns beside an object's
 * bytes (etag, Content-Type and the other stored headers, `x-cos-meta-*`):
 * a JSON sidecar per object under `<root>/.meta/<bucket>/<sha256(key)[0:2]>/<sha256(key)>.json`.
 *
 * Why a sidecar and not a table: the metadata must travel with the bytes.
 * A row written in another transaction than the file's rename can disagree
 * with it after a crash, objects are also written by jobs and by hand
 * (`cp` into data/buckets, as the README shows), and the s3 backend keeps
 * the same fields in the store's own object metadata, where every machine
 * sees them; a table would be a second copy for that backend. Why hashed
 * names: a sidecar tree mirroring the keys would collide with itself the
 * way `a` and `a/b` do, and a key of 850 bytes does not fit a file name.
 *
 * A sidecar names the file it describes by inode, size and mtime; it is
 * written before the object's rename (from the temporary file's fstat, which
 * a rename keeps), so a reader sees either the old pair or the new one. A
 * sidecar that does not match the file (the object was replaced by a job's
 * output or by hand) is ignored: the etag is then computed from the bytes,
 * the Content-Type guessed from the extension, and the result written back.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ObjectMetadata } from './object-storage.js';

export interface Sidecar {
  readonly v: 1;
  readonly key: string;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly etag: string;
  readonly metadata: ObjectMetadata;
}

export function sidecarPath(root: string, bucket: string, key: string): string {
  const hash = createHash('sha256').update(key, 'utf8').digest('hex');
  return path.join(root, '.meta', bucket, hash.slice(0, 2), `${hash}.json`);
}

/** The sidecar of `key` when it describes exactly the file `stat` is of. */
export async function readSidecar(root: string, bucket: string, key: string, stat: Stats): Promise<Sidecar | undefined> {
  return sidecarFor(await loadSidecar(root, bucket, key), key, stat);
}

/**
 * The sidecar of `key` as stored, whatever file it names (undefined when
 * missing or unreadable; never rejects), so that a reader can load it while
 * it opens and stats the object, and match the two with `sidecarFor`.
 */
export async function loadSidecar(root: string, bucket: string, key: string): Promise<Sidecar | undefined> {
  try {
    return JSON.parse(await fs.readFile(sidecarPath(root, bucket, key), 'utf8')) as Sidecar;
  } catch {
    return undefined;
  }
}

/** `sidecar` when it describes exactly the file `stat` is of. */
export function sidecarFor(sidecar: Sidecar | undefined, key: string, stat: Stats): Sidecar | undefined {
  const matches = sidecar !== undefined && sidecar.v === 1 && sidecar.key === key && sidecar.ino === stat.ino && sidecar.size === stat.size && sidecar.mtimeMs === stat.mtimeMs;
  return matches ? sidecar : undefined;
}

/** Writes the sidecar atomically (temporary file + rename). */
export async function writeSidecar(root: string, bucket: string, key: string, stat: Stats, etag: string, metadata: ObjectMetadata): Promise<void> {
  await (await prepareSidecar(root, bucket, key, stat, etag, metadata)).commit();
}

export interface PreparedSidecar {
  /** Renames the sidecar into place. */
  commit(): Promise<void>;
  /** Removes the temporary file (the object was not committed). */
  discard(): Promise<void>;
}

/**
 * Writes the sidecar to a temporary file beside its place; `commit` renames
 * it there. A PutObject writes it while the object's file is fsynced, and
 * commits it just before the object's rename.
 */
export async function prepareSidecar(root: string, bucket: string, key: string, stat: Stats, etag: string, metadata: ObjectMetadata): Promise<PreparedSidecar> {
  const file = sidecarPath(root, bucket, key);
  const sidecar: Sidecar = { v: 1, key, ino: stat.ino, size: stat.size, mtimeMs: stat.mtimeMs, etag, metadata };
  const temp = `${file}.${randomBytes(6).toString('hex')}.partial`;
  const body = JSON.stringify(sidecar);
  await fs.writeFile(temp, body).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(temp, body);
  });
  const discard = () => fs.rm(temp, { force: true }).catch(() => undefined);
  return {
    commit: () => fs.rename(temp, file).catch(async (err: unknown) => {
      await discard();
      throw err;
    }),
    discard,
  };
}

export async function removeSidecar(root: string, bucket: string, key: string): Promise<void> {
  await fs.rm(sidecarPath(root, bucket, key), { force: true });
}

/** A Content-Type for an object stored without one, from its extension (what COS guesses at upload). */
export function guessContentType(key: string): string {
  const ext = path.extname(key).slice(1).toLowerCase();
  return CONTENT_TYPES[ext] ?? 'application/octet-stream';
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  txt: 'text/plain', html: 'text/html', htm: 'text/html', css: 'text/css', csv: 'text/csv', xml: 'application/xml',
  json: 'application/json', js: 'application/javascript', pdf: 'application/pdf', zip: 'application/zip',
  jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', gif: 'image/gif', webp: 'image/webp', bmp: 'image/bmp',
  avif: 'image/avif', heic: 'image/heic', tif: 'image/tiff', tiff: 'image/tiff', svg: 'image/svg+xml', ico: 'image/x-icon',
  mp4: 'video/mp4', m4v: 'video/mp4', mov: 'video/quicktime', mkv: 'video/x-matroska', webm: 'video/webm', flv: 'video/x-flv',
  avi: 'video/x-msvideo', ts: 'video/mp2t', m3u8: 'application/vnd.apple.mpegurl', mpd: 'application/dash+xml',
  mp3: 'audio/mpeg', m4a: 'audio/mp4', aac: 'audio/aac', flac: 'audio/flac', wav: 'audio/wav', ogg: 'audio/ogg',
  opus: 'audio/opus', amr: 'audio/amr', srt: 'application/x-subrip', vtt: 'text/vtt',
};

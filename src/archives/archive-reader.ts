/**
 * Reads the entries of a zip, tar or tar.gz file one at a time, each as a
 * stream: FileUncompress. Nothing is trusted from the archive's own headers:
 * the caller counts the bytes that really come out, and every failure of the
 * format (a bad checksum, a truncated stream, an entry name yauzl refuses)
 * is an `ArchiveFormatError`.
 *
 * Zip is yauzl's (central directory, entries read lazily, sizes checked as
 * they inflate). Tar is node-tar's `Parser` in strict mode (a bad header is
 * an error, not a warning), fed through Node's gunzip when the file starts
 * with gzip's magic bytes, so that a tar.gz is inflated only as fast as its
 * entries are consumed.
 */
import { createReadStream, promises as fs } from 'node:fs';
import { once } from 'node:events';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import yauzl from 'yauzl';

export type ArchiveKind = 'zip' | 'tar';

export interface ArchiveEntry {
  /** The name as stored, `/`-separated (zip names decoded by yauzl, which turns `\` into `/`). */
  readonly name: string;
  /** Only files have bytes; directories, links, devices and the like are `other`. */
  readonly type: 'file' | 'other';
  /** The entry's bytes; call at most once, and consume the stream. */
  open(): Promise<Readable>;
}

/** The archive cannot be read as what it claims to be. */
export class ArchiveFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveFormatError';
  }
}

const ZIP_MAGIC = [Buffer.from('PK\x03\x04', 'latin1'), Buffer.from('PK\x05\x06', 'latin1')];
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const USTAR_MAGIC = Buffer.from('ustar', 'latin1');
const USTAR_OFFSET = 257;

/** The archive kind by the object's name, else by the file's first bytes; undefined when neither tells. */
export async function archiveKind(name: string, file: string): Promise<ArchiveKind | undefined> {
  const lower = name.toLowerCase();
  if (lower.endsWith('.zip')) return 'zip';
  if (/\.(tar|tar\.gz|tgz)$/.test(lower)) return 'tar';
  const head = await readHead(file, USTAR_OFFSET + USTAR_MAGIC.length);
  if (ZIP_MAGIC.some((magic) => head.subarray(0, magic.length).equals(magic))) return 'zip';
  if (head.subarray(0, 2).equals(GZIP_MAGIC) || head.subarray(USTAR_OFFSET).equals(USTAR_MAGIC)) return 'tar';
  return undefined;
}

async function readHead(file: string, length: number): Promise<Buffer> {
  const handle = await fs.open(file, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

export interface ReadArchiveOptions {
  readonly signal: AbortSignal;
  /** Called with each entry in order, the next only once the returned promise has settled. An entry not opened is skipped. */
  readonly onEntry: (entry: ArchiveEntry) => Promise<void>;
  /**
   * Told of the bytes as they inflate (zip: an opened entry's; tar: the whole
   * stream's, headers and skipped entries included); throwing stops the reading
   * with that error.
   */
  readonly takeBytes: (bytes: number) => void;
  /** Share of the archive read, 0–1. */
  readonly onProgress?: (fraction: number) => void;
}

/** Reads every entry of the archive in `file`; rejects with ArchiveFormatError for a damaged one, or with what `onEntry` threw. */
export async function readArchive(file: string, kind: ArchiveKind, options: ReadArchiveOptions): Promise<void> {
  return kind === 'zip' ? readZip(file, options) : readTar(file, options);
}

const UNIX_FILE_TYPE = 0o170000;
const UNIX_REGULAR_FILE = 0o100000;
const MADE_BY_UNIX = 3;

/** A zip entry is a regular file unless its name ends in `/` or its Unix mode (when made on Unix) says otherwise (a symlink, a device). */
function zipEntryType(entry: yauzl.Entry): ArchiveEntry['type'] {
  if (entry.fileName.endsWith('/')) return 'other';
  const mode = (entry.externalFileAttributes >>> 16) & UNIX_FILE_TYPE;
  if (entry.versionMadeBy >> 8 === MADE_BY_UNIX && mode !== 0 && mode !== UNIX_REGULAR_FILE) return 'other';
  return 'file';
}

async function readZip(file: string, options: ReadArchiveOptions): Promise<void> {
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.openPromise(file, { lazyEntries: true, autoClose: false, decodeStrings: true, validateEntrySizes: true, strictFileNames: false });
  } catch (err) {
    throw new ArchiveFormatError((err as Error).message);
  }
  try {
    const entries = zip.eachEntry();
    for (;;) {
      options.signal.throwIfAborted();
      let next: IteratorResult<yauzl.Entry>;
      try {
        next = await entries.next();
      } catch (err) {
        throw new ArchiveFormatError((err as Error).message);
      }
      if (next.done) return;
      const entry = next.value;
      await options.onEntry({
        name: entry.fileName,
        type: zipEntryType(entry),
        open: async () => {
          if (entry.isEncrypted()) throw new ArchiveFormatError(`${entry.fileName} is encrypted; archives with a password are not supported.`);
          if (!entry.canDecodeFileData()) throw new ArchiveFormatError(`${entry.fileName} uses compression method ${entry.compressionMethod}, which cannot be read (only stored and deflate).`);
          let stream: Readable;
          try {
            stream = await zip.openReadStreamPromise(entry);
          } catch (err) {
            throw new ArchiveFormatError((err as Error).message);
          }
          const counted = new Transform({
            transform(chunk: Buffer, _encoding, done) {
              try {
                options.takeBytes(chunk.length);
                done(null, chunk);
              } catch (err) {
                done(err as Error);
              }
            },
          });
          // yauzl's own checks (a size or CRC that does not match) fail the stream: its format errors.
          stream.on('error', (err) => counted.destroy(new ArchiveFormatError(err.message)));
          counted.on('close', () => stream.destroy());
          return stream.pipe(counted);
        },
      });
      options.onProgress?.(zip.entriesRead / Math.max(1, zip.entryCount));
    }
  } finally {
    zip.close();
  }
}

/** Node-tar's entry types that carry the bytes of a regular file ('OldFile' is pre-POSIX tar's). */
const TAR_FILE_TYPES: ReadonlySet<string> = new Set(['File', 'OldFile', 'ContiguousFile']);

async function readTar(file: string, options: ReadArchiveOptions): Promise<void> {
  const { size } = await fs.stat(file);
  const gzipped = (await readHead(file, 2)).equals(GZIP_MAGIC);
  // strict: a bad checksum or an unknown format is an error rather than a skipped entry; brotli and zstd are not sniffed.
  const parser = new Parser({ strict: true, brotli: false, zstd: false });
  let failure: unknown;
  const failed = new Promise<never>((_, reject) => {
    parser.on('error', (err: Error) => reject(new ArchiveFormatError(err.message)));
  });
  failed.catch((err: unknown) => { failure ??= err; });
  // Entries arrive one at a time (the parser waits for each to end), but onEntry is async: chained in order.
  let handled: Promise<void> = Promise.resolve();
  let current: ReadEntry | undefined;
  parser.on('entry', (entry: ReadEntry) => {
    current = entry;
    handled = handled.then(async () => {
      if (failure !== undefined) return entry.resume();
      let opened = false;
      try {
        await options.onEntry({
          name: entry.path,
          type: TAR_FILE_TYPES.has(entry.type) ? 'file' : 'other',
          open: async () => {
            opened = true;
            return entry as unknown as Readable;
          },
        });
      } catch (err) {
        failure ??= err;
      }
      if (!opened || failure !== undefined) entry.resume();
    });
  });
  const ended = new Promise<void>((resolve) => parser.on('end', () => resolve()));
  let read = 0;
  const feed = async (input: AsyncIterable<Buffer>) => {
    for await (const chunk of input) {
      if (failure !== undefined) break;
      options.takeBytes(chunk.length);
      if (!parser.write(chunk)) await Promise.race([once(parser, 'drain', { signal: options.signal }), failed]);
    }
    if (failure === undefined) {
      parser.end();
      await Promise.race([ended, failed]);
    }
  };
  const source = createReadStream(file);
  source.on('data', (chunk) => {
    read += chunk.length;
    options.onProgress?.(read / Math.max(1, size));
  });
  try {
    if (gzipped) await pipeline(source, createGunzip(), feed, { signal: options.signal });
    else await pipeline(source, feed, { signal: options.signal });
  } catch (err) {
    failure ??= (err as NodeJS.ErrnoException).code?.startsWith('Z_') ? new ArchiveFormatError(`gzip: ${(err as Error).message}`) : err;
    // The parser is fed no more: an entry being read would wait for the rest of its bytes forever.
    current?.destroy(failure as Error);
  }
  await handled;
  if (failure !== undefined) throw failure;
}

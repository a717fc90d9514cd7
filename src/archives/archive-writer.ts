/**
 * Writes a zip, tar or tar.gz archive to a local file, one entry at a time,
 * each streamed in (never an archive or an entry whole in memory): FileCompress.
 *
 * Zip is yazl's (deflate at the given level, zip64 when needed). Tar is
 * written here with node-tar's own header and pax encoders: its `Pack` adds
 * files by their path on disk, while an entry here is named by the job
 * (Flatten, Folder, Rename) and read from the storage.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { Header, Pax } from 'tar';
import yazl from 'yazl';

export const ARCHIVE_FORMATS = ['zip', 'tar', 'tar.gz'] as const;
export type ArchiveFormat = (typeof ARCHIVE_FORMATS)[number];

export interface ArchiveSource {
  readonly stream: Readable;
  /** The bytes `stream` will give: tar writes it before the data, and a different count is an error. */
  readonly size: number;
  readonly mtime: Date;
}

export interface ArchiveWriter {
  /** Adds one regular file named `name` (`/`-separated); resolves once its bytes have been taken in. */
  add(name: string, source: ArchiveSource): Promise<void>;
  /** Writes the archive's end; resolves once the file is complete. */
  finish(): Promise<void>;
}

const TAR_BLOCK = 512;

/**
 * An archive of `format` written to `file`; `level` is the deflate level
 * (1–9) of zip and tar.gz. Aborting `signal` stops the writing (the caller
 * removes the file).
 */
export function createArchiveWriter(format: ArchiveFormat, file: string, level: number, signal: AbortSignal): ArchiveWriter {
  return format === 'zip' ? zipWriter(file, level, signal) : tarWriter(file, format === 'tar.gz' ? level : undefined, signal);
}

function zipWriter(file: string, level: number, signal: AbortSignal): ArchiveWriter {
  const zip = new yazl.ZipFile();
  const written = pipeline(zip.outputStream, createWriteStream(file), { signal });
  // yazl reports a stream that gives another size than declared on the ZipFile itself: unheard, it would crash the process.
  zip.on('error', (err: Error) => (zip.outputStream as Readable).destroy(err));
  // Awaited by add and finish; marked handled so a failure before either is not an unhandled rejection.
  written.catch(() => undefined);
  return {
    async add(name, source) {
      zip.addReadStream(source.stream, name, { size: source.size, mtime: source.mtime, compressionLevel: level });
      // yazl reads the stream when its turn comes; a failed output never reads it, hence the race.
      await Promise.race([finished(source.stream), written.then(() => { throw new Error('The zip output ended before its entries.'); })]);
    },
    async finish() {
      zip.end();
      await written;
    },
  };
}

function tarWriter(file: string, gzipLevel: number | undefined, signal: AbortSignal): ArchiveWriter {
  const tar = new PassThrough();
  const written = gzipLevel === undefined
    ? pipeline(tar, createWriteStream(file), { signal })
    : pipeline(tar, createGzip({ level: gzipLevel }), createWriteStream(file), { signal });
  written.catch(() => undefined);
  const write = async (chunk: Buffer) => {
    if (!tar.write(chunk)) await Promise.race([once(tar, 'drain', { signal }), written]);
  };
  return {
    async add(name, source) {
      const fields = { path: name, mode: 0o644, size: source.size, mtime: source.mtime };
      const header = new Header({ ...fields, type: 'File' });
      // encode() says whether the name or size overflows ustar's fields: a pax record before the header carries them.
      if (header.encode()) await write(new Pax(fields).encode());
      await write(header.block!);
      let size = 0;
      for await (const chunk of source.stream) {
        size += (chunk as Buffer).length;
        if (size > source.size) break;
        await write(chunk as Buffer);
      }
      if (size !== source.size) throw new Error(`${name} changed while it was archived (${source.size} bytes expected).`);
      const padding = (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK;
      if (padding > 0) await write(Buffer.alloc(padding));
    },
    async finish() {
      // The end of a tar archive: two zero blocks.
      await write(Buffer.alloc(2 * TAR_BLOCK));
      tar.end();
      await written;
    },
  };
}

import { gzipSync } from 'node:zlib';
import { Header, Parser, Pax, type ReadEntry } from 'tar';
import yauzl from 'yauzl';
import yazl from 'yazl';

/*
 * Archives built and opened in memory for the file-job suites, with the same
 * libraries the service uses but not its code: an archive the service writes
 * is read back by yauzl or node-tar's Parser directly, and the hostile ones
 * (names no tool would write, links, bombs) are built byte by byte.
 */

export interface TarEntrySpec {
  readonly name: string;
  readonly data?: Buffer;
  /** node-tar's type names: File (default), Directory, SymbolicLink, Link, CharacterDevice… */
  readonly type?: string;
  readonly linkpath?: string;
}

/** A tar (gzipped when asked) holding exactly these entries, names as given: nothing is normalised. */
export function tarBuffer(entries: readonly TarEntrySpec[], gzip = false): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const data = entry.data ?? Buffer.alloc(0);
    const fields = { path: entry.name, mode: 0o644, size: data.length, mtime: new Date('2024-05-01T00:00:00Z'), linkpath: entry.linkpath };
    const header = new Header({ ...fields, type: (entry.type ?? 'File') as 'File' });
    if (header.encode()) blocks.push(new Pax(fields).encode());
    blocks.push(header.block!, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  const tar = Buffer.concat(blocks);
  return gzip ? gzipSync(tar) : tar;
}

/** A zip of these entries (deflated); yazl refuses `..` and absolute names, see `renameInZip`. */
export async function zipBuffer(entries: ReadonlyArray<{ name: string; data: Buffer }>): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const { name, data } of entries) zip.addBuffer(data, name);
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * Replaces a name in a zip's local and central headers with another of the
 * same length: how a `../evil` or `/abs` entry is made, which yazl would not
 * write. The CRC covers the data only, so the archive stays valid.
 */
export function renameInZip(zip: Buffer, from: string, to: string): Buffer {
  if (Buffer.byteLength(from) !== Buffer.byteLength(to)) throw new Error('names must have the same length');
  const out = Buffer.from(zip);
  let at = out.indexOf(from);
  let count = 0;
  while (at >= 0) {
    out.write(to, at);
    count++;
    at = out.indexOf(from, at + 1);
  }
  if (count < 2) throw new Error(`${from} was found ${count} times, not in both headers`);
  return out;
}

/** Every file entry of a zip: name → bytes. */
export async function zipEntries(zip: Buffer): Promise<Map<string, Buffer>> {
  const file = await yauzl.fromBufferPromise(zip, { lazyEntries: true });
  const entries = new Map<string, Buffer>();
  for await (const entry of file.eachEntry()) {
    const chunks: Buffer[] = [];
    for await (const chunk of await file.openReadStreamPromise(entry)) chunks.push(chunk as Buffer);
    entries.set(entry.fileName, Buffer.concat(chunks));
  }
  return entries;
}

/** Every entry of a tar or tar.gz: name → bytes. */
export async function tarEntries(tar: Buffer): Promise<Map<string, Buffer>> {
  const entries = new Map<string, Buffer>();
  await new Promise<void>((resolve, reject) => {
    const parser = new Parser({ strict: true });
    parser.on('entry', (entry: ReadEntry) => {
      const chunks: Buffer[] = [];
      entry.on('data', (chunk: Buffer) => chunks.push(chunk));
      entry.on('end', () => entries.set(entry.path, Buffer.concat(chunks)));
    });
    parser.on('error', reject);
    parser.on('end', resolve);
    parser.end(tar);
  });
  return entries;
}

/**
 * Tag=FileUncompress (shared/ci-media-tags.md §16, the `/file_jobs` family):
 * the entries of a zip, tar or tar.gz object stored as objects of the job's
 * bucket.
 *
 * `FileUncompressConfig{Prefix (default the bucket root), PrefixReplaced 0|1|2
 * (0: entries straight under Prefix; 1: under Prefix/<archive name without its
 * extension>/; 2: under Prefix/<archive key without its extension>/),
 * UnCompressKey, Mode, DownloadConfig{Prefix, Key[]}}`, `Output{Region,Bucket}`.
 * DownloadConfig keeps only the entries whose name starts with its Prefix or
 * equals one of its Keys. UnCompressKey (a zip password) is refused at submit:
 * yauzl cannot decrypt. Mode, whose meaning CI does not document, is ignored.
 * Output/Bucket, when given, must be the job's own bucket.
 *
 * The kind of archive comes from the key's extension (.zip, .tar, .tar.gz,
 * .tgz), else from the file's magic bytes. Archives are hostile input:
 * - only regular files are extracted; directories, symlinks, hard links and
 *   devices are skipped;
 * - an entry named with an absolute path or a `..` segment, or whose key the
 *   object API would refuse, fails the job (InvalidMedia) rather than being
 *   stored anywhere else; `./` and empty segments are dropped;
 * - MEDIAJOBS_FILE_UNCOMPRESS_MAX_BYTES caps the bytes that really inflate
 *   (tar: the whole inflated stream), MEDIAJOBS_FILE_UNCOMPRESS_MAX_FILES the
 *   entries read, both counted while reading (LimitExceeded), never taken from
 *   the archive's headers;
 * - a damaged archive is InvalidMedia.
 * Every entry is first written to the job's work folder; the objects are
 * stored only once the whole archive has been read, so a failed or cancelled
 * job leaves none of them behind.
 *
 * Result: `FileUncompressResult{Region, Bucket, FileCount}` (distinct keys stored).
 */
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Config } from '../config.js';
import { ArchiveFormatError, archiveKind, readArchive, type ArchiveEntry } from '../archives/archive-reader.js';
import { limitExceeded } from '../archives/limits.js';
import { PermanentJobError } from '../engine/job-errors.js';
import { CiError } from '../errors.js';
import { assertSafeObjectKey } from '../storage/object-key.js';
import { isXmlObject, type XmlObject, type XmlValue } from '../xml/tree.js';
import { asSubmitError, child, invalid, storeFiles, text, withInputFile, withWorkDir } from './media-output.js';
import type { Processor, ProcessorContext } from './processor.js';

export interface FileUncompressSpec {
  /** `''` or a folder ending in `/`. */
  readonly prefix: string;
  readonly prefixReplaced: 0 | 1 | 2;
  /** DownloadConfig: the entries wanted, or undefined for all. */
  readonly wanted: { readonly prefix: string | undefined; readonly keys: ReadonlySet<string> } | undefined;
  readonly output: { readonly region: string | undefined; readonly bucket: string | undefined };
}

/** An element that may repeat, as a list of its non-empty texts. */
export function textList(value: XmlValue | undefined): string[] {
  const items = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return items.flatMap((item) => text(item) ?? []);
}

/** A folder of the bucket given as a key prefix: `''`, or without a leading `/` and with a trailing one. */
export function folderPrefix(value: XmlValue | undefined, where: string): string {
  const trimmed = (text(value) ?? '').replace(/^\/+/, '').replace(/\/+$/, '');
  if (trimmed === '') return '';
  try {
    assertSafeObjectKey(trimmed, where);
  } catch (err) {
    throw err instanceof CiError ? invalid(err.message) : err;
  }
  return `${trimmed}/`;
}

/** The Operation's settings; `bucket` is the job's. Throws InvalidArgument naming the element. */
export function parseFileUncompress(operation: XmlObject, bucket: string): FileUncompressSpec {
  const config = child(operation, 'FileUncompressConfig');
  if (text(config.UnCompressKey) !== undefined) throw invalid('FileUncompressConfig/UnCompressKey is not supported here: archives with a password cannot be read (yauzl does not decrypt).');
  const replaced = text(config.PrefixReplaced) ?? '0';
  if (!/^[012]$/.test(replaced)) throw invalid(`FileUncompressConfig/PrefixReplaced must be 0, 1 or 2, not ${JSON.stringify(replaced)}.`);
  const download = isXmlObject(config.DownloadConfig) ? config.DownloadConfig : undefined;
  const wantedPrefix = download === undefined ? undefined : text(download.Prefix)?.replace(/^\/+/, '');
  const wantedKeys = new Set(textList(download?.Key).map((key) => key.replace(/^\/+/, '')));
  const output = child(operation, 'Output');
  const outputBucket = text(output.Bucket);
  if (outputBucket !== undefined && outputBucket !== bucket) throw invalid(`Output/Bucket must be the job's own bucket ${bucket}: archives are extracted into the bucket they are in.`);
  return {
    prefix: folderPrefix(config.Prefix, 'FileUncompressConfig/Prefix'),
    prefixReplaced: Number(replaced) as 0 | 1 | 2,
    wanted: wantedPrefix === undefined && wantedKeys.size === 0 ? undefined : { prefix: wantedPrefix, keys: wantedKeys },
    output: { region: text(output.Region), bucket: outputBucket },
  };
}

/** Submit-time checks. */
export function checkFileUncompressOperation(operation: XmlObject, _config: Config, where: string, bucket: string): void {
  try {
    parseFileUncompress(operation, bucket);
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export const fileUncompressProcessor: Processor = {
  tag: 'FileUncompress',
  run: (ctx) => runFileUncompress(ctx),
};

const ARCHIVE_EXTENSION = /\.(zip|tar|tar\.gz|tgz)$/i;

/** The folder PrefixReplaced adds: none, the archive's name, or its whole key, without the extension. */
function archiveFolder(archiveKey: string, prefixReplaced: 0 | 1 | 2): string {
  if (prefixReplaced === 0) return '';
  const withoutExtension = archiveKey.replace(ARCHIVE_EXTENSION, '');
  return `${prefixReplaced === 1 ? withoutExtension.slice(withoutExtension.lastIndexOf('/') + 1) : withoutExtension}/`;
}

function unsafeEntry(name: string, reason: string): PermanentJobError {
  return new PermanentJobError('InvalidMedia', `The archive's entry ${JSON.stringify(name)} ${reason}; nothing was extracted.`);
}

/** The entry's path inside the archive with `.` and empty segments dropped; undefined when nothing is left. */
function entryPath(name: string): string | undefined {
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw unsafeEntry(name, 'is an absolute path');
  const segments = name.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (segments.includes('..')) throw unsafeEntry(name, 'climbs out of its folder with ".."');
  return segments.length > 0 ? segments.join('/') : undefined;
}

function isWanted(spec: FileUncompressSpec, name: string): boolean {
  if (spec.wanted === undefined) return true;
  return spec.wanted.keys.has(name) || (spec.wanted.prefix !== undefined && name.startsWith(spec.wanted.prefix));
}

async function runFileUncompress(ctx: ProcessorContext): Promise<XmlObject> {
  const { job, config, signal } = ctx;
  const spec = parseFileUncompress(job.operation, job.bucket);
  const limits = config.fileJobLimits;
  const base = spec.prefix + archiveFolder(job.inputObject, spec.prefixReplaced);
  const outputs = new Map<string, string>();
  await withInputFile(ctx, async (archive) => {
    const kind = await archiveKind(job.inputObject, archive);
    if (kind === undefined) throw new PermanentJobError('InvalidMedia', `The input ${job.inputObject} is not a zip, tar or tar.gz archive.`);
    await withWorkDir(ctx, async (dir) => {
      let entries = 0;
      let written = 0;
      let inflated = 0;
      const onEntry = async (entry: ArchiveEntry) => {
        if (++entries > limits.uncompressMaxFiles) throw limitExceeded(`The archive ${job.inputObject} has more than ${limits.uncompressMaxFiles} entries (MEDIAJOBS_FILE_UNCOMPRESS_MAX_FILES); nothing was extracted.`);
        if (entry.type !== 'file') return;
        const name = entryPath(entry.name);
        if (name === undefined || !isWanted(spec, name)) return;
        const key = base + name;
        try {
          assertSafeObjectKey(key, 'its key');
        } catch (err) {
          throw err instanceof CiError ? unsafeEntry(entry.name, `cannot be stored: ${err.message}`) : err;
        }
        const file = path.join(dir, String(written++));
        await pipeline(await entry.open(), createWriteStream(file), { signal });
        outputs.set(key, file);
      };
      const takeBytes = (bytes: number) => {
        inflated += bytes;
        if (inflated > limits.uncompressMaxBytes) throw limitExceeded(`The archive ${job.inputObject} inflates to more than ${limits.uncompressMaxBytes} bytes (MEDIAJOBS_FILE_UNCOMPRESS_MAX_BYTES); nothing was extracted.`);
      };
      try {
        await readArchive(archive, kind, { signal, onEntry, takeBytes, onProgress: (fraction) => ctx.setProgress(fraction * 90) });
      } catch (err) {
        if (err instanceof ArchiveFormatError) throw new PermanentJobError('InvalidMedia', `The archive ${job.inputObject} cannot be read: ${err.message}`);
        throw err;
      }
      await storeFiles(ctx, job.bucket, [...outputs].map(([key, file]) => ({ key, file })));
    });
  });
  return {
    FileUncompressResult: {
      Region: spec.output.region ?? job.region,
      Bucket: job.bucket,
      FileCount: String(outputs.size),
    },
  };
}

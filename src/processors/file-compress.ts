/**
 * Tag=FileCompress (shared/ci-media-tags.md §16, the `/file_jobs` family):
 * objects of the job's bucket packed into one zip, tar or tar.gz object. The
 * request has no Input.
 *
 * `FileCompressConfig{Flatten 0|1 (required), Format zip|tar|tar.gz
 * (required), Type faster|better|default (deflate level 1, 9, 6 of zip and
 * tar.gz), CompressKey, UrlList, Prefix, Key[] (≤1000), IgnoreError,
 * KeyConfig[]{Key, Folder, Rename, ImageParams}}`, `Output{Region,Bucket,Object}`.
 *
 * The sources, by CI's priority UrlList > Prefix > Key, are objects of the
 * job's own bucket only: UrlList names an index object (a key or an object
 * URL of the bucket) whose lines are URL-encoded object URLs or keys, one a
 * line (surrounding quotes dropped); Prefix takes every object under it. At
 * most 10,000 files (CI's limit, LimitExceeded) and
 * MEDIAJOBS_FILE_COMPRESS_MAX_BYTES of them (default 50 GB, CI's).
 * Inside the archive a file keeps its key (Flatten=0) or its name alone
 * (Flatten=1); a KeyConfig for its key puts it in Folder and/or names it
 * Rename instead. Flatten keeps same-named files as repeated entries.
 *
 * A source that is missing, or an index line naming another bucket or no
 * valid key, fails the job (NoSuchKey, InvalidArgument) unless IgnoreError is
 * true: it is then skipped and listed in ErrorDetail. Refused at submit:
 * CompressKey (the zip writer cannot encrypt) and KeyConfig/ImageParams
 * (images are packed as they are).
 *
 * The archive is written to the job's work folder and stored under
 * Output/Object only when complete, so no partial archive is ever visible.
 *
 * Result: `FileCompressResult{Region, Bucket, Object, CompressFileCount,
 * ErrorCount, ErrorDetail{ErrorCount, ErrorFile[]}}`.
 */
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Config } from '../config.js';
import { ARCHIVE_FORMATS, createArchiveWriter, type ArchiveFormat, type ArchiveWriter } from '../archives/archive-writer.js';
import { limitExceeded } from '../archives/limits.js';
import { PermanentJobError } from '../engine/job-errors.js';
import { ObjectNotFoundError } from '../storage/storage.js';
import type { XmlObject, XmlValue } from '../xml/tree.js';
import { isXmlObject } from '../xml/tree.js';
import { folderPrefix, textList } from './file-uncompress.js';
import {
  asSubmitError, child, expandObject, flag, invalid, objectKeyOfUrl, readOutput, safeKey, storeFiles, text, withWorkDir, type OutputTarget, SUBMIT_CHECK_JOB,
} from './media-output.js';
import type { Processor, ProcessorContext } from './processor.js';

/** CI's limits: 1000 Keys in a request, 10,000 files from a UrlList or a Prefix. */
const MAX_KEYS = 1000;
const MAX_SOURCE_FILES = 10_000;
const LEVELS: Readonly<Record<string, number>> = { faster: 1, default: 6, better: 9 };
/** The longest UrlList line that can name a key: an object URL with an 850-byte key percent-encoded, with room to spare. */
const MAX_URL_LIST_LINE_BYTES = 4096;
/**
 * The largest UrlList index read: its lines are read whole, and a line of
 * hundreds of MB would not only fill memory but overflow V8's longest string
 * inside readline, an exception no caller can catch (the process would end).
 */
export const MAX_URL_LIST_BYTES = MAX_SOURCE_FILES * MAX_URL_LIST_LINE_BYTES;

type Source =
  | { readonly kind: 'urlList'; readonly indexKey: string }
  | { readonly kind: 'prefix'; readonly prefix: string }
  | { readonly kind: 'keys'; readonly keys: readonly string[] };

interface Placement {
  readonly folder?: string;
  readonly rename?: string;
}

export interface FileCompressSpec {
  readonly flatten: boolean;
  readonly format: ArchiveFormat;
  readonly level: number;
  readonly source: Source;
  readonly ignoreError: boolean;
  /** KeyConfig by Key. */
  readonly placements: ReadonlyMap<string, Placement>;
}

/** A key as the request gives it: a leading `/` dropped, then held to the object API's rules. */
function requestKey(value: string, where: string): string {
  return safeKey(value.replace(/^\/+/, ''), where);
}

function parsePlacements(value: XmlValue | undefined): Map<string, Placement> {
  const placements = new Map<string, Placement>();
  const items = Array.isArray(value) ? value : value === undefined ? [] : [value];
  for (const item of items) {
    const config = isXmlObject(item) ? item : {};
    const key = text(config.Key);
    if (key === undefined) throw invalid('FileCompressConfig/KeyConfig/Key is required.');
    if (text(config.ImageParams) !== undefined) throw invalid('FileCompressConfig/KeyConfig/ImageParams is not supported here: files are packed as they are stored.');
    const folder = folderPrefix(config.Folder, 'FileCompressConfig/KeyConfig/Folder').replace(/\/$/, '');
    const rename = text(config.Rename);
    placements.set(requestKey(key, 'FileCompressConfig/KeyConfig/Key'), {
      ...(text(config.Folder) !== undefined ? { folder } : {}),
      ...(rename !== undefined ? { rename: requestKey(rename, 'FileCompressConfig/KeyConfig/Rename') } : {}),
    });
  }
  return placements;
}

/** The Operation's settings; `bucket` is the job's. Throws InvalidArgument naming the element. */
export function parseFileCompress(operation: XmlObject, bucket: string): FileCompressSpec {
  const config = child(operation, 'FileCompressConfig');
  if (text(config.Flatten) === undefined) throw invalid('FileCompressConfig/Flatten is required (0 or 1).');
  const flatten = flag(config.Flatten, 'FileCompressConfig/Flatten');
  const format = text(config.Format)?.toLowerCase();
  if (format === undefined || !(ARCHIVE_FORMATS as readonly string[]).includes(format)) throw invalid('FileCompressConfig/Format must be zip, tar or tar.gz.');
  const type = text(config.Type)?.toLowerCase() ?? 'default';
  if (!Object.hasOwn(LEVELS, type)) throw invalid('FileCompressConfig/Type must be faster, better or default.');
  if (text(config.CompressKey) !== undefined) throw invalid('FileCompressConfig/CompressKey is not supported here: archives cannot be given a password (the zip writer, yazl, does not encrypt).');
  const urlList = text(config.UrlList);
  const prefix = text(config.Prefix)?.replace(/^\/+/, '');
  const keys = [...new Set(textList(config.Key).map((key) => requestKey(key, 'FileCompressConfig/Key')))];
  if (keys.length > MAX_KEYS) throw invalid(`FileCompressConfig/Key may be given at most ${MAX_KEYS} times.`);
  let source: Source;
  if (urlList !== undefined) source = { kind: 'urlList', indexKey: requestKey(objectKeyOfUrl(urlList, bucket, 'FileCompressConfig/UrlList'), 'FileCompressConfig/UrlList') };
  else if (prefix !== undefined) {
    if (prefix.replace(/\/+$/, '') !== '') requestKey(prefix.replace(/\/+$/, ''), 'FileCompressConfig/Prefix');
    source = { kind: 'prefix', prefix };
  } else if (keys.length > 0) source = { kind: 'keys', keys };
  else throw invalid('FileCompressConfig needs its sources: UrlList, Prefix or Key.');
  return {
    flatten,
    format: format as ArchiveFormat,
    level: LEVELS[type],
    source,
    ignoreError: flag(config.IgnoreError, 'FileCompressConfig/IgnoreError'),
    placements: parsePlacements(config.KeyConfig),
  };
}

/** Submit-time checks. */
export function checkFileCompressOperation(operation: XmlObject, _config: Config, where: string, bucket: string): void {
  try {
    parseFileCompress(operation, bucket);
    readOutput(operation, SUBMIT_CHECK_JOB, false);
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export const fileCompressProcessor: Processor = {
  tag: 'FileCompress',
  run: (ctx) => runFileCompress(ctx),
};

/** The file's name inside the archive. */
export function entryName(key: string, spec: Pick<FileCompressSpec, 'flatten' | 'placements'>): string {
  const placement = spec.placements.get(key);
  const slash = key.lastIndexOf('/');
  const folder = placement?.folder ?? (spec.flatten || slash < 0 ? '' : key.slice(0, slash));
  const name = placement?.rename ?? key.slice(slash + 1);
  return folder === '' ? name : `${folder}/${name}`;
}

interface Sources {
  readonly keys: string[];
  /** Index lines that name no object of the bucket (IgnoreError). */
  readonly refused: string[];
}

function tooManyFiles(): PermanentJobError {
  return limitExceeded(`FileCompress takes at most ${MAX_SOURCE_FILES} files; nothing was stored.`);
}

async function listPrefix(ctx: ProcessorContext, prefix: string): Promise<string[]> {
  const { storage, job } = ctx;
  if (!storage.listObjects) throw invalid('FileCompressConfig/Prefix needs a storage that lists objects.');
  const keys: string[] = [];
  let marker = '';
  for (;;) {
    ctx.signal.throwIfAborted();
    const page = await storage.listObjects(job.bucket, { prefix, delimiter: '', marker, maxKeys: 1000 });
    keys.push(...page.contents.map((object) => object.key));
    if (keys.length > MAX_SOURCE_FILES) throw tooManyFiles();
    if (!page.isTruncated || page.nextMarker === undefined) return keys;
    marker = page.nextMarker;
  }
}

/** The keys an index object lists, one URL or key a line; a line of another bucket is refused (IgnoreError) or fails the job. */
async function readUrlList(ctx: ProcessorContext, spec: FileCompressSpec, indexKey: string): Promise<Sources> {
  const keys: string[] = [];
  const refused: string[] = [];
  try {
    await ctx.storage.withLocalFile(ctx.job.bucket, indexKey, async (file) => {
      if ((await fs.stat(file)).size > MAX_URL_LIST_BYTES) throw limitExceeded(`The UrlList index ${indexKey} is larger than ${MAX_URL_LIST_BYTES} bytes (${MAX_SOURCE_FILES} lines of at most ${MAX_URL_LIST_LINE_BYTES}); nothing was stored.`);
      const lines = createInterface({ input: createReadStream(file, { signal: ctx.signal }), crlfDelay: Infinity });
      let number = 0;
      for await (const raw of lines) {
        number++;
        const line = raw.trim().replace(/^"(.*)"$/, '$1').trim();
        if (line === '') continue;
        if (keys.length + refused.length >= MAX_SOURCE_FILES) throw tooManyFiles();
        // Not a URL at all, and not kept in ErrorDetail even with IgnoreError: the job's result would carry it whole.
        if (Buffer.byteLength(line) > MAX_URL_LIST_LINE_BYTES) throw invalid(`UrlList ${indexKey} line ${number} is longer than ${MAX_URL_LIST_LINE_BYTES} bytes: not an object URL.`);
        try {
          keys.push(requestKey(objectKeyOfUrl(line, ctx.job.bucket, `UrlList ${indexKey} line ${number}`), `UrlList ${indexKey} line ${number}`));
        } catch (err) {
          if (!(err instanceof PermanentJobError) || !spec.ignoreError) throw err;
          refused.push(line);
        }
      }
    });
  } catch (err) {
    if (err instanceof ObjectNotFoundError && err.key === indexKey) throw new PermanentJobError('NoSuchKey', `The UrlList index object does not exist: ${indexKey}`);
    throw err;
  }
  return { keys, refused };
}

async function resolveSources(ctx: ProcessorContext, spec: FileCompressSpec): Promise<Sources> {
  const { source } = spec;
  if (source.kind === 'urlList') return readUrlList(ctx, spec, source.indexKey);
  if (source.kind === 'prefix') return { keys: await listPrefix(ctx, source.prefix), refused: [] };
  return { keys: [...source.keys], refused: [] };
}

/**
 * Adds every key's object to the archive, in order; returns how many were
 * packed. A missing one fails the job, or with IgnoreError joins `errorFiles`.
 */
async function packSources(ctx: ProcessorContext, spec: FileCompressSpec, keys: readonly string[], writer: ArchiveWriter, errorFiles: string[]): Promise<number> {
  const { job, signal } = ctx;
  const maxBytes = ctx.config.fileJobLimits.compressMaxBytes;
  let packed = 0;
  let bytes = 0;
  for (const [index, key] of keys.entries()) {
    signal.throwIfAborted();
    try {
      await ctx.storage.withLocalFile(job.bucket, key, async (file) => {
        // One open file for its size and its bytes: a PUT that replaces the object meanwhile cannot make them disagree.
        const handle = await fs.open(file, 'r');
        try {
          const stat = await handle.stat();
          bytes += stat.size;
          if (bytes > maxBytes) throw limitExceeded(`The files to compress exceed ${maxBytes} bytes (MEDIAJOBS_FILE_COMPRESS_MAX_BYTES); nothing was stored.`);
          await writer.add(entryName(key, spec), { stream: handle.createReadStream({ autoClose: false }), size: stat.size, mtime: stat.mtime });
        } finally {
          await handle.close();
        }
      });
      packed++;
    } catch (err) {
      if (!(err instanceof ObjectNotFoundError && err.key === key)) throw err;
      if (!spec.ignoreError) throw new PermanentJobError('NoSuchKey', `The specified key does not exist: ${key}`);
      errorFiles.push(key);
    }
    ctx.setProgress(((index + 1) / keys.length) * 95);
  }
  if (packed === 0) throw new PermanentJobError('NoSuchKey', `No object to compress was found${errorFiles.length > 0 ? ` (${errorFiles.length} missing or refused)` : ''}.`);
  await writer.finish();
  return packed;
}

async function runFileCompress(ctx: ProcessorContext): Promise<XmlObject> {
  const { job, signal } = ctx;
  const spec = parseFileCompress(job.operation, job.bucket);
  const target: OutputTarget = readOutput(job.operation, job, false);
  const outputKey = safeKey(expandObject(target.object, { inputObject: job.inputObject, extension: spec.format, jobId: job.jobId }));
  const { keys, refused } = await resolveSources(ctx, spec);
  const errorFiles = [...refused];
  const packed = await withWorkDir(ctx, async (dir) => {
    const archive = path.join(dir, 'archive');
    // Stopped on a failure too, so that the archive's file is closed before its folder is removed.
    const stop = new AbortController();
    const writer = createArchiveWriter(spec.format, archive, spec.level, AbortSignal.any([signal, stop.signal]));
    let count: number;
    try {
      count = await packSources(ctx, spec, keys, writer, errorFiles);
    } finally {
      stop.abort();
    }
    await storeFiles(ctx, target.bucket, [{ key: outputKey, file: archive }]);
    return count;
  });
  const errorCount = String(errorFiles.length);
  return {
    FileCompressResult: {
      Region: target.region,
      Bucket: target.bucket,
      Object: outputKey,
      CompressFileCount: String(packed),
      ErrorCount: errorCount,
      ErrorDetail: { ErrorCount: errorCount, ...(errorFiles.length > 0 ? { ErrorFile: errorFiles } : {}) },
    },
  };
}

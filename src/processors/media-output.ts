/**
 * What the ffmpeg Tags (Transcode, Snapshot, Animation) share: reading the
 * Output target and expanding its placeholders, a private work folder for
 * ffmpeg's files, probing input and output, storing the outputs with their
 * MD5, CI's `MediaResult` shape, and turning ffmpeg's failures into job codes.
 *
 * Output/Object placeholders (shared/ci-media-tags.md §1.3): `${Number}` /
 * `${number}` (index from 0, multi-output Tags only), `${ext}` / `${Ext}`,
 * `${InputName}`, `${InputNameAndExt}`, `${InputPath}` (input folder, empty at
 * the bucket root, where `${InputPath}/` disappears), `${JobId}` / `${Jobid}`.
 * Any other `${…}` is refused at submit.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { PermanentJobError } from '../engine/job-errors.js';
import { CiError } from '../errors.js';
import { FfmpegError, publicFfmpegMessage } from '../media/ffmpeg.js';
import { shortRefusal } from '../media/input-policy.js';
import { ffmpegCapabilities, missingCapabilities } from '../media/ffmpeg-capabilities.js';
import { FfprobeError, runFfprobe, type FfprobeReport, type FfprobeStream } from '../media/ffprobe.js';
import { clockwiseRotation, toMediaInfo } from '../media/media-info.js';
import type { Spawner } from '../media/spawner.js';
import { assertSafeBucket, assertSafeObjectKey } from '../storage/object-key.js';
import { ObjectNotFoundError } from '../storage/storage.js';
import { isXmlObject, type XmlObject, type XmlValue } from '../xml/tree.js';
import type { ProcessingJob, ProcessorContext } from './processor.js';

export function invalid(message: string): PermanentJobError {
  return new PermanentJobError('InvalidArgument', message);
}

/**
 * InvalidArgument for a part of `tag`'s Operation that needs a model
 * (VideoEnhance's SuperResolution, SegmentVideoBody's HumanSeg): it says where
 * such jobs can go instead, the task API's external workers.
 */
export function needsAiModel(what: string, tag: string): PermanentJobError {
  return invalid(`${what} needs an AI model this service does not run; name ${tag} in MEDIAJOBS_EXTERNAL_TAGS to hand ${tag} jobs to your own workers through the task API (get_next_task).`);
}

/** Trimmed text of an element; absent and empty are both `undefined` (CI: empty = default). */
export function text(value: XmlValue | undefined): string | undefined {
  if (typeof value !== 'string') return undefined;
  const trimmed = value.trim();
  return trimmed === '' ? undefined : trimmed;
}

/** The child container, or `{}` when absent or empty. */
export function child(parent: XmlObject | undefined, name: string): XmlObject {
  const value = parent?.[name];
  return isXmlObject(value) ? value : {};
}

/** `true`/`false`/`1`/`0` in any case; absent or empty is `fallback`. */
export function flag(value: XmlValue | undefined, where: string, fallback = false): boolean {
  const raw = text(value);
  if (raw === undefined) return fallback;
  if (/^(true|1)$/i.test(raw)) return true;
  if (/^(false|0)$/i.test(raw)) return false;
  throw invalid(`${where} must be true or false, not ${JSON.stringify(raw)}.`);
}

/**
 * `flag` for an element the Go SDK decodes as `bool` (Snapshot/IsCheckCount,
 * IsCheckBlack, HlsEncrypt/IsHlsEncrypt, AddToHeader): only the spellings
 * both accept. It is echoed verbatim in every JobsDetail, and text Go's
 * ParseBool refuses (`tRue`) fails the decode of the whole response.
 */
export function goFlag(value: XmlValue | undefined, where: string): boolean {
  const raw = text(value);
  if (raw !== undefined && !/^(true|True|TRUE|false|False|FALSE|1|0)$/.test(raw)) throw invalid(`${where} must be true or false, not ${JSON.stringify(raw)}.`);
  return flag(value, where);
}

/** A decimal number within [min, max] (exclusive bounds when `open`), or undefined when absent. */
export function number(value: XmlValue | undefined, where: string, min: number, max: number, options: { integer?: boolean; openMin?: boolean } = {}): number | undefined {
  const raw = text(value);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  const pattern = options.integer ? /^\d+$/ : /^\d+(\.\d+)?$/;
  if (!pattern.test(raw) || n > max || (options.openMin ? n <= min : n < min)) {
    throw invalid(`${where} must be ${options.integer ? 'an integer' : 'a number'} in ${options.openMin ? '(' : '['}${min}, ${max}], not ${JSON.stringify(raw)}.`);
  }
  return n;
}

/** A PermanentJobError (InvalidArgument) as the 400 answer of a submission. */
export function asSubmitError(err: unknown, where: string): unknown {
  return err instanceof PermanentJobError ? new CiError('InvalidArgument', `${where}/${err.message}`) : err;
}

/** At submit: 400 when the configured ffmpeg lacks what the Operation needs. */
export function assertFfmpegHas(ffmpegPath: string, needs: { encoders?: readonly string[]; filters?: readonly string[] }): void {
  const missing = missingCapabilities(ffmpegCapabilities(ffmpegPath), needs);
  if (missing) throw invalid(`cannot be run: ${missing}.`);
}

const PLACEHOLDERS = new Set(['Number', 'number', 'ext', 'Ext', 'InputName', 'InputNameAndExt', 'InputPath', 'JobId', 'Jobid']);
const NUMBER = /\$\{[Nn]umber\}/;

/** Refuses unknown placeholders, and `${Number}` where the Tag writes one object. */
export function checkObjectTemplate(template: string, where: string, allowNumber: boolean): void {
  for (const match of template.matchAll(/\$\{([^}]*)\}/g)) {
    if (!PLACEHOLDERS.has(match[1])) throw invalid(`${where} has an unknown placeholder \${${match[1]}}.`);
    if (!allowNumber && /^[Nn]umber$/.test(match[1])) throw invalid(`${where}: \${Number} is for Tags that write several objects.`);
  }
}

/** The extension of an object key, lower case, without the dot; '' when it has none. */
export function keyExtension(key: string): string {
  return /\.([A-Za-z0-9]{1,8})$/.exec(key)?.[1]?.toLowerCase() ?? '';
}

export function hasNumber(template: string): boolean {
  return NUMBER.test(template);
}

/** Expands every placeholder but `${Number}`. */
export function expandObject(template: string, values: { inputObject: string; extension: string; jobId: string }): string {
  const key = values.inputObject;
  const slash = key.lastIndexOf('/');
  const base = key.slice(slash + 1);
  const dot = base.lastIndexOf('.');
  const inputPath = slash < 0 ? '' : key.slice(0, slash);
  const map: Record<string, string> = {
    ext: values.extension, Ext: values.extension,
    InputName: dot > 0 ? base.slice(0, dot) : base, InputNameAndExt: base, InputPath: inputPath,
    JobId: values.jobId, Jobid: values.jobId,
  };
  const withPath = template.replace(/\$\{InputPath\}\//g, inputPath === '' ? '' : `${inputPath}/`);
  return withPath.replace(/\$\{([^}]*)\}/g, (whole, name: string) => map[name] ?? whole);
}

/** The key of output `index` of a `${Number}` template, split as CI reports it: prefix and the rest. */
export function numberedKey(expanded: string, index: number): { prefix: string; name: string; key: string } {
  const match = NUMBER.exec(expanded);
  if (!match) return { prefix: '', name: expanded, key: expanded };
  const prefix = expanded.slice(0, match.index);
  const name = `${index}${expanded.slice(match.index + match[0].length).replace(new RegExp(NUMBER.source, 'g'), String(index))}`;
  return { prefix, name, key: prefix + name };
}

export interface OutputTarget {
  readonly region: string;
  readonly bucket: string;
  readonly object: string;
}

/** The job a submit-time check reads an Output against: placeholders, so that only the Operation itself can fail the check. */
export const SUBMIT_CHECK_JOB = { bucket: 'checked-0', region: 'checked', inputObject: 'input', jobId: 'j' };

/** Output/{Region,Bucket,Object} (or `objectName` instead of Object, e.g. SpriteObject), checked as far as it can be before the run. */
export function readOutput(operation: XmlObject, job: Pick<ProcessingJob, 'bucket' | 'region' | 'inputObject' | 'jobId'>, allowNumber: boolean, objectName = 'Object'): OutputTarget {
  const output = operation.Output;
  if (!isXmlObject(output)) throw invalid('Operation/Output is required.');
  const object = typeof output[objectName] === 'string' ? (output[objectName] as string) : '';
  if (object.trim() === '') throw invalid(`Output/${objectName} is required.`);
  checkObjectTemplate(object, `Output/${objectName}`, allowNumber);
  const bucket = text(output.Bucket) ?? job.bucket;
  const region = text(output.Region) ?? job.region;
  try {
    assertSafeBucket(bucket, 'Output/Bucket');
    assertSafeObjectKey(numberedKey(expandObject(object, { inputObject: job.inputObject, extension: 'mp4', jobId: job.jobId }), 0).key, `Output/${objectName}`);
  } catch (err) {
    throw err instanceof CiError ? invalid(err.message) : err;
  }
  return { region, bucket, object };
}

/** Data dirs whose `tmp` this process has swept (once each). */
const swept = new Set<string>();

/**
 * Removes work folders a killed process left in `<dataDir>/tmp`: those older
 * than the longest an ffmpeg run may take plus an hour, so that no running
 * job's folder (of this or another process on the same data dir) can be one.
 */
async function sweepWorkDirs(root: string, maxAgeMs: number): Promise<void> {
  const cutoff = Date.now() - maxAgeMs;
  for (const name of await fs.readdir(root).catch(() => [] as string[])) {
    const dir = path.join(root, name);
    const stat = await fs.stat(dir).catch(() => undefined);
    if (stat?.isDirectory() && stat.mtimeMs < cutoff) await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Runs `use` with a fresh folder for ffmpeg's files under `<dataDir>/tmp`, removed afterwards whatever happens. */
export async function withWorkDir<T>(ctx: ProcessorContext, use: (dir: string) => Promise<T>): Promise<T> {
  const root = path.join(ctx.config.dataDir, 'tmp');
  if (!swept.has(root)) {
    swept.add(root);
    void sweepWorkDirs(root, ctx.config.ffmpegTimeoutMs + 3_600_000);
  }
  const dir = path.join(root, `${ctx.job.jobId}-${randomBytes(4).toString('hex')}`);
  // A plain mkdir, and a plain rmdir after a run whose outputs were all moved into the
  // bucket: the recursive forms walk the path and the tree a syscall at a time. With
  // Snapshot's two subfolders they cost 0.8-1.8 ms of CPU a job on this 2-core host,
  // against 0.2-0.4 ms now (a Snapshot job's ffmpeg is ~18 ms); they remain the fallbacks.
  await fs.mkdir(dir).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
    await fs.mkdir(dir, { recursive: true });
  });
  try {
    return await use(dir);
  } finally {
    await fs.rmdir(dir).catch(() => fs.rm(dir, { recursive: true, force: true })).catch(() => undefined);
  }
}

/** Runs `use` on the input object's local file; a missing object is `NoSuchKey`. */
export async function withInputFile<T>(ctx: ProcessorContext, use: (file: string) => Promise<T>): Promise<T> {
  const { job } = ctx;
  try {
    return await ctx.storage.withLocalFile(job.bucket, job.inputObject, use);
  } catch (err) {
    if (err instanceof ObjectNotFoundError) throw new PermanentJobError('NoSuchKey', `The specified key does not exist: ${job.inputObject}`);
    throw err;
  }
}

/** ffprobe of the input: a file it cannot read is `InvalidMedia` with ffprobe's reason, before ffmpeg is started. */
export async function probeInput(ctx: ProcessorContext, spawner: Spawner, file: string): Promise<FfprobeReport> {
  try {
    const report = await runFfprobe(file, { spawner, ffprobePath: ctx.config.ffprobePath, signal: ctx.signal, timeoutMs: 60_000 });
    if (!(report.streams ?? []).some((s) => s.codec_type === 'video' || s.codec_type === 'audio') || report.format?.format_name === 'tty') {
      throw new PermanentJobError('InvalidMedia', `The input ${ctx.job.inputObject} contains no audio or video stream.`);
    }
    return report;
  } catch (err) {
    if (!(err instanceof FfprobeError) || err.reason !== 'exit') throw err;
    if (/Too many open files|Cannot allocate memory|Resource temporarily unavailable|Permission denied/.test(err.stderr)) throw err;
    const detail = publicFfmpegMessage(err.firstStderrLine, [[path.resolve(file), ctx.job.inputObject]]);
    throw new PermanentJobError('InvalidMedia', `The input ${ctx.job.inputObject} is not a readable media file${detail ? ` (ffprobe: ${detail})` : ''}.`);
  }
}

/** Seconds of media in a report (the container's, else the longest stream's), or undefined. */
export function mediaDuration(report: FfprobeReport): number | undefined {
  const candidates = [report.format?.duration, ...(report.streams ?? []).map((s) => s.duration)].map(Number).filter((n) => Number.isFinite(n) && n > 0);
  return candidates.length ? Math.max(...candidates) : undefined;
}

/** Seconds of the first video stream when ffprobe knows them (an audio track may run longer), else of the media. */
export function videoDuration(report: FfprobeReport): number | undefined {
  const seconds = Number(report.streams?.find((s) => s.codec_type === 'video')?.duration);
  return Number.isFinite(seconds) && seconds > 0 ? seconds : mediaDuration(report);
}

/**
 * A video stream's size as ffmpeg hands its frames to the filters: turned
 * upright (ffmpeg's autorotate), so a quarter turn swaps the stored sides.
 */
export function displayedSize(stream: FfprobeStream | undefined): { width?: number; height?: number } {
  const width = Number(stream?.width);
  const height = Number(stream?.height);
  if (!stream || !(width > 0) || !(height > 0)) return {};
  return clockwiseRotation(stream) % 180 === 90 ? { width: height, height: width } : { width, height };
}

/** `<MediaInfo>` of an output file. */
export async function outputMediaInfo(ctx: ProcessorContext, spawner: Spawner, file: string): Promise<XmlObject> {
  return toMediaInfo(await runFfprobe(file, { spawner, ffprobePath: ctx.config.ffprobePath, signal: ctx.signal, timeoutMs: 60_000 }));
}

/**
 * ffmpeg's failures as job outcomes: non-zero exit is `InvalidMedia` with
 * ffmpeg's reason (the input probed fine but does not decode), a timeout is
 * `JobTimeout`; a crash or a binary that will not start is retried.
 */
export function ffmpegFailure(err: unknown, ctx: ProcessorContext, replacements: ReadonlyArray<readonly [string, string]>): unknown {
  if (!(err instanceof FfmpegError)) return err;
  if (err.reason === 'timeout') return new PermanentJobError('JobTimeout', `${err.message} (MEDIAJOBS_FFMPEG_TIMEOUT).`);
  if (err.reason !== 'exit') return err;
  if (/Too many open files|Cannot allocate memory|No space left on device/.test(err.stderr)) return err;
  const detail = shortRefusal(publicFfmpegMessage(err.stderrSummary, replacements));
  return new PermanentJobError('InvalidMedia', `ffmpeg could not process the input ${ctx.job.inputObject}${detail ? ` (ffmpeg: ${detail})` : ''}.`);
}

export interface StoredFile {
  readonly key: string;
  readonly md5: string;
}

/**
 * Stores local files under their keys (each write is atomic in the storage),
 * in order. If the job is aborted meanwhile, or a later file cannot be stored
 * (a key that collides with a folder, an archive's `a` beside `a/b`), what was
 * stored is removed and the failure rethrown: a failed or cancelled job leaves
 * no partial outputs (an object one of them replaced is not brought back).
 */
export async function storeFiles(ctx: ProcessorContext, bucket: string, files: ReadonlyArray<{ key: string; file: string }>): Promise<StoredFile[]> {
  const stored: StoredFile[] = [];
  try {
    for (const { key, file } of files) {
      ctx.signal.throwIfAborted();
      try {
        if (ctx.storage.putFile) {
          // Moved or streamed, never read whole into memory: an output can be gigabytes.
          const stat = await ctx.storage.putFile(bucket, key, file);
          stored.push({ key, md5: stat.etag.replace(/"/g, '') });
        } else {
          const data = await fs.readFile(file);
          await ctx.storage.put(bucket, key, data);
          stored.push({ key, md5: createHash('md5').update(data).digest('hex') });
        }
      } catch (err) {
        throw err instanceof CiError ? new PermanentJobError(err.code, err.message) : err;
      }
    }
    ctx.signal.throwIfAborted();
    return stored;
  } catch (err) {
    const inputKey = bucket === ctx.job.bucket ? ctx.job.inputObject : undefined;
    await Promise.all(stored.filter((s) => s.key !== inputKey).map((s) => ctx.storage.delete(bucket, s.key).catch(() => undefined)));
    throw err;
  }
}

/** CI's `MediaResult` for single-output Tags: full key in ObjectName and Md5Info, empty ObjectPrefix (seed 002's callback). */
export function singleMediaResult(target: OutputTarget, file: StoredFile): XmlObject {
  return {
    OutputFile: {
      Bucket: target.bucket,
      Md5Info: { Md5: file.md5, ObjectName: file.key },
      ObjectName: file.key,
      ObjectPrefix: '',
      Region: target.region,
    },
  };
}

/** The empty MediaInfo CI reports for image outputs (Snapshot). */
export const EMPTY_MEDIA_INFO: XmlObject = { Format: '', Stream: { Audio: '', Subtitle: '', Video: '' } };

/** A final, expanded key checked as the storage will check it (a job failure, not a retry). */
export function safeKey(key: string, where = 'Output/Object'): string {
  try {
    return assertSafeObjectKey(key, where);
  } catch (err) {
    throw err instanceof CiError ? invalid(err.message) : err;
  }
}

/** The key named by a Url of CI's requests (a ConcatFragment, a watermark image): an object URL of `bucket` (undefined: any bucket, at submit), or a bare key. */
export function objectKeyOfUrl(url: string, bucket: string | undefined, where: string): string {
  const decode = (text: string) => {
    try {
      return decodeURIComponent(text);
    } catch {
      throw invalid(`${where} is not a well-formed URL.`);
    }
  };
  if (!/^https?:\/\//i.test(url)) return decode(url.replace(/^\/+/, ''));
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid(`${where} is not a URL.`);
  }
  if (bucket !== undefined && !parsed.hostname.startsWith(`${bucket}.`)) throw invalid(`${where} must name an object of the job's bucket ${bucket}.`);
  return decode(parsed.pathname.replace(/^\/+/, ''));
}

/** Runs `use` with local files of every key, in order; a missing one is `NoSuchKey`. */
export async function withLocalFiles<T>(ctx: ProcessorContext, keys: readonly string[], use: (files: string[]) => Promise<T>, done: string[] = []): Promise<T> {
  if (done.length === keys.length) return use(done);
  const key = keys[done.length];
  try {
    return await ctx.storage.withLocalFile(ctx.job.bucket, key, (file) => withLocalFiles(ctx, keys, use, [...done, file]));
  } catch (err) {
    if (err instanceof ObjectNotFoundError && err.key === key) throw new PermanentJobError('NoSuchKey', `The specified key does not exist: ${key}`);
    throw err;
  }
}

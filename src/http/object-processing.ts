import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import sharp, { type Metadata } from 'sharp';
import { PermanentJobError } from '../engine/job-errors.js';
import { ToolSlots } from '../engine/tool-slots.js';
import { CiError } from '../errors.js';
import { ImageSource } from '../images/image-source.js';
import { readExif } from '../images/exif.js';
import { applyMogrRule } from '../images/mogr-apply.js';
import { parseMogrRuleWithinLimits, type MogrStep } from '../images/mogr-rule.js';
import { createSpawner, type Spawner } from '../media/spawner.js';
import { FfmpegError, runFfmpeg } from '../media/ffmpeg.js';
import { resolveFfmpegPath } from '../media/ffmpeg-capabilities.js';
import { withToolInput } from '../media/input-policy.js';
import { buildSnapshotArgs, type SnapshotSpec } from '../processors/snapshot.js';
import { createMediaInfoProcessor } from '../processors/media-info.js';
import type { Processor } from '../processors/processor.js';
import { assertSafeObjectKey } from '../storage/object-key.js';
import { encodeXml } from '../xml/codec.js';
import type { XmlObject } from '../xml/tree.js';
import type { AppContext } from './context.js';
import type { AppDeps } from './handler.js';
import { writeXml } from './handler.js';
import type { ObjectRequest } from './object-request.js';
import type { ObjectStorage } from '../storage/object-storage.js';

/** Entries and bytes of processed images kept, keyed by the object's ETag and the rule. */
const CACHE_ENTRIES = 256;
const CACHE_BYTES = 64 * 1024 * 1024;
/** libvips band formats → bits per sample. */
const BIT_DEPTHS: Readonly<Record<string, number>> = { uchar: 8, char: 8, ushort: 16, short: 16, uint: 32, int: 32, float: 32, double: 64 };

/** A parsed Pic-Operations header. */
export interface PicOperations {
  readonly isPicInfo: boolean;
  readonly rules: ReadonlyArray<{ readonly bucket: string; readonly key: string; readonly steps: MogrStep[] }>;
}

interface CachedImage {
  readonly data: Buffer;
  readonly contentType: string;
  readonly etag: string;
}

/**
 * CI's processing on the object path (the synchronous side of CI):
 * `GET <key>?imageMogr2/…` (`|`-chained rules too) answers the processed
 * image without storing it, through the PicProcess jobs' rule parser (with
 * their size limits) and sharp pipeline (with their input limits); `GET
 * <key>?ci-process=videoinfo` answers `<Response><MediaInfo>` through the
 * MediaInfo processor itself, `?ci-process=snapshot` one frame through the
 * Snapshot Tag's ffmpeg arguments, `?imageInfo` and `?exif` CI's JSON of the picture
 * (`POST /mediainfo` on the CI endpoint answers as videoinfo). All run in slots of their own
 * (max(1, MEDIAJOBS_CONCURRENCY / 2)), so synchronous requests cannot take
 * the queue's workers' slots; a processed image is cached (LRU, 256 entries,
 * 64 MB) by the object's ETag and the rule.
 */
/** One ObjectProcessing (one set of slots, one cache) per service, shared by the object API and `POST /mediainfo`. */
const instances = new WeakMap<AppDeps, ObjectProcessing>();

export function objectProcessingOf(deps: AppDeps): ObjectProcessing {
  let processing = instances.get(deps);
  if (!processing) {
    processing = new ObjectProcessing(deps);
    instances.set(deps, processing);
  }
  return processing;
}

export class ObjectProcessing {
  private readonly slots: ToolSlots;
  private readonly cache = new Map<string, CachedImage>();
  private cacheBytes = 0;
  private mediaInfo: Processor | undefined;
  /** The workers' kind of spawner (the vfork addon, else child_process), made on first use: an API-only process may never need one. */
  private spawner: Spawner | undefined;

  constructor(private readonly deps: AppDeps) {
    this.slots = new ToolSlots(Math.max(1, Math.floor(deps.config.concurrency / 2)));
  }

  /** The processing a GetObject asks for, if any: an `imageMogr2/…` parameter or `ci-process`. */
  static wanted(ctx: AppContext): { kind: 'image'; rule: string } | { kind: 'videoinfo' } | { kind: 'imageInfo' } | { kind: 'exif' } | { kind: 'snapshot' } | undefined {
    for (const part of ctx.querystring.split('&')) {
      let name: string;
      try {
        name = decodeURIComponent(part.split('=')[0]!.replace(/\+/g, ' '));
      } catch {
        continue;
      }
      if (name.startsWith('imageMogr2/')) return { kind: 'image', rule: name };
      if (name === 'imageInfo') return { kind: 'imageInfo' };
      if (name === 'exif') return { kind: 'exif' };
    }
    const process = ctx.query['ci-process'];
    if (process === undefined) return undefined;
    if (process === 'videoinfo') return { kind: 'videoinfo' };
    if (process === 'snapshot') return { kind: 'snapshot' };
    throw new CiError('NotImplemented', `ci-process=${String(process).slice(0, 32)} is not supported by this server.`);
  }

  /** Answers the processed image. */
  async image(ctx: AppContext, req: ObjectRequest, key: string, rule: string): Promise<void> {
    const steps = refuseAsCi(() => parseMogrRuleWithinLimits(rule, this.deps.config.picLimits));
    const head = await req.storage.headObject(req.bucket, key);
    if (!head) throw new CiError('NoSuchKey');
    const cacheKey = `${req.bucket}\n${key}\n${head.etag}\n${rule}`;
    let image = this.cache.get(cacheKey);
    if (image) {
      this.cache.delete(cacheKey);
      this.cache.set(cacheKey, image);
    } else {
      const result = await req.storage.withLocalFile(req.bucket, key, async (file) => {
        const input = await ImageSource.fromFile(file);
        return refuseAsCiAsync(() => applyMogrRule(input, steps, {
          limits: this.deps.config.picLimits,
          pixelWork: (work) => this.slots.run(AbortSignal.timeout(60_000), work),
        }));
      });
      const data = result.output.data;
      image = { data, contentType: `image/${result.output.extension === 'jpg' ? 'jpeg' : result.output.extension}`, etag: `"${createHash('md5').update(data).digest('hex')}"` };
      this.remember(cacheKey, image);
    }
    ctx.status = 200;
    ctx.set('Content-Type', image.contentType);
    ctx.set('ETag', image.etag);
    ctx.body = image.data;
  }

  /**
   * `?imageInfo`: CI's JSON of the picture's basics, every value a string:
   * `{"format":"jpeg","width":"960","height":"540","size":"158421","md5":"…","frame_count":"1","bit_depth":"8","vertical_dpi":"72","horizontal_dpi":"72"}`.
   * The md5 is of the bytes (a multipart object's ETag is not one). Inputs
   * over MEDIAJOBS_PIC_MAX_INPUT_BYTES are refused, as for jobs.
   */
  async imageInfo(ctx: AppContext, req: ObjectRequest, key: string): Promise<void> {
    const { data, meta } = await this.readImage(req, key);
    const dpi = String(Math.round(meta.density ?? 72));
    const body = {
      format: meta.format,
      width: String(meta.width),
      height: String(meta.pageHeight ?? meta.height),
      size: String(data.length),
      md5: createHash('md5').update(data).digest('hex'),
      frame_count: String(meta.pages ?? 1),
      bit_depth: String(BIT_DEPTHS[meta.depth ?? 'uchar'] ?? 8),
      vertical_dpi: dpi,
      horizontal_dpi: dpi,
    };
    ctx.status = 200;
    ctx.type = 'application/json';
    ctx.body = JSON.stringify(body);
  }

  /**
   * `?exif`: CI's JSON of the EXIF tags, `{"DateTimeOriginal":{"val":"2018:09:03 17:37:06"},…}`
   * (src/images/exif.ts), from sharp's metadata; a picture without EXIF
   * answers CI's `{"error":"no exif data"}` (200, as CI documents it). Same
   * input limit and slots as `?imageInfo`.
   */
  async exif(ctx: AppContext, req: ObjectRequest, key: string): Promise<void> {
    const { meta } = await this.readImage(req, key);
    ctx.status = 200;
    ctx.type = 'application/json';
    ctx.body = JSON.stringify(readExif(meta.exif) ?? { error: 'no exif data' });
  }

  /** The object's bytes and sharp's metadata; NoSuchKey, ImageTooLarge and InvalidImage as CI's errors. */
  private async readImage(req: ObjectRequest, key: string): Promise<{ data: Buffer; meta: Metadata }> {
    const head = await req.storage.headObject(req.bucket, key);
    if (!head) throw new CiError('NoSuchKey');
    const limit = this.deps.config.picLimits.maxInputBytes;
    if (head.size > limit) throw new CiError('InvalidArgument', `ImageTooLarge: the image is ${head.size} bytes; the limit is ${limit} bytes.`);
    const data = await req.storage.get(req.bucket, key);
    const meta = await this.slots.run(AbortSignal.timeout(60_000), () => sharp(data).metadata()).catch(() => undefined);
    if (!meta?.format || !meta.width || !meta.height) throw new CiError('InvalidArgument', 'InvalidImage: the object is not an image this server can read.');
    return { data, meta };
  }

  /** Answers `<Response><MediaInfo>` for the object (the Go SDK's GetMediaInfo). */
  async videoInfo(ctx: AppContext, req: ObjectRequest, key: string): Promise<void> {
    await this.writeMediaInfo(ctx, req.bucket, req.storage, key);
  }

  /**
   * `POST /mediainfo` on the CI endpoint (the Go SDK's GenerateMediaInfo):
   * `<Request><Input><Object>key</Object></Input></Request>` → the same
   * `<Response><MediaInfo>` as `?ci-process=videoinfo`, for an object of
   * the request's bucket (the Host's, checked against the signing app by
   * the CI API's authentication).
   */
  async mediaInfoRequest(ctx: AppContext, request: XmlObject, bucket: string, storage: ObjectStorage): Promise<void> {
    const input = request.Input;
    if (input === undefined || typeof input !== 'object' || Array.isArray(input)) throw new CiError('InvalidArgument', 'Request/Input/Object is required.');
    const object = (input as XmlObject).Object;
    if (typeof object !== 'string') throw new CiError('InvalidArgument', 'Request/Input/Object is required.');
    const key = assertSafeObjectKey(object.startsWith('/') ? object.slice(1) : object, 'Request/Input/Object');
    if (!(await storage.headObject(bucket, key))) throw new CiError('NoSuchKey');
    await this.writeMediaInfo(ctx, bucket, storage, key);
  }

  private async writeMediaInfo(ctx: AppContext, bucket: string, storage: ObjectStorage, key: string): Promise<void> {
    this.spawner ??= createSpawner();
    this.mediaInfo ??= createMediaInfoProcessor(this.spawner);
    const signal = AbortSignal.timeout(60_000);
    const result = await refuseAsCiAsync(() => this.mediaInfo!.run({
      job: { jobId: '-', tag: 'MediaInfo', bucket, region: ctx.state.region, inputObject: key, operation: {} },
      storage,
      config: this.deps.config,
      signal,
      setProgress: () => undefined,
      withToolSlot: (work) => this.slots.run(signal, work),
    }));
    writeXml(ctx, encodeXml('Response', result));
  }

  /**
   * `?ci-process=snapshot&time=<s>[&format=jpg|png][&width=][&height=][&mode=exactframe|keyframe]`:
   * one frame, through the Snapshot Tag's ffmpeg arguments and the input
   * policy, in a work folder under `<data dir>/tmp`. A time past the end is
   * InvalidArgument.
   */
  async snapshot(ctx: AppContext, req: ObjectRequest, key: string): Promise<void> {
    const query = (name: string) => (typeof ctx.query[name] === 'string' && ctx.query[name] !== '' ? String(ctx.query[name]) : undefined);
    const time = Number(query('time') ?? NaN);
    if (!Number.isFinite(time) || time < 0 || time > 1e7) throw new CiError('InvalidArgument', 'time is required: the second of the frame, a number ≥ 0.');
    const formatText = (query('format') ?? 'jpg').toLowerCase();
    if (formatText !== 'jpg' && formatText !== 'jpeg' && formatText !== 'png') throw new CiError('InvalidArgument', 'format must be jpg or png.');
    const format = formatText === 'png' ? 'png' : 'jpg';
    const side = (name: string) => {
      const raw = query(name);
      if (raw === undefined || raw === '0') return undefined;
      if (!/^\d{1,4}$/.test(raw) || Number(raw) > 4096) throw new CiError('InvalidArgument', `${name} must be an integer from 0 to 4096.`);
      return Math.max(2, Number(raw) - (Number(raw) % 2));
    };
    const width = side('width');
    const height = side('height');
    const mode = (query('mode') ?? 'exactframe').toLowerCase();
    if (mode !== 'exactframe' && mode !== 'keyframe') throw new CiError('InvalidArgument', 'mode must be exactframe or keyframe.');
    const spec: SnapshotSpec = {
      mode: mode === 'keyframe' ? 'keyframe' : 'interval', startSec: time, count: 1, checkCount: false, snapshots: true,
      ...(width ? { width } : {}), ...(height ? { height } : {}),
    };
    const signal = AbortSignal.timeout(60_000);
    const tmp = path.join(this.deps.config.dataDir, 'tmp');
    await fs.mkdir(tmp, { recursive: true });
    const dir = await fs.mkdtemp(path.join(tmp, 'snapshot-'));
    try {
      const data = await req.storage.withLocalFile(req.bucket, key, (file) => withToolInput(file, async (input) => {
        const args = buildSnapshotArgs(spec, { input, dir, format }, undefined);
        this.spawner ??= createSpawner();
        const spawner = this.spawner;
        await this.slots.run(signal, () => runFfmpeg(args, { spawner, binary: resolveFfmpegPath(this.deps.config.ffmpegPath), signal, timeoutMs: 60_000 }))
          .catch((err: unknown) => {
            if (err instanceof FfmpegError && err.reason === 'exit') throw new CiError('InvalidArgument', `InvalidMedia: ${err.stderrSummary.slice(0, 200) || 'ffmpeg cannot read the object'}`);
            throw err;
          });
        return fs.readFile(path.join(dir, `0.${format}`)).catch(() => {
          throw new CiError('InvalidArgument', `The object has no frame at ${time} s.`);
        });
      }));
      ctx.status = 200;
      ctx.set('Content-Type', format === 'png' ? 'image/png' : 'image/jpeg');
      ctx.body = data;
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Parses a `Pic-Operations` header (COS persistent processing on upload):
   * `{"is_pic_info":1,"rules":[{"fileid":"out.png","rule":"imageMogr2/…","bucket":"…"}]}`,
   * at most 5 rules, each rule checked as PicProcess checks it. Called before
   * the upload is read, so a bad header costs no upload.
   */
  parsePicOperations(header: string, req: ObjectRequest, key: string): PicOperations {
    let parsed: unknown;
    try {
      parsed = JSON.parse(header);
    } catch {
      throw new CiError('InvalidArgument', 'Pic-Operations must be JSON: {"is_pic_info":1,"rules":[{"fileid":"…","rule":"…"}]}.');
    }
    const p = parsed as { is_pic_info?: unknown; rules?: unknown };
    if (!Array.isArray(p.rules) || p.rules.length === 0 || p.rules.length > 5) throw new CiError('InvalidArgument', 'Pic-Operations needs 1 to 5 rules.');
    const dir = key.includes('/') ? key.slice(0, key.lastIndexOf('/') + 1) : '';
    const rules = p.rules.map((r: { fileid?: unknown; rule?: unknown; bucket?: unknown }, i: number) => {
      if (typeof r?.fileid !== 'string' || r.fileid === '' || typeof r.rule !== 'string') throw new CiError('InvalidArgument', `Pic-Operations rule ${i + 1} needs a fileid and a rule.`);
      const bucket = typeof r.bucket === 'string' && r.bucket !== '' ? r.bucket : req.bucket;
      if (bucket.slice(bucket.lastIndexOf('-') + 1) !== req.bucket.slice(req.bucket.lastIndexOf('-') + 1)) {
        throw new CiError('AccessDenied', `Pic-Operations rule ${i + 1} writes to a bucket of another APPID.`);
      }
      const target = assertSafeObjectKey(r.fileid.startsWith('/') ? r.fileid.slice(1) : dir + r.fileid, `Pic-Operations rule ${i + 1} fileid`);
      const steps = refuseAsCi(() => parseMogrRuleWithinLimits(r.rule as string, this.deps.config.picLimits));
      return { bucket, key: target, steps };
    });
    return { isPicInfo: p.is_pic_info === 1 || p.is_pic_info === '1' || p.is_pic_info === true, rules };
  }

  /** Runs the parsed Pic-Operations on the stored original and answers COS's `<UploadResult>`. */
  async runPicOperations(ctx: AppContext, req: ObjectRequest, key: string, ops: PicOperations, originalEtag: string): Promise<void> {
    const region = ctx.state.region;
    const location = (bucket: string, k: string) => `${bucket}.cos.${region}.myqcloud.com/${encodeURIComponent(k).replace(/%2F/g, '/')}`;
    const signal = AbortSignal.timeout(120_000);
    const results: XmlObject[] = [];
    let imageInfo: XmlObject | undefined;
    for (const [i, rule] of ops.rules.entries()) {
      const result = await req.storage.withLocalFile(req.bucket, key, async (file) => refuseAsCiAsync(async () => applyMogrRule(await ImageSource.fromFile(file), rule.steps, {
        limits: this.deps.config.picLimits,
        averageColour: ops.isPicInfo && i === 0,
        pixelWork: (work) => this.slots.run(signal, work),
      })));
      if (i === 0) {
        const o = result.original;
        imageInfo = { Format: o.format, Width: String(o.width), Height: String(o.height), Quality: String(o.quality), Ave: o.ave ?? '', Orientation: String(o.orientation) };
      }
      const out = result.output;
      const stored = await req.storage.putObject(rule.bucket, rule.key, {
        body: Readable.from([out.data]), metadata: { contentType: `image/${out.extension === 'jpg' ? 'jpeg' : out.extension}`, meta: {} },
        contentLength: out.data.length, maxBytes: out.data.length,
      });
      results.push({
        Key: rule.key, Location: location(rule.bucket, rule.key), Format: out.format, Width: String(out.width), Height: String(out.height),
        Size: String(stored.size), Quality: String(out.quality), ETag: stored.etag,
      });
    }
    const upload: XmlObject = {};
    if (ops.isPicInfo && imageInfo) upload.OriginalInfo = { Key: key, Location: location(req.bucket, key), ImageInfo: imageInfo, ETag: originalEtag };
    upload.ProcessResults = { Object: results };
    ctx.set('ETag', originalEtag);
    writeXml(ctx, encodeXml('UploadResult', upload));
  }

  private remember(key: string, image: CachedImage): void {
    if (image.data.length > CACHE_BYTES / 4) return;
    this.cache.set(key, image);
    this.cacheBytes += image.data.length;
    for (const [oldKey, old] of this.cache) {
      if (this.cache.size <= CACHE_ENTRIES && this.cacheBytes <= CACHE_BYTES) break;
      this.cache.delete(oldKey);
      this.cacheBytes -= old.data.length;
    }
  }
}

/** A job's permanent failure as the request's error: the same code where CI has one, else InvalidArgument. */
function toCi(err: unknown): unknown {
  if (!(err instanceof PermanentJobError)) return err;
  if (err.code === 'NoSuchKey') return new CiError('NoSuchKey', err.message);
  return new CiError('InvalidArgument', `${err.code}: ${err.message}`);
}

function refuseAsCi<T>(run: () => T): T {
  try {
    return run();
  } catch (err) {
    throw toCi(err);
  }
}

async function refuseAsCiAsync<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw toCi(err);
  }
}

/**
 * Applies parsed imageMogr2 steps (`mogr-rule.ts`) to an image with sharp.
 *
 * Order of work, cheapest refusal first:
 * 1. input bytes ≤ `maxInputBytes`; header read (`probeImage`, no decoding);
 *    sides ≤ `maxInputSide`, width × height × frames ≤ `maxInputPixels`,
 *    GIF ≤ 300 frames; every step's result ≤ `maxOutputSide` per side and
 *    ≤ `maxOutputPixels` in all (unless it does not grow the image) and the
 *    final image ≤ `maxOutputSide`. The number of operations and filters is
 *    bounded by the parser (`mogr-rule.ts`), so the work is too.
 *    Breaches are `ImageTooLarge`, undecodable input is `InvalidMedia`, bad
 *    parameters for this image (a cut outside it, a radius too large) are
 *    `InvalidArgument`. With `ignore-error/1`, `ImageTooLarge` returns the
 *    original bytes instead of failing, as CI does.
 * 2. The steps run as few sharp pipelines ("stages") as possible. sharp runs
 *    the operations of one pipeline in its own fixed order (resize, rotate,
 *    extract, extend, blur, sharpen, composite, linear, …) whatever order they
 *    were called in, so a stage takes at most one geometric operation followed
 *    by blur → sharpen → mask → brightness/contrast; a step that would have to
 *    run earlier starts a new stage from the previous stage's raw pixels (no
 *    re-encode). A lone thumbnail, the common case, is one pipeline straight
 *    from the encoded input, so JPEG shrink-on-load applies and nothing is
 *    decoded twice.
 * 3. Encoding options are not steps: the last `format`, `interlace`,
 *    `grayscale`, `strip`, `size-limit` win; quality operations fold left to
 *    right into one number starting from the source's estimated quality.
 *
 * Semantics chosen where CI is silent or contradictory (documented for users):
 * - `crop` is a plain crop (no scaling first), anchored by `gravity`
 *   (default northwest); sizes larger than the image are clipped to it.
 * - `cut` regions reaching past the image are clipped; an offset outside it is an error.
 * - `iradius/<r>` returns the 2r×2r square around the centre with the circle
 *   kept; `rradius` keeps the size. Outside is transparent for formats with
 *   alpha (PNG, WebP, GIF, TIFF, AVIF) and white for JPEG/BMP. Allowed up to
 *   r = min(w, h) / 2.
 * - `rotate` fills new corners with transparency (alpha formats) or white.
 * - `pad/1` letterboxes into W×H, default colour white.
 * - Animated GIF/WebP stay animated when the output is GIF or WebP; every
 *   operation is applied to every frame; animations are never enlarged by
 *   `thumbnail`. Other output formats get the first frame.
 * - Pipes (`|`) are applied as one continuous sequence: the intermediate
 *   result is not encoded and decoded between parts.
 * - Metadata: output carries no EXIF/XMP/ICC (pixels are converted to sRGB),
 *   except that an EXIF orientation not applied by `auto-orient` is kept as the
 *   only EXIF tag so viewers still show the picture upright; `strip` drops it too.
 * - Quality: `quality/q` → min(source, q), `quality/q!` → q, `rquality/q` →
 *   source × q / 100, `lquality/q` → max(source, q); lossless sources count as
 *   100. Without any quality step a lossy source keeps its estimated quality
 *   and a lossless one is written at 90. Lossless outputs report 100.
 * - `size-limit` applies to JPEG, WebP and AVIF output (binary search on
 *   quality); with `!` the original is returned when the result is not smaller.
 */
import sharp, { type OverlayOptions, type Sharp } from 'sharp';
import type { PicLimits } from '../config.js';
import { JOB_FAILURE_CODES, PermanentJobError } from '../engine/job-errors.js';
import { decodeBmp, encodeBmp, type RawPixels } from './bmp.js';
import type { ImageSource } from './image-source.js';
import { FORMAT_NAMES, LOSSLESS_QUALITY, averageColour, probeImage, type InputFormat, type SourceImage } from './image-info.js';
import { DEFAULT_PAD_COLOR, parseMogrRule, type Gravity, type MogrStep, type OutputFormat, type ThumbnailGeometry } from './mogr-rule.js';

/** PicProcess failure codes beside `JOB_FAILURE_CODES` (InvalidMedia, InvalidArgument). */
export const PIC_FAILURE_CODES = {
  /** The input or a result exceeds the configured picture limits (Aliyun/KS3 use the same code). */
  ImageTooLarge: 'ImageTooLarge',
} as const;

/** CI: animated GIF input may have at most 300 frames. */
export const MAX_GIF_FRAMES = 300;
/** Quality used for lossy output when neither the source nor a quality step gives one. */
export const DEFAULT_OUTPUT_QUALITY = 90;

const ALPHA_FORMATS: ReadonlySet<OutputFormat> = new Set(['png', 'webp', 'gif', 'tiff', 'avif']);
const LOSSY_FORMATS: ReadonlySet<OutputFormat> = new Set(['jpeg', 'webp', 'avif']);
const ANIMATED_FORMATS: ReadonlySet<OutputFormat> = new Set(['gif', 'webp']);

/** File extension per output format (the `${ext}` placeholder). */
export const FORMAT_EXTENSIONS: Readonly<Record<OutputFormat, string>> = {
  jpeg: 'jpg',
  png: 'png',
  webp: 'webp',
  gif: 'gif',
  bmp: 'bmp',
  tiff: 'tiff',
  avif: 'avif',
};

export interface MogrApplyOptions {
  readonly limits: PicLimits;
  /** Also compute the source's average colour (`OriginalInfo/ImageInfo/Ave`); costs a reduced decode. */
  readonly averageColour?: boolean;
  /** Checked between stages; an aborted signal rejects with its reason. */
  readonly signal?: AbortSignal;
  /**
   * Runs the pixel work (average colour, pipelines, encoding), after the
   * header read and the limit checks: a worker passes its tool slot here, so
   * that a job waiting for one has already done everything else.
   */
  readonly pixelWork?: <T>(work: () => Promise<T>) => Promise<T>;
}

/** What CI reports about the source (`OriginalInfo/ImageInfo`). */
export interface OriginalImageInfo {
  /** `JPEG`, `PNG`, `GIF`, `WEBP`, `BMP`, `TIFF`, `AVIF`. */
  readonly format: string;
  readonly inputFormat: InputFormat;
  readonly width: number;
  readonly height: number;
  readonly frames: number;
  /** Estimated encoder quality; 100 for lossless formats. */
  readonly quality: number;
  /** EXIF orientation, 0 when absent. */
  readonly orientation: number;
  /** `0xrrggbb`; only when `averageColour` was asked for and the input is within the limits. */
  readonly ave?: string;
}

export interface ProcessedImage {
  readonly data: Buffer;
  /** Upper-case type name, as `Format` in the result. */
  readonly format: string;
  /** File extension (`jpg`, `png`, …). */
  readonly extension: string;
  readonly width: number;
  /** Height of one frame. */
  readonly height: number;
  readonly frames: number;
  readonly quality: number;
  /** True when these are the input bytes unchanged (`ignore-error/1`, `size-limit/…!`). */
  readonly isOriginal: boolean;
}

export interface MogrResult {
  readonly original: OriginalImageInfo;
  readonly output: ProcessedImage;
}

/**
 * Runs `rule` (a ProcessRule string or already-parsed steps) on `input`.
 *
 * @example
 * const { output } = await applyMogrRule(jpeg, 'imageMogr2/thumbnail/720x588/quality/80', { limits: config.picLimits });
 */
export async function applyMogrRule(input: ImageSource, rule: string | readonly MogrStep[], options: MogrApplyOptions): Promise<MogrResult> {
  const steps = typeof rule === 'string' ? parseMogrRule(rule) : rule;
  const { limits } = options;
  const ignoreError = lastOf(steps, 'ignore-error')?.enabled ?? false;
  if (input.size > limits.maxInputBytes && !ignoreError) {
    throw tooLarge(`The input is ${input.size} bytes; the limit is ${limits.maxInputBytes} bytes.`);
  }
  const source = await probeImage(input);
  let original = originalInfo(source);
  try {
    if (input.size > limits.maxInputBytes) throw tooLarge(`The input is ${input.size} bytes; the limit is ${limits.maxInputBytes} bytes.`);
    checkInputLimits(source, limits);
    const pixelWork = options.pixelWork ?? ((work) => work());
    return await pixelWork(async () => {
      if (options.averageColour) original = { ...original, ave: await averageColour(input, source) };
      throwIfAborted(options.signal);
      const output = await render(input, source, original, steps, options);
      return { original, output };
    });
  } catch (err) {
    if (ignoreError && err instanceof PermanentJobError && err.code === PIC_FAILURE_CODES.ImageTooLarge) {
      return { original, output: await originalAsOutput(input, original) };
    }
    throw err;
  }
}

function originalInfo(source: SourceImage): OriginalImageInfo {
  return {
    format: FORMAT_NAMES[source.format],
    inputFormat: source.format,
    width: source.width,
    height: source.height,
    frames: source.pages,
    quality: source.quality ?? LOSSLESS_QUALITY,
    orientation: source.orientation,
  };
}

async function originalAsOutput(input: ImageSource, original: OriginalImageInfo): Promise<ProcessedImage> {
  return {
    data: await input.bytes(),
    format: original.format,
    extension: FORMAT_EXTENSIONS[original.inputFormat],
    width: original.width,
    height: original.height,
    frames: original.frames,
    quality: original.quality,
    isOriginal: true,
  };
}

function tooLarge(message: string): PermanentJobError {
  return new PermanentJobError(PIC_FAILURE_CODES.ImageTooLarge, message);
}

function badArgument(message: string): PermanentJobError {
  return new PermanentJobError(JOB_FAILURE_CODES.InvalidArgument, `ProcessRule: ${message}`);
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  signal?.throwIfAborted();
}

/** Refuses inputs over the configured limits, from header values only. */
export function checkInputLimits(source: SourceImage, limits: PicLimits): void {
  const { width, height, pages } = source;
  if (width > limits.maxInputSide || height > limits.maxInputSide) {
    throw tooLarge(`The input is ${width}x${height} pixels; each side may be at most ${limits.maxInputSide}.`);
  }
  if (width * height * pages > limits.maxInputPixels) {
    const frames = pages > 1 ? ` x ${pages} frames` : '';
    throw tooLarge(`The input is ${width}x${height}${frames} pixels; at most ${limits.maxInputPixels} pixels are allowed.`);
  }
  if (source.format === 'gif' && pages > MAX_GIF_FRAMES) {
    throw tooLarge(`The input GIF has ${pages} frames; at most ${MAX_GIF_FRAMES} are allowed.`);
  }
}

function lastOf<K extends MogrStep['op']>(steps: readonly MogrStep[], op: K): Extract<MogrStep, { op: K }> | undefined {
  for (let i = steps.length - 1; i >= 0; i--) {
    const step = steps[i];
    if (step.op === op) return step as Extract<MogrStep, { op: K }>;
  }
  return undefined;
}

/** The source format's default output (every input format is writable). */
function defaultOutputFormat(format: InputFormat): OutputFormat {
  return format;
}

/** Folds the quality steps left to right, starting from the source's estimated quality. */
export function resolveQuality(sourceQuality: number | undefined, steps: readonly MogrStep[]): number {
  let q = sourceQuality;
  for (const step of steps) {
    if (step.op === 'quality') q = step.force ? step.quality : Math.min(q ?? LOSSLESS_QUALITY, step.quality);
    if (step.op === 'rquality') q = ((q ?? LOSSLESS_QUALITY) * step.quality) / 100;
    if (step.op === 'lquality') q = Math.max(q ?? LOSSLESS_QUALITY, step.quality);
  }
  return Math.min(100, Math.max(1, Math.round(q ?? DEFAULT_OUTPUT_QUALITY)));
}

/** Target size of a thumbnail for a current size of width×height (one frame). */
export function thumbnailSize(g: ThumbnailGeometry, width: number, height: number): { width: number; height: number } {
  const byScale = (s: number) => ({ width: Math.max(1, Math.round(width * s)), height: Math.max(1, Math.round(height * s)) });
  switch (g.kind) {
    case 'scale':
      return byScale(g.percent / 100);
    case 'scaleWidth':
      return { width: Math.max(1, Math.round((width * g.percent) / 100)), height };
    case 'scaleHeight':
      return { width, height: Math.max(1, Math.round((height * g.percent) / 100)) };
    case 'force':
      return { width: g.width, height: g.height };
    case 'area': {
      const s = Math.sqrt(g.pixels / (width * height));
      return { width: Math.max(1, Math.floor(width * s)), height: Math.max(1, Math.floor(height * s)) };
    }
    case 'cover': {
      // The larger scale wins; the side it comes from is set exactly.
      if (g.width / width >= g.height / height) return { width: g.width, height: Math.max(1, Math.round((height * g.width) / width)) };
      return { width: Math.max(1, Math.round((width * g.height) / height)), height: g.height };
    }
    case 'fit': {
      const sw = g.width === undefined ? Infinity : g.width / width;
      const sh = g.height === undefined ? Infinity : g.height / height;
      const s = Math.min(sw, sh);
      if ((g.only === 'shrink' && s >= 1) || (g.only === 'enlarge' && s <= 1)) return { width, height };
      if (sw <= sh) return { width: g.width ?? width, height: Math.max(1, Math.round((height * (g.width ?? width)) / width)) };
      return { width: Math.max(1, Math.round((width * (g.height ?? height)) / height)), height: g.height ?? height };
    }
  }
}

/** Top-left corner of a w×h region anchored at `gravity` inside a W×H image. */
export function gravityOffset(gravity: Gravity, outer: { width: number; height: number }, inner: { width: number; height: number }): { left: number; top: number } {
  const dx = outer.width - inner.width;
  const dy = outer.height - inner.height;
  const left = gravity.endsWith('west') ? 0 : gravity.endsWith('east') ? dx : Math.floor(dx / 2);
  const top = gravity.startsWith('north') ? 0 : gravity.startsWith('south') ? dy : Math.floor(dy / 2);
  return { left, top };
}

/**
 * EXIF orientation → the flop and clockwise rotation that sharp applies, in
 * that order within one pipeline, to show the picture upright (verified
 * against sharp's own `autoOrient` for all eight values).
 */
const ORIENTATION_FIX: Readonly<Record<number, { flop: boolean; angle: number }>> = {
  2: { flop: true, angle: 0 },
  3: { flop: false, angle: 180 },
  4: { flop: true, angle: 180 },
  5: { flop: true, angle: 270 },
  6: { flop: false, angle: 90 },
  7: { flop: true, angle: 90 },
  8: { flop: false, angle: 270 },
};

interface RawImage {
  readonly data: Buffer;
  readonly width: number;
  /** Height of one frame. */
  readonly height: number;
  readonly pages: number;
  readonly channels: 1 | 2 | 3 | 4;
}

/**
 * Where a call sits in sharp's fixed pipeline order; within one stage slots
 * must strictly increase. `ORIENT` is the load-time auto-orient option.
 */
const SLOT = { EMPTY: 0, ORIENT: 1, GEOMETRY: 2, BLUR: 3, SHARPEN: 4, MASK: 5, LINEAR: 6 } as const;
type Slot = (typeof SLOT)[keyof typeof SLOT];

const WHITE = { r: 255, g: 255, b: 255, alpha: 1 };
const TRANSPARENT = { r: 0, g: 0, b: 0, alpha: 0 };

/** A `#rrggbb` string as a sharp colour. */
function rgb(hex: string): { r: number; g: number; b: number; alpha: number } {
  return { r: parseInt(hex.slice(1, 3), 16), g: parseInt(hex.slice(3, 5), 16), b: parseInt(hex.slice(5, 7), 16), alpha: 1 };
}

/**
 * The image being processed: either a pending sharp pipeline (reading the
 * encoded source or a raw buffer) or raw pixels between stages.
 */
class Canvas {
  width: number;
  height: number;
  readonly pages: number;
  /** EXIF orientation still to be honoured by viewers (1 = upright). */
  orientation: number;
  private raw: RawImage | undefined;
  private stage: Sharp | undefined;
  private stageFromSource = false;
  private slot: Slot = SLOT.EMPTY;
  private orientOnLoad = false;
  private linearParams: { a: number; b: number } | undefined;
  /** The current stage paints colours (pad, rotate fill, mask) that a final greyscale must also cover. */
  private stagePaints = false;

  /** `bmp`: the source's pixels when it is a BMP (our own decoder, not libvips). */
  constructor(
    private readonly input: ImageSource,
    source: SourceImage,
    bmp: RawPixels | undefined,
    private readonly animated: boolean,
    private readonly limits: PicLimits,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.width = source.width;
    this.height = source.height;
    this.pages = animated ? source.pages : 1;
    this.orientation = source.orientation > 1 ? source.orientation : 1;
    if (bmp) this.raw = { data: bmp.data, width: bmp.width, height: bmp.height, pages: 1, channels: bmp.channels };
  }

  /** True until any pixel operation was queued: the source may still be loaded with options. */
  private get untouched(): boolean {
    return this.stage === undefined && this.raw === undefined;
  }

  private open(): Sharp {
    if (this.stage) return this.stage;
    if (this.raw) {
      const { data, width, height, pages, channels } = this.raw;
      this.stage = sharp(data, { raw: { width, height: height * pages, channels, ...(pages > 1 ? { pageHeight: height } : {}) } });
      this.stageFromSource = false;
    } else {
      this.stage = sharp(this.input.input, {
        failOn: 'error',
        limitInputPixels: this.limits.maxInputPixels,
        animated: this.animated,
        autoOrient: this.orientOnLoad,
      });
      this.stageFromSource = true;
    }
    this.slot = this.orientOnLoad && this.stageFromSource ? SLOT.ORIENT : SLOT.EMPTY;
    return this.stage;
  }

  /**
   * Runs the current stage to raw pixels and starts the next one from them.
   * `sizeKnown: false` takes the size from the result (arbitrary rotations,
   * single frame only); otherwise a mismatch with the tracked size is a bug.
   */
  async flush(sizeKnown = true): Promise<RawImage> {
    throwIfAborted(this.signal);
    if (!this.stage && this.raw) return this.raw;
    const stage = this.open();
    const { data, info } = await this.run(() => stage.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true }));
    if (!sizeKnown) {
      this.width = info.width;
      this.height = info.height;
    } else if (info.width !== this.width || info.height !== this.height * this.pages) {
      throw new Error(`internal: stage produced ${info.width}x${info.height}, expected ${this.width}x${this.height * this.pages}`);
    }
    this.raw = { data, width: info.width, height: this.height, pages: this.pages, channels: info.channels };
    this.stage = undefined;
    this.linearParams = undefined;
    this.stagePaints = false;
    this.slot = SLOT.EMPTY;
    return this.raw;
  }

  /** Runs a sharp call of the current stage, mapping decoder failures of the source to InvalidMedia. */
  async run<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (!this.stageFromSource) throw err;
      const message = (err as Error).message;
      if (/pixel limit/i.test(message)) throw tooLarge(`The input image exceeds the pixel limit: ${message}`);
      throw new PermanentJobError(JOB_FAILURE_CODES.InvalidMedia, `The input image cannot be decoded: ${message}`);
    }
  }

  /** Adds `apply` to the current stage, or to a fresh one when sharp would run it out of order. */
  private async add(slots: readonly Slot[], apply: (s: Sharp) => Sharp): Promise<void> {
    if (this.stage && this.slot >= slots[0]) await this.flush();
    const stage = this.open();
    apply(stage);
    this.slot = slots[slots.length - 1];
  }

  /** Applies `apply` to each frame separately (animations, for operations sharp runs on the whole strip). */
  private async perFrame(apply: (s: Sharp) => Sharp): Promise<void> {
    const raw = await this.flush();
    const frameBytes = raw.width * raw.height * raw.channels;
    const frames = await Promise.all(
      Array.from({ length: raw.pages }, (_, i) =>
        apply(sharp(raw.data.subarray(i * frameBytes, (i + 1) * frameBytes), { raw: { width: raw.width, height: raw.height, channels: raw.channels } }))
          .raw({ depth: 'uchar' })
          .toBuffer({ resolveWithObject: true }),
      ),
    );
    const first = frames[0].info;
    this.raw = { data: Buffer.concat(frames.map((f) => f.data)), width: first.width, height: first.height, pages: raw.pages, channels: first.channels };
    this.width = first.width;
    this.height = first.height;
  }

  /** A geometric operation: alone in its stage, per frame for animations unless sharp handles strips. */
  private async geometry(apply: (s: Sharp) => Sharp, stripSafe: boolean): Promise<void> {
    if (this.pages > 1 && !stripSafe) return this.perFrame(apply);
    return this.add([SLOT.GEOMETRY], apply);
  }

  /**
   * Refuses a result larger than the output limits (per side, and in pixels
   * over all frames), unless the step does not grow the image that way: so
   * every pass over the pixels, and every raw buffer between stages, is
   * bounded by the larger of the input and `maxOutputPixels`.
   */
  private checkSize(width: number, height: number, what: string): void {
    const max = this.limits.maxOutputSide;
    if ((width > max && width > this.width) || (height > max && height > this.height)) {
      throw tooLarge(`${what} would make the image ${width}x${height}; each side may be at most ${max}.`);
    }
    const pixels = width * height * this.pages;
    if (pixels > this.limits.maxOutputPixels && pixels > this.width * this.height * this.pages) {
      const frames = this.pages > 1 ? ` x ${this.pages} frames` : '';
      throw tooLarge(`${what} would make the image ${width}x${height}${frames} pixels; at most ${this.limits.maxOutputPixels} pixels are allowed.`);
    }
  }

  async thumbnail(step: Extract<MogrStep, { op: 'thumbnail' }>): Promise<void> {
    let { width, height } = thumbnailSize(step.geometry, this.width, this.height);
    if (this.pages > 1) {
      // CI never enlarges animations.
      if (step.geometry.kind === 'force') {
        width = Math.min(width, this.width);
        height = Math.min(height, this.height);
      } else if (width > this.width || height > this.height) {
        ({ width, height } = { width: this.width, height: this.height });
      }
    }
    const box = step.pad && step.geometry.kind === 'fit' ? { width: step.geometry.width ?? width, height: step.geometry.height ?? height } : undefined;
    const padX = box ? Math.max(0, box.width - width) : 0;
    const padY = box ? Math.max(0, box.height - height) : 0;
    this.checkSize(width + padX, height + padY, 'thumbnail');
    if (width === this.width && height === this.height && padX === 0 && padY === 0) return;
    const resize = width !== this.width || height !== this.height;
    await this.geometry((s) => {
      if (resize) s.resize(width, height, { fit: 'fill' });
      if (padX > 0 || padY > 0) {
        s.extend({
          left: Math.floor(padX / 2),
          right: padX - Math.floor(padX / 2),
          top: Math.floor(padY / 2),
          bottom: padY - Math.floor(padY / 2),
          background: rgb(step.pad?.color ?? DEFAULT_PAD_COLOR),
        });
      }
      return s;
    }, true);
    if (padX > 0 || padY > 0) this.stagePaints = true;
    this.width = width + padX;
    this.height = height + padY;
  }

  /** Keeps the w×h region at (left, top); the region must lie inside the image. */
  async extract(left: number, top: number, width: number, height: number): Promise<void> {
    if (left === 0 && top === 0 && width === this.width && height === this.height) return;
    await this.geometry((s) => s.extract({ left, top, width, height }), true);
    this.width = width;
    this.height = height;
  }

  async cut(step: Extract<MogrStep, { op: 'cut' }>): Promise<void> {
    if (step.x >= this.width || step.y >= this.height) {
      throw badArgument(`cut offset ${step.x}x${step.y} lies outside the ${this.width}x${this.height} image`);
    }
    await this.extract(step.x, step.y, Math.min(step.width, this.width - step.x), Math.min(step.height, this.height - step.y));
  }

  async crop(step: Extract<MogrStep, { op: 'crop' }>): Promise<void> {
    const inner = { width: Math.min(step.width ?? this.width, this.width), height: Math.min(step.height ?? this.height, this.height) };
    const { left, top } = gravityOffset(step.gravity, { width: this.width, height: this.height }, inner);
    await this.extract(left, top, inner.width, inner.height);
  }

  async rotate(degrees: number, alphaOutput: boolean): Promise<void> {
    const angle = degrees % 360;
    if (angle === 0) return;
    const quarter = angle % 90 === 0;
    const rad = (angle * Math.PI) / 180;
    const width = quarter ? (angle === 180 ? this.width : this.height) : Math.ceil(Math.abs(this.width * Math.cos(rad)) + Math.abs(this.height * Math.sin(rad)));
    const height = quarter ? (angle === 180 ? this.height : this.width) : Math.ceil(Math.abs(this.width * Math.sin(rad)) + Math.abs(this.height * Math.cos(rad)));
    this.checkSize(width, height, `rotate/${degrees}`);
    await this.geometry((s) => s.rotate(angle, { background: alphaOutput ? TRANSPARENT : WHITE }), false);
    if (quarter) {
      if (this.pages === 1) {
        this.width = width;
        this.height = height;
      }
      return;
    }
    // libvips sizes the rotated canvas itself (animations took it from the frames already).
    this.stagePaints = true;
    if (this.pages === 1) await this.flush(false);
  }

  async autoOrient(): Promise<void> {
    const fix = ORIENTATION_FIX[this.orientation];
    this.orientation = 1;
    if (!fix) return;
    if (this.pages > 1) return this.perFrame((s) => s.flop(fix.flop).rotate(fix.angle));
    if (this.untouched) {
      // Cheapest: let the decoder orient while loading (keeps JPEG shrink-on-load for a following thumbnail).
      this.orientOnLoad = true;
    } else {
      await this.geometry((s) => s.flop(fix.flop).rotate(fix.angle), false);
    }
    if (fix.angle === 90 || fix.angle === 270) [this.width, this.height] = [this.height, this.width];
  }

  async flip(direction: 'vertical' | 'horizontal'): Promise<void> {
    if (direction === 'vertical') await this.geometry((s) => s.flip(), false);
    else await this.geometry((s) => s.flop(), true);
  }

  async blur(radius: number, sigma: number): Promise<void> {
    // sharp sizes the kernel from sigma and a minimum amplitude; the amplitude of the
    // Gaussian at `radius` bounds the kernel like ImageMagick's radius does.
    const minAmplitude = Math.min(0.99, Math.max(0.001, Math.exp(-(radius * radius) / (2 * sigma * sigma))));
    const apply = (s: Sharp) => s.blur({ sigma: Math.max(0.3, sigma), minAmplitude });
    if (this.pages > 1) return this.perFrame(apply);
    await this.add([SLOT.BLUR], apply);
  }

  async sharpen(amount: number): Promise<void> {
    // CI's 10–300 (70 recommended) mapped to a Gaussian sigma of 0.1–3 (0.7).
    const apply = (s: Sharp) => s.sharpen({ sigma: amount / 100 });
    if (this.pages > 1) return this.perFrame(apply);
    await this.add([SLOT.SHARPEN], apply);
  }

  /** iradius / rradius: keeps a circle or rounded rectangle, the rest transparent or white. */
  async mask(kind: 'iradius' | 'rradius', radius: number, alphaOutput: boolean): Promise<void> {
    const limit = Math.floor(Math.min(this.width, this.height) / 2);
    if (radius > limit) throw badArgument(`${kind}/${radius} is larger than half the shorter side of the ${this.width}x${this.height} image (at most ${limit})`);
    const size = kind === 'iradius' ? { width: 2 * radius, height: 2 * radius } : { width: this.width, height: this.height };
    const left = Math.floor((this.width - size.width) / 2);
    const top = Math.floor((this.height - size.height) / 2);
    const overlay = maskOverlay(size.width, size.height, radius, alphaOutput);
    const crop = size.width !== this.width || size.height !== this.height;
    const apply = (s: Sharp) => {
      if (crop) s.extract({ left, top, width: size.width, height: size.height });
      return s.composite([overlay]);
    };
    if (this.pages > 1) await this.perFrame(apply);
    else await this.add(crop ? [SLOT.GEOMETRY, SLOT.MASK] : [SLOT.MASK], apply);
    this.stagePaints = true;
    this.width = size.width;
    this.height = size.height;
  }

  /** out = a·in + b on the colour channels; consecutive bright/contrast steps merge into one call. */
  async linear(a: number, b: number): Promise<void> {
    if (this.stage && this.slot === SLOT.LINEAR && this.linearParams) {
      const merged = { a: a * this.linearParams.a, b: a * this.linearParams.b + b };
      this.linearParams = merged;
      this.stage.linear(merged.a, merged.b);
      return;
    }
    await this.add([SLOT.LINEAR], (s) => s.linear(a, b));
    this.linearParams = { a, b };
  }

  /** The final pipeline: flatten for formats without alpha, greyscale, orientation tag. */
  async finish(options: { flatten: boolean; greyscale: boolean; orientationTag: number | undefined }): Promise<Sharp> {
    // sharp converts to greyscale at the start of a pipeline; colours painted by this stage
    // (pad, rotate fill, masks) would escape it, so greyscale then gets a stage of its own.
    // Flattening there is right: what this stage paints for JPEG/BMP output is already opaque.
    if (options.greyscale && this.stagePaints) await this.flush();
    const s = this.open();
    if (options.flatten) s.flatten({ background: WHITE });
    // One grey channel (plus alpha) rather than three equal ones: smaller files, same picture.
    if (options.greyscale) s.greyscale().toColourspace('b-w');
    if (options.orientationTag !== undefined) {
      // From the source, withExif replaces the whole EXIF block by the one tag. From raw pixels
      // sharp rewrites Orientation from the (absent) input value, so it has to go through
      // withMetadata, which has nothing else to keep there (it adds an sRGB profile).
      if (this.stageFromSource) s.withExif({ IFD0: { Orientation: String(options.orientationTag) } });
      else s.withMetadata({ orientation: options.orientationTag });
    }
    return s;
  }

  checkFinalSize(): void {
    const max = this.limits.maxOutputSide;
    if (this.width > max || this.height > max) {
      throw tooLarge(`The result would be ${this.width}x${this.height} pixels; each side may be at most ${max}.`);
    }
  }
}

function decodeBmpOrFail(input: Buffer): ReturnType<typeof decodeBmp> {
  try {
    return decodeBmp(input);
  } catch (err) {
    throw new PermanentJobError(JOB_FAILURE_CODES.InvalidMedia, `The input image cannot be decoded: ${(err as Error).message}`);
  }
}

/**
 * SVG overlay for iradius/rradius: with alpha, a white shape composited
 * `dest-in` keeps only the shape; without, white paint outside the shape.
 */
function maskOverlay(width: number, height: number, r: number, alphaOutput: boolean): OverlayOptions {
  const shape =
    width === 2 * r && height === 2 * r
      ? `M0 ${r}A${r} ${r} 0 1 0 ${2 * r} ${r}A${r} ${r} 0 1 0 0 ${r}Z`
      : `M${r} 0H${width - r}A${r} ${r} 0 0 1 ${width} ${r}V${height - r}A${r} ${r} 0 0 1 ${width - r} ${height}` +
        `H${r}A${r} ${r} 0 0 1 0 ${height - r}V${r}A${r} ${r} 0 0 1 ${r} 0Z`;
  const path = alphaOutput ? shape : `M0 0H${width}V${height}H0Z${shape}`;
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<path fill="#fff" fill-rule="evenodd" d="${path}"/></svg>`;
  return { input: Buffer.from(svg), blend: alphaOutput ? 'dest-in' : 'over', left: 0, top: 0 };
}

async function render(
  input: ImageSource,
  source: SourceImage,
  original: OriginalImageInfo,
  steps: readonly MogrStep[],
  options: MogrApplyOptions,
): Promise<ProcessedImage> {
  const formatStep = lastOf(steps, 'format');
  const format = formatStep?.format ?? defaultOutputFormat(source.format);
  const alphaOutput = ALPHA_FORMATS.has(format);
  const animated = source.pages > 1 && ANIMATED_FORMATS.has(format);
  const bmp = source.format === 'bmp' ? decodeBmpOrFail(await input.bytes()) : undefined;
  const canvas = new Canvas(input, source, bmp, animated, options.limits, options.signal);

  for (const step of steps) {
    throwIfAborted(options.signal);
    switch (step.op) {
      case 'thumbnail':
        await canvas.thumbnail(step);
        break;
      case 'cut':
        await canvas.cut(step);
        break;
      case 'crop':
        await canvas.crop(step);
        break;
      case 'iradius':
      case 'rradius':
        await canvas.mask(step.op, step.radius, alphaOutput);
        break;
      case 'rotate':
        await canvas.rotate(step.degrees, alphaOutput);
        break;
      case 'auto-orient':
        await canvas.autoOrient();
        break;
      case 'flip':
        await canvas.flip(step.direction);
        break;
      case 'blur':
        await canvas.blur(step.radius, step.sigma);
        break;
      case 'sharpen':
        await canvas.sharpen(step.amount);
        break;
      case 'bright':
        await canvas.linear(1, (255 * step.value) / 100);
        break;
      case 'contrast': {
        // ImageMagick's -brightness-contrast slope: tan((c + 100)·π/400), pivoting on mid-grey.
        const slope = Math.tan(((Math.min(step.value, 99) + 100) * Math.PI) / 400);
        await canvas.linear(slope, 127.5 * (1 - slope));
        break;
      }
      case 'format':
      case 'interlace':
      case 'quality':
      case 'rquality':
      case 'lquality':
      case 'size-limit':
      case 'grayscale':
      case 'strip':
      case 'ignore-error':
        break; // encoding options, resolved below
    }
  }
  canvas.checkFinalSize();
  throwIfAborted(options.signal);

  const strip = steps.some((s) => s.op === 'strip');
  const pipeline = await canvas.finish({
    flatten: !alphaOutput,
    greyscale: lastOf(steps, 'grayscale')?.enabled ?? false,
    orientationTag: !strip && canvas.orientation > 1 && format !== 'gif' && format !== 'bmp' ? canvas.orientation : undefined,
  });
  const quality = LOSSY_FORMATS.has(format) ? resolveQuality(source.quality, steps) : LOSSLESS_QUALITY;
  const encoder: Encoder = {
    format,
    interlace: lastOf(steps, 'interlace')?.enabled ?? false,
    optimized: formatStep?.optimized ?? false,
    animation: animated ? { delay: source.delay, loop: source.loop } : undefined,
  };
  const sizeLimit = lastOf(steps, 'size-limit');
  const frames = canvas.pages;

  let data: Buffer;
  let usedQuality = quality;
  if (sizeLimit) {
    if (!LOSSY_FORMATS.has(format)) throw badArgument(`size-limit applies to JPEG, WebP and AVIF output, not ${FORMAT_NAMES[format]}`);
    const raw = await rawOf(canvas, pipeline);
    ({ data, quality: usedQuality } = await encodeWithin(raw, encoder, quality, sizeLimit.bytes));
    if (sizeLimit.keepOriginalIfLarger && data.length >= input.size) return originalAsOutput(input, original);
  } else if (format === 'bmp') {
    const raw = await rawOf(canvas, pipeline);
    data = encodeBmp(raw.data, raw.width, raw.height, raw.channels);
  } else {
    data = await canvas.run(() => encode(pipeline, encoder, quality).toBuffer());
  }
  return {
    data,
    format: FORMAT_NAMES[format],
    extension: FORMAT_EXTENSIONS[format],
    width: canvas.width,
    height: canvas.height,
    frames,
    quality: usedQuality,
    isOriginal: false,
  };
}

interface Encoder {
  readonly format: OutputFormat;
  readonly interlace: boolean;
  readonly optimized: boolean;
  readonly animation: { readonly delay?: readonly number[]; readonly loop?: number } | undefined;
}

/** Sets the output format and its options on a pipeline. */
function encode(s: Sharp, e: Encoder, quality: number): Sharp {
  const animation = e.animation ? { ...(e.animation.delay ? { delay: [...e.animation.delay] } : {}), ...(e.animation.loop !== undefined ? { loop: e.animation.loop } : {}) } : {};
  switch (e.format) {
    case 'jpeg':
      return s.jpeg({ quality, progressive: e.interlace, mozjpeg: e.optimized });
    case 'png':
      return s.png();
    case 'webp':
      return s.webp({ quality, ...animation });
    case 'gif':
      return s.gif({ ...animation, ...(e.animation ? { keepDuplicateFrames: true } : {}) });
    case 'tiff':
      return s.tiff({ compression: 'lzw' });
    case 'avif':
      return s.avif({ quality });
    case 'bmp':
      return s.raw({ depth: 'uchar' });
  }
}

interface FinalRaw {
  readonly data: Buffer;
  readonly width: number;
  /** Total height (all frames). */
  readonly height: number;
  readonly channels: 1 | 2 | 3 | 4;
  readonly pageHeight: number | undefined;
}

async function rawOf(canvas: Canvas, pipeline: Sharp): Promise<FinalRaw> {
  const { data, info } = await canvas.run(() => pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true }));
  return { data, width: info.width, height: info.height, channels: info.channels, pageHeight: canvas.pages > 1 ? canvas.height : undefined };
}

/**
 * Encodes at `quality`, or at the highest lower quality whose result fits in
 * `maxBytes` (binary search, about seven encodes); quality 1 if nothing fits.
 */
async function encodeWithin(raw: FinalRaw, e: Encoder, quality: number, maxBytes: number): Promise<{ data: Buffer; quality: number }> {
  const at = (q: number) =>
    encode(sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels, ...(raw.pageHeight ? { pageHeight: raw.pageHeight } : {}) } }), e, q).toBuffer();
  let best = { data: await at(quality), quality };
  if (best.data.length <= maxBytes) return best;
  let lo = 1;
  let hi = quality - 1;
  let smallest = best;
  while (lo <= hi) {
    const mid = Math.floor((lo + hi) / 2);
    const data = await at(mid);
    if (data.length < smallest.data.length) smallest = { data, quality: mid };
    if (data.length <= maxBytes) {
      best = { data, quality: mid };
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return best.data.length <= maxBytes ? best : smallest;
}

/**
 * The one parser for CI `ProcessRule` strings (`shared/ci-api.md` §5.4).
 *
 * A rule is `imageMogr2` followed by `/op[/arg]` segments read left to right;
 * an op that takes a value consumes the next segment. Several `imageMogr2/…`
 * parts joined by `|` apply in order, so the parser returns them as one flat
 * list of steps (intermediate results between `|` parts are not re-encoded;
 * see `mogr-apply.ts`).
 *
 * Everything unsupported or malformed throws `PermanentJobError('InvalidArgument')`
 * naming the offending segment; nothing is silently ignored.
 *
 * Bounded work: a rule may hold at most `MAX_RULE_IMAGE_OPERATIONS` image
 * operations, of which at most `MAX_RULE_FILTER_OPERATIONS` filters (see
 * below), and `assertRuleWithinLimits` refuses thumbnail sizes over the
 * output limits; both are checked when a job or a template is submitted.
 *
 * @example
 * parseMogrRule('imageMogr2/thumbnail/!50p|imageMogr2/format/webp')
 * // → [{ op: 'thumbnail', geometry: { kind: 'scale', percent: 50 } }, { op: 'format', format: 'webp', optimized: false }]
 */
import { PermanentJobError } from '../engine/job-errors.js';

/** Nine-grid anchor used by `crop`. */
export type Gravity = 'northwest' | 'north' | 'northeast' | 'west' | 'center' | 'east' | 'southwest' | 'south' | 'southeast';

export const GRAVITIES: readonly Gravity[] = ['northwest', 'north', 'northeast', 'west', 'center', 'east', 'southwest', 'south', 'southeast'];

/**
 * `crop` without `/gravity/…` anchors at the top-left corner, as Qiniu's
 * imageMogr2 (which CI's grammar comes from) and CI's own `cut` do. CI does
 * not document its default.
 */
export const DEFAULT_CROP_GRAVITY: Gravity = 'northwest';

/** Default `/pad/1` fill when no `/color/…` is given (CI's prose says white). */
export const DEFAULT_PAD_COLOR = '#ffffff';

/** The `<geometry>` of `/thumbnail/<geometry>`, one variant per CI form. */
export type ThumbnailGeometry =
  /** `!<S>p`: both sides to S%. */
  | { readonly kind: 'scale'; readonly percent: number }
  /** `!<S>px`: width to S%, height unchanged. */
  | { readonly kind: 'scaleWidth'; readonly percent: number }
  /** `!x<S>p`: height to S%, width unchanged. */
  | { readonly kind: 'scaleHeight'; readonly percent: number }
  /**
   * `<W>x`, `x<H>`, `<W>x<H>`: fit inside the box keeping the ratio (a missing
   * side is unconstrained). A trailing `>` only ever shrinks, `<` only enlarges.
   */
  | { readonly kind: 'fit'; readonly width?: number; readonly height?: number; readonly only?: 'shrink' | 'enlarge' }
  /** `!<W>x<H>r`: cover, W and H are minimums. */
  | { readonly kind: 'cover'; readonly width: number; readonly height: number }
  /** `<W>x<H>!`: exactly W×H, ratio ignored. */
  | { readonly kind: 'force'; readonly width: number; readonly height: number }
  /** `<Area>@`: proportional, at most Area pixels. */
  | { readonly kind: 'area'; readonly pixels: number };

/** Output formats this server can write. */
export type OutputFormat = 'jpeg' | 'png' | 'webp' | 'gif' | 'bmp' | 'tiff' | 'avif';

/** One parsed imageMogr2 operation; `op` is its name in the rule. */
export type MogrStep =
  /** `pad` letterboxes the result into the W×H box with `color` (`#rrggbb`). */
  | { readonly op: 'thumbnail'; readonly geometry: ThumbnailGeometry; readonly pad?: { readonly color: string } }
  | { readonly op: 'cut'; readonly width: number; readonly height: number; readonly x: number; readonly y: number }
  | { readonly op: 'crop'; readonly width?: number; readonly height?: number; readonly gravity: Gravity }
  | { readonly op: 'iradius'; readonly radius: number }
  | { readonly op: 'rradius'; readonly radius: number }
  | { readonly op: 'rotate'; readonly degrees: number }
  | { readonly op: 'auto-orient' }
  | { readonly op: 'flip'; readonly direction: 'vertical' | 'horizontal' }
  /** `optimized` is CI's `yjpeg` (JPEG written with mozjpeg's trellis/scan optimisation). */
  | { readonly op: 'format'; readonly format: OutputFormat; readonly optimized: boolean }
  | { readonly op: 'interlace'; readonly enabled: boolean }
  | { readonly op: 'quality'; readonly quality: number; readonly force: boolean }
  | { readonly op: 'rquality'; readonly quality: number }
  | { readonly op: 'lquality'; readonly quality: number }
  /** `keepOriginalIfLarger` is the trailing `!`. */
  | { readonly op: 'size-limit'; readonly bytes: number; readonly keepOriginalIfLarger: boolean }
  | { readonly op: 'blur'; readonly radius: number; readonly sigma: number }
  | { readonly op: 'sharpen'; readonly amount: number }
  | { readonly op: 'bright'; readonly value: number }
  | { readonly op: 'contrast'; readonly value: number }
  | { readonly op: 'grayscale'; readonly enabled: boolean }
  | { readonly op: 'strip' }
  | { readonly op: 'ignore-error'; readonly enabled: boolean };

/** The operation names a step can have. */
export type MogrOp = MogrStep['op'];

/** Largest width/height/area number accepted by the grammar; the real limits are applied on the image. */
const MAX_DIMENSION = 1_000_000;

/**
 * Image operations (every operation but the encoding options `format`,
 * `interlace`, the qualities, `size-limit`, `grayscale`, `strip` and
 * `ignore-error`, which only set how the result is written) one rule may
 * hold, over all its `|` parts. CI documents no such limit (`shared/ci-api.md`
 * §5.4; Aliyun's image service allowed four pipeline levels): this is ours.
 * Each operation can cost a pass over every pixel (a new stage, see
 * `mogr-apply.ts`), up to 50 Mpx; 100 × `rotate/1` ran 10–15 s of CPU.
 * Parts themselves cost nothing (they are one flat list), so only
 * operations are counted.
 */
export const MAX_RULE_IMAGE_OPERATIONS = 20;

/**
 * Filters one rule may hold: `blur`, `sharpen`, `iradius`, `rradius` and a
 * `rotate` that is not a right angle, the operations whose cost grows with
 * their parameters or which always take a pass of their own. A 50/50 blur of
 * a 50 Mpx picture takes about 1.5 s of CPU; 91 of them after a thumbnail to
 * 9999×7499 ran 85–129 s and peaked at 0.95–1.4 GB.
 */
export const MAX_RULE_FILTER_OPERATIONS = 5;

/** Operations that only choose how the result is encoded (not counted against MAX_RULE_IMAGE_OPERATIONS). */
const ENCODING_OPS: ReadonlySet<MogrOp> = new Set(['format', 'interlace', 'quality', 'rquality', 'lquality', 'size-limit', 'grayscale', 'strip', 'ignore-error']);

function isFilter(step: MogrStep): boolean {
  switch (step.op) {
    case 'blur':
    case 'sharpen':
    case 'iradius':
    case 'rradius':
      return true;
    case 'rotate':
      return step.degrees % 90 !== 0;
    default:
      return false;
  }
}

const OUTPUT_FORMATS: Readonly<Record<string, { format: OutputFormat; optimized: boolean }>> = {
  jpg: { format: 'jpeg', optimized: false },
  jpeg: { format: 'jpeg', optimized: false },
  yjpeg: { format: 'jpeg', optimized: true },
  png: { format: 'png', optimized: false },
  webp: { format: 'webp', optimized: false },
  gif: { format: 'gif', optimized: false },
  bmp: { format: 'bmp', optimized: false },
  tiff: { format: 'tiff', optimized: false },
  avif: { format: 'avif', optimized: false },
};

/** CI formats we know but cannot write, with the reason given to the client. */
const UNSUPPORTED_FORMATS: Readonly<Record<string, string>> = {
  heif: 'this server has no HEVC encoder; use format/avif',
  heic: 'this server has no HEVC encoder; use format/avif',
  apng: 'animated PNG output is not supported; use format/webp or format/gif',
  tpg: 'TPG is a proprietary Tencent format',
  psd: 'PSD output is not supported',
  svgz: 'SVG output is not supported',
};

/** CI imageMogr2 operations this server recognises but does not implement. */
const UNSUPPORTED_OPS: Readonly<Record<string, string>> = {
  scrop: 'face-aware cropping is not supported',
  rcrop: 'adaptive ratio cropping is not supported',
  cgif: 'GIF frame reduction is not supported',
  bgcolor: 'bgcolor is not a CI imageMogr2 operation; use thumbnail/<W>x<H>/pad/1/color/<base64>',
  background: 'background is not a CI imageMogr2 operation; use thumbnail/<W>x<H>/pad/1/color/<base64>',
  minisize: 'minisize is not supported',
  dx: 'dx/dy offsets are only supported inside watermarks',
  dy: 'dx/dy offsets are only supported inside watermarks',
};

/** Other CI processors that may follow `|`; none is implemented yet. */
const OTHER_PROCESSORS = new Set(['imageView2', 'watermark', 'imageSlim', 'imageInfo', 'exif', 'style', 'imageAve', 'blindwatermark', 'ColorEnhance']);

function invalid(message: string): PermanentJobError {
  return new PermanentJobError('InvalidArgument', `ProcessRule: ${message}`);
}

/** Reads a non-negative decimal integer, refusing signs, spaces, exponents and leading `+`. */
function integer(text: string, min: number, max: number, segment: string, what: string): number {
  if (!/^\d{1,9}$/.test(text)) throw invalid(`${what} must be an integer from ${min} to ${max} in segment "${segment}"`);
  const value = Number(text);
  if (value < min || value > max) throw invalid(`${what} must be from ${min} to ${max} in segment "${segment}"`);
  return value;
}

function signedInteger(text: string, min: number, max: number, segment: string, what: string): number {
  if (!/^-?\d{1,9}$/.test(text)) throw invalid(`${what} must be an integer from ${min} to ${max} in segment "${segment}"`);
  const value = Number(text);
  if (value < min || value > max) throw invalid(`${what} must be from ${min} to ${max} in segment "${segment}"`);
  return value;
}

function decimal(text: string, segment: string, what: string): number {
  if (!/^\d{1,9}(\.\d{1,6})?$/.test(text)) throw invalid(`${what} must be a number in segment "${segment}"`);
  return Number(text);
}

function flag(text: string, segment: string, what: string): boolean {
  if (text === '1') return true;
  if (text === '0') return false;
  throw invalid(`${what} must be 0 or 1 in segment "${segment}"`);
}

function dimension(text: string, segment: string, what: string): number {
  return integer(text, 1, MAX_DIMENSION, segment, what);
}

function percent(text: string, segment: string): number {
  const value = decimal(text, segment, 'the percentage');
  if (value <= 0 || value > 1000) throw invalid(`the percentage must be greater than 0 and at most 1000 in segment "${segment}"`);
  return value;
}

/** Parses the geometry of `/thumbnail/<geometry>` (every form in §5.4). */
export function parseThumbnailGeometry(text: string, segment = `thumbnail/${text}`): ThumbnailGeometry {
  let m: RegExpExecArray | null;
  if ((m = /^!([\d.]+)p$/.exec(text))) return { kind: 'scale', percent: percent(m[1], segment) };
  if ((m = /^!([\d.]+)px$/.exec(text))) return { kind: 'scaleWidth', percent: percent(m[1], segment) };
  if ((m = /^!x([\d.]+)p$/.exec(text))) return { kind: 'scaleHeight', percent: percent(m[1], segment) };
  if ((m = /^!(\d+)x(\d+)r$/.exec(text))) {
    return { kind: 'cover', width: dimension(m[1], segment, 'the width'), height: dimension(m[2], segment, 'the height') };
  }
  if ((m = /^(\d+)x(\d+)!$/.exec(text))) {
    return { kind: 'force', width: dimension(m[1], segment, 'the width'), height: dimension(m[2], segment, 'the height') };
  }
  if ((m = /^(\d+)@$/.exec(text))) return { kind: 'area', pixels: integer(m[1], 1, 250_000_000, segment, 'the area') };
  if ((m = /^(\d*)x(\d*)([<>]?)$/.exec(text)) && (m[1] !== '' || m[2] !== '')) {
    const geometry: { kind: 'fit'; width?: number; height?: number; only?: 'shrink' | 'enlarge' } = { kind: 'fit' };
    if (m[1] !== '') geometry.width = dimension(m[1], segment, 'the width');
    if (m[2] !== '') geometry.height = dimension(m[2], segment, 'the height');
    if (m[3] === '>') geometry.only = 'shrink';
    if (m[3] === '<') geometry.only = 'enlarge';
    return geometry;
  }
  throw invalid(
    `unrecognised thumbnail geometry in segment "${segment}" ` +
      '(expected !<S>p, !<S>px, !x<S>p, <W>x, x<H>, <W>x<H>, <W>x<H>>, <W>x<H><, !<W>x<H>r, <W>x<H>! or <Area>@)',
  );
}

/** Decodes `/color/<url-safe base64 of "#RRGGBB">` to `#rrggbb`. */
function padColor(text: string, segment: string): string {
  if (!/^[A-Za-z0-9_\-+/]+={0,2}$/.test(text)) throw invalid(`the colour must be URL-safe base64 of #RRGGBB in segment "${segment}"`);
  const decoded = Buffer.from(text.replace(/\+/g, '-').replace(/\//g, '_'), 'base64url').toString('latin1');
  if (!/^#[0-9a-fA-F]{6}$/.test(decoded)) {
    throw invalid(`the colour must be URL-safe base64 of #RRGGBB (decoded ${JSON.stringify(decoded)}) in segment "${segment}"`);
  }
  return decoded.toLowerCase();
}

/** Operations that take no value segment. */
const NO_ARGUMENT = new Set(['auto-orient', 'strip']);
/** Every operation name this parser accepts, with or without a value. */
const KNOWN_OPS = new Set([
  'thumbnail', 'pad', 'color', 'cut', 'crop', 'gravity', 'iradius', 'rradius', 'rotate', 'auto-orient', 'flip', 'format',
  'interlace', 'quality', 'rquality', 'lquality', 'size-limit', 'blur', 'sharpen', 'bright', 'contrast', 'grayscale',
  'strip', 'ignore-error',
]);

/**
 * Parses a whole ProcessRule into the steps to apply, in order.
 * Throws `PermanentJobError('InvalidArgument')` naming the bad segment.
 */
export function parseMogrRule(rule: string): MogrStep[] {
  const text = rule.trim();
  if (text === '') throw invalid('the rule is empty');
  const steps: MogrStep[] = [];
  for (const part of text.split('|')) parsePart(part, steps);
  const operations = steps.filter((step) => !ENCODING_OPS.has(step.op)).length;
  if (operations > MAX_RULE_IMAGE_OPERATIONS) {
    throw invalid(`the rule has ${operations} image operations; at most ${MAX_RULE_IMAGE_OPERATIONS} are allowed in one rule`);
  }
  const filters = steps.filter(isFilter).length;
  if (filters > MAX_RULE_FILTER_OPERATIONS) {
    throw invalid(
      `the rule has ${filters} filters (blur, sharpen, iradius, rradius, rotate by other than a right angle); ` +
        `at most ${MAX_RULE_FILTER_OPERATIONS} are allowed in one rule`,
    );
  }
  return steps;
}

/**
 * `parseMogrRule`, then `assertRuleWithinLimits`: what CreateMediaJobs checks
 * at submit, and the PicProcess processor again when the job runs (a
 * template's rule or the limits may have changed since).
 */
export function parseMogrRuleWithinLimits(rule: string, limits: RuleSizeLimits): MogrStep[] {
  const steps = parseMogrRule(rule);
  assertRuleWithinLimits(steps, limits);
  return steps;
}

/** The output limits a rule is checked against (`PicLimits` of the config). */
export interface RuleSizeLimits {
  readonly maxOutputSide: number;
  readonly maxOutputPixels: number;
}

/**
 * Refuses a rule that asks for a result over the output limits whatever the
 * picture: a thumbnail whose box, forced size, cover size or area exceeds
 * `maxOutputSide` per side or `maxOutputPixels` in all (a shrink-only `>`
 * box without pad never enlarges and is let through). Sizes that depend on
 * the picture (percentages, rotations) are checked on it by `mogr-apply.ts`.
 * A rule with `ignore-error/1` is let through: over the limits, it returns
 * the input unchanged, as CI does.
 *
 * @example
 * assertRuleWithinLimits(parseMogrRule('imageMogr2/thumbnail/9999x9999'), config.picLimits)
 * // throws InvalidArgument: "ProcessRule: thumbnail/9999x9999 asks for up to 99980001 pixels; the output limit is 50000000 pixels"
 */
export function assertRuleWithinLimits(steps: readonly MogrStep[], limits: RuleSizeLimits): void {
  if (steps.some((step) => step.op === 'ignore-error' && step.enabled)) return;
  for (const step of steps) {
    if (step.op !== 'thumbnail') continue;
    const size = requestedSize(step);
    if (!size) continue;
    const what = `thumbnail/${describeGeometry(step.geometry)}${step.pad ? '/pad/1' : ''}`;
    for (const side of [size.width, size.height]) {
      if (side !== undefined && side > limits.maxOutputSide) {
        throw invalid(`${what} asks for a side of ${side} pixels; the output limit is ${limits.maxOutputSide} pixels per side`);
      }
    }
    if (size.pixels !== undefined && size.pixels > limits.maxOutputPixels) {
      throw invalid(`${what} asks for up to ${size.pixels} pixels; the output limit is ${limits.maxOutputPixels} pixels`);
    }
  }
}

/** The largest result a thumbnail step can ask for, where the rule alone says; undefined for shrink-only and percentage forms. */
function requestedSize(step: Extract<MogrStep, { op: 'thumbnail' }>): { width?: number; height?: number; pixels?: number } | undefined {
  const g = step.geometry;
  switch (g.kind) {
    case 'force':
    case 'cover':
      return { width: g.width, height: g.height, pixels: g.width * g.height };
    case 'area':
      return { pixels: g.pixels };
    case 'fit':
      if (g.only === 'shrink' && !step.pad) return undefined;
      return { width: g.width, height: g.height, ...(g.width !== undefined && g.height !== undefined ? { pixels: g.width * g.height } : {}) };
    default:
      return undefined;
  }
}

function describeGeometry(g: ThumbnailGeometry): string {
  switch (g.kind) {
    case 'force':
      return `${g.width}x${g.height}!`;
    case 'cover':
      return `!${g.width}x${g.height}r`;
    case 'area':
      return `${g.pixels}@`;
    case 'fit':
      return `${g.width ?? ''}x${g.height ?? ''}${g.only === 'shrink' ? '>' : g.only === 'enlarge' ? '<' : ''}`;
    case 'scale':
      return `!${g.percent}p`;
    case 'scaleWidth':
      return `!${g.percent}px`;
    case 'scaleHeight':
      return `!x${g.percent}p`;
  }
}

function parsePart(part: string, steps: MogrStep[]): void {
  const segments = part.split('/');
  const processor = segments[0];
  if (processor !== 'imageMogr2') {
    if (processor === '') throw invalid(`empty processor before "/${segments.slice(1).join('/')}" (each "|" part must start with imageMogr2)`);
    if (OTHER_PROCESSORS.has(processor)) throw invalid(`the processor "${processor}" is not supported; only imageMogr2 is`);
    throw invalid(`unknown processor "${processor}" (each "|" part must start with imageMogr2)`);
  }
  /** A `/gravity/…` seen before its `crop` (Qiniu writes it first). */
  let pendingGravity: { gravity: Gravity; segment: string } | undefined;
  /** True right after a crop written without a leading gravity. */
  let cropAwaitsGravity = false;
  let i = 1;
  while (i < segments.length) {
    const name = segments[i];
    if (name === '') throw invalid(`empty segment at position ${i} of "${part}"`);
    if (Object.hasOwn(UNSUPPORTED_OPS, name)) throw invalid(`operation "${name}" is not supported: ${UNSUPPORTED_OPS[name]}`);
    if (!KNOWN_OPS.has(name)) throw invalid(`unknown imageMogr2 operation "${name}" in "${part}"`);
    let arg = '';
    if (!NO_ARGUMENT.has(name)) {
      const next = segments[i + 1];
      if (next === undefined || next === '') throw invalid(`operation "${name}" needs a value ("${name}/<value>")`);
      arg = next;
    }
    const segment = NO_ARGUMENT.has(name) ? name : `${name}/${arg}`;
    i += NO_ARGUMENT.has(name) ? 1 : 2;

    if (pendingGravity && name !== 'crop') {
      throw invalid(`segment "${pendingGravity.segment}" must be next to a crop (crop/<W>x<H>/gravity/<g>)`);
    }
    const last = steps.at(-1);
    switch (name) {
      case 'thumbnail':
        steps.push({ op: 'thumbnail', geometry: parseThumbnailGeometry(arg, segment) });
        break;
      case 'pad': {
        if (last?.op !== 'thumbnail') throw invalid(`segment "${segment}" must follow a thumbnail/<W>x<H>`);
        if (!flag(arg, segment, 'pad')) break;
        const g = last.geometry;
        if (g.kind !== 'fit' || g.width === undefined || g.height === undefined) {
          throw invalid(`segment "${segment}" needs a thumbnail of the form <W>x<H>, <W>x<H>> or <W>x<H><`);
        }
        steps[steps.length - 1] = { ...last, pad: { color: DEFAULT_PAD_COLOR } };
        break;
      }
      case 'color':
        if (last?.op !== 'thumbnail' || last.pad === undefined) throw invalid(`segment "${segment}" must follow thumbnail/<W>x<H>/pad/1`);
        steps[steps.length - 1] = { ...last, pad: { color: padColor(arg, segment) } };
        break;
      case 'cut': {
        const m = /^(\d+)x(\d+)x(\d+)x(\d+)$/.exec(arg);
        if (!m) throw invalid(`cut must be <W>x<H>x<dx>x<dy> in segment "${segment}"`);
        steps.push({
          op: 'cut',
          width: dimension(m[1], segment, 'the width'),
          height: dimension(m[2], segment, 'the height'),
          x: integer(m[3], 0, MAX_DIMENSION, segment, 'dx'),
          y: integer(m[4], 0, MAX_DIMENSION, segment, 'dy'),
        });
        break;
      }
      case 'crop': {
        const m = /^(\d*)x(\d*)$/.exec(arg);
        if (!m || (m[1] === '' && m[2] === '')) throw invalid(`crop must be <W>x, x<H> or <W>x<H> in segment "${segment}"`);
        const step: { op: 'crop'; width?: number; height?: number; gravity: Gravity } = {
          op: 'crop',
          gravity: pendingGravity?.gravity ?? DEFAULT_CROP_GRAVITY,
        };
        if (m[1] !== '') step.width = dimension(m[1], segment, 'the width');
        if (m[2] !== '') step.height = dimension(m[2], segment, 'the height');
        steps.push(step);
        // Only a crop without a leading gravity may take one written after it.
        cropAwaitsGravity = pendingGravity === undefined;
        pendingGravity = undefined;
        continue;
      }
      case 'gravity': {
        const gravity = arg.toLowerCase() as Gravity;
        if (!GRAVITIES.includes(gravity)) throw invalid(`gravity must be one of ${GRAVITIES.join(', ')} in segment "${segment}"`);
        if (cropAwaitsGravity && last?.op === 'crop') {
          steps[steps.length - 1] = { ...last, gravity };
        } else {
          pendingGravity = { gravity, segment };
        }
        cropAwaitsGravity = false;
        continue;
      }
      case 'iradius':
      case 'rradius':
        steps.push({ op: name, radius: integer(arg, 1, MAX_DIMENSION, segment, 'the radius') });
        break;
      case 'rotate':
        steps.push({ op: 'rotate', degrees: integer(arg, 0, 360, segment, 'the angle') });
        break;
      case 'auto-orient':
        steps.push({ op: 'auto-orient' });
        break;
      case 'flip':
        if (arg !== 'vertical' && arg !== 'horizontal') throw invalid(`flip must be vertical or horizontal in segment "${segment}"`);
        steps.push({ op: 'flip', direction: arg });
        break;
      case 'format': {
        const key = arg.toLowerCase();
        if (Object.hasOwn(UNSUPPORTED_FORMATS, key)) throw invalid(`format "${arg}" is not supported: ${UNSUPPORTED_FORMATS[key]}`);
        const known = OUTPUT_FORMATS[key];
        if (!Object.hasOwn(OUTPUT_FORMATS, key) || known === undefined) {
          throw invalid(`unknown format "${arg}" in segment "${segment}" (supported: ${Object.keys(OUTPUT_FORMATS).join(', ')})`);
        }
        steps.push({ op: 'format', format: known.format, optimized: known.optimized });
        break;
      }
      case 'interlace':
        steps.push({ op: 'interlace', enabled: flag(arg, segment, 'interlace') });
        break;
      case 'quality': {
        const m = /^(\d+)(!?)$/.exec(arg);
        if (!m) throw invalid(`quality must be 0-100 with an optional trailing "!" in segment "${segment}"`);
        steps.push({ op: 'quality', quality: integer(m[1], 0, 100, segment, 'quality'), force: m[2] === '!' });
        break;
      }
      case 'rquality':
      case 'lquality':
        steps.push({ op: name, quality: integer(arg, 0, 100, segment, name) });
        break;
      case 'size-limit': {
        const m = /^(\d{1,9}(?:\.\d{1,3})?)([kKmM])(!?)$/.exec(arg);
        if (!m) throw invalid(`size-limit must be <n>k or <n>m with an optional trailing "!" in segment "${segment}"`);
        const bytes = Math.floor(Number(m[1]) * (m[2].toLowerCase() === 'k' ? 1024 : 1024 * 1024));
        if (bytes < 1) throw invalid(`size-limit must be positive in segment "${segment}"`);
        steps.push({ op: 'size-limit', bytes, keepOriginalIfLarger: m[3] === '!' });
        break;
      }
      case 'blur': {
        const m = /^(\d+)x([\d.]+)$/.exec(arg);
        if (!m) throw invalid(`blur must be <radius>x<sigma> in segment "${segment}"`);
        const sigma = decimal(m[2], segment, 'sigma');
        if (sigma <= 0 || sigma > 50) throw invalid(`sigma must be greater than 0 and at most 50 in segment "${segment}"`);
        steps.push({ op: 'blur', radius: integer(m[1], 1, 50, segment, 'the radius'), sigma });
        break;
      }
      case 'sharpen':
        steps.push({ op: 'sharpen', amount: integer(arg, 10, 300, segment, 'sharpen') });
        break;
      case 'bright':
      case 'contrast':
        steps.push({ op: name, value: signedInteger(arg, -100, 100, segment, name) });
        break;
      case 'grayscale':
        steps.push({ op: 'grayscale', enabled: flag(arg, segment, 'grayscale') });
        break;
      case 'strip':
        steps.push({ op: 'strip' });
        break;
      case 'ignore-error':
        steps.push({ op: 'ignore-error', enabled: flag(arg, segment, 'ignore-error') });
        break;
    }
    cropAwaitsGravity = false;
  }
  if (pendingGravity) throw invalid(`segment "${pendingGravity.segment}" must be next to a crop (crop/<W>x<H>/gravity/<g>)`);
}

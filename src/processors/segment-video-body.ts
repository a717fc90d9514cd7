/**
 * Tag=SegmentVideoBody (shared/ci-media-tags.md §0 #21; Go's SegmentVideoBody
 * struct; field meanings from Tencent's Android SDK): the parts of CI's
 * matting that colour keying does, by ffmpeg's `chromakey` and `colorkey`.
 *
 * `SegmentVideoBody{Mode, SegmentType, BackgroundRed/Green/Blue,
 * BackgroundLogoUrl, BinaryThreshold, RemoveRed/Green/Blue}`:
 * - SegmentType GreenScreenSeg: `chromakey` on pure green (0x00FF00),
 *   similarity 0.3, blend 0.1. Chosen on colour patches: pure green and the
 *   usual screen green (0x00B140) are keyed fully, mid greens (0x4CAF50,
 *   0x006400) half, and white, grey, skin tones, red and yellow stay opaque
 *   (grey is ≈ 0.53 away); a wider similarity starts eating light greens and
 *   cyans, a narrower one leaves real screens unkeyed.
 * - SolidColorSeg: `colorkey` (RGB) on RemoveRed/Green/Blue (default black),
 *   similarity 0.15, blend 0.05: keyed up to ≈ 38 levels of RGB distance
 *   away (codec noise on a flat background is a few), fading out by ≈ 51.
 *   Both in the 2018 bundled binary's units; other binaries are measured and
 *   scaled (media/ffmpeg-capabilities.ts keyDistanceUnits).
 * - HumanSeg, the default: needs an AI model, refused at submit pointing at
 *   MEDIAJOBS_EXTERNAL_TAGS.
 * - BinaryThreshold [0, 255]: 0 (the default) keeps the key's soft alpha;
 *   T > 0 makes it binary, opaque where the alpha is ≥ T, in every Mode.
 * - Mode Mask (the default): the alpha as a grey video (white = kept);
 *   Foreground: the keyed video over BackgroundRed/Green/Blue (default black),
 *   as large and as long as the input; Combination: over BackgroundLogoUrl (an
 *   object of the job's bucket, read as media/input-policy.ts allows; an image,
 *   or a video looped to the input's length; scaled to the input's size
 *   without keeping its aspect; its own transparency and audio dropped).
 *   BackgroundLogoUrl is ignored by the other Modes, the Background and
 *   Remove colours where they do not apply (their ranges are still checked).
 * - The encode follows the input as the Watermark Tag's does
 *   (watermark-job.ts): container from the Output extension, the input's
 *   codecs where it holds them, audio kept.
 * No TemplateId: Go has no SegmentVideoBody template.
 *
 * Result: as Transcode's (MediaInfo of the output, MediaResult with Md5Info).
 */
import type { Config } from '../config.js';
import { keyDistanceUnits } from '../media/ffmpeg-capabilities.js';
import type { Spawner } from '../media/spawner.js';
import type { XmlObject } from '../xml/tree.js';
import { asSubmitError, assertFfmpegHas, child, invalid, needsAiModel, number, objectKeyOfUrl, readOutput, text, SUBMIT_CHECK_JOB } from './media-output.js';
import type { Processor, ProcessorContext } from './processor.js';
import { parseTranscode, runTranscodeSpec, transcodeNeeds, type VideoGraph } from './transcode.js';
import { inputFollowingTranscode, watermarkOutputFormat } from './watermark-job.js';

const MODES = ['Mask', 'Foreground', 'Combination'] as const;
const SEGMENT_TYPES = ['HumanSeg', 'GreenScreenSeg', 'SolidColorSeg'] as const;

/** `[similarity, blend]` in the bundled binary's units (see the module comment). */
const GREEN_KEY = [0.3, 0.1] as const;
const SOLID_KEY = [0.15, 0.05] as const;

/** A `<SegmentVideoBody>`, parsed and checked. */
export interface SegmentSpec {
  readonly mode: (typeof MODES)[number];
  readonly segmentType: 'GreenScreenSeg' | 'SolidColorSeg';
  /** Foreground's background, `0xRRGGBB`. */
  readonly background: string;
  /** Combination's background object. */
  readonly backgroundKey?: string;
  /** 0: the soft alpha; otherwise the alpha's binarisation level. */
  readonly threshold: number;
  /** SolidColorSeg's colour to remove, `0xRRGGBB`. */
  readonly remove: string;
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], fallback: T, where: string): T {
  if (value === undefined) return fallback;
  const found = allowed.find((a) => a.toLowerCase() === value.toLowerCase());
  if (!found) throw invalid(`${where} must be one of ${allowed.join(', ')}, not ${JSON.stringify(value)}.`);
  return found;
}

/** `0xRRGGBB` of three [0, 255] elements (each default 0). */
function colour(body: XmlObject, prefix: string): string {
  return `0x${['Red', 'Green', 'Blue'].map((c) => (number(body[`${prefix}${c}`], `SegmentVideoBody/${prefix}${c}`, 0, 255, { integer: true }) ?? 0).toString(16).padStart(2, '0')).join('').toUpperCase()}`;
}

/** Parses `<SegmentVideoBody>`; `bucket` holds BackgroundLogoUrl to the job's bucket. Throws InvalidArgument naming the element. */
export function parseSegmentVideoBody(body: XmlObject, bucket: string | undefined): SegmentSpec {
  const segmentType = oneOf(text(body.SegmentType), SEGMENT_TYPES, 'HumanSeg', 'SegmentVideoBody/SegmentType');
  if (segmentType === 'HumanSeg') {
    throw needsAiModel(`SegmentVideoBody/SegmentType HumanSeg${text(body.SegmentType) === undefined ? ' (the default when SegmentType is absent)' : ''}`, 'SegmentVideoBody');
  }
  const mode = oneOf(text(body.Mode), MODES, 'Mask', 'SegmentVideoBody/Mode');
  const background = colour(body, 'Background');
  const remove = colour(body, 'Remove');
  const threshold = number(body.BinaryThreshold, 'SegmentVideoBody/BinaryThreshold', 0, 255, { integer: true }) ?? 0;
  const url = text(body.BackgroundLogoUrl);
  if (mode === 'Combination' && url === undefined) throw invalid('SegmentVideoBody/BackgroundLogoUrl is required with Mode Combination.');
  const backgroundKey = mode === 'Combination' ? objectKeyOfUrl(url!, bucket, 'SegmentVideoBody/BackgroundLogoUrl') : undefined;
  return { mode, segmentType, background, backgroundKey, threshold, remove };
}

/**
 * The key (and binarisation) giving a frame an alpha: `chromakey` in YUV 4:4:4
 * (each pixel its own chroma), `colorkey` in RGBA; the format is set first
 * because ffmpeg 5 will not pick one with alpha for the key by itself.
 * `units` are the binary's key distance units.
 */
export function keyFilters(spec: SegmentSpec, units: { chroma: number; colour: number } = { chroma: 1, colour: 1 }): string[] {
  const round = (n: number) => Math.round(n * 10_000) / 10_000;
  const filters = spec.segmentType === 'GreenScreenSeg'
    ? ['format=yuva444p', `chromakey=color=0x00FF00:similarity=${round(GREEN_KEY[0] * units.chroma)}:blend=${round(GREEN_KEY[1] * units.chroma)}`]
    : ['format=rgba', `colorkey=color=${spec.remove}:similarity=${round(SOLID_KEY[0] * units.colour)}:blend=${round(SOLID_KEY[1] * units.colour)}`];
  if (spec.threshold > 0) filters.push(`lut=a='gte(val,${spec.threshold})*255'`);
  return filters;
}

/** The graph of a spec from `[from]` to `[to]`; Combination's background is input `firstInput`. Pure. */
export function segmentGraph(spec: SegmentSpec, units?: { chroma: number; colour: number }): VideoGraph {
  const key = keyFilters(spec, units).join(',');
  return {
    inputs: spec.backgroundKey !== undefined ? [{ key: spec.backgroundKey, where: 'SegmentVideoBody/BackgroundLogoUrl' }] : [],
    build(from, to, firstInput) {
      if (spec.mode === 'Mask') return [`[${from}]${key},alphaextract[${to}]`];
      const background = spec.mode === 'Foreground'
        // A box filling each frame of the input: the colour as large and as long as it, without probing either.
        ? [`[seg_b]drawbox=x=0:y=0:w=iw:h=ih:color=${spec.background}:t=fill[seg_bg]`]
        // The object (looped by the caller) scaled to the input's frame and laid over it, so the input's frames set the
        // timing; shortest=1 ends it with the input, as the looped object never ends.
        : [`[${firstInput}:v]format=yuv420p[seg_raw]`, '[seg_raw][seg_b]scale2ref=w=iw:h=ih[seg_img][seg_ref]', '[seg_ref][seg_img]overlay=shortest=1[seg_bg]'];
      return [`[${from}]split[seg_k][seg_b]`, ...background, `[seg_k]${key}[seg_fg]`, `[seg_bg][seg_fg]overlay[${to}]`];
    },
  };
}

/** The filters a spec needs from the binary. */
export function segmentFilters(spec: SegmentSpec): string[] {
  return [
    'format',
    spec.segmentType === 'GreenScreenSeg' ? 'chromakey' : 'colorkey',
    ...(spec.threshold > 0 ? ['lut'] : []),
    ...(spec.mode === 'Mask' ? ['alphaextract'] : ['split', 'overlay']),
    ...(spec.mode === 'Foreground' ? ['drawbox'] : []),
    ...(spec.mode === 'Combination' ? ['scale2ref'] : []),
  ];
}

/** Submit-time checks of a SegmentVideoBody Operation. */
export function checkSegmentVideoBodyOperation(operation: XmlObject, config: Config, where: string, bucket: string): void {
  try {
    const target = readOutput(operation, SUBMIT_CHECK_JOB, false);
    // With the job's bucket, as the run reads it: another bucket's background is a 400 now, not a job that can only fail.
    const spec = parseSegmentVideoBody(child(operation, 'SegmentVideoBody'), bucket);
    const encode = parseTranscode({ Container: { Format: watermarkOutputFormat(target.object, '', 'SegmentVideoBody') } });
    assertFfmpegHas(config.ffmpegPath, { encoders: transcodeNeeds(encode).encoders, filters: segmentFilters(spec) });
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export function createSegmentVideoBodyProcessor(spawner: Spawner): Processor {
  return { tag: 'SegmentVideoBody', slotsItsTool: true, run: (ctx) => runSegmentVideoBody(ctx, spawner) };
}

async function runSegmentVideoBody(ctx: ProcessorContext, spawner: Spawner): Promise<XmlObject> {
  const spec = parseSegmentVideoBody(child(ctx.job.operation, 'SegmentVideoBody'), ctx.job.bucket);
  const encode = await inputFollowingTranscode(ctx, spawner, 'SegmentVideoBody', 'to key');
  return runTranscodeSpec(ctx, spawner, encode, { videoGraph: segmentGraph(spec, await keyDistanceUnits(ctx.config.ffmpegPath)) });
}

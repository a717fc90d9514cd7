/**
 * Tag=VideoEnhance (shared/ci-media-tags.md §0 #2): the parts of CI's video
 * enhancement that ffmpeg filters approximate, on top of a Transcode.
 *
 * `VideoEnhance{Transcode, ColorEnhance, MsSharpen, FrameEnhance,
 * SuperResolution, SDRtoHDR}`, or a VideoEnhance template by `TemplateId`:
 * - ColorEnhance and MsSharpen as VideoProcess does them (`eq`, `unsharp`,
 *   video-process.ts); a block that leaves Enable out is on, as CI's examples
 *   send them, and Enable false turns it off. Correction is accepted, ignored.
 * - FrameEnhance/FrameDoubling true: `minterpolate` (motion-compensated
 *   interpolation) to twice the input's frame rate; a Video/Fps of the
 *   Transcode then sets the output's rate, as in Transcode.
 * - SuperResolution and SDRtoHDR need AI models and HDR tooling this service
 *   does not run: refused (400), pointing at MEDIAJOBS_EXTERNAL_TAGS.
 * - The encode: `VideoEnhance/Transcode` (all of Transcode's elements), or
 *   the Transcode template of `TranscodeTemplateId`, which wins; neither:
 *   Transcode's defaults (mp4, H.264, AAC). `Watermark[]` and
 *   `WatermarkTemplateId[]` are drawn as Transcode draws them.
 *
 * Result: as Transcode's (MediaInfo of the output, MediaResult with Md5Info).
 */
import type { Config } from '../config.js';
import type { Spawner } from '../media/spawner.js';
import { isXmlObject, type XmlObject } from '../xml/tree.js';
import { asSubmitError, assertFfmpegHas, child, flag, invalid, needsAiModel, probeInput, readOutput, text, withInputFile, SUBMIT_CHECK_JOB } from './media-output.js';
import type { Processor, ProcessorContext } from './processor.js';
import { parseTranscode, runTranscodeSpec, transcodeNeeds, type TranscodeSpec } from './transcode.js';
import { colourAndSharpenFilters } from './video-process.js';
import { parseWatermarks, watermarkFilters } from './watermark.js';

/** The parts that need models: refused, and named in the refusal. */
const NEEDS_AI = ['SuperResolution', 'SDRtoHDR'] as const;

/** What a `<VideoEnhance>` asks of the video, without its encode. */
export interface EnhanceFilters {
  /** `eq` / `unsharp`, in that order. */
  readonly colourAndSharpen: string[];
  readonly frameDoubling: boolean;
}

/** Parses `<VideoEnhance>`'s enhancements; throws InvalidArgument naming the element. */
export function parseEnhanceFilters(enhance: XmlObject): EnhanceFilters {
  for (const name of NEEDS_AI) {
    if (isXmlObject(enhance[name]) || text(enhance[name]) !== undefined) {
      throw needsAiModel(`VideoEnhance/${name}`, 'VideoEnhance');
    }
  }
  const colourAndSharpen = colourAndSharpenFilters(enhance, true);
  const frameDoubling = flag(child(enhance, 'FrameEnhance').FrameDoubling, 'VideoEnhance/FrameEnhance/FrameDoubling');
  if (colourAndSharpen.length === 0 && !frameDoubling) throw invalid('VideoEnhance needs ColorEnhance, MsSharpen or FrameEnhance/FrameDoubling true.');
  return { colourAndSharpen, frameDoubling };
}

/** `minterpolate` to twice `rate` (ffprobe's `num/den`); an input without a known rate is InvalidArgument. */
export function frameDoublingFilter(rate: string | undefined): string {
  const [num, den] = (rate ?? '').split('/').map(Number);
  if (!(num > 0) || !(den > 0)) throw invalid('FrameEnhance/FrameDoubling needs the input\'s frame rate, which ffprobe does not report for it.');
  return `minterpolate=fps=${num * 2}/${den}`;
}

/** The encode: TranscodeTemplateId's template (resolved by the worker into Operation/Transcode, template-refs.ts) wins over VideoEnhance/Transcode. */
function encodeOf(operation: XmlObject, bucket?: string): TranscodeSpec {
  const spec = parseTranscode(isXmlObject(operation.Transcode) ? operation.Transcode : child(child(operation, 'VideoEnhance'), 'Transcode'), bucket);
  if (!spec.video) throw invalid('VideoEnhance needs a Transcode that keeps the video.');
  return spec;
}

/** Submit-time checks of a VideoEnhance Operation (a TemplateId's or TranscodeTemplateId's parameters are checked where they are read). */
export function checkVideoEnhanceOperation(operation: XmlObject, config: Config, where: string, bucket: string): void {
  try {
    readOutput(operation, SUBMIT_CHECK_JOB, false);
    // The job's bucket, as the run reads them (watermark-job.ts).
    const watermarks = parseWatermarks(operation.Watermark, bucket);
    if (operation.VideoEnhance === undefined) return;
    const enhance = parseEnhanceFilters(child(operation, 'VideoEnhance'));
    const needs = operation.TranscodeTemplateId === undefined ? transcodeNeeds(encodeOf(operation)) : { encoders: [], filters: [] };
    assertFfmpegHas(config.ffmpegPath, {
      encoders: needs.encoders,
      filters: [...needs.filters, ...enhance.colourAndSharpen.map((f) => f.split('=')[0]), ...(enhance.frameDoubling ? ['minterpolate'] : []), ...watermarkFilters(watermarks)],
    });
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export function createVideoEnhanceProcessor(spawner: Spawner): Processor {
  return { tag: 'VideoEnhance', slotsItsTool: true, run: (ctx) => runVideoEnhance(ctx, spawner) };
}

async function runVideoEnhance(ctx: ProcessorContext, spawner: Spawner): Promise<XmlObject> {
  const { job } = ctx;
  const spec = encodeOf(job.operation, job.bucket);
  const enhance = parseEnhanceFilters(child(job.operation, 'VideoEnhance'));
  const watermarks = parseWatermarks(job.operation.Watermark, job.bucket);
  const video = [...enhance.colourAndSharpen];
  if (enhance.frameDoubling) {
    const report = await withInputFile(ctx, (input) => probeInput(ctx, spawner, input));
    const stream = report.streams?.find((s) => s.codec_type === 'video');
    if (!stream) throw invalid(`The input ${job.inputObject} has no video to enhance.`);
    video.push(frameDoublingFilter(stream.avg_frame_rate !== '0/0' ? stream.avg_frame_rate : stream.r_frame_rate));
  }
  return runTranscodeSpec(ctx, spawner, spec, { video, watermarks });
}

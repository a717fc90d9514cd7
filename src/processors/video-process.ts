/**
 * Tag=VideoProcess (shared/ci-media-tags.md §11): colour enhancement and
 * sharpening on top of a Transcode, as ffmpeg filters.
 *
 * `VideoProcess/ColorEnhance{Enable, Contrast [0,100], Saturation [0,300]}` →
 * `eq=contrast=1+Contrast/100:saturation=1+Saturation/100` (an empty value,
 * CI's "auto", is 10 and 20); `MsSharpen{Enable, SharpenLevel [0,10]}` →
 * `unsharp=5:5:SharpenLevel×0.15` (empty: 5). The encode is the Operation's
 * inline `Transcode` (all of Transcode's elements). ColorEnhance/Correction
 * is accepted and ignored (CI does not say what it maps to). The encode is
 * the inline Transcode or TranscodeTemplateId's template (which wins);
 * Watermark[] and WatermarkTemplateId[] are drawn as Transcode draws them.
 *
 * Result: as Transcode's (MediaInfo of the output, MediaResult with Md5Info).
 */
import type { Config } from '../config.js';
import type { Spawner } from '../media/spawner.js';
import { isXmlObject, type XmlObject } from '../xml/tree.js';
import { asSubmitError, assertFfmpegHas, child, flag, invalid, number, readOutput, SUBMIT_CHECK_JOB } from './media-output.js';
import type { Processor } from './processor.js';
import { parseTranscode, runTranscodeSpec, transcodeNeeds, type TranscodeSpec } from './transcode.js';
import { parseWatermarks, watermarkFilters, type WatermarkSpec } from './watermark.js';

/**
 * The `eq` and `unsharp` filters of the ColorEnhance and MsSharpen in
 * `parent` (VideoProcess's, VideoEnhance's); may be empty. With
 * `onWhenPresent` a block that leaves Enable out is on, even an empty one
 * (VideoEnhance: CI's examples send no Enable, and Go sends an empty struct as
 * an empty element), else Enable must be true. Throws InvalidArgument naming the element.
 */
export function colourAndSharpenFilters(parent: XmlObject, onWhenPresent = false): string[] {
  const filters: string[] = [];
  const colour = child(parent, 'ColorEnhance');
  if (flag(colour.Enable, 'ColorEnhance/Enable', onWhenPresent && parent.ColorEnhance !== undefined)) {
    const contrast = number(colour.Contrast, 'ColorEnhance/Contrast', 0, 100) ?? 10;
    const saturation = number(colour.Saturation, 'ColorEnhance/Saturation', 0, 300) ?? 20;
    number(colour.Correction, 'ColorEnhance/Correction', 0, 1000);
    filters.push(`eq=contrast=${1 + contrast / 100}:saturation=${1 + saturation / 100}`);
  }
  const sharpen = child(parent, 'MsSharpen');
  if (flag(sharpen.Enable, 'MsSharpen/Enable', onWhenPresent && parent.MsSharpen !== undefined)) {
    const level = number(sharpen.SharpenLevel, 'MsSharpen/SharpenLevel', 0, 10) ?? 5;
    filters.push(`unsharp=5:5:${Math.round(level * 0.15 * 1000) / 1000}`);
  }
  return filters;
}

/** The `-vf` filters of a `<VideoProcess>`; throws InvalidArgument naming the element. */
export function videoProcessFilters(videoProcess: XmlObject): string[] {
  const filters = colourAndSharpenFilters(videoProcess);
  if (filters.length === 0) throw invalid('VideoProcess needs ColorEnhance or MsSharpen with Enable true.');
  return filters;
}

/** The parts of a VideoProcess Operation whose TranscodeTemplateId (if any) the worker has resolved into Transcode. */
function parts(operation: XmlObject, bucket?: string): { spec: TranscodeSpec; filters: string[]; watermarks: WatermarkSpec[] } {
  if (!isXmlObject(operation.VideoProcess)) throw invalid('Operation/VideoProcess is required.');
  const transcode = operation.Transcode;
  if (!isXmlObject(transcode) && transcode !== '') throw invalid('Operation/Transcode (or a TranscodeTemplateId) is required.');
  const spec = parseTranscode(isXmlObject(transcode) ? transcode : {}, bucket);
  if (!spec.video) throw invalid('VideoProcess needs a Transcode that keeps the video.');
  return { spec, filters: videoProcessFilters(operation.VideoProcess), watermarks: parseWatermarks(operation.Watermark, bucket) };
}

/** Submit-time checks of a VideoProcess Operation. */
export function checkVideoProcessOperation(operation: XmlObject, config: Config, where: string, bucket: string): void {
  try {
    readOutput(operation, SUBMIT_CHECK_JOB, false);
    // With a TranscodeTemplateId the encode is the template's, checked when it was stored.
    if (operation.TranscodeTemplateId !== undefined && operation.Transcode === undefined) {
      videoProcessFilters(isXmlObject(operation.VideoProcess) ? operation.VideoProcess : {});
      parseWatermarks(operation.Watermark, bucket);
      return;
    }
    const { spec, filters, watermarks } = parts(operation, bucket);
    const needs = transcodeNeeds(spec);
    assertFfmpegHas(config.ffmpegPath, { encoders: needs.encoders, filters: [...needs.filters, ...filters.map((f) => f.split('=')[0]), ...watermarkFilters(watermarks)] });
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export function createVideoProcessProcessor(spawner: Spawner): Processor {
  return {
    tag: 'VideoProcess',
    slotsItsTool: true,
    run: (ctx) => {
      const { spec, filters, watermarks } = parts(ctx.job.operation, ctx.job.bucket);
      return runTranscodeSpec(ctx, spawner, spec, { video: filters, watermarks });
    },
  };
}

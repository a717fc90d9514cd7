/**
 * Tag=Watermark (shared/ci-media-tags.md §0 #7, §2.7): the input with marks
 * burned in, and no Transcode: `Watermark[]` (≤ 3) or the Watermark templates
 * of `WatermarkTemplateId[]` (≤ 3, which win), drawn as Transcode draws them
 * (watermark.ts, template-refs.ts).
 *
 * The rest of the encode follows the input, as far as the output's container
 * lets it: the container is the Output object's extension's (mp4, mov, flv,
 * ts, avi, mkv, webm, gif; m3u8 for hls), else the input object's, else mp4;
 * the video and audio codecs are the input's when that container holds them
 * and the binary has their encoders, else the container's defaults (H.264 and
 * AAC for mp4); size, frame rate, sample rate and channels are kept; quality
 * is Transcode's default (Crf 25).
 *
 * Result: as Transcode's (MediaInfo of the output, MediaResult with Md5Info).
 */
import type { Config } from '../config.js';
import { ffmpegCapabilities, missingCapabilities } from '../media/ffmpeg-capabilities.js';
import type { Spawner } from '../media/spawner.js';
import type { XmlObject } from '../xml/tree.js';
import { asSubmitError, assertFfmpegHas, invalid, keyExtension, probeInput, readOutput, withInputFile, SUBMIT_CHECK_JOB } from './media-output.js';
import type { Processor, ProcessorContext } from './processor.js';
import { containerCodecs, formatOfExtension, parseTranscode, runTranscodeSpec, transcodeNeeds, type TranscodeSpec } from './transcode.js';
import { parseWatermarks, watermarkFilters } from './watermark.js';

/** ffprobe's codec names → Transcode's (lower case, as `containerCodecs` lists them). */
const CODECS: Readonly<Record<string, string>> = { h264: 'h.264', hevc: 'h.265', vp8: 'vp8', vp9: 'vp9', av1: 'av1', aac: 'aac', mp3: 'mp3', opus: 'opus', flac: 'flac', vorbis: 'vorbis' };

/**
 * The Container/Format of a Watermark job's output (and of SegmentVideoBody's,
 * named by `tag`): the Output object's extension's, else the input object's,
 * else mp4. An extension of a format without video (`.mp3`) is
 * InvalidArgument: there would be nothing to draw on.
 */
export function watermarkOutputFormat(outputObject: string, inputObject: string, tag = 'Watermark'): string {
  const fromOutput = formatOfExtension(keyExtension(outputObject));
  if (fromOutput && containerCodecs(fromOutput)!.video.length === 0) {
    throw invalid(`Output/Object ends in .${keyExtension(outputObject)}, a format without video: a ${tag} job writes video.`);
  }
  const fromInput = formatOfExtension(keyExtension(inputObject));
  return fromOutput ?? (fromInput && containerCodecs(fromInput)!.video.length > 0 ? fromInput : 'mp4');
}

/** The encode of a Watermark job: `format` with the input's codecs where it holds them and the binary can write them. */
export function watermarkTranscode(format: string, input: { video?: string; audio?: string }, config: Config): TranscodeSpec {
  const codecs = containerCodecs(format)!;
  const follow = (name: string | undefined, allowed: readonly string[]) => {
    const codec = name === undefined ? undefined : CODECS[name];
    return codec !== undefined && allowed.includes(codec) ? codec : '';
  };
  const spec = parseTranscode({ Container: { Format: format }, Video: { Codec: follow(input.video, codecs.video) }, Audio: { Codec: follow(input.audio, codecs.audio) } });
  if (!missingCapabilities(ffmpegCapabilities(config.ffmpegPath), { encoders: transcodeNeeds(spec).encoders })) return spec;
  return parseTranscode({ Container: { Format: format } });
}

/** Submit-time checks of a Watermark Operation (marks of WatermarkTemplateId are checked by template-refs.ts). */
export function checkWatermarkJobOperation(operation: XmlObject, config: Config, where: string, bucket: string): void {
  try {
    const target = readOutput(operation, SUBMIT_CHECK_JOB, false);
    // With the job's bucket, as the run reads them: a mark's image in another bucket is a 400 now, not a job that can only fail.
    const marks = parseWatermarks(operation.Watermark, bucket);
    if (marks.length === 0 && operation.WatermarkTemplateId === undefined) throw invalid('Watermark or WatermarkTemplateId is required.');
    const spec = parseTranscode({ Container: { Format: watermarkOutputFormat(target.object, '') } });
    assertFfmpegHas(config.ffmpegPath, { encoders: transcodeNeeds(spec).encoders, filters: watermarkFilters(marks) });
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export function createWatermarkJobProcessor(spawner: Spawner): Processor {
  return { tag: 'Watermark', slotsItsTool: true, run: (ctx) => runWatermarkJob(ctx, spawner) };
}

async function runWatermarkJob(ctx: ProcessorContext, spawner: Spawner): Promise<XmlObject> {
  const marks = parseWatermarks(ctx.job.operation.Watermark, ctx.job.bucket);
  if (marks.length === 0) throw invalid('Watermark or WatermarkTemplateId is required.');
  return runTranscodeSpec(ctx, spawner, await inputFollowingTranscode(ctx, spawner, 'Watermark', 'to draw a Watermark on'), { watermarks: marks });
}

/**
 * The encode of a job that follows its input (Watermark, SegmentVideoBody):
 * `watermarkOutputFormat` and `watermarkTranscode` on the codecs ffprobe finds
 * in the input. An input without video is InvalidArgument, `purpose` saying
 * what the video was for.
 */
export async function inputFollowingTranscode(ctx: ProcessorContext, spawner: Spawner, tag: string, purpose: string): Promise<TranscodeSpec> {
  const { job } = ctx;
  const format = watermarkOutputFormat(readOutput(job.operation, job, false).object, job.inputObject, tag);
  const streams = await withInputFile(ctx, async (input) => (await probeInput(ctx, spawner, input)).streams ?? []);
  const video = streams.find((s) => s.codec_type === 'video');
  if (!video) throw invalid(`The input ${job.inputObject} has no video ${purpose}.`);
  return watermarkTranscode(format, { video: video.codec_name, audio: streams.find((s) => s.codec_type === 'audio')?.codec_name }, ctx.config);
}

/**
 * Tag=Animation (shared/ci-media-tags.md §5): a stretch of the input as an
 * animated GIF or WebP.
 *
 * Honoured: Container/Format gif, hgif (a palette made for the clip:
 * palettegen + paletteuse) and webp; Video/Codec (must agree with the
 * format); Width/Height (one side keeps the aspect); Fps (playback rate,
 * over 60 clamped to 60; absent keeps the sampled frames' own times);
 * sampling by the doc's priority AnimateFramesPerSecond >
 * AnimateOnlyKeepKeyFrame > AnimateTimeIntervalOfFrame (one of them is
 * required, as the doc says); Quality (webp); TimeInterval Start/Duration.
 *
 * Result: `MediaInfo` of the output and `MediaResult` with the full key and
 * its Md5Info, as for Transcode.
 */
import path from 'node:path';
import type { Config } from '../config.js';
import { PermanentJobError } from '../engine/job-errors.js';
import { inputArgs } from '../media/ffmpeg.js';
import { withToolInput, type ToolInput } from '../media/input-policy.js';
import type { Spawner } from '../media/spawner.js';
import { isXmlObject, type XmlObject } from '../xml/tree.js';
import {
  assertFfmpegHas, asSubmitError, child, expandObject, flag, invalid, videoDuration, number, outputMediaInfo, probeInput, readOutput,
  safeKey, singleMediaResult, storeFiles, text, withInputFile, withWorkDir, SUBMIT_CHECK_JOB,
} from './media-output.js';
import type { Processor, ProcessorContext } from './processor.js';
import { inputReplacements, runTranscodeFfmpeg } from './transcode.js';

export interface AnimationSpec {
  readonly format: 'gif' | 'hgif' | 'webp';
  readonly width?: number;
  readonly height?: number;
  readonly fps?: number;
  /** How frames are sampled from the input. */
  readonly sampling: { readonly kind: 'fps'; readonly fps: number } | { readonly kind: 'keyframes' } | { readonly kind: 'interval'; readonly seconds: number };
  readonly quality?: number;
  readonly startSec?: number;
  readonly durationSec?: number;
}

/** Parses `<Animation>`; throws InvalidArgument naming the element. */
export function parseAnimation(animation: XmlObject): AnimationSpec {
  const formatText = text(child(animation, 'Container').Format);
  if (formatText === undefined) throw invalid('Animation/Container/Format is required (gif, hgif or webp).');
  const format = formatText.toLowerCase();
  if (format !== 'gif' && format !== 'hgif' && format !== 'webp') throw invalid(`Animation/Container/Format must be gif, hgif or webp, not ${JSON.stringify(formatText)}.`);
  const video = child(animation, 'Video');
  const codec = text(video.Codec)?.toLowerCase();
  if (codec !== undefined && codec !== (format === 'webp' ? 'webp' : 'gif')) throw invalid(`Animation/Video/Codec ${video.Codec as string} does not match Container/Format ${formatText}.`);
  const side = (name: string) => number(video[name], `Animation/Video/${name}`, 128, 4096, { integer: true });
  const fps = number(video.Fps, 'Animation/Video/Fps', 0, 1000, { openMin: true });
  const perSecond = number(video.AnimateFramesPerSecond, 'Animation/Video/AnimateFramesPerSecond', 0, 1000, { openMin: true });
  const keyFrames = flag(video.AnimateOnlyKeepKeyFrame, 'Animation/Video/AnimateOnlyKeepKeyFrame');
  const interval = number(video.AnimateTimeIntervalOfFrame, 'Animation/Video/AnimateTimeIntervalOfFrame', 0, 1e7, { openMin: true });
  const sampling: AnimationSpec['sampling'] | undefined = perSecond !== undefined ? { kind: 'fps', fps: perSecond }
    : keyFrames ? { kind: 'keyframes' }
      : interval !== undefined ? { kind: 'interval', seconds: interval } : undefined;
  if (!sampling) throw invalid('Animation/Video needs AnimateFramesPerSecond, AnimateOnlyKeepKeyFrame=true or AnimateTimeIntervalOfFrame.');
  const quality = number(video.Quality, 'Animation/Video/Quality', 1, 100, { integer: true });
  if (quality !== undefined && format !== 'webp') throw invalid('Animation/Video/Quality applies to webp only.');
  const time = child(animation, 'TimeInterval');
  return {
    format,
    width: side('Width'),
    height: side('Height'),
    fps: fps === undefined ? undefined : Math.min(60, fps),
    sampling,
    quality,
    startSec: number(time.Start, 'Animation/TimeInterval/Start', 0, 1e7),
    durationSec: number(time.Duration, 'Animation/TimeInterval/Duration', 0, 1e7, { openMin: true }),
  };
}

export function animationNeeds(spec: AnimationSpec): { encoders: string[]; filters: string[] } {
  return {
    encoders: [spec.format === 'webp' ? 'libwebp' : 'gif'],
    filters: ['fps', 'scale', 'settb', 'setpts', ...(spec.format === 'hgif' ? ['split', 'palettegen', 'paletteuse'] : [])],
  };
}

/** ffmpeg arguments for a parsed Animation, writing `output`. Pure. */
export function buildAnimationArgs(spec: AnimationSpec, io: { input: ToolInput; output: string }): string[] {
  // The stretch is cut from the input: an output -t would measure the frames' playback times (Fps) instead.
  const before = [
    ...(spec.startSec ? ['-ss', String(spec.startSec)] : []), ...(spec.durationSec ? ['-t', String(spec.durationSec)] : []),
    ...(spec.sampling.kind === 'keyframes' ? ['-skip_frame', 'nokey'] : []),
  ];
  const args = inputArgs(io.input, before);
  args.push('-map', '0:v:0');
  const filters: string[] = [];
  if (spec.sampling.kind === 'fps') filters.push(`fps=${spec.sampling.fps}`);
  if (spec.sampling.kind === 'interval') filters.push(`fps=1/${spec.sampling.seconds}`);
  // Fps is the playback rate of the sampled frames: frame n is shown at n/Fps, in microseconds. In the fps
  // filter's time base (a unit of 1/rate s) n/Fps is rounded to whole units and frames of equal times are dropped.
  if (spec.fps) filters.push('settb=AVTB', `setpts=N/(${spec.fps}*TB)`);
  if (spec.width || spec.height) filters.push(`scale=${spec.width ?? -2}:${spec.height ?? -2}:flags=lanczos`);
  if (spec.format === 'hgif') filters.push('split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=bayer');
  if (filters.length) args.push('-vf', filters.join(','));
  args.push('-vsync', 'vfr');
  if (spec.fps) args.push('-r', String(spec.fps));
  args.push('-an', '-sn', '-dn', '-loop', '0');
  if (spec.format === 'webp') {
    args.push('-c:v', 'libwebp', '-lossless', '0', '-q:v', String(spec.quality ?? 75), '-f', 'webp', io.output);
  } else {
    args.push('-c:v', 'gif', '-f', 'gif', io.output);
  }
  return args;
}

function animationOf(operation: XmlObject): AnimationSpec {
  const container = operation.Animation;
  if (!isXmlObject(container)) throw invalid('Operation/Animation (or a TemplateId) is required.');
  return parseAnimation(container);
}

/** Submit-time checks of an Animation Operation with an inline container. */
export function checkAnimationOperation(operation: XmlObject, config: Config, where: string): void {
  try {
    if (operation.Animation === undefined) return;
    const spec = animationOf(operation);
    readOutput(operation, SUBMIT_CHECK_JOB, false);
    assertFfmpegHas(config.ffmpegPath, animationNeeds(spec));
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export function createAnimationProcessor(spawner: Spawner): Processor {
  return { tag: 'Animation', slotsItsTool: true, run: (ctx) => runAnimation(ctx, spawner) };
}

async function runAnimation(ctx: ProcessorContext, spawner: Spawner): Promise<XmlObject> {
  const { job } = ctx;
  const spec = animationOf(job.operation);
  const target = readOutput(job.operation, job, false);
  const ext = spec.format === 'webp' ? 'webp' : 'gif';
  const key = safeKey(expandObject(target.object, { inputObject: job.inputObject, extension: ext, jobId: job.jobId }));
  ctx.signal.throwIfAborted();
  ctx.setProgress(0);
  return withInputFile(ctx, (input) => withWorkDir(ctx, async (dir) => {
    const output = path.join(dir, `out.${ext}`);
    // Probed before the tool slot is taken (see transcode.ts).
    const report = await probeInput(ctx, spawner, input);
    if (!report.streams?.some((s) => s.codec_type === 'video')) throw new PermanentJobError('InvalidMedia', `The input ${job.inputObject} has no video stream to animate.`);
    const duration = videoDuration(report);
    if (spec.startSec !== undefined && duration !== undefined && spec.startSec >= duration) throw invalid(`Animation/TimeInterval/Start ${spec.startSec} is past the end of the input (${duration.toFixed(3)} s).`);
    const length = Math.min(spec.durationSec ?? Infinity, (duration ?? Infinity) - (spec.startSec ?? 0));
    await withToolInput(input, (tool) => ctx.withToolSlot(() => runTranscodeFfmpeg(ctx, spawner, buildAnimationArgs(spec, { input: tool, output }), dir,
      Number.isFinite(length) && length > 0 ? length : undefined, inputReplacements(tool, job.inputObject, dir))));
    ctx.setProgress(92);
    const mediaInfo = await outputMediaInfo(ctx, spawner, output);
    const [stored] = await storeFiles(ctx, target.bucket, [{ key, file: output }]);
    ctx.setProgress(100);
    return { MediaInfo: mediaInfo, MediaResult: singleMediaResult(target, stored) };
  }));
}

/**
 * Tag=SmartCover (shared/ci-media-tags.md §8): Count cover images of the
 * input, each the most representative frame of its stretch of the video.
 *
 * CI picks covers with a model; here each of Count equal stretches is sampled
 * at 20 frames and ffmpeg's `thumbnail` filter keeps the frame closest to
 * that stretch's average (a heuristic, said so in the README). Sampling first
 * keeps `thumbnail`'s frame buffer at 20 frames whatever the input's length.
 * DeleteDuplicates drops near-identical frames first (`mpdecimate`).
 *
 * `SmartCover{Format jpg|png|webp (default jpg), Width, Height [128,4096]
 * (one side keeps the aspect), Count [1,10] (default 3), DeleteDuplicates}`;
 * `${Number}` (from 0) is required in Output/Object when Count > 1.
 * Result as Snapshot's: ObjectPrefix + relative ObjectNames, empty Md5Info.
 */
import path from 'node:path';
import type { Config } from '../config.js';
import { PermanentJobError } from '../engine/job-errors.js';
import { inputArgs } from '../media/ffmpeg.js';
import { withToolInput, type ToolInput } from '../media/input-policy.js';
import type { Spawner } from '../media/spawner.js';
import { isXmlObject, type XmlObject } from '../xml/tree.js';
import {
  EMPTY_MEDIA_INFO, asSubmitError, assertFfmpegHas, flag, hasNumber, invalid, videoDuration, number, probeInput, readOutput, safeKey,
  storeFiles, text, withInputFile, withWorkDir, SUBMIT_CHECK_JOB,
} from './media-output.js';
import type { Processor, ProcessorContext } from './processor.js';
import { numbered, outputFile, plan } from './snapshot.js';
import { inputReplacements, runTranscodeFfmpeg } from './transcode.js';

const ENCODERS: Readonly<Record<string, string>> = { jpg: 'mjpeg', png: 'png', webp: 'libwebp' };
/** Frames sampled from each stretch for `thumbnail` to choose from. */
const CANDIDATES = 20;

export interface SmartCoverSpec {
  readonly format: 'jpg' | 'png' | 'webp';
  readonly width?: number;
  readonly height?: number;
  readonly count: number;
  readonly deleteDuplicates: boolean;
}

/** Parses `<SmartCover>` (absent: every default); throws InvalidArgument naming the element. */
export function parseSmartCover(smartCover: XmlObject): SmartCoverSpec {
  const formatText = text(smartCover.Format) ?? 'jpg';
  const format = formatText.toLowerCase() === 'jpeg' ? 'jpg' : formatText.toLowerCase();
  if (format !== 'jpg' && format !== 'png' && format !== 'webp') throw invalid(`SmartCover/Format must be jpg, png or webp, not ${JSON.stringify(formatText)}.`);
  return {
    format,
    width: number(smartCover.Width, 'SmartCover/Width', 128, 4096, { integer: true }),
    height: number(smartCover.Height, 'SmartCover/Height', 128, 4096, { integer: true }),
    count: number(smartCover.Count, 'SmartCover/Count', 1, 10, { integer: true }) ?? 3,
    deleteDuplicates: flag(smartCover.DeleteDuplicates, 'SmartCover/DeleteDuplicates'),
  };
}

/** ffmpeg arguments writing `<dir>/<n>.<format>` covers for an input of `durationSec`. Pure. */
export function buildSmartCoverArgs(spec: SmartCoverSpec, io: { input: ToolInput; dir: string }, durationSec: number): string[] {
  const rate = Math.round((CANDIDATES * spec.count / Math.max(durationSec, 0.001)) * 1e6) / 1e6;
  const filters = [
    ...(spec.deleteDuplicates ? ['mpdecimate'] : []),
    `fps=${rate}`,
    `thumbnail=n=${CANDIDATES}`,
    ...(spec.width || spec.height ? [`scale=${spec.width ?? -2}:${spec.height ?? -2}`] : []),
  ];
  return [
    ...inputArgs(io.input), '-map', '0:v:0', '-vf', filters.join(','), '-vsync', 'vfr', '-frames:v', String(spec.count), '-an', '-sn', '-dn',
    '-c:v', ENCODERS[spec.format], ...(spec.format === 'jpg' ? ['-q:v', '2', '-pix_fmt', 'yuvj420p'] : []),
    '-f', 'image2', '-start_number', '0', path.join(io.dir, `%d.${spec.format}`),
  ];
}

function smartCoverOf(operation: XmlObject): SmartCoverSpec {
  return parseSmartCover(isXmlObject(operation.SmartCover) ? operation.SmartCover : {});
}

function readTarget(spec: SmartCoverSpec, operation: XmlObject, job: Parameters<typeof readOutput>[1]) {
  const target = readOutput(operation, job, true);
  if (spec.count > 1 && !hasNumber(target.object)) throw invalid('Output/Object needs ${Number} when SmartCover/Count is more than 1.');
  return target;
}

/** Submit-time checks of a SmartCover Operation. */
export function checkSmartCoverOperation(operation: XmlObject, config: Config, where: string): void {
  try {
    const spec = smartCoverOf(operation);
    readTarget(spec, operation, SUBMIT_CHECK_JOB);
    assertFfmpegHas(config.ffmpegPath, { encoders: [ENCODERS[spec.format]], filters: ['fps', 'thumbnail', 'scale', ...(spec.deleteDuplicates ? ['mpdecimate'] : [])] });
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export function createSmartCoverProcessor(spawner: Spawner): Processor {
  return { tag: 'SmartCover', slotsItsTool: true, run: (ctx) => runSmartCover(ctx, spawner) };
}

async function runSmartCover(ctx: ProcessorContext, spawner: Spawner): Promise<XmlObject> {
  const { job } = ctx;
  const spec = smartCoverOf(job.operation);
  const target = readTarget(spec, job.operation, job);
  ctx.signal.throwIfAborted();
  ctx.setProgress(0);
  return withInputFile(ctx, (input) => withWorkDir(ctx, async (dir) => {
    const report = await probeInput(ctx, spawner, input);
    if (!report.streams?.some((s) => s.codec_type === 'video')) throw new PermanentJobError('InvalidMedia', `The input ${job.inputObject} has no video stream to take covers from.`);
    const duration = videoDuration(report) ?? 1;
    await withToolInput(input, (tool) => ctx.withToolSlot(() => runTranscodeFfmpeg(ctx, spawner, buildSmartCoverArgs(spec, { input: tool, dir }, duration), dir, duration, inputReplacements(tool, job.inputObject, dir))));
    ctx.setProgress(90);
    const files = await numbered(dir, spec.format);
    if (files.length === 0) throw new PermanentJobError('InvalidMedia', `No frame of ${job.inputObject} could be read.`);
    const output = plan(target, files, job, spec.format);
    await storeFiles(ctx, target.bucket, output.names.map((n, i) => ({ key: safeKey(n.key), file: files[i] })));
    ctx.setProgress(100);
    return { MediaInfo: EMPTY_MEDIA_INFO, MediaResult: { OutputFile: outputFile(output) } };
  }));
}

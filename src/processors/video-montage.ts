/**
 * Tag=VideoMontage (shared/ci-media-tags.md §9): a highlight reel of the
 * input, `Duration` seconds long. CI picks highlights with a model; here a
 * first ffmpeg pass finds the scene changes (`select='gt(scene,0.3)'`), and the
 * reel is K clips of Duration/K seconds (one per 3 s of reel, at most 10),
 * each starting at the scene change nearest to K evenly spaced marks across
 * the input (the mark itself where there is none within half a stretch). A
 * heuristic, said so in the README.
 *
 * `VideoMontage{Duration (default: a fifth of the input, at least 3 s), Scene
 * (accepted, ignored), Container/Format mp4, flv, hls, ts, mkv, Video, Audio}`
 * as Transcode's blocks; AudioMix/AudioMixArray as Transcode's, over the reel's
 * audio (a fade-out at the reel's end). Result: as Transcode's.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { inputArgs } from '../media/ffmpeg.js';
import { withToolInput, type ToolInput } from '../media/input-policy.js';
import type { Spawner } from '../media/spawner.js';
import { isXmlObject, type XmlObject } from '../xml/tree.js';
import {
  asSubmitError, assertFfmpegHas, child, invalid, mediaDuration, number, probeInput, readOutput, text, withInputFile, withWorkDir, SUBMIT_CHECK_JOB,
} from './media-output.js';
import type { Processor, ProcessorContext } from './processor.js';
import { inputReplacements, parseTranscode, runTranscodeFfmpeg, runTranscodeSpec, transcodeNeeds, type TranscodeSpec } from './transcode.js';

const FORMATS = ['mp4', 'flv', 'hls', 'ts', 'mkv'];

export interface MontageSpec {
  readonly durationSec?: number;
  readonly transcode: TranscodeSpec;
}

/** Parses `<VideoMontage>` (AudioMix sources held to `bucket` when given); throws InvalidArgument naming the element. */
export function parseMontage(montage: XmlObject, bucket?: string): MontageSpec {
  const container = child(montage, 'Container');
  const format = text(container.Format)?.toLowerCase();
  if (format === undefined) throw invalid('VideoMontage/Container/Format is required.');
  if (!FORMATS.includes(format)) throw invalid(`VideoMontage/Container/Format must be one of ${FORMATS.join(', ')}.`);
  return {
    durationSec: number(montage.Duration, 'VideoMontage/Duration', 0, 1e6, { openMin: true }),
    transcode: parseTranscode({
      Container: container, Video: child(montage, 'Video'), Audio: child(montage, 'Audio'),
      ...(montage.AudioMix !== undefined ? { AudioMix: montage.AudioMix } : {}), ...(montage.AudioMixArray !== undefined ? { AudioMixArray: montage.AudioMixArray } : {}),
    }, bucket),
  };
}

/** The clips of the reel: [start, end) pairs in input seconds, in order, not overlapping. Pure. */
export function pickClips(inputSec: number, reelSec: number, sceneChanges: readonly number[]): Array<[number, number]> {
  const reel = Math.min(reelSec, inputSec);
  const count = Math.max(1, Math.min(10, Math.round(reel / 3)));
  const clip = reel / count;
  const stretch = inputSec / count;
  const clips: Array<[number, number]> = [];
  for (let i = 0; i < count; i++) {
    const mark = i * stretch + Math.max(0, (stretch - clip) / 2);
    const near = sceneChanges.filter((t) => Math.abs(t - mark) <= stretch / 2).sort((a, b) => Math.abs(a - mark) - Math.abs(b - mark))[0];
    const previousEnd = clips.length ? clips[clips.length - 1][1] : 0;
    const start = Math.min(Math.max(near ?? mark, previousEnd), Math.max(0, inputSec - clip));
    clips.push([round(start), round(Math.min(inputSec, start + clip))]);
  }
  return clips.filter(([a, b]) => b > a);
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

/** The filters that keep only `clips`, with timestamps made continuous. */
export function clipFilters(clips: ReadonlyArray<[number, number]>): { video: string[]; audio: string[] } {
  const keep = clips.map(([a, b]) => `between(t,${a},${b})`).join('+');
  return { video: [`select='${keep}'`, 'setpts=N/FRAME_RATE/TB'], audio: [`aselect='${keep}'`, 'asetpts=N/SR/TB'] };
}

/** The scene-detection pass: writes the times of scene changes to `<dir>/scenes.txt`. */
function sceneArgs(input: ToolInput, dir: string): string[] {
  return [...inputArgs(input), '-map', '0:v:0', '-vf', `scale=160:-2,select='gt(scene,0.3)',metadata=print:file=${path.join(dir, 'scenes.txt')}`, '-an', '-f', 'null', '-'];
}

/**
 * The times (s) of the input's scene changes, from one ffmpeg pass in a tool
 * slot (VideoMontage's clips, SplitVideoParts' shots). With `lengthSec` the
 * pass reports progress.
 */
export async function sceneChanges(ctx: ProcessorContext, spawner: Spawner, input: string, dir: string, lengthSec?: number): Promise<number[]> {
  await withToolInput(input, (tool) => ctx.withToolSlot(() => runTranscodeFfmpeg(ctx, spawner, sceneArgs(tool, dir), dir, lengthSec, inputReplacements(tool, ctx.job.inputObject, dir))));
  const printed = await fs.readFile(path.join(dir, 'scenes.txt'), 'utf8').catch(() => '');
  return [...printed.matchAll(/pts_time:([\d.]+)/g)].map((m) => Number(m[1]));
}

function montageOf(operation: XmlObject, bucket?: string): MontageSpec {
  return parseMontage(isXmlObject(operation.VideoMontage) ? operation.VideoMontage : {}, bucket);
}

/** Submit-time checks of a VideoMontage Operation. */
export function checkVideoMontageOperation(operation: XmlObject, config: Config, where: string): void {
  try {
    if (operation.VideoMontage === undefined) return;
    const spec = montageOf(operation);
    readOutput(operation, SUBMIT_CHECK_JOB, false);
    const needs = transcodeNeeds(spec.transcode);
    assertFfmpegHas(config.ffmpegPath, { encoders: needs.encoders, filters: [...needs.filters, 'select', 'aselect', 'setpts', 'asetpts', 'metadata'] });
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export function createVideoMontageProcessor(spawner: Spawner): Processor {
  return { tag: 'VideoMontage', slotsItsTool: true, run: (ctx) => runMontage(ctx, spawner) };
}

async function runMontage(ctx: ProcessorContext, spawner: Spawner): Promise<XmlObject> {
  const { job } = ctx;
  const spec = montageOf(job.operation, job.bucket);
  if (!spec.transcode.video) throw invalid('VideoMontage needs its video: Video/Remove cannot be true.');
  readOutput(job.operation, job, false);
  ctx.setProgress(0);
  const clips = await withInputFile(ctx, (input) => withWorkDir(ctx, async (dir) => {
    const report = await probeInput(ctx, spawner, input);
    if (!report.streams?.some((s) => s.codec_type === 'video')) throw invalid(`The input ${job.inputObject} has no video for a montage.`);
    const inputSec = mediaDuration(report) ?? 0;
    const changes = await sceneChanges(ctx, spawner, input, dir);
    return pickClips(inputSec, spec.durationSec ?? Math.max(3, inputSec / 5), changes);
  }));
  if (clips.length === 0) throw invalid(`The input ${job.inputObject} is too short for a montage.`);
  const { video, audio } = clipFilters(clips);
  // The reel's length bounds the output (-t), and so places an AudioMix fade-out at the reel's end.
  const reelSec = round(clips.reduce((sum, [a, b]) => sum + b - a, 0));
  return runTranscodeSpec(ctx, spawner, { ...spec.transcode, durationSec: spec.transcode.audioMix.length ? reelSec : spec.transcode.durationSec }, { video, audio });
}

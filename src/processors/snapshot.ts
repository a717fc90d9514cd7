/**
 * Tag=Snapshot (shared/ci-media-tags.md §4): frames of the input as images,
 * and optionally sprite sheets of them.
 *
 * Modes:
 * - `Interval` with TimeInterval T: frames at Start, Start+T, … (Count at
 *   most, as far as the input goes; with IsCheckCount, an input too short for
 *   Count frames falls back to Average); without TimeInterval: Count
 *   consecutive frames from Start;
 * - `Average`: Count frames evenly spread from Start to the end;
 * - `KeyFrame`: the first Count key frames from Start.
 * Each frame is the first whose time is at or after its mark (ffmpeg's
 * `select='gte(t,selected_n*T)'`, so picks never drift).
 *
 * IsCheckBlack (CI: "skip leading black frames; only with Start=0"): a first
 * ffmpeg pass, in the same tool slot, finds the input's first frame that is
 * not black, and the frames are then taken as if Start were its time (Average
 * spreads them from there to the end, KeyFrame takes the key frames from
 * there). A frame is black when at least BlackLevel % [30,100] of its pixels
 * have a luma below PixelBlackThreshold [0,255] (ffmpeg's `blackframe`; CI
 * publishes no defaults, so ffmpeg's: 98 and 32). The pass stops at that
 * frame, so it decodes the leading black only (all of an input black
 * throughout), and runs only with IsCheckBlack. With Start above 0
 * the check is ignored (CI's "only with Start=0"); an input black throughout
 * has nothing to skip to and gets its frames from 0 as without the check (a
 * very dark video is still a video, not an error).
 *
 * Image format: `CIParam` `imageMogr2/format/jpg|png|webp`, else the Output
 * object's extension when it is one of those, else jpg (seed 002 writes
 * JPEGs under `.mp4` names, as CI does). Width/Height scale each frame (one
 * side keeps the aspect). Sprites (`SnapshotOutMode` OnlySprite or
 * SnapshotAndSprite, `SpriteSnapshotConfig`): Columns×Lines cells of
 * CellWidth×CellHeight (default: the frame's size), Margin, Padding, Color;
 * ScaleMethod DirectScale stretches, MaxWHScaleAndPad and MaxWHScale fit and pad.
 * Other CIParam rules are refused.
 *
 * Result (CI's callback sample): an empty `MediaInfo`, `MediaResult/OutputFile`
 * with `ObjectPrefix` (the key before `${Number}`), the names after it from
 * 0 (`0.jpg`, `1.jpg`…), an empty `Md5Info`, and `SpriteOutputFile` likewise.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { PermanentJobError } from '../engine/job-errors.js';
import { inputArgs } from '../media/ffmpeg.js';
import { withToolInput, type ToolInput } from '../media/input-policy.js';
import type { Spawner } from '../media/spawner.js';
import { isXmlObject, type XmlObject, type XmlValue } from '../xml/tree.js';
import {
  assertFfmpegHas, asSubmitError, child, EMPTY_MEDIA_INFO, goFlag, hasNumber, invalid, keyExtension, number, numberedKey, type OutputTarget, readOutput, probeInput, safeKey, storeFiles, SUBMIT_CHECK_JOB, videoDuration, withInputFile, withWorkDir, expandObject, text,
} from './media-output.js';
import type { Processor, ProcessorContext } from './processor.js';
import { inputReplacements, runTranscodeFfmpeg } from './transcode.js';

type ImageFormat = 'jpg' | 'png' | 'webp';
const IMAGE_ENCODERS: Readonly<Record<ImageFormat, string>> = { jpg: 'mjpeg', png: 'png', webp: 'libwebp' };

export interface SpriteSpec {
  readonly columns: number;
  readonly lines: number;
  readonly cellWidth?: number;
  readonly cellHeight?: number;
  readonly padding: number;
  readonly margin: number;
  readonly color: string;
  readonly fit: boolean;
}

/** IsCheckBlack's test of a frame: ffmpeg `blackframe`'s amount (percent of pixels) and threshold (luma). */
export interface BlackCheck {
  readonly blackLevel: number;
  readonly pixelThreshold: number;
}

/** ffmpeg `blackframe`'s defaults, since CI documents none. */
const DEFAULT_BLACK_CHECK: BlackCheck = { blackLevel: 98, pixelThreshold: 32 };

export interface SnapshotSpec {
  readonly mode: 'interval' | 'average' | 'keyframe';
  readonly startSec: number;
  readonly intervalSec?: number;
  readonly count: number;
  readonly width?: number;
  readonly height?: number;
  /** From CIParam; undefined: decided by the Output object's extension. */
  readonly format?: ImageFormat;
  readonly checkCount: boolean;
  readonly snapshots: boolean;
  readonly sprite?: SpriteSpec;
  /** IsCheckBlack with Start 0: skip the input's leading black frames. */
  readonly skipBlack?: BlackCheck;
}

function side(value: XmlValue | undefined, where: string, min: number): number | undefined {
  return number(value, where, min, 4096, { integer: true });
}

/** Parses `<Snapshot>`; throws InvalidArgument naming the element. */
export function parseSnapshot(snapshot: XmlObject): SnapshotSpec {
  const modeText = text(snapshot.Mode) ?? 'Interval';
  const mode = ({ interval: 'interval', average: 'average', keyframe: 'keyframe' } as const)[modeText.toLowerCase() as 'interval'];
  if (!mode) throw invalid(`Snapshot/Mode must be Interval, Average or KeyFrame, not ${JSON.stringify(modeText)}.`);
  const count = number(snapshot.Count, 'Snapshot/Count', 1, 10000, { integer: true });
  if (count === undefined) throw invalid('Snapshot/Count is required.');
  let format: ImageFormat | undefined;
  const ciParam = text(snapshot.CIParam);
  if (ciParam !== undefined) {
    const match = /^imageMogr2\/format\/(jpg|jpeg|png|webp)$/i.exec(ciParam);
    if (!match) throw invalid('Snapshot/CIParam: only imageMogr2/format/jpg, png or webp is supported here.');
    format = match[1].toLowerCase() === 'jpeg' ? 'jpg' : (match[1].toLowerCase() as ImageFormat);
  }
  const outModeText = text(snapshot.SnapshotOutMode) ?? 'OnlySnapshot';
  const outMode = ['OnlySnapshot', 'OnlySprite', 'SnapshotAndSprite'].find((m) => m.toLowerCase() === outModeText.toLowerCase());
  if (!outMode) throw invalid('Snapshot/SnapshotOutMode must be OnlySnapshot, OnlySprite or SnapshotAndSprite.');
  let sprite: SpriteSpec | undefined;
  if (outMode !== 'OnlySnapshot') {
    const config = child(snapshot, 'SpriteSnapshotConfig');
    const columns = number(config.Columns, 'SpriteSnapshotConfig/Columns', 1, 10000, { integer: true });
    const lines = number(config.Lines, 'SpriteSnapshotConfig/Lines', 1, 10000, { integer: true });
    if (columns === undefined || lines === undefined) throw invalid('SpriteSnapshotConfig/Columns and Lines are required for sprites.');
    const color = text(config.Color) ?? 'black';
    if (!/^(#|0x)?[0-9a-z]{1,32}$/i.test(color)) throw invalid('SpriteSnapshotConfig/Color must be a colour name such as AliceBlue or 0xRRGGBB.');
    const scaleMethod = (text(config.ScaleMethod) ?? 'DirectScale').toLowerCase();
    if (!['directscale', 'maxwhscaleandpad', 'maxwhscale'].includes(scaleMethod)) throw invalid('SpriteSnapshotConfig/ScaleMethod must be DirectScale, MaxWHScaleAndPad or MaxWHScale.');
    sprite = {
      columns,
      lines,
      cellWidth: side(config.CellWidth, 'SpriteSnapshotConfig/CellWidth', 8),
      cellHeight: side(config.CellHeight, 'SpriteSnapshotConfig/CellHeight', 8),
      padding: number(config.Padding, 'SpriteSnapshotConfig/Padding', 0, 1024, { integer: true }) ?? 0,
      margin: number(config.Margin, 'SpriteSnapshotConfig/Margin', 0, 1024, { integer: true }) ?? 0,
      color: color.replace(/^#/, '0x'),
      fit: scaleMethod !== 'directscale',
    };
  }
  const checkBlack = goFlag(snapshot.IsCheckBlack, 'Snapshot/IsCheckBlack');
  // Checked even without IsCheckBlack: a template keeps them, and a later IsCheckBlack would run with them.
  const black: BlackCheck = {
    blackLevel: number(snapshot.BlackLevel, 'Snapshot/BlackLevel', 30, 100, { integer: true }) ?? DEFAULT_BLACK_CHECK.blackLevel,
    pixelThreshold: number(snapshot.PixelBlackThreshold, 'Snapshot/PixelBlackThreshold', 0, 255, { integer: true }) ?? DEFAULT_BLACK_CHECK.pixelThreshold,
  };
  const startSec = number(snapshot.Start, 'Snapshot/Start', 0, 1e7) ?? 0;
  return {
    mode,
    startSec,
    intervalSec: number(snapshot.TimeInterval, 'Snapshot/TimeInterval', 0, 3600, { openMin: true }),
    count,
    width: side(snapshot.Width, 'Snapshot/Width', 128),
    height: side(snapshot.Height, 'Snapshot/Height', 128),
    format,
    checkCount: goFlag(snapshot.IsCheckCount, 'Snapshot/IsCheckCount'),
    snapshots: outMode !== 'OnlySprite',
    sprite,
    // CI applies the check only from Start 0: a Start chosen by the caller is kept.
    skipBlack: checkBlack && startSec === 0 ? black : undefined,
  };
}

/** The image format: CIParam's, else the Output object's extension if it names one, else jpg. */
export function snapshotFormat(spec: SnapshotSpec, objectTemplate: string): ImageFormat {
  if (spec.format) return spec.format;
  const ext = keyExtension(objectTemplate);
  return ext === 'png' || ext === 'webp' ? ext : 'jpg';
}

/** The seconds between picks, or undefined for consecutive frames (Interval without TimeInterval, KeyFrame). */
export function pickInterval(spec: SnapshotSpec, durationSec: number | undefined): number | undefined {
  if (spec.mode === 'keyframe') return undefined;
  const remaining = durationSec === undefined ? undefined : durationSec - spec.startSec;
  const average = remaining !== undefined && remaining > 0 ? remaining / spec.count : undefined;
  if (spec.mode === 'average') return average;
  if (spec.intervalSec === undefined) return undefined;
  // IsCheckCount: an input too short for Count frames at this interval is sampled evenly instead.
  if (spec.checkCount && remaining !== undefined && average !== undefined && spec.startSec + (spec.count - 1) * spec.intervalSec >= (durationSec ?? Infinity)) return average;
  return spec.intervalSec;
}

/** ffmpeg arguments writing the frames as `<dir>/<n>.<format>`, n from 0. Pure. */
export function buildSnapshotArgs(spec: SnapshotSpec, io: { input: ToolInput; dir: string; format: ImageFormat }, intervalSec: number | undefined): string[] {
  const before = [...(spec.startSec ? ['-ss', String(spec.startSec)] : []), ...(spec.mode === 'keyframe' ? ['-skip_frame', 'nokey'] : [])];
  const args = inputArgs(io.input, before);
  const filters: string[] = [];
  if (intervalSec !== undefined) filters.push(`select='gte(t,selected_n*${round(intervalSec)})'`);
  if (spec.width || spec.height) filters.push(`scale=${spec.width ?? -2}:${spec.height ?? -2}`);
  args.push('-map', '0:v:0');
  if (filters.length) args.push('-vf', filters.join(','));
  args.push('-vsync', 'vfr', '-frames:v', String(spec.count), '-an', '-sn', '-dn', '-c:v', IMAGE_ENCODERS[io.format]);
  if (io.format === 'jpg') args.push('-q:v', '2', '-pix_fmt', 'yuvj420p');
  args.push('-f', 'image2', '-start_number', '0', path.join(io.dir, `%d.${io.format}`));
  return args;
}

/**
 * ffmpeg arguments of IsCheckBlack's pass: `metadata=print` writes to `file`
 * the first frame that is not black, timed in microseconds (`settb=AVTB`,
 * exact where a printed pts_time would be rounded to 6 digits), and nothing
 * if every frame is black. `blackframe` with amount 0 tags every frame with its
 * black percentage, so that the frames below BlackLevel can be selected; the
 * first one ends the run (`-frames:v 1`). Pure.
 */
export function buildBlackEndArgs(check: BlackCheck, input: ToolInput, file: string): string[] {
  const filters = [
    `blackframe=amount=0:threshold=${check.pixelThreshold}`,
    `metadata=mode=select:key=lavfi.blackframe.pblack:value=${check.blackLevel}:function=less`,
    'settb=AVTB',
    `metadata=print:file=${file}`,
  ];
  return [...inputArgs(input), '-map', '0:v:0', '-vf', filters.join(','), '-frames:v', '1', '-an', '-sn', '-dn', '-f', 'null', '-'];
}

/** The time (s) where the leading black ends, from the pass's printout; undefined when no frame was other than black. Pure. */
export function blackEnd(printed: string): number | undefined {
  const pts = /pts:(-?\d+)/.exec(printed)?.[1];
  // A first frame timed before 0 (an edit list) starts the video: nothing to skip.
  return pts === undefined ? undefined : Math.max(0, Number(pts) / 1e6);
}

/** ffmpeg arguments tiling `<framesDir>/<n>.<format>` into sheets `<spriteDir>/<n>.<format>`. Pure. */
export function buildSpriteArgs(sprite: SpriteSpec, io: { framesDir: string; spriteDir: string; format: ImageFormat }): string[] {
  const filters: string[] = [];
  if (sprite.cellWidth || sprite.cellHeight) {
    const w = sprite.cellWidth ?? -2;
    const h = sprite.cellHeight ?? -2;
    if (sprite.fit && sprite.cellWidth && sprite.cellHeight) {
      filters.push(`scale=${w}:${h}:force_original_aspect_ratio=decrease`, `pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2:color=${sprite.color}`);
    } else {
      filters.push(`scale=${w}:${h}`);
    }
  }
  filters.push(`tile=${sprite.columns}x${sprite.lines}:margin=${sprite.margin}:padding=${sprite.padding}:color=${sprite.color}`);
  // Our own frames, not user input: the image2 demuxer reads the numbered files of the work folder.
  return [
    '-f', 'image2', '-framerate', '1', '-start_number', '0', '-i', path.join(io.framesDir, `%d.${io.format}`),
    '-vf', filters.join(','), '-vsync', 'vfr', '-c:v', IMAGE_ENCODERS[io.format], ...(io.format === 'jpg' ? ['-q:v', '2', '-pix_fmt', 'yuvj420p'] : []),
    '-f', 'image2', '-start_number', '0', path.join(io.spriteDir, `%d.${io.format}`),
  ];
}

function round(n: number): string {
  return String(Math.round(n * 1e6) / 1e6);
}

function snapshotOf(operation: XmlObject): SnapshotSpec {
  const container = operation.Snapshot;
  if (!isXmlObject(container)) throw invalid('Operation/Snapshot (or a TemplateId) is required.');
  return parseSnapshot(container);
}

/** Which outputs a spec writes, checked against the Output: `${Number}` where several objects may come out. */
function readTargets(spec: SnapshotSpec, operation: XmlObject, job: Parameters<typeof readOutput>[1]): { frames?: OutputTarget; sprites?: OutputTarget } {
  const frames = spec.snapshots ? readOutput(operation, job, true) : undefined;
  if (frames && spec.count > 1 && !hasNumber(frames.object)) throw invalid('Output/Object needs ${Number} when Snapshot/Count is more than 1.');
  const sprites = spec.sprite ? readOutput(operation, job, true, 'SpriteObject') : undefined;
  if (sprites && spec.count > spec.sprite!.columns * spec.sprite!.lines && !hasNumber(sprites.object)) {
    throw invalid('Output/SpriteObject needs ${Number} when the frames fill more than one sheet.');
  }
  return { frames, sprites };
}

/** Submit-time checks of a Snapshot Operation with an inline container. */
export function checkSnapshotOperation(operation: XmlObject, config: Config, where: string): void {
  try {
    if (operation.Snapshot === undefined) return;
    const spec = snapshotOf(operation);
    readTargets(spec, operation, SUBMIT_CHECK_JOB);
    const format = snapshotFormat(spec, typeof (operation.Output as XmlObject)?.Object === 'string' ? ((operation.Output as XmlObject).Object as string) : '');
    assertFfmpegHas(config.ffmpegPath, {
      encoders: [IMAGE_ENCODERS[format]],
      filters: ['select', 'scale', ...(spec.sprite ? ['tile', 'pad'] : []), ...(spec.skipBlack ? ['blackframe', 'metadata', 'settb'] : [])],
    });
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export function createSnapshotProcessor(spawner: Spawner): Processor {
  return { tag: 'Snapshot', slotsItsTool: true, run: (ctx) => runSnapshot(ctx, spawner) };
}

async function runSnapshot(ctx: ProcessorContext, spawner: Spawner): Promise<XmlObject> {
  const { job } = ctx;
  const spec = snapshotOf(job.operation);
  const targets = readTargets(spec, job.operation, job);
  const format = snapshotFormat(spec, targets.frames?.object ?? targets.sprites!.object);
  ctx.signal.throwIfAborted();
  ctx.setProgress(0);
  return withInputFile(ctx, (input) => withWorkDir(ctx, async (dir) => {
    // Without sprites the frames go in the work folder itself: two folders fewer to make and remove.
    const framesDir = spec.sprite ? path.join(dir, 'frames') : dir;
    const spriteDir = path.join(dir, 'sprites');
    if (spec.sprite) await Promise.all([fs.mkdir(framesDir), fs.mkdir(spriteDir)]);
    // The input is probed (before the tool slot is taken) only when the picks depend on its
    // length: Average, and Interval with IsCheckCount. Otherwise ffmpeg alone says what is
    // wrong with it; the probe had been a third of a small Snapshot job's cost.
    let duration: number | undefined;
    if (spec.mode === 'average' || (spec.mode === 'interval' && spec.checkCount && spec.intervalSec !== undefined)) {
      const report = await probeInput(ctx, spawner, input);
      if (!report.streams?.some((s) => s.codec_type === 'video')) throw new PermanentJobError('InvalidMedia', `The input ${job.inputObject} has no video stream to take snapshots from.`);
      // Frames are spread over the video, not over an audio track that runs longer.
      duration = videoDuration(report);
      if (duration !== undefined && spec.startSec >= duration) throw invalid(`Snapshot/Start ${spec.startSec} is past the end of the input (${duration.toFixed(3)} s).`);
    }
    await withToolInput(input, (tool) => ctx.withToolSlot(async () => {
      const replacements = inputReplacements(tool, job.inputObject, dir);
      let picks = spec;
      if (spec.skipBlack) {
        const printout = path.join(dir, 'black.txt');
        await runTranscodeFfmpeg(ctx, spawner, buildBlackEndArgs(spec.skipBlack, tool, printout), dir, undefined, replacements);
        const printed = await fs.readFile(printout, 'utf8').catch(() => '');
        // Removed now: the work folder is then empty once the frames are stored, and a plain rmdir removes it.
        await fs.rm(printout, { force: true });
        // Black throughout: the frames from 0, as without the check (see the module comment).
        picks = { ...spec, startSec: blackEnd(printed) ?? 0 };
      }
      await runTranscodeFfmpeg(ctx, spawner, buildSnapshotArgs(picks, { input: tool, dir: framesDir, format }, pickInterval(picks, duration)), dir, undefined, replacements);
      if (spec.sprite) await runTranscodeFfmpeg(ctx, spawner, buildSpriteArgs(spec.sprite, { framesDir, spriteDir, format }), dir, undefined, replacements);
    }));
    ctx.setProgress(90);
    const frameFiles = await numbered(framesDir, format);
    if (frameFiles.length === 0) throw invalid(`No frame of ${job.inputObject} could be taken: Snapshot/Start ${spec.startSec} is past its end.`);
    const outputs: Array<{ target: OutputTarget; names: ReturnType<typeof numberedKey>[]; files: string[] }> = [];
    if (targets.frames) outputs.push(plan(targets.frames, frameFiles, job, format));
    if (targets.sprites) outputs.push(plan(targets.sprites, await numbered(spriteDir, format), job, format));
    // Every key is known before the first write; then all are written, or (on a cancel) none is left.
    const all = outputs.flatMap((o) => o.names.map((n, i) => ({ key: safeKey(n.key), file: o.files[i], bucket: o.target.bucket })));
    const byBucket = new Map<string, Array<{ key: string; file: string }>>();
    for (const f of all) byBucket.set(f.bucket, [...(byBucket.get(f.bucket) ?? []), f]);
    for (const [bucket, files] of byBucket) await storeFiles(ctx, bucket, files);
    ctx.setProgress(100);
    const frames = targets.frames ? outputFile(outputs[0]) : { Bucket: targets.sprites!.bucket, Md5Info: '', ObjectPrefix: '', Region: targets.sprites!.region };
    if (targets.sprites) frames.SpriteOutputFile = outputFile(outputs[outputs.length - 1]);
    return { MediaInfo: EMPTY_MEDIA_INFO, MediaResult: { OutputFile: frames } };
  }));
}

/** The numbered images `<dir>/<n>.<format>` ffmpeg wrote, in number order. */
export async function numbered(dir: string, format: string): Promise<string[]> {
  const names = (await fs.readdir(dir)).filter((f) => f.endsWith(`.${format}`)).map((f) => Number(f.slice(0, -format.length - 1))).filter(Number.isInteger);
  return names.sort((a, b) => a - b).map((n) => path.join(dir, `${n}.${format}`));
}

/** The keys of `files` under a `${Number}` Output template, from 0. */
export function plan(target: OutputTarget, files: string[], job: ProcessorContext['job'], format: string) {
  const expanded = expandObject(target.object, { inputObject: job.inputObject, extension: format, jobId: job.jobId });
  return { target, names: files.map((_, i) => numberedKey(expanded, i)), files };
}

/** CI's Snapshot OutputFile: prefix, names relative to it, an empty Md5Info; one name is a single element. */
export function outputFile(output: { target: OutputTarget; names: ReturnType<typeof numberedKey>[] }): XmlObject {
  const names = output.names.map((n) => n.name);
  return {
    Bucket: output.target.bucket,
    Md5Info: '',
    ObjectName: names.length === 1 ? names[0] : names,
    ObjectPrefix: output.names[0]?.prefix ?? '',
    Region: output.target.region,
  };
}

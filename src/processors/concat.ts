/**
 * Tag=Concat (shared/ci-media-tags.md §6): objects of the job's bucket joined
 * one after another into one output.
 *
 * The pieces: every `ConcatTemplate/ConcatFragment` (Url: an object URL of the
 * job's bucket, `https://<bucket>.cos.<region>.myqcloud.com/<key>`, or a bare
 * key), ordered by FragmentIndex (then as written), each trimmed by its
 * StartTime/EndTime; the job's `Input`, when the request has one, goes in at
 * `Index` (default 0), or by each fragment's `Mode` (Start: before the input,
 * End: after it) when the fragments carry one.
 *
 * The join is ffmpeg's concat filter over one input per piece, each read as
 * `media/input-policy.ts` allows (the concat demuxer is not used: it would
 * open the pieces itself, outside that policy). Every piece is scaled and
 * padded to the first piece's size as displayed (or Video/Width×Height), its frame rate
 * and audio format made the same, and a piece without audio gets silence, so
 * the filter can join them. Container/Video/Audio are Transcode's (§2), with
 * Concat's formats mp4, flv, ts, mp3, aac (hls not yet).
 * DirectConcat: when no piece is trimmed and every piece has the same streams
 * (H.264 or H.265 video of one size and pixel format, not rotated, AAC or MP3
 * audio of one rate and channel count) and the Container is mp4, flv or ts, the streams
 * are copied, not re-encoded (Video/Audio parameters are then not applied):
 * each piece is remuxed to MPEG-TS by its own run, read as the input policy
 * allows, and those files of ours are joined by the concat protocol. Other
 * pieces are joined as without it.
 * Accepted, ignored: SceneChangeInfo.
 * AudioMix/AudioMixArray (Transcode's, ≤ 2 sources of the bucket): mixed into
 * the joined audio, or replacing it, as Transcode mixes them.
 *
 * Result: `MediaInfo` of the output, `MediaResult` with its full key and Md5Info.
 */
import path from 'node:path';
import type { Config } from '../config.js';
import { withToolInputs, type ToolInput } from '../media/input-policy.js';
import { inputArgs } from '../media/ffmpeg.js';
import type { FfprobeReport } from '../media/ffprobe.js';
import { clockwiseRotation } from '../media/media-info.js';
import type { Spawner } from '../media/spawner.js';
import { isXmlObject, type XmlObject, type XmlValue } from '../xml/tree.js';

/** Kept under its first name for callers that know it. */
export { objectKeyOfUrl as fragmentKey } from './media-output.js';
import {
  asSubmitError, assertFfmpegHas, child, displayedSize, flag, objectKeyOfUrl, withLocalFiles, expandObject, invalid, mediaDuration, number, outputMediaInfo, probeInput, readOutput, safeKey,
  singleMediaResult, storeFiles, text, withWorkDir, SUBMIT_CHECK_JOB,
} from './media-output.js';
import type { Processor, ProcessorContext } from './processor.js';
import { audioMixGraph, encodeArgs, inputReplacements, parseTranscode, runTranscodeFfmpeg, transcodeNeeds, type TranscodeSpec } from './transcode.js';

const CONCAT_FORMATS = ['mp4', 'flv', 'ts', 'mp3', 'aac'];

export interface ConcatPiece {
  /** Object key in the job's bucket. */
  readonly key: string;
  readonly startSec?: number;
  readonly endSec?: number;
}

export interface ConcatSpec {
  readonly fragments: readonly ConcatPiece[];
  /** Where the job's Input goes among the fragments (a count of fragments before it). */
  readonly inputAt: number;
  readonly transcode: TranscodeSpec;
  /** DirectConcat: copy the streams when the pieces allow it (`canCopy`). */
  readonly direct: boolean;
}

function asList(value: XmlValue | undefined): XmlObject[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map((v) => (isXmlObject(v) ? v : {}));
}

/** Parses `<ConcatTemplate>` against the job's bucket (undefined: any, at submit); throws InvalidArgument naming the element. */
export function parseConcat(concat: XmlObject, bucket: string | undefined): ConcatSpec {
  const raw = asList(concat.ConcatFragment);
  if (raw.length === 0) throw invalid('ConcatTemplate/ConcatFragment is required.');
  const fragments = raw.map((f, i) => {
    const url = text(f.Url);
    if (url === undefined) throw invalid('ConcatTemplate/ConcatFragment/Url is required.');
    const startSec = number(f.StartTime, 'ConcatFragment/StartTime', 0, 1e7);
    const endSec = number(f.EndTime, 'ConcatFragment/EndTime', 0, 1e7, { openMin: true });
    if (startSec !== undefined && endSec !== undefined && endSec <= startSec) throw invalid('ConcatFragment/EndTime must be after StartTime.');
    const mode = text(f.Mode)?.toLowerCase();
    if (mode !== undefined && mode !== 'start' && mode !== 'end') throw invalid('ConcatFragment/Mode must be Start or End.');
    return {
      piece: { key: objectKeyOfUrl(url, bucket, 'ConcatFragment/Url'), startSec, endSec },
      order: number(f.FragmentIndex, 'ConcatFragment/FragmentIndex', 0, 1e6, { integer: true }) ?? i,
      position: i,
      mode,
    };
  }).sort((a, b) => a.order - b.order || a.position - b.position);
  const index = number(concat.Index, 'ConcatTemplate/Index', 0, fragments.length, { integer: true });
  const inputAt = index ?? (fragments.some((f) => f.mode) ? fragments.filter((f) => f.mode === 'start').length : 0);
  const ordered = index === undefined && fragments.some((f) => f.mode)
    ? [...fragments.filter((f) => f.mode === 'start'), ...fragments.filter((f) => f.mode !== 'start')] : fragments;
  const container = child(concat, 'Container');
  const format = text(container.Format)?.toLowerCase();
  if (format === undefined) throw invalid('ConcatTemplate/Container/Format is required.');
  if (!CONCAT_FORMATS.includes(format)) throw invalid(`ConcatTemplate/Container/Format must be one of ${CONCAT_FORMATS.join(', ')}.`);
  const transcode = parseTranscode({
    Container: container, Video: child(concat, 'Video'), Audio: child(concat, 'Audio'),
    ...(concat.AudioMix !== undefined ? { AudioMix: concat.AudioMix } : {}), ...(concat.AudioMixArray !== undefined ? { AudioMixArray: concat.AudioMixArray } : {}),
  }, bucket);
  return { fragments: ordered.map((f) => f.piece), inputAt, transcode, direct: flag(concat.DirectConcat, 'ConcatTemplate/DirectConcat') };
}

/** What the join needs to know of each piece. */
export interface PieceInfo {
  readonly width?: number;
  readonly height?: number;
  readonly fps?: number;
  readonly hasVideo: boolean;
  readonly hasAudio: boolean;
  /** Seconds of the piece after its trim. */
  readonly durationSec: number;
  /** The stream parameters a stream copy needs alike in every piece, or undefined when its codecs cannot be copied through MPEG-TS. */
  readonly copyKey?: string;
}

export function pieceInfo(report: FfprobeReport, piece: ConcatPiece): PieceInfo {
  const v = report.streams?.find((s) => s.codec_type === 'video');
  const [fn, fd] = (v?.avg_frame_rate ?? '').split('/').map(Number);
  const full = mediaDuration(report) ?? 0;
  return {
    ...displayedSize(v),
    fps: fd ? fn / fd : undefined,
    hasVideo: v !== undefined,
    hasAudio: report.streams?.some((s) => s.codec_type === 'audio') ?? false,
    durationSec: Math.max(0, Math.min(piece.endSec ?? full, full) - (piece.startSec ?? 0)),
    copyKey: copyKey(report),
  };
}

/**
 * `h264 160x120 yuv420p | aac 44100 2` for a piece whose first video and audio
 * streams can be copied through MPEG-TS; not for a rotated video, whose display
 * matrix MPEG-TS does not carry (the copy would play sideways).
 */
function copyKey(report: FfprobeReport): string | undefined {
  const v = report.streams?.find((s) => s.codec_type === 'video');
  const a = report.streams?.find((s) => s.codec_type === 'audio');
  if (!v || !['h264', 'hevc'].includes(v.codec_name ?? '') || (a && !['aac', 'mp3'].includes(a.codec_name ?? ''))) return undefined;
  if (clockwiseRotation(v) !== 0) return undefined;
  return `${v.codec_name} ${v.width}x${v.height} ${v.pix_fmt} | ${a ? `${a.codec_name} ${a.sample_rate} ${a.channels}` : 'no audio'}`;
}

/** Whether DirectConcat can copy the streams: asked for, no trims, one set of stream parameters, a container that takes them. */
export function canCopy(spec: ConcatSpec, pieces: readonly ConcatPiece[], infos: readonly PieceInfo[], workDir: string): boolean {
  return spec.direct && ['mp4', 'flv', 'mpegts'].includes(spec.transcode.container.muxer)
    && pieces.every((p) => p.startSec === undefined && p.endSec === undefined)
    && infos[0]?.copyKey !== undefined && infos.every((info) => info.copyKey === infos[0].copyKey)
    && !(spec.transcode.container.muxer === 'flv' && infos[0].copyKey.startsWith('hevc'))
    // The concat protocol separates its files with `|`.
    && !workDir.includes('|');
}

/** DirectConcat's two steps: each piece remuxed to MPEG-TS (`parts[i]`), then those files of ours joined with the concat protocol. Pure. */
export function buildDirectConcatArgs(inputs: readonly ToolInput[], parts: readonly string[], output: string, muxer: string, aac: boolean): { remux: string[][]; join: string[] } {
  return {
    remux: inputs.map((input, i) => [...inputArgs(input), '-map', '0:v:0', '-map', '0:a:0?', '-c', 'copy', '-f', 'mpegts', parts[i]]),
    join: [
      '-protocol_whitelist', 'file,concat', '-f', 'mpegts', '-i', `concat:${parts.join('|')}`,
      '-map', '0:v:0', '-map', '0:a:0?', '-c', 'copy', ...(aac && muxer !== 'mpegts' ? ['-bsf:a', 'aac_adtstoasc'] : []), '-f', muxer, output,
    ],
  };
}

/** ffmpeg arguments joining `inputs` (one per piece, in order) with the concat filter, then Transcode's encoders. Pure. */
export function buildConcatArgs(spec: ConcatSpec, pieces: ReadonlyArray<{ input: ToolInput; piece: ConcatPiece; info: PieceInfo }>, output: string, mixInputs: readonly ToolInput[] = []): string[] {
  const args: string[] = [];
  for (const { input, piece } of pieces) {
    args.push(...inputArgs(input, [...(piece.startSec ? ['-ss', String(piece.startSec)] : []), ...(piece.endSec !== undefined ? ['-to', String(piece.endSec)] : [])]));
  }
  // AudioMix sources are the inputs after the pieces; a Repeat source loops.
  const mixes = spec.transcode.audio ? spec.transcode.audioMix : [];
  mixInputs.forEach((mix, i) => args.push(...inputArgs(mix, mixes[i]?.repeat ? ['-stream_loop', '-1'] : [])));
  const video = spec.transcode.video !== undefined && pieces.some((p) => p.info.hasVideo);
  // Silent pieces still get an audio track when AudioMix brings one.
  const audio = spec.transcode.audio !== undefined && (pieces.some((p) => p.info.hasAudio) || spec.transcode.audioMix.length > 0);
  if (!video && !audio) throw invalid('The pieces hold no stream the output keeps.');
  const first = pieces.find((p) => p.info.hasVideo)?.info;
  const width = spec.transcode.video?.width ?? first?.width ?? 640;
  const height = spec.transcode.video?.height ?? first?.height ?? 360;
  const fps = spec.transcode.video?.fps ?? first?.fps ?? 25;
  const graph: string[] = [];
  const labels: string[] = [];
  pieces.forEach(({ info }, i) => {
    if (video) {
      graph.push(info.hasVideo
        ? `[${i}:v:0]scale=${width}:${height}:force_original_aspect_ratio=decrease,pad=${width}:${height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=${round(fps)},format=yuv420p[v${i}]`
        : `color=c=black:s=${width}x${height}:r=${round(fps)}:d=${round(info.durationSec)},format=yuv420p,setsar=1[v${i}]`);
      labels.push(`[v${i}]`);
    }
    if (audio) {
      graph.push(info.hasAudio
        ? `[${i}:a:0]aresample=44100,aformat=sample_fmts=fltp:channel_layouts=stereo[a${i}]`
        : `anullsrc=r=44100:cl=stereo,atrim=duration=${round(info.durationSec)},aformat=sample_fmts=fltp:channel_layouts=stereo[a${i}]`);
      labels.push(`[a${i}]`);
    }
  });
  graph.push(`${labels.join('')}concat=n=${pieces.length}:v=${video ? 1 : 0}:a=${audio ? 1 : 0}${video ? '[v]' : ''}${audio ? '[a]' : ''}`);
  const mixed = audio && mixes.length > 0;
  if (mixed) {
    const total = pieces.reduce((sum, p) => sum + p.info.durationSec, 0);
    graph.push(...audioMixGraph(mixes, pieces.length, [], { durationSec: total }, { ...spec.transcode, startSec: undefined, durationSec: undefined }, '[a]'));
    // Replace leaves the joined audio unused: it still needs somewhere to go.
    if (mixes.some((m) => m.replace)) graph.push('[a]anullsink');
    // The pieces' length ends the mix (a Repeat source never ends by itself; -shortest did not stop
    // ffmpeg when the video came out of the same graph).
    graph.push(`[aout]atrim=duration=${round(total)}[amixed]`);
  }
  args.push('-filter_complex', graph.join(';'));
  if (video) args.push('-map', '[v]');
  if (audio) args.push('-map', mixed ? '[amixed]' : '[a]');
  const transcode: TranscodeSpec = { ...spec.transcode, video: video ? spec.transcode.video : undefined, audio: audio ? spec.transcode.audio : undefined };
  args.push(...encodeArgs(transcode, { output }));
  return args;
}

function round(n: number): string {
  return String(Math.round(n * 1e6) / 1e6);
}

function concatOf(operation: XmlObject, bucket: string | undefined): ConcatSpec {
  // A Concat template's ConcatTemplate reaches the run under the template's Tag (the worker's template merge).
  const concat = operation.ConcatTemplate ?? operation.Concat;
  if (!isXmlObject(concat)) throw invalid('Operation/ConcatTemplate (or a TemplateId) is required.');
  return parseConcat(concat, bucket);
}

/** Submit-time checks of a Concat Operation with an inline ConcatTemplate. */
export function checkConcatOperation(operation: XmlObject, config: Config, where: string, bucket: string): void {
  try {
    if (operation.ConcatTemplate === undefined) return;
    // Fragment URLs are held to the job's bucket now, as the run holds them: another bucket's is a 400, not a job that can only fail.
    const spec = concatOf(operation, bucket);
    readOutput(operation, SUBMIT_CHECK_JOB, false);
    const needs = transcodeNeeds(spec.transcode);
    assertFfmpegHas(config.ffmpegPath, { encoders: needs.encoders, filters: ['concat', 'scale', 'pad', 'fps', 'aresample', 'anullsrc'] });
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export function createConcatProcessor(spawner: Spawner): Processor {
  return { tag: 'Concat', slotsItsTool: true, run: (ctx) => runConcat(ctx, spawner) };
}

async function runConcat(ctx: ProcessorContext, spawner: Spawner): Promise<XmlObject> {
  const { job } = ctx;
  const spec = concatOf(job.operation, job.bucket);
  const target = readOutput(job.operation, job, false);
  const key = safeKey(expandObject(target.object, { inputObject: job.inputObject || spec.fragments[0].key, extension: spec.transcode.container.ext, jobId: job.jobId }));
  // An empty Input/Object: the request had no Input (CI's Concat examples send none).
  const pieces = [...spec.fragments];
  if (job.inputObject !== '') pieces.splice(spec.inputAt, 0, { key: job.inputObject });
  ctx.signal.throwIfAborted();
  ctx.setProgress(0);
  const mixKeys = (spec.transcode.audio ? spec.transcode.audioMix : []).map((mix) => safeKey(mix.key, 'AudioMix/AudioSource'));
  return withLocalFiles(ctx, [...pieces.map((p) => safeKey(p.key, 'ConcatFragment/Url')), ...mixKeys], (all) => withWorkDir(ctx, async (dir) => {
    const files = all.slice(0, pieces.length);
    const mixFiles = all.slice(pieces.length);
    const infos: PieceInfo[] = [];
    for (const [i, file] of files.entries()) infos.push(pieceInfo(await probeInput({ ...ctx, job: { ...job, inputObject: pieces[i].key } }, spawner, file), pieces[i]));
    const output = path.join(dir, `out.${spec.transcode.container.ext}`);
    const total = infos.reduce((sum, info) => sum + info.durationSec, 0);
    await withToolInputs([...files, ...mixFiles], (both) => {
      const inputs = both.slice(0, files.length);
      const mixInputs = both.slice(files.length);
      const keys = [...pieces.map((p) => p.key), ...mixKeys];
      const replacements = both.flatMap((input, i) => inputReplacements(input, keys[i], dir));
      // A stream copy cannot mix in other audio.
      if (mixKeys.length === 0 && canCopy(spec, pieces, infos, dir)) {
        const { remux, join } = buildDirectConcatArgs(inputs, inputs.map((_, i) => path.join(dir, `part-${i}.ts`)), output, spec.transcode.container.muxer, infos[0].copyKey!.includes('| aac '));
        return ctx.withToolSlot(async () => {
          for (const args of remux) await runTranscodeFfmpeg(ctx, spawner, args, dir, undefined, replacements);
          await runTranscodeFfmpeg(ctx, spawner, join, dir, undefined, replacements);
        });
      }
      const args = buildConcatArgs(spec, inputs.map((input, i) => ({ input, piece: pieces[i], info: infos[i] })), output, mixInputs);
      return ctx.withToolSlot(() => runTranscodeFfmpeg(ctx, spawner, args, dir, total > 0 ? total : undefined, replacements));
    });
    ctx.setProgress(92);
    const mediaInfo = await outputMediaInfo(ctx, spawner, output);
    const [stored] = await storeFiles(ctx, target.bucket, [{ key, file: output }]);
    ctx.setProgress(100);
    return { MediaInfo: mediaInfo, MediaResult: singleMediaResult(target, stored) };
  }));
}

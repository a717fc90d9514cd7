/**
 * Tag=StreamExtract (shared/ci-media-tags.md §10): streams of the input, each
 * copied without re-encoding into an object of its own.
 *
 * `Output/StreamExtract[]{Index, Object}`: Index is the stream's index as
 * MediaInfo reports it; the muxer follows the object's extension (`.m4a`,
 * `.aac`, `.mp4`, `.mkv`, `.srt`…; none: Matroska, which holds any stream).
 * An Index with no stream in the input is skipped, as CI's sample suggests;
 * none at all is InvalidArgument. One ffmpeg run writes every output.
 *
 * Result: `MediaResult/OutputFile` with one full-key ObjectName and Md5Info
 * per object written, and an empty ObjectPrefix.
 */
import path from 'node:path';
import type { Config } from '../config.js';
import { inputArgs } from '../media/ffmpeg.js';
import { withToolInput, type ToolInput } from '../media/input-policy.js';
import type { Spawner } from '../media/spawner.js';
import { isXmlObject, type XmlObject } from '../xml/tree.js';
import {
  asSubmitError, checkObjectTemplate, expandObject, invalid, keyExtension, number, probeInput, safeKey, storeFiles, text, withInputFile, withWorkDir,
} from './media-output.js';
import type { Processor, ProcessorContext } from './processor.js';
import { inputReplacements, runTranscodeFfmpeg } from './transcode.js';

/** Extensions whose muxer ffmpeg does not pick by name the way CI means them. */
const MUXERS: Readonly<Record<string, string>> = { m4a: 'ipod', aac: 'adts', mp4: 'mp4', mkv: 'matroska', mka: 'matroska', ts: 'mpegts', srt: 'srt', vtt: 'webvtt', webm: 'webm', flv: 'flv', mp3: 'mp3', flac: 'flac', wav: 'wav', ogg: 'ogg', opus: 'opus', h264: 'h264', hevc: 'hevc' };

export interface ExtractEntry {
  readonly index: number;
  readonly object: string;
}

/** `Output/StreamExtract` entries; throws InvalidArgument naming the element. */
export function parseStreamExtract(output: XmlObject): ExtractEntry[] {
  const raw = output.StreamExtract;
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  if (list.length === 0) throw invalid('Output/StreamExtract is required.');
  return list.map((entry) => {
    if (!isXmlObject(entry)) throw invalid('Output/StreamExtract must hold Index and Object.');
    const index = number(entry.Index, 'Output/StreamExtract/Index', 0, 1000, { integer: true });
    const object = typeof entry.Object === 'string' ? entry.Object : '';
    if (index === undefined) throw invalid('Output/StreamExtract/Index is required.');
    if (object.trim() === '') throw invalid('Output/StreamExtract/Object is required.');
    checkObjectTemplate(object, 'Output/StreamExtract/Object', false);
    return { index, object };
  });
}

/** One ffmpeg run: per entry `-map 0:<Index> -c copy -f <muxer> <dir>/<n>.<ext>`. Pure. */
export function buildStreamExtractArgs(input: ToolInput, entries: ReadonlyArray<{ index: number; key: string }>, dir: string): string[] {
  const args = inputArgs(input);
  entries.forEach(({ index, key }, n) => {
    const ext = keyExtension(key);
    args.push('-map', `0:${index}`, '-c', 'copy', '-f', MUXERS[ext] ?? 'matroska', path.join(dir, `${n}.${ext || 'mkv'}`));
  });
  return args;
}

/** Submit-time checks of a StreamExtract Operation. */
export function checkStreamExtractOperation(operation: XmlObject, _config: Config, where: string): void {
  try {
    if (!isXmlObject(operation.Output)) throw invalid('Operation/Output is required.');
    for (const { object } of parseStreamExtract(operation.Output)) safeKey(expandObject(object, { inputObject: 'input', extension: 'mp4', jobId: 'j' }), 'Output/StreamExtract/Object');
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export function createStreamExtractProcessor(spawner: Spawner): Processor {
  return { tag: 'StreamExtract', slotsItsTool: true, run: (ctx) => runStreamExtract(ctx, spawner) };
}

async function runStreamExtract(ctx: ProcessorContext, spawner: Spawner): Promise<XmlObject> {
  const { job } = ctx;
  const output = job.operation.Output;
  if (!isXmlObject(output)) throw invalid('Operation/Output is required.');
  const bucket = text(output.Bucket) ?? job.bucket;
  const region = text(output.Region) ?? job.region;
  const entries = parseStreamExtract(output).map((e) => ({ index: e.index, key: safeKey(expandObject(e.object, { inputObject: job.inputObject, extension: keyExtension(e.object) || 'mkv', jobId: job.jobId }), 'Output/StreamExtract/Object') }));
  ctx.signal.throwIfAborted();
  ctx.setProgress(0);
  return withInputFile(ctx, (input) => withWorkDir(ctx, async (dir) => {
    const report = await probeInput(ctx, spawner, input);
    const present = new Set((report.streams ?? []).map((s) => Number(s.index)));
    const wanted = entries.filter((e) => present.has(e.index));
    if (wanted.length === 0) throw invalid(`No Output/StreamExtract/Index names a stream of ${job.inputObject} (it has ${present.size}).`);
    await withToolInput(input, (tool) => ctx.withToolSlot(() => runTranscodeFfmpeg(ctx, spawner, buildStreamExtractArgs(tool, wanted, dir), dir, undefined, inputReplacements(tool, job.inputObject, dir))));
    ctx.setProgress(90);
    const stored = await storeFiles(ctx, bucket, wanted.map((e, n) => ({ key: e.key, file: path.join(dir, `${n}.${keyExtension(e.key) || 'mkv'}`) })));
    ctx.setProgress(100);
    const md5 = stored.map((s) => ({ Md5: s.md5, ObjectName: s.key }));
    return {
      MediaResult: {
        OutputFile: {
          Bucket: bucket,
          Md5Info: md5.length === 1 ? md5[0] : md5,
          ObjectName: stored.length === 1 ? stored[0].key : stored.map((s) => s.key),
          ObjectPrefix: '',
          Region: region,
        },
      },
    };
  }));
}

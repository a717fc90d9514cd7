import path from 'node:path';
import { PermanentJobError } from '../engine/job-errors.js';
import { FfprobeError, runFfprobe, type FfprobeReport } from '../media/ffprobe.js';
import { toMediaInfo } from '../media/media-info.js';
import type { Spawner } from '../media/spawner.js';
import { ObjectNotFoundError } from '../storage/storage.js';
import type { Processor, ProcessorContext } from './processor.js';
import type { XmlObject } from '../xml/tree.js';

/** Signals of a fault inside ffprobe (not sent by us or by the OOM killer); Node names SIGABRT SIGIOT. */
const FILE_CRASH_SIGNAL = /\b(SIGSEGV|SIGBUS|SIGFPE|SIGILL|SIGABRT|SIGIOT)$/;

/** A local header probe takes milliseconds; a minute means ffprobe is stuck, and the job is retried. */
const PROBE_TIMEOUT_MS = 60_000;

/**
 * Tag=MediaInfo: probes the input object and returns `{ MediaInfo }` for the
 * job's `<Operation>` (format and conventions in `media/media-info.ts`).
 *
 * Failures:
 * - the input does not exist → `NoSuchKey`;
 * - ffprobe cannot read it (corrupt, truncated, not media), or it holds no
 *   audio, video or subtitle stream → `InvalidMedia`, with ffprobe's first
 *   stderr line in the Message; so does an object whose format would make
 *   ffprobe open other files (HLS, DASH, ffconcat: `media/input-policy.ts`);
 * - ffprobe crashing on a fault signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
 *   SIGABRT) → `InvalidMedia` at once: the file crashes it every time;
 * - ffprobe missing, timing out, killed otherwise (the OOM killer), or the
 *   system out of file descriptors or memory → thrown as is, so the engine retries;
 * - abort → ffprobe is killed and the signal's reason is rethrown.
 */
export function createMediaInfoProcessor(spawner: Spawner): Processor {
  return { tag: 'MediaInfo', slotsItsTool: true, run: (ctx) => runMediaInfo(ctx, spawner) };
}

async function runMediaInfo(ctx: ProcessorContext, spawner: Spawner): Promise<XmlObject> {
  const { job, storage, signal } = ctx;
  signal.throwIfAborted();
  ctx.setProgress(0);
  let report: FfprobeReport;
  try {
    report = await storage.withLocalFile(job.bucket, job.inputObject, (filePath) => probe(ctx, spawner, filePath));
  } catch (err) {
    if (err instanceof ObjectNotFoundError) throw noSuchKey(job.inputObject);
    throw err;
  }
  ctx.setProgress(90);

  const streams = report.streams ?? [];
  if (!streams.some((stream) => ['video', 'audio', 'subtitle'].includes(stream.codec_type ?? ''))) {
    throw new PermanentJobError('InvalidMedia', `The input ${job.inputObject} contains no audio, video or subtitle stream.`);
  }
  // ffprobe reads any text file with a .txt/.nfo/… name as "Tele-typewriter"
  // art: one 'ansi' video stream. Nobody asks for the MediaInfo of that.
  if (report.format?.format_name === 'tty') {
    throw new PermanentJobError('InvalidMedia', `The input ${job.inputObject} is a text file, not media.`);
  }
  const mediaInfo = toMediaInfo(report);
  ctx.setProgress(100);
  return { MediaInfo: mediaInfo };
}

async function probe(ctx: ProcessorContext, spawner: Spawner, filePath: string): Promise<FfprobeReport> {
  ctx.setProgress(10);
  try {
    return await ctx.withToolSlot(() => runFfprobe(filePath, { spawner, ffprobePath: ctx.config.ffprobePath, signal: ctx.signal, timeoutMs: PROBE_TIMEOUT_MS }));
  } catch (err) {
    if (!(err instanceof FfprobeError)) throw err;
    const key = ctx.job.inputObject;
    if (err.reason === 'output-limit') {
      throw new PermanentJobError('InvalidMedia', `The input ${key} describes too many streams to report.`);
    }
    if (err.reason === 'crash' && FILE_CRASH_SIGNAL.test(err.message)) {
      // A fault comes from what ffprobe read: the same file crashes it again, and retrying
      // only spent the attempts (three crashes, then MaxAttemptsExceeded). A SIGKILL (the
      // OOM killer) or any other signal is the machine's, and is retried.
      throw new PermanentJobError('InvalidMedia', `The input ${key} is not a readable media file (ffprobe crashed on it: ${err.message.replace(/^ffprobe was killed by /, '')}).`);
    }
    if (err.reason !== 'exit') throw err;
    // ffprobe exits 1 for every failure; these stderr messages are the
    // machine's fault, not the file's, so the job is retried instead.
    if (/Too many open files|Cannot allocate memory|Resource temporarily unavailable|Permission denied/.test(err.stderr)) {
      throw err;
    }
    if (/No such file or directory/.test(err.stderr)) throw noSuchKey(key); // deleted while we probed
    const detail = publicStderrLine(err.firstStderrLine, filePath, key);
    throw new PermanentJobError('InvalidMedia', `The input ${key} is not a readable media file${detail ? ` (ffprobe: ${detail})` : ''}.`);
  }
}

/**
 * ffprobe's message without server details: the local path becomes the object
 * key, and the `@ 0x55d…` context pointer is dropped.
 * `[mov,mp4,m4a,3gp,3g2,mj2 @ 0x4257] moov atom not found` → `[mov,mp4,m4a,3gp,3g2,mj2] moov atom not found`.
 */
function publicStderrLine(line: string, filePath: string, key: string): string {
  const absolute = path.resolve(filePath);
  return line
    .split(`file:${absolute}`).join(key)
    .split(absolute).join(key)
    .replace(/ @ 0x[0-9a-f]+\]/g, ']');
}

function noSuchKey(key: string): PermanentJobError {
  return new PermanentJobError('NoSuchKey', `The specified key does not exist: ${key}`);
}

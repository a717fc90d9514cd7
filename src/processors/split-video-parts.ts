/**
 * Tag=SplitVideoParts (shared/ci-media-tags.md §0 #20; Go's SplitVideoParts
 * and SplitVideoInfoResult): the input's shots, found by scene scoring.
 *
 * `SplitVideoParts{Mode}`: SHOTDETECT (the default, and the only Mode CI's
 * examples name; others are refused). CI's request has no Output and its
 * result holds the parts' times only, so nothing is written. A shot starts at
 * each scene change VideoMontage also finds (`select='gt(scene,0.3)'` on a
 * 160 px wide copy); a part shorter than MIN_PART_SEC joins the one before.
 *
 * Result: `SplitVideoInfoResult/TimeInfo[]{Index, PartBegin, PartEnd}`:
 * Index from 0, times in seconds `%.3f` (CI's units and numbering were not
 * found).
 */
import type { Config } from '../config.js';
import type { Spawner } from '../media/spawner.js';
import type { XmlObject } from '../xml/tree.js';
import { asSubmitError, assertFfmpegHas, child, invalid, mediaDuration, probeInput, text, withInputFile, withWorkDir } from './media-output.js';
import type { Processor, ProcessorContext } from './processor.js';
import { sceneChanges } from './video-montage.js';

/** Shorter parts are scene scores firing on neighbouring frames of one cut (a dissolve, a flash), not shots. */
const MIN_PART_SEC = 0.5;
const MODES = ['SHOTDETECT'];

function checkMode(operation: XmlObject): void {
  const mode = text(child(operation, 'SplitVideoParts').Mode);
  if (mode !== undefined && !MODES.includes(mode.toUpperCase())) throw invalid(`SplitVideoParts/Mode must be ${MODES.join(' or ')}, not ${JSON.stringify(mode)}.`);
}

/** The parts of an input `lengthSec` long cut at `changes`: [begin, end) pairs from 0 to the end. Pure. */
export function splitParts(lengthSec: number, changes: readonly number[]): Array<[number, number]> {
  const cuts = [0];
  for (const t of [...changes].sort((a, b) => a - b)) {
    if (t - cuts[cuts.length - 1] >= MIN_PART_SEC && lengthSec - t >= MIN_PART_SEC) cuts.push(t);
  }
  return cuts.map((begin, i) => [begin, i + 1 < cuts.length ? cuts[i + 1] : lengthSec]);
}

/** Submit-time checks of a SplitVideoParts Operation. */
export function checkSplitVideoPartsOperation(operation: XmlObject, config: Config, where: string): void {
  try {
    checkMode(operation);
    assertFfmpegHas(config.ffmpegPath, { filters: ['scale', 'select', 'metadata'] });
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export function createSplitVideoPartsProcessor(spawner: Spawner): Processor {
  return { tag: 'SplitVideoParts', slotsItsTool: true, run: (ctx) => runSplitVideoParts(ctx, spawner) };
}

async function runSplitVideoParts(ctx: ProcessorContext, spawner: Spawner): Promise<XmlObject> {
  const { job } = ctx;
  checkMode(job.operation);
  ctx.setProgress(0);
  const parts = await withInputFile(ctx, (input) => withWorkDir(ctx, async (dir) => {
    const report = await probeInput(ctx, spawner, input);
    if (!report.streams?.some((s) => s.codec_type === 'video')) throw invalid(`The input ${job.inputObject} has no video to split.`);
    // A raw elementary stream (.h264) has none: its one part would read 0–0, a Success that says nothing.
    const lengthSec = mediaDuration(report);
    if (!lengthSec) throw invalid(`The input ${job.inputObject} has no length ffprobe can read (a raw stream without a container?), so its parts cannot be timed.`);
    return splitParts(lengthSec, await sceneChanges(ctx, spawner, input, dir, lengthSec));
  }));
  ctx.setProgress(100);
  return {
    SplitVideoInfoResult: {
      TimeInfo: parts.map(([begin, end], index) => ({ Index: String(index), PartBegin: begin.toFixed(3), PartEnd: end.toFixed(3) })),
    },
  };
}

import type { Spawner } from '../media/spawner.js';
import { createMediaInfoProcessor } from './media-info.js';
import { picProcessProcessor } from './pic-process.js';
import type { Processor } from './processor.js';
import { createTranscodeProcessor } from './transcode.js';
import { createSnapshotProcessor } from './snapshot.js';
import { createAnimationProcessor } from './animation.js';
import { createSegmentProcessor } from './segment.js';
import { createConcatProcessor } from './concat.js';
import { createStreamExtractProcessor } from './stream-extract.js';
import { createVideoProcessProcessor } from './video-process.js';
import { createNoiseReductionProcessor } from './noise-reduction.js';
import { createSmartCoverProcessor } from './smart-cover.js';
import { createVideoMontageProcessor } from './video-montage.js';
import { fileHashCodeProcessor } from './file-hash-code.js';
import { createWatermarkJobProcessor } from './watermark-job.js';
import { createVideoEnhanceProcessor } from './video-enhance.js';
import { createSplitVideoPartsProcessor } from './split-video-parts.js';
import { createSegmentVideoBodyProcessor } from './segment-video-body.js';
import { fileCompressProcessor } from './file-compress.js';
import { fileUncompressProcessor } from './file-uncompress.js';

/** Tag → processor: what the workers of this build can run. `spawner` runs their external tools (ffprobe, ffmpeg). */
export function createProcessorRegistry(deps: { readonly spawner: Spawner }): ReadonlyMap<string, Processor> {
  // The Tags whose tool is ffmpeg: a job of theirs spreads over every core (MEDIAJOBS_VIDEO_CONCURRENCY).
  const ffmpegTags = [
    createTranscodeProcessor,
    createSnapshotProcessor,
    createAnimationProcessor,
    createSegmentProcessor,
    createConcatProcessor,
    createStreamExtractProcessor,
    createVideoProcessProcessor,
    createNoiseReductionProcessor,
    createSmartCoverProcessor,
    createVideoMontageProcessor,
    createWatermarkJobProcessor,
    createVideoEnhanceProcessor,
    createSplitVideoPartsProcessor,
    createSegmentVideoBodyProcessor,
  ].map((create): Processor => ({ ...create(deps.spawner), runsFfmpeg: true }));
  return new Map([
    createMediaInfoProcessor(deps.spawner),
    picProcessProcessor,
    ...ffmpegTags,
    fileHashCodeProcessor,
    fileCompressProcessor,
    fileUncompressProcessor,
  ].map((p) => [p.tag, p]));
}

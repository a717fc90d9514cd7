import type { Config } from '../config.js';
import type { XmlSchemaId } from '../validation/schemas.js';
import type { XmlObject } from '../xml/tree.js';
import { checkAnimationOperation } from './animation.js';
import { checkSnapshotOperation } from './snapshot.js';
import { checkConcatOperation } from './concat.js';
import { checkSegmentOperation } from './segment.js';
import { checkStreamExtractOperation } from './stream-extract.js';
import { checkNoiseReductionOperation } from './noise-reduction.js';
import { checkVideoProcessOperation } from './video-process.js';
import { checkSmartCoverOperation } from './smart-cover.js';
import { checkVideoMontageOperation } from './video-montage.js';
import { checkTranscodeOperation } from './transcode.js';
import { checkFileHashCodeOperation } from './file-hash-code.js';
import { checkPicProcessOperation } from './pic-process.js';
import { checkWatermarkJobOperation } from './watermark-job.js';
import { checkVideoEnhanceOperation } from './video-enhance.js';
import { checkSplitVideoPartsOperation } from './split-video-parts.js';
import { checkSegmentVideoBodyOperation } from './segment-video-body.js';
import { checkFileCompressOperation } from './file-compress.js';
import { checkFileUncompressOperation } from './file-uncompress.js';

/** Submit-time checks beyond the schema (values, the ffmpeg binary's encoders); throws a 400 CiError. `bucket` is the job's. */
type OperationCheck = (operation: XmlObject, config: Config, where: string, bucket: string) => void;

interface TagSpec {
  readonly operationSchema: XmlSchemaId;
  readonly needsOutput: boolean;
  /** The Operation's parameter container, echoed in JobsDetail when given inline. */
  readonly container?: string;
  /** Further Operation elements echoed, and so kept for the run (VideoProcess's Transcode). */
  readonly echoes?: readonly string[];
  readonly check?: OperationCheck;
  /** The Tag takes its inputs from its Operation, so `Request/Input` may be absent. */
  readonly inputOptional?: boolean;
  /** The first letter of its jobs' ids when not `j`: CI's file jobs' start with `f`. */
  readonly jobIdPrefix?: 'f';
}

/**
 * The Tags this service runs, with the schema their `<Operation>` must match.
 * Adding a Tag means a processor file, an entry in `processors/index.ts` and one here.
 */
export const SUPPORTED_TAGS = {
  MediaInfo: { operationSchema: 'operation.media-info.json', needsOutput: false },
  PicProcess: { operationSchema: 'operation.pic-process.json', needsOutput: true, check: checkPicProcessOperation },
  Transcode: { operationSchema: 'operation.transcode.json', needsOutput: true, container: 'Transcode', echoes: ['Watermark', 'WatermarkTemplateId', 'RemoveWatermark', 'Subtitles'], check: checkTranscodeOperation },
  Snapshot: { operationSchema: 'operation.snapshot.json', needsOutput: true, container: 'Snapshot', check: checkSnapshotOperation },
  Animation: { operationSchema: 'operation.animation.json', needsOutput: true, container: 'Animation', check: checkAnimationOperation },
  Segment: { operationSchema: 'operation.segment.json', needsOutput: true, container: 'Segment', check: checkSegmentOperation },
  Concat: { operationSchema: 'operation.concat.json', needsOutput: true, container: 'ConcatTemplate', check: checkConcatOperation, inputOptional: true },
  StreamExtract: { operationSchema: 'operation.stream-extract.json', needsOutput: true, check: checkStreamExtractOperation },
  VideoProcess: { operationSchema: 'operation.video-process.json', needsOutput: true, container: 'VideoProcess', echoes: ['Transcode', 'TranscodeTemplateId', 'Watermark', 'WatermarkTemplateId'], check: checkVideoProcessOperation },
  NoiseReduction: { operationSchema: 'operation.noise-reduction.json', needsOutput: true, container: 'NoiseReduction', check: checkNoiseReductionOperation },
  SmartCover: { operationSchema: 'operation.smart-cover.json', needsOutput: true, container: 'SmartCover', check: checkSmartCoverOperation },
  VideoMontage: { operationSchema: 'operation.video-montage.json', needsOutput: true, container: 'VideoMontage', check: checkVideoMontageOperation },
  VideoEnhance: { operationSchema: 'operation.video-enhance.json', needsOutput: true, container: 'VideoEnhance', echoes: ['TranscodeTemplateId', 'Watermark', 'WatermarkTemplateId'], check: checkVideoEnhanceOperation },
  SplitVideoParts: { operationSchema: 'operation.split-video-parts.json', needsOutput: false, container: 'SplitVideoParts', check: checkSplitVideoPartsOperation },
  Watermark: { operationSchema: 'operation.watermark.json', needsOutput: true, echoes: ['Watermark', 'WatermarkTemplateId'], check: checkWatermarkJobOperation },
  SegmentVideoBody: { operationSchema: 'operation.segment-video-body.json', needsOutput: true, container: 'SegmentVideoBody', check: checkSegmentVideoBodyOperation },
  // The /file_jobs family (also accepted at /jobs, as /pic_jobs and /jobs share their jobs).
  FileHashCode: { operationSchema: 'operation.file-hash-code.json', needsOutput: false, container: 'FileHashCodeConfig', check: checkFileHashCodeOperation, jobIdPrefix: 'f' },
  FileCompress: { operationSchema: 'operation.file-compress.json', needsOutput: true, container: 'FileCompressConfig', check: checkFileCompressOperation, inputOptional: true, jobIdPrefix: 'f' },
  // Output has no Object here (the entries' keys come from the archive), so it is echoed as given and checked by the Tag.
  FileUncompress: { operationSchema: 'operation.file-uncompress.json', needsOutput: false, container: 'FileUncompressConfig', echoes: ['Output'], check: checkFileUncompressOperation, jobIdPrefix: 'f' },
} as const satisfies Record<string, TagSpec>;

/** A Tag's entry, typed with its optional fields. */
export function tagSpec(tag: SupportedTag): TagSpec {
  return SUPPORTED_TAGS[tag];
}

export type SupportedTag = keyof typeof SUPPORTED_TAGS;

export function isSupportedTag(tag: string): tag is SupportedTag {
  return Object.hasOwn(SUPPORTED_TAGS, tag);
}

export const SUPPORTED_TAG_LIST = Object.keys(SUPPORTED_TAGS).join(', ');

import type { Config } from '../config.js';
import type { Storage } from '../storage/storage.js';
import type { XmlObject } from '../xml/tree.js';

/** What a processor knows about the job it runs. */
export interface ProcessingJob {
  readonly jobId: string;
  readonly tag: string;
  /** Bucket and region of the input (from the request Host). */
  readonly bucket: string;
  readonly region: string;
  readonly inputObject: string;
  /**
   * The request's `<Operation>` as parsed (all values strings), after
   * template resolution: e.g. `{ PicProcess: { IsPicInfo, ProcessRule }, Output: { Region, Bucket, Object } }`.
   */
  readonly operation: XmlObject;
}

export interface ProcessorContext {
  readonly job: ProcessingJob;
  readonly storage: Storage;
  readonly config: Config;
  /** Aborted when the job is cancelled or the worker is shutting down; kill child processes on it. */
  readonly signal: AbortSignal;
  /** Reports progress 0–100; cheap to call often (the engine throttles writes). */
  setProgress(percent: number): void;
  /**
   * Runs the job's heavy work (a tool process, an image pipeline) in one of
   * the worker's MEDIAJOBS_CONCURRENCY slots, waiting for one first; an abort
   * while waiting rejects with the signal's reason. Reading the input and
   * handling the result belong outside, where they overlap other jobs' tools.
   */
  withToolSlot<T>(work: () => Promise<T>): Promise<T>;
}

/**
 * One CI Tag. `run` returns the result elements to add to the job's
 * `<Operation>` (e.g. `{ MediaInfo: {...} }` or `{ PicProcessResult: {...} }`),
 * or throws a `PermanentJobError` / `RetryLaterError` (see `engine/job-errors.ts`).
 * Any output objects a processor wrote must be removed again if it is aborted.
 */
export interface Processor {
  readonly tag: string;
  /**
   * True when `run` puts its heavy work in `ctx.withToolSlot` itself;
   * otherwise the worker holds a slot for the whole run.
   */
  readonly slotsItsTool?: boolean;
  /** Its tool is ffmpeg: its tool slots are also held to MEDIAJOBS_VIDEO_CONCURRENCY (set in `createProcessorRegistry`). */
  readonly runsFfmpeg?: boolean;
  run(ctx: ProcessorContext): Promise<XmlObject>;
}

import { mediaInfoProcessor } from './media-info.js';
import { picProcessProcessor } from './pic-process.js';
import type { Processor } from './processor.js';

/** Tag → processor: what the workers of this build can run. */
export function createProcessorRegistry(): ReadonlyMap<string, Processor> {
  return new Map([mediaInfoProcessor, picProcessProcessor].map((p) => [p.tag, p]));
}

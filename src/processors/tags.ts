import type { SchemaId } from '../http/validate.js';

/**
 * The Tags this service runs, with the schema their `<Operation>` must match.
 * Adding a Tag means a processor file, an entry in `processors/index.ts` and one here.
 */
export const SUPPORTED_TAGS = {
  MediaInfo: { operationSchema: 'operation.media-info.json', needsOutput: false },
  PicProcess: { operationSchema: 'operation.pic-process.json', needsOutput: true },
} as const satisfies Record<string, { operationSchema: SchemaId; needsOutput: boolean }>;

export type SupportedTag = keyof typeof SUPPORTED_TAGS;

export function isSupportedTag(tag: string): tag is SupportedTag {
  return Object.hasOwn(SUPPORTED_TAGS, tag);
}

export const SUPPORTED_TAG_LIST = Object.keys(SUPPORTED_TAGS).join(', ');

import type { XmlSchemaId } from '../validation/schemas.js';

/**
 * Every template Tag this service stores, and how its parameters travel
 * (shared/ci-media-tags.md 1.5): in one container of the request, or flat
 * under `<Request>` beside Tag and Name; and the container the answer's
 * `<Template>` wraps them in, named as the Go SDK's `Template` struct decodes
 * it (ci_media.go). Request shapes are the Go SDK's Create…TemplateOptions
 * (HighSpeedHd: CreateMediaTranscodeTemplateOptions, as its example sends it;
 * ImageOCR: CreateOCRTemplateOptions).
 */
export interface TemplateTagShape {
  /** The request's container holding the parameters, or 'flat' for every element beside Tag, Name and TemplateId. */
  readonly params: string;
  /** The answer's container. */
  readonly answer: string;
  /** The request body's schema. */
  readonly schema: XmlSchemaId;
}

export const FLAT = 'flat';

const STORED: XmlSchemaId = 'template.stored.request.json';

export const TEMPLATE_TAGS = {
  PicProcess: { params: 'PicProcess', answer: 'PicProcess', schema: 'create-template.request.json' },
  Transcode: { params: FLAT, answer: 'TransTpl', schema: 'template.transcode.request.json' },
  Snapshot: { params: 'Snapshot', answer: 'Snapshot', schema: 'template.snapshot.request.json' },
  // Go's Template also has an Animation field, but CI's doc (1045/49906) answers Animation templates in TransTpl.
  Animation: { params: FLAT, answer: 'TransTpl', schema: 'template.animation.request.json' },
  Concat: { params: 'ConcatTemplate', answer: 'ConcatTemplate', schema: STORED },
  SmartCover: { params: 'SmartCover', answer: 'SmartCover', schema: STORED },
  VideoProcess: { params: FLAT, answer: 'VideoProcess', schema: STORED },
  NoiseReduction: { params: 'NoiseReduction', answer: 'NoiseReduction', schema: STORED },
  Watermark: { params: 'Watermark', answer: 'Watermark', schema: STORED },
  VideoMontage: { params: FLAT, answer: 'VideoMontage', schema: STORED },
  VoiceSeparate: { params: FLAT, answer: 'VoiceSeparate', schema: STORED },
  TranscodePro: { params: FLAT, answer: 'TransProTpl', schema: STORED },
  // CI's doc samples (1045/49922, 1045/43653) show <HighSpeedHd>, but Go has no such field: its example creates HighSpeedHd
  // templates with the Transcode calls and reads TransTpl, and the Transcode doc's samples were wrong the same way (ci-media-tags.md 1.5).
  HighSpeedHd: { params: FLAT, answer: 'TransTpl', schema: STORED },
  SuperResolution: { params: FLAT, answer: 'SuperResolution', schema: STORED },
  Tts: { params: FLAT, answer: 'TtsTpl', schema: STORED },
  SpeechRecognition: { params: 'SpeechRecognition', answer: 'SpeechRecognition', schema: STORED },
  VideoEnhance: { params: 'VideoEnhance', answer: 'VideoEnhance', schema: STORED },
  VideoTargetRec: { params: 'VideoTargetRec', answer: 'VideoTargetRec', schema: STORED },
  ImageOCR: { params: 'ImageOCR', answer: 'ImageOCR', schema: STORED },
} as const satisfies Readonly<Record<string, TemplateTagShape>>;

export type TemplateTag = keyof typeof TEMPLATE_TAGS;

export function isTemplateTag(tag: string): tag is TemplateTag {
  return Object.hasOwn(TEMPLATE_TAGS, tag);
}

/** The container a template's parameters are answered in; a Tag stored before this table knew it keeps its own name. */
export function answerContainer(tag: string): string {
  return isTemplateTag(tag) ? TEMPLATE_TAGS[tag].answer : tag;
}

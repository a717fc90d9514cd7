/**
 * Templates an Operation names beside its own TemplateId (shared/ci-media-tags.md
 * §3, §11): `WatermarkTemplateId[]` (Transcode, VideoProcess, VideoEnhance,
 * Watermark: Watermark templates, whose marks replace any inline Watermark) and
 * `TranscodeTemplateId` (VideoProcess, VideoEnhance: a Transcode template,
 * which wins over an inline Transcode). Checked at submit against the bucket's templates and
 * read again when the job runs, as TemplateId is, so an updated template
 * applies to the jobs still waiting.
 */
import type { Config } from '../config.js';
import type { XmlObject } from '../xml/tree.js';
import { asSubmitError, invalid } from './media-output.js';
import { checkWatermarkTemplates } from './transcode.js';
import { withWatermarkTemplates, type WatermarkTemplateLookup } from './watermark.js';

/** The Transcode template `TranscodeTemplateId` names; InvalidArgument when it is missing or of another Tag. */
async function transcodeTemplate(operation: XmlObject, find: WatermarkTemplateLookup): Promise<XmlObject | undefined> {
  const id = operation.TranscodeTemplateId;
  if (id === undefined || id === '') return undefined;
  const template = typeof id === 'string' ? await find(id.trim()) : undefined;
  if (!template || template.tag !== 'Transcode') throw invalid(`TranscodeTemplateId ${String(id)} is not a Transcode template of this bucket.`);
  return template.body;
}

/** The Operation a job runs with: its templates' parameters in place of the elements they stand for. */
export async function resolveTemplateRefs(operation: XmlObject, find: WatermarkTemplateLookup): Promise<XmlObject> {
  let resolved = operation;
  const transcode = await transcodeTemplate(operation, find);
  if (transcode) resolved = { ...resolved, Transcode: transcode };
  if (resolved.WatermarkTemplateId !== undefined) resolved = await withWatermarkTemplates(resolved, find);
  return resolved;
}

/** Submit-time checks of the templates an Operation names (400 InvalidArgument naming the id). */
export async function checkTemplateRefs(operation: XmlObject, find: WatermarkTemplateLookup, config: Config, where: string, bucket: string): Promise<void> {
  try {
    await transcodeTemplate(operation, find);
  } catch (err) {
    throw asSubmitError(err, where);
  }
  if (operation.WatermarkTemplateId !== undefined) await checkWatermarkTemplates(operation, find, config, where, bucket);
}

/** Whether an Operation names templates this module resolves. */
export function hasTemplateRefs(operation: XmlObject): boolean {
  return operation.WatermarkTemplateId !== undefined || operation.TranscodeTemplateId !== undefined;
}

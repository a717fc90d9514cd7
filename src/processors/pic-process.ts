/**
 * The `PicProcess` job (`shared/ci-api.md` §5): read the input object, apply
 * its imageMogr2 ProcessRule, write the result to Output/Bucket + Object, and
 * report `<PicProcessResult>`.
 *
 * Failure codes (JobsDetail/Code):
 * - `InvalidArgument`: bad IsPicInfo, ProcessRule, Output or placeholder, a
 *   rule over the limits of `images/mogr-rule.ts` (also refused at submit),
 *   a rule parameter that does not fit the image (a cut outside it, …), or
 *   an output the storage refuses for good (it collides with a folder or
 *   lies below an existing object): all on the first attempt;
 * - `NoSuchKey`: the input object does not exist;
 * - `InvalidMedia`: the input is not a decodable image (corrupt, truncated,
 *   unsupported format such as HEIC or SVG);
 * - `ImageTooLarge`: the input or the result exceeds `config.picLimits`
 *   (unless the rule has `ignore-error/1`, which stores the input unchanged).
 *
 * Output/Object placeholders, expanded once the output format is known:
 * `${InputName}` (input file name without extension), `${InputNameAndExt}`,
 * `${InputPath}` (input folder without trailing `/`, empty at the bucket root,
 * where `${InputPath}/` disappears as a whole), `${ext}` (output extension:
 * jpg, png, webp, gif, bmp, tiff, avif) and `${JobId}`. Any other `${…}` is
 * refused. E.g. `thumbs/${InputName}.${ext}` for `photos/deer.jpg` with
 * `format/webp` writes `thumbs/deer.webp`.
 */
import { PermanentJobError, toJobError } from '../engine/job-errors.js';
import { ImageSource } from '../images/image-source.js';
import { applyMogrRule, type MogrResult } from '../images/mogr-apply.js';
import { parseMogrRuleWithinLimits } from '../images/mogr-rule.js';
import { assertSafeBucket, assertSafeObjectKey } from '../storage/object-key.js';
import { ObjectNotFoundError } from '../storage/storage.js';
import { isXmlObject, type XmlObject, type XmlValue } from '../xml/tree.js';
import type { Processor, ProcessorContext, ProcessingJob } from './processor.js';

const PLACEHOLDERS = ['InputName', 'InputNameAndExt', 'InputPath', 'ext', 'JobId'] as const;
type Placeholder = (typeof PLACEHOLDERS)[number];

function invalid(message: string): PermanentJobError {
  return new PermanentJobError('InvalidArgument', message);
}

function text(value: XmlValue | undefined): string | undefined {
  return typeof value === 'string' ? value.trim() : undefined;
}

/** `true`/`false` as CI writes them (also `1`/`0`); absent or empty is false. */
function parseIsPicInfo(value: XmlValue | undefined): boolean {
  const raw = text(value);
  if (raw === undefined || raw === '') {
    if (value !== undefined && typeof value !== 'string') throw invalid('PicProcess/IsPicInfo must be true or false.');
    return false;
  }
  if (/^(true|1)$/i.test(raw)) return true;
  if (/^(false|0)$/i.test(raw)) return false;
  throw invalid(`PicProcess/IsPicInfo must be true or false, not ${JSON.stringify(raw)}.`);
}

/** Splits `a/b/c.jpg` into folder `a/b`, name `c`, name with extension `c.jpg`. */
function inputParts(key: string): Record<'InputName' | 'InputNameAndExt' | 'InputPath', string> {
  const slash = key.lastIndexOf('/');
  const base = key.slice(slash + 1);
  const dot = base.lastIndexOf('.');
  return { InputPath: slash < 0 ? '' : key.slice(0, slash), InputNameAndExt: base, InputName: dot > 0 ? base.slice(0, dot) : base };
}

/** Refuses unknown `${…}` placeholders before any work is done. */
export function checkObjectTemplate(template: string): void {
  for (const match of template.matchAll(/\$\{([^}]*)\}/g)) {
    if (!(PLACEHOLDERS as readonly string[]).includes(match[1])) {
      throw invalid(`Output/Object has an unknown placeholder \${${match[1]}} (known: ${PLACEHOLDERS.map((p) => `\${${p}}`).join(', ')}).`);
    }
  }
}

/** Expands the Output/Object placeholders (see the module comment). */
export function expandObjectTemplate(template: string, values: { inputObject: string; extension: string; jobId: string }): string {
  checkObjectTemplate(template);
  const parts = inputParts(values.inputObject);
  const value: Record<Placeholder, string> = { ...parts, ext: values.extension, JobId: values.jobId };
  // At the bucket root `${InputPath}/x` must become `x`, not `/x`.
  const withPath = template.replace(/\$\{InputPath\}\//g, parts.InputPath === '' ? '' : `${parts.InputPath}/`);
  return withPath.replace(/\$\{([^}]*)\}/g, (_, name: Placeholder) => value[name]);
}

function safeKey(key: string): string {
  try {
    return assertSafeObjectKey(key, 'Output/Object');
  } catch (err) {
    throw toJobError(err);
  }
}

function location(bucket: string, region: string, key: string): string {
  return `${bucket}.cos.${region}.myqcloud.com/${key}`;
}

interface OutputTarget {
  readonly region: string;
  readonly bucket: string;
  readonly objectTemplate: string;
}

function readOutput(operation: XmlObject, job: ProcessingJob): OutputTarget {
  const output = operation.Output;
  if (!isXmlObject(output)) throw invalid('Operation/Output is required.');
  // Not trimmed: spaces are legal at the ends of an object key.
  const objectTemplate = typeof output.Object === 'string' ? output.Object : '';
  if (objectTemplate.trim() === '') throw invalid('Output/Object is required.');
  const bucket = text(output.Bucket) || job.bucket;
  const region = text(output.Region) || job.region;
  try {
    assertSafeBucket(bucket, 'Output/Bucket');
  } catch (err) {
    throw toJobError(err);
  }
  // Check the key before any work; only ${ext} is still unknown and cannot make it unsafe.
  safeKey(expandObjectTemplate(objectTemplate, { inputObject: job.inputObject, extension: 'jpg', jobId: job.jobId }));
  return { region, bucket, objectTemplate };
}

/** Runs `use` on the input object, opened where libvips reads it itself. */
async function withInput<T>(ctx: ProcessorContext, use: (input: ImageSource) => Promise<T>): Promise<T> {
  const { job } = ctx;
  try {
    return await ctx.storage.withLocalFile(job.bucket, job.inputObject, async (file) => use(await ImageSource.fromFile(file)));
  } catch (err) {
    if (err instanceof ObjectNotFoundError) throw new PermanentJobError('NoSuchKey', `The input object ${job.inputObject} does not exist.`);
    throw toJobError(err);
  }
}

function buildResult(
  job: ProcessingJob,
  target: OutputTarget,
  key: string,
  result: MogrResult,
  stored: { size: number; etag: string },
  isPicInfo: boolean,
  inputEtag: string | undefined,
): XmlObject {
  const { original, output } = result;
  const imageInfo: XmlObject = {
    Format: original.format,
    Width: String(original.width),
    Height: String(original.height),
    Quality: String(original.quality),
    Ave: original.ave ?? '',
    Orientation: String(original.orientation),
  };
  const outputLocation = location(target.bucket, target.region, key);
  const pic: XmlObject = { ObjectName: key };
  if (isPicInfo) pic.OriginalInfo = { Etag: inputEtag ?? '', ImageInfo: imageInfo };
  pic.ProcessResult = {
    Format: output.format,
    Width: String(output.width),
    Height: String(output.height),
    Quality: String(output.quality),
    Size: String(stored.size),
    Etag: stored.etag,
  };
  // The Go SDK decodes PicProcessResult as COS's UploadResult (§5.2); other SDKs ignore it.
  const upload: XmlObject = {};
  if (isPicInfo) {
    upload.OriginalInfo = { Key: job.inputObject, Location: location(job.bucket, job.region, job.inputObject), ETag: inputEtag ?? '', ImageInfo: imageInfo };
  }
  upload.ProcessResults = {
    Object: {
      Key: key,
      Location: outputLocation,
      Format: output.format,
      Width: String(output.width),
      Height: String(output.height),
      Size: String(stored.size),
      Quality: String(output.quality),
      Etag: stored.etag,
    },
  };
  pic.UploadResult = upload;
  return { PicProcessResult: pic };
}

/** Processes `PicProcess` jobs; see the module comment for codes and placeholders. */
export const picProcessProcessor: Processor = {
  tag: 'PicProcess',
  slotsItsTool: true,
  async run(ctx: ProcessorContext): Promise<XmlObject> {
    const { job, signal } = ctx;
    const pic = job.operation.PicProcess;
    if (!isXmlObject(pic)) throw invalid('Operation/PicProcess (or a TemplateId) is required.');
    const isPicInfo = parseIsPicInfo(pic.IsPicInfo);
    const rule = text(pic.ProcessRule);
    if (!rule) throw invalid('PicProcess/ProcessRule is required.');
    const steps = parseMogrRuleWithinLimits(rule, ctx.config.picLimits);
    const target = readOutput(job.operation, job);

    const { result, inputEtag } = await withInput(ctx, async (input) => {
      signal.throwIfAborted();
      ctx.setProgress(10);
      const applied = await applyMogrRule(input, steps, { limits: ctx.config.picLimits, averageColour: isPicInfo, signal, pixelWork: ctx.withToolSlot });
      if (!isPicInfo) return { result: applied, inputEtag: undefined };
      // The object's Etag is the storage's to tell (COS reports it without a download).
      const stat = await ctx.storage.stat(job.bucket, job.inputObject);
      if (!stat) throw new ObjectNotFoundError(job.bucket, job.inputObject);
      return { result: applied, inputEtag: stat.etag };
    });
    ctx.setProgress(80);

    const key = safeKey(expandObjectTemplate(target.objectTemplate, { inputObject: job.inputObject, extension: result.output.extension, jobId: job.jobId }));
    signal.throwIfAborted();
    const stored = await ctx.storage.put(target.bucket, key, result.output.data).catch((err: unknown) => {
      throw toJobError(err);
    });
    if (signal.aborted) {
      // Cancelled while writing: leave nothing behind (processor contract), except when the
      // output replaced the input itself, which deleting would lose altogether.
      const replacedInput = target.bucket === job.bucket && key === job.inputObject;
      if (!replacedInput) await ctx.storage.delete(target.bucket, key).catch(() => undefined);
      signal.throwIfAborted();
    }
    ctx.setProgress(100);
    return buildResult(job, target, key, result, stored, isPicInfo, inputEtag);
  },
};

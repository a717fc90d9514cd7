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
 * jpg, png, webp, gif, bmp, tiff, avif) and `${JobId}`, as media-output.ts
 * expands them for every Tag (also `${Ext}`, `${Jobid}`). Any other `${…}`,
 * `${Number}` included, is refused. E.g. `thumbs/${InputName}.${ext}` for `photos/deer.jpg` with
 * `format/webp` writes `thumbs/deer.webp`.
 */
import { PermanentJobError, toJobError } from '../engine/job-errors.js';
import { ImageSource } from '../images/image-source.js';
import { applyMogrRule, type MogrResult } from '../images/mogr-apply.js';
import { parseMogrRuleWithinLimits } from '../images/mogr-rule.js';
import { ObjectNotFoundError } from '../storage/storage.js';
import { isXmlObject, type XmlObject } from '../xml/tree.js';
import { asSubmitError, expandObject, flag, invalid, readOutput, safeKey, SUBMIT_CHECK_JOB, text, type OutputTarget } from './media-output.js';
import type { Processor, ProcessorContext, ProcessingJob } from './processor.js';

function location(bucket: string, region: string, key: string): string {
  return `${bucket}.cos.${region}.myqcloud.com/${key}`;
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

/** Submit-time check of the Output (the rule is checked by submit.ts, against the bucket's templates). */
export function checkPicProcessOperation(operation: XmlObject, _config: unknown, where: string): void {
  try {
    readOutput(operation, SUBMIT_CHECK_JOB, false);
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

/** Processes `PicProcess` jobs; see the module comment for codes and placeholders. */
export const picProcessProcessor: Processor = {
  tag: 'PicProcess',
  slotsItsTool: true,
  async run(ctx: ProcessorContext): Promise<XmlObject> {
    const { job, signal } = ctx;
    const pic = job.operation.PicProcess;
    if (!isXmlObject(pic)) throw invalid('Operation/PicProcess (or a TemplateId) is required.');
    const isPicInfo = flag(pic.IsPicInfo, 'PicProcess/IsPicInfo');
    const rule = text(pic.ProcessRule);
    if (!rule) throw invalid('PicProcess/ProcessRule is required.');
    const steps = parseMogrRuleWithinLimits(rule, ctx.config.picLimits);
    // ${Number} is for Tags that write several objects; ${ext} is known once the rule has run.
    const target = readOutput(job.operation, job, false);

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

    const key = safeKey(expandObject(target.object, { inputObject: job.inputObject, extension: result.output.extension, jobId: job.jobId }));
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

import type { Config, PicLimits } from '../config.js';
import { CiError } from '../errors.js';
import { assertMatchesSchema } from '../validation/xml-request.js';
import { newId } from '../ids.js';
import { SUPPORTED_TAG_LIST, isSupportedTag, tagSpec, type SupportedTag } from '../processors/tags.js';
import { checkTemplateRefs, hasTemplateRefs } from '../processors/template-refs.js';
import type { Db } from '../store/database.js';
import type { Executor, Job, JobCallback, NewJob, QueueChoice } from '../store/jobs.repository.js';
import { ensureDefaultQueue } from '../store/queues.repository.js';
import { findTemplateOrPreset } from '../templates/official-presets.js';
import { assertSafeBucket, assertSafeObjectKey } from '../storage/object-key.js';
import { isXmlObject, type XmlObject, type XmlValue } from '../xml/tree.js';
import type { JobInserter } from './job-inserter.js';
import { validateCallbackUrlSyntax } from '../callbacks/url-policy.js';
import { parseMogrRuleWithinLimits } from '../images/mogr-rule.js';
import { PermanentJobError } from './job-errors.js';

export interface SubmitTarget {
  readonly bucket: string;
  readonly region: string;
}

/** One Operation after validation: its Tag and the Operation as it will be echoed. */
interface PlannedOperation {
  readonly tag: string;
  readonly operation: XmlObject;
  readonly priority: number;
  /** A Tag of MEDIAJOBS_EXTERNAL_TAGS: for external workers. */
  readonly external?: boolean;
  readonly jobIdPrefix: 'j' | 'f';
}

export interface SubmitDeps {
  readonly db: Db;
  readonly config: Config;
  readonly jobInserter: JobInserter;
}

/**
 * CreateMediaJobs: validates a parsed `<Request>` (single or multi-Operation
 * form) and stores one job per Operation, in order, in one transaction.
 * Either every job is stored or none is.
 */
export async function submitJobs(deps: SubmitDeps, target: SubmitTarget, request: XmlObject): Promise<Job[]> {
  const { db, config, jobInserter } = deps;
  const multi = request.Tag === undefined;
  const operations = multi ? asOperationList(request.Operation) : [asSingleOperation(request.Operation)];
  if (multi) {
    assertMatchesSchema('create-multi-media-jobs.request.json', { ...request, Operation: operations }, 'Request');
  } else {
    if (!isExternalTag(config, request.Tag)) assertSupportedTag(request.Tag, 'Request/Tag');
    assertMatchesSchema('create-media-jobs.request.json', { ...request, Operation: operations[0] }, 'Request');
  }
  // Concat (its pieces are its ConcatFragments) and FileCompress (its sources are in its config) may come without Input; the job's Input/Object is then empty.
  const inputOptional = operations.every((op) => {
    const tag = multi ? op.Tag : request.Tag;
    return typeof tag === 'string' && isSupportedTag(tag) && tagSpec(tag).inputOptional === true;
  });
  if (request.Input === undefined && !inputOptional) throw new CiError('InvalidArgument', 'Request/Input is required.');
  const input = request.Input as XmlObject | undefined;
  const inputObject = input === undefined ? '' : assertSafeObjectKey(input.Object as string, 'Request/Input/Object');
  const callback = parseCallback(request, config.callbacks.allowPrivateAddresses);

  const planned: PlannedOperation[] = [];
  for (const [index, operation] of operations.entries()) {
    const tag = multi ? (operation.Tag as string) : (request.Tag as string);
    const where = multi ? `Request/Operation[${index + 1}]` : 'Request/Operation';
    planned.push(await planOperation(db.kysely, config, target.bucket, tag, operation, where, multi));
    if (tag === 'PicProcess' && !isExternalTag(config, tag)) await assertPicProcessRuleAllowed(db.kysely, target.bucket, operation, where, config.picLimits);
  }
  const expiresAt = new Date(Date.now() + config.jobTtlMs);
  const jobs: NewJob[] = planned.map((op) => ({
    jobId: newId(op.jobIdPrefix),
    bucket: target.bucket,
    region: target.region,
    tag: op.tag,
    priority: op.priority,
    inputObject,
    operation: op.operation,
    callback,
    maxAttempts: config.maxAttempts,
    expiresAt,
    // An external Tag's job waits for a worker of the task API, which gets its Input and Operation as task_data.
    ...(op.external ? { external: true, taskData: { Input: request.Input ?? '', Operation: op.operation } } : {}),
  }));
  // No transaction: one INSERT … SELECT reads the queue and stores every job,
  // atomically by itself, together with the submissions that arrive at the
  // same time (JobInserter), which matters when a job itself takes a few
  // milliseconds.
  const queueId = request.QueueId as string | undefined;
  const queue: QueueChoice = { bucket: target.bucket, queueId };
  let stored = await jobInserter.insert(queue, jobs);
  if (stored.length === 0 && queueId === undefined) {
    // The bucket's first job: its default queue is created on first use.
    await ensureDefaultQueue(db.kysely, target.bucket);
    stored = await jobInserter.insert(queue, jobs);
  }
  if (stored.length === 0) throw new CiError('InvalidArgument', `Request/QueueId ${queueId} does not exist.`);
  return stored;
}

function asOperationList(value: XmlValue | undefined): XmlObject[] {
  if (value === undefined) throw new CiError('InvalidArgument', 'Request/Tag or Request/Operation/Tag is required.');
  const list = Array.isArray(value) ? value : [value];
  return list.map((item) => (item === '' ? {} : item)) as XmlObject[];
}

function asSingleOperation(value: XmlValue | undefined): XmlObject {
  if (value === undefined || value === '') return {};
  if (Array.isArray(value)) throw new CiError('InvalidArgument', 'Request/Operation must appear once when Request/Tag is given; use one Tag per Operation for several.');
  if (!isXmlObject(value)) throw new CiError('InvalidArgument', 'Request/Operation must contain elements.');
  return value;
}

function assertSupportedTag(tag: XmlValue | undefined, where: string): asserts tag is SupportedTag {
  if (typeof tag !== 'string' || !isSupportedTag(tag)) {
    const shown = typeof tag === 'string' ? `"${tag}"` : 'missing or repeated';
    throw new CiError('InvalidArgument', `${where} ${shown} is not supported; supported Tags: ${SUPPORTED_TAG_LIST}.`);
  }
}

/** A Tag named in MEDIAJOBS_EXTERNAL_TAGS: accepted here, run by external workers (the task API's get_next_task). */
function isExternalTag(config: Config, tag: XmlValue | undefined): tag is string {
  return typeof tag === 'string' && config.tasks.externalTags.includes(tag);
}

/**
 * An external Tag's Operation: only what every Tag shares is checked (the
 * external worker knows the rest), and it is echoed as given, Tag first in
 * the multi form.
 */
function planExternalOperation(tag: string, operation: XmlObject, where: string, multi: boolean): PlannedOperation {
  assertMatchesSchema('operation.common.json', operation, where);
  const { Tag: _tag, ...rest } = operation;
  const echo: XmlObject = multi ? { Tag: tag, ...rest } : { ...rest };
  const level = (operation.JobLevel as string | undefined) || '0';
  echo.JobLevel = level;
  return { tag, operation: echo, priority: Number(level), external: true, jobIdPrefix: 'j' };
}

async function planOperation(tx: Executor, config: Config, bucket: string, tag: string, operation: XmlObject, where: string, multi: boolean): Promise<PlannedOperation> {
  if (isExternalTag(config, tag)) return planExternalOperation(tag, operation, where, multi);
  assertSupportedTag(tag, `${where}/Tag`);
  const spec = tagSpec(tag);
  assertMatchesSchema(spec.operationSchema, operation, where);
  spec.check?.(operation, config, where, bucket);
  // WatermarkTemplateId and TranscodeTemplateId (template-refs.ts), read in this transaction.
  if (hasTemplateRefs(operation)) await checkTemplateRefs(operation, (id) => findTemplateOrPreset(tx, bucket, id), config, where, bucket);

  // The echo keeps CI's element order: Tag (multi form), TemplateId, TemplateName, the type container, Output, UserData, JobLevel.
  const echo: XmlObject = {};
  if (multi) echo.Tag = tag;
  const templateId = operation.TemplateId as string | undefined;
  if (templateId) {
    const template = await findTemplateOrPreset(tx, bucket, templateId);
    if (!template || template.tag !== tag) throw new CiError('InvalidArgument', `${where}/TemplateId ${templateId} does not exist.`);
    echo.TemplateId = templateId;
    echo.TemplateName = template.name;
  }
  if (operation.PicProcess !== undefined && !templateId) echo.PicProcess = operation.PicProcess;
  for (const name of [...(spec.container !== undefined ? [spec.container] : []), ...(spec.echoes ?? [])]) {
    // A template replaces the Tag's container only: Transcode's Watermarks still come from the request.
    if (operation[name] !== undefined && (!templateId || name !== spec.container)) echo[name] = operation[name];
  }
  if (spec.needsOutput) {
    const output = operation.Output as XmlObject;
    // StreamExtract names its objects in Output/StreamExtract instead of Output/Object.
    if (output.Object !== undefined || output.StreamExtract === undefined) assertSafeObjectKey(output.Object as string, `${where}/Output/Object`);
    if (typeof output.Bucket === 'string' && output.Bucket !== '') assertSameAccount(bucket, assertSafeBucket(output.Bucket, `${where}/Output/Bucket`), where);
    echo.Output = {
      Region: output.Region,
      Bucket: output.Bucket,
      ...(output.Object !== undefined ? { Object: output.Object } : {}),
      ...(output.SpriteObject !== undefined ? { SpriteObject: output.SpriteObject } : {}),
      ...(output.StreamExtract !== undefined ? { StreamExtract: output.StreamExtract } : {}),
    };
  }
  if (operation.UserData !== undefined) echo.UserData = operation.UserData;
  const level = (operation.JobLevel as string | undefined) || '0';
  echo.JobLevel = level;
  return { tag, operation: echo, priority: Number(level), jobIdPrefix: spec.jobIdPrefix ?? 'j' };
}

/**
 * A PicProcess rule (inline, or its template's: TemplateId wins) is parsed
 * and held to the limits of `images/mogr-rule.ts` at submit, so that a rule
 * asking for unbounded work (91 blurs, a 100 Mpx thumbnail) is a 400 naming
 * the limit, not a job that runs for minutes or fails later.
 */
async function assertPicProcessRuleAllowed(tx: Executor, bucket: string, operation: XmlObject, where: string, limits: PicLimits): Promise<void> {
  const templateId = operation.TemplateId;
  const container = typeof templateId === 'string' && templateId !== '' ? (await findTemplateOrPreset(tx, bucket, templateId))?.body : operation.PicProcess;
  const rule = isXmlObject(container) ? container.ProcessRule : undefined;
  if (typeof rule !== 'string') return;
  try {
    parseMogrRuleWithinLimits(rule, limits);
  } catch (err) {
    if (!(err instanceof PermanentJobError)) throw err;
    throw new CiError('InvalidArgument', `${where}/${typeof templateId === 'string' && templateId !== '' ? `TemplateId ${templateId}: ` : 'PicProcess/'}${err.message}`);
  }
}

/**
 * A job writes only into buckets of its own bucket's account (the APPID after
 * the last "-"), as CI does: without this, whoever may submit to one bucket
 * could write into every bucket this service stores.
 */
function assertSameAccount(jobBucket: string, outputBucket: string, where: string): void {
  const appId = (name: string) => name.slice(name.lastIndexOf('-') + 1);
  if (appId(outputBucket) !== appId(jobBucket)) {
    throw new CiError('AccessDenied', `${where}/Output/Bucket ${outputBucket} belongs to another APPID than ${jobBucket}.`);
  }
}

function parseCallback(request: XmlObject, allowPrivateAddresses: boolean): JobCallback {
  const url = (request.CallBack as string | undefined) || undefined;
  if (url !== undefined && url !== 'no') {
    try {
      validateCallbackUrlSyntax(url, { allowPrivateAddresses });
    } catch (err) {
      throw new CiError('InvalidArgument', `Request/CallBack ${(err as Error).message}`);
    }
  }
  return {
    url,
    format: ((request.CallBackFormat as string | undefined) || undefined) as JobCallback['format'],
    type: (request.CallBackType as string | undefined) || undefined,
  };
}

import { PermanentJobError } from '../engine/job-errors.js';
import { CiError } from '../errors.js';
import { newTemplateId, TEMPLATE_ID_PATTERN } from '../ids.js';
import { parseMogrRule } from '../images/mogr-rule.js';
import { parseAnimation } from '../processors/animation.js';
import { parseSnapshot } from '../processors/snapshot.js';
import { parseTranscode } from '../processors/transcode.js';
import { parseConcat } from '../processors/concat.js';
import { noiseReductionSpec } from '../processors/noise-reduction.js';
import { parseSmartCover } from '../processors/smart-cover.js';
import { videoProcessFilters } from '../processors/video-process.js';
import { deleteTemplate, insertTemplate, listTemplates, updateTemplate } from '../store/templates.repository.js';
import {
  buildDeleteMediaTemplateResponse,
  buildDescribeMediaTemplatesResponse,
  buildTemplateResponse,
} from '../xml/responses.js';
import { isXmlObject, type XmlObject, type XmlValue } from '../xml/tree.js';
import { readXmlBody } from './body.js';
import type { AppContext } from './context.js';
import { optionalPositiveQuery, optionalQuery, writeXml, type Handler } from './handler.js';
import { assertMatchesSchema } from '../validation/xml-request.js';
import { findOfficialTemplate, listOfficialTemplates } from '../templates/official-presets.js';
import { FLAT, isTemplateTag, TEMPLATE_TAGS, type TemplateTag } from '../templates/template-tags.js';

/*
 * Image-processing templates (shared/ci-api.md §5.3). A template is the
 * bucket's own: every lookup is by (bucket, TemplateId), so another bucket's
 * id reads as unknown. Unknown ids are 400 InvalidArgument, the code CI's
 * job submission also uses for them (§7.2 leaves the exact code open).
 */

/**
 * What is checked before a template is stored, per Tag (the shapes are in
 * templates/template-tags.ts): the Tags that run here are checked as their
 * jobs are, so a template no job could run is a 400 now; the others are
 * stored as sent (their Tags do not run here), so that provisioning scripts
 * work. Watermark templates are checked when a Transcode names them. A check
 * returns the parameters to store when it normalizes them.
 */
const TEMPLATE_CHECKS: Partial<Record<TemplateTag, (params: XmlObject) => XmlObject | void>> = {
  PicProcess: (params) => {
    const rule = params.ProcessRule as string;
    assertValidRule(rule, 'Request/PicProcess');
    // Stored complete, so every answer shows both elements and the worker reads no defaults.
    return { IsPicInfo: (params.IsPicInfo as string | undefined) || 'false', ProcessRule: rule };
  },
  Transcode: (params) => { parseTranscode(params); },
  Snapshot: (params) => { parseSnapshot(params); },
  Animation: (params) => { parseAnimation(params); },
  Concat: (params) => { parseConcat(params, undefined); },
  SmartCover: (params) => { parseSmartCover(params); },
  VideoProcess: (params) => { videoProcessFilters(params); },
  NoiseReduction: (params) => { noiseReductionSpec({ NoiseReduction: params }); },
};

const MAX_IDS = 100;
/** CI's largest templates (Transcode with every block, three watermarks) are a few KiB. */
const MAX_PARAMS_CHARS = 64 * 1024;

/** `POST /template` — CreateMediaTemplate. */
export const createMediaTemplate: Handler = async (ctx, deps) => {
  const request = await readXmlBody(ctx, deps.config.maxBodyBytes);
  const { tag, name, body } = parseTemplateRequest(request);
  const template = await insertTemplate(deps.db.kysely, { templateId: newTemplateId(), bucket: ctx.state.bucket, tag, name, body });
  writeXml(ctx, buildTemplateResponse(ctx.state.requestId, template));
};

/** `GET /template` — DescribeMediaTemplates. No tag lists every tag (the Python SDK sends none). */
export const describeMediaTemplates: Handler = async (ctx, deps) => {
  const category = optionalQuery(ctx, 'category') ?? 'Custom';
  if (category !== 'Custom' && category !== 'Official') throw new CiError('InvalidArgument', 'category must be Custom or Official.');
  const ids = optionalQuery(ctx, 'ids')?.split(',').map((s) => s.trim()).filter(Boolean);
  if (ids && ids.length > MAX_IDS) throw new CiError('InvalidArgument', `At most ${MAX_IDS} ids may be given at once.`);
  const pageNumber = optionalPositiveQuery(ctx, 'pageNumber', 1, 1_000_000);
  const pageSize = optionalPositiveQuery(ctx, 'pageSize', 10, 100);
  // An unknown tag is not an error: CI has many template Tags, and a bucket simply has none of most.
  const filter = { tag: optionalQuery(ctx, 'tag'), ids, name: optionalQuery(ctx, 'name'), pageNumber, pageSize };
  const { templates, total } = category === 'Official'
    ? listOfficialTemplates(filter)
    : await listTemplates(deps.db.kysely, { bucket: ctx.state.bucket, ...filter });
  writeXml(ctx, buildDescribeMediaTemplatesResponse({ requestId: ctx.state.requestId, templates, total, pageNumber, pageSize }));
};

/** `PUT /template/<TemplateId>` — UpdateMediaTemplate: replaces Name and the parameters; Tag cannot change. */
export const updateMediaTemplate: Handler = async (ctx, deps) => {
  const templateId = templateIdParam(ctx);
  const request = await readXmlBody(ctx, deps.config.maxBodyBytes);
  const { tag, name, body } = parseTemplateRequest(request);
  const template = await deps.db.kysely.transaction().execute(async (tx) => {
    const updated = await updateTemplate(tx, ctx.state.bucket, templateId, { name, body });
    // Checked after the write, inside the transaction, so a mismatch rolls it back.
    if (updated && updated.tag !== tag) throw new CiError('InvalidArgument', `Template ${templateId} is a ${updated.tag} template; Request/Tag cannot change it to ${tag}.`);
    return updated;
  });
  if (!template) throw unknownTemplate(templateId);
  writeXml(ctx, buildTemplateResponse(ctx.state.requestId, template));
};

/**
 * `DELETE /template/<TemplateId>` — DeleteMediaTemplate. Jobs already
 * submitted with the template and not yet run will fail with InvalidArgument
 * when their turn comes, since the rule is read at run time.
 */
export const deleteMediaTemplate: Handler = async (ctx, deps) => {
  const templateId = templateIdParam(ctx);
  if (!(await deleteTemplate(deps.db.kysely, ctx.state.bucket, templateId))) throw unknownTemplate(templateId);
  writeXml(ctx, buildDeleteMediaTemplateResponse(ctx.state.requestId, templateId));
};

/** Validates a create or update body and returns what is stored: the Tag's parameters, as its job would take them. */
function parseTemplateRequest(request: XmlObject): { tag: TemplateTag; name: string; body: XmlObject } {
  const tag = assertTemplateTag(request.Tag);
  const shape = TEMPLATE_TAGS[tag];
  assertMatchesSchema(shape.schema, request, 'Request');
  const params = shape.params === FLAT
    ? Object.fromEntries(Object.entries(request).filter(([n]) => !['Tag', 'Name', 'TemplateId'].includes(n)))
    : request[shape.params];
  if (!isXmlObject(params) || Object.keys(params).length === 0) {
    throw new CiError('InvalidArgument', shape.params === FLAT ? 'Request: the parameters of the template are required.' : `Request/${shape.params} is required.`);
  }
  // Bodies stored as sent could otherwise each be as large as a request (1 MiB), and a page of 100 a 100 MB answer.
  if (JSON.stringify(params).length > MAX_PARAMS_CHARS) throw new CiError('InvalidArgument', `Request: the parameters of a template are at most ${MAX_PARAMS_CHARS / 1024} KiB.`);
  try {
    return { tag, name: request.Name as string, body: TEMPLATE_CHECKS[tag]?.(params) ?? params };
  } catch (err) {
    if (err instanceof PermanentJobError) throw new CiError('InvalidArgument', `Request/${err.message}`);
    throw err;
  }
}

function assertTemplateTag(tag: XmlValue | undefined): TemplateTag {
  if (typeof tag === 'string' && isTemplateTag(tag)) return tag;
  const shown = tag === undefined ? 'is required' : typeof tag === 'string' ? `"${tag}" is not supported` : 'must appear once';
  throw new CiError('InvalidArgument', `Request/Tag ${shown}; supported template Tags: ${Object.keys(TEMPLATE_TAGS).join(', ')}.`);
}

/** The rule is parsed now, so a typo fails the request rather than every job that uses the template. */
function assertValidRule(rule: string, where: string): void {
  try {
    parseMogrRule(rule);
  } catch (err) {
    if (err instanceof PermanentJobError) throw new CiError('InvalidArgument', `${where}/${err.message}`);
    throw err;
  }
}

function templateIdParam(ctx: AppContext): string {
  const templateId = ctx.params.templateId ?? '';
  if (findOfficialTemplate(templateId)) throw new CiError('InvalidArgument', `Template ${templateId} is an Official template, which cannot be changed or deleted.`);
  if (!TEMPLATE_ID_PATTERN.test(templateId)) throw new CiError('InvalidArgument', `${templateId} is not a template id.`);
  return templateId;
}

function unknownTemplate(templateId: string): CiError {
  return new CiError('InvalidArgument', `Template ${templateId} does not exist.`);
}

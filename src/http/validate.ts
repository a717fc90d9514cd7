import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { CiError } from '../errors.js';
import type { XmlObject } from '../xml/tree.js';

/*
 * Request shapes are declared as JSON Schemas in `schemas/` and applied to the
 * parsed XML. Rules a schema cannot state (a QueueId that must exist, an
 * object key that must stay inside its bucket) live in the handlers.
 */

const here = fileURLToPath(import.meta.url);
const SCHEMAS_DIR = path.resolve(path.dirname(here), here.includes(`${path.sep}dist${path.sep}`) ? '../../..' : '../..', 'schemas');

// strictRequired is off: `anyOf: [{required: [TemplateId]}, …]` names properties declared beside it, not inside.
const ajv = new Ajv({ allErrors: false, verbose: true, strict: true, strictRequired: false, allowUnionTypes: true });
for (const file of readdirSync(SCHEMAS_DIR).filter((f) => f.endsWith('.json'))) {
  ajv.addSchema(JSON.parse(readFileSync(path.join(SCHEMAS_DIR, file), 'utf8')) as object);
}
// Compile every schema now, so a broken one stops the start instead of failing a request.
for (const id of Object.keys(ajv.schemas)) {
  if (id.endsWith('.json')) ajv.getSchema(id);
}

export type SchemaId =
  | 'create-media-jobs.request.json'
  | 'create-multi-media-jobs.request.json'
  | 'operation.common.json'
  | 'operation.media-info.json'
  | 'operation.pic-process.json'
  | 'operation.transcode.json'
  | 'operation.snapshot.json'
  | 'operation.animation.json'
  | 'template.transcode.request.json'
  | 'template.snapshot.request.json'
  | 'template.animation.request.json'
  | 'template.stored.request.json'
  | 'operation.segment.json'
  | 'operation.concat.json'
  | 'operation.stream-extract.json'
  | 'operation.video-process.json'
  | 'operation.noise-reduction.json'
  | 'operation.smart-cover.json'
  | 'operation.video-montage.json'
  | 'update-media-queue.request.json'
  | 'create-template.request.json'
  | 'update-template.request.json';

function validator(id: SchemaId): ValidateFunction {
  const validate = ajv.getSchema(id);
  if (!validate) throw new Error(`schema ${id} is not in ${SCHEMAS_DIR}`);
  return validate;
}

/** Throws `InvalidArgument` naming the first element that breaks the schema. */
export function assertMatchesSchema(id: SchemaId, value: XmlObject, elementPath: string): void {
  const validate = validator(id);
  if (validate(value)) return;
  // An anyOf failure also reports each branch's failure first; the anyOf itself says more.
  const errors = validate.errors ?? [];
  throw new CiError('InvalidArgument', describeError(errors.find((e) => e.keyword === 'anyOf') ?? errors[0], elementPath));
}

function describeError(error: ErrorObject | undefined, root: string): string {
  if (!error) return `${root} is invalid.`;
  const where = [root, ...error.instancePath.split('/').filter(Boolean).filter((p) => !/^\d+$/.test(p))].join('/');
  const described = (error.parentSchema as { description?: string } | undefined)?.description;
  switch (error.keyword) {
    case 'required':
      return `${where}/${(error.params as { missingProperty: string }).missingProperty} is required.`;
    case 'additionalProperties':
      return `${where}/${(error.params as { additionalProperty: string }).additionalProperty} is not a supported element here.`;
    case 'anyOf':
      return `${where} needs one of: ${(error.schema as Array<{ required: string[] }>).map((s) => s.required.join('+')).join(', ')}.`;
    case 'type':
      return described ? `${where} ${described}.` : `${where} must be ${error.params.type === 'string' ? 'a single text element' : 'an element with children'}.`;
    case 'minLength':
      return `${where} must not be empty.`;
    case 'maxLength':
      return `${where} must be at most ${(error.params as { limit: number }).limit} characters.`;
    default:
      return described ? `${where} ${described}.` : `${where} ${error.message ?? 'is invalid'}.`;
  }
}

/**
 * Validates a JSON request body (the task API's, `schemas/task-api.*.json`)
 * with the same schemas and the same Ajv as the XML bodies; returns what is
 * wrong in words a client can act on, or undefined when it matches.
 */
export function jsonSchemaProblem(id: string, value: unknown): string | undefined {
  const validate = ajv.getSchema(id);
  if (!validate) throw new Error(`schema ${id} is not in ${SCHEMAS_DIR}`);
  if (validate(value)) return undefined;
  const error = validate.errors?.[0];
  if (!error) return 'the body is invalid';
  const field = error.instancePath.split('/').filter(Boolean).join('.') || 'the body';
  const described = (error.parentSchema as { description?: string } | undefined)?.description;
  switch (error.keyword) {
    case 'required':
      return `${(error.params as { missingProperty: string }).missingProperty} is required`;
    case 'additionalProperties':
      return `${(error.params as { additionalProperty: string }).additionalProperty} is not a field of this action`;
    default:
      return described ? `${field} ${described}` : `${field} ${error.message ?? 'is invalid'}`;
  }
}

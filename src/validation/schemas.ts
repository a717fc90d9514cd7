import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';

/*
 * Every request shape of every front door is a JSON Schema in `schemas/`:
 * the CI XML API's bodies (applied to the parsed XML), the task API's
 * (`task-api.*.json`) and the admin API's (`admin.*.json`). They are loaded
 * here, once, into one Ajv, which lives below the front doors so the engine
 * (submit.ts) and every API validate with the same schemas and the same code.
 * Each front door turns a failure into its own error: `xml-request.ts` into
 * CI's InvalidArgument, `json-body.ts` into words the task and admin APIs wrap
 * in their own envelopes. Rules a schema cannot state (a QueueId that must
 * exist, an object key that must stay inside its bucket) live beside the code
 * that knows them.
 */

const here = fileURLToPath(import.meta.url);
/** `schemas/` at the package root, from `src/validation/` or from `dist/src/validation/`. */
export const SCHEMAS_DIR = path.resolve(path.dirname(here), here.includes(`${path.sep}dist${path.sep}`) ? '../../..' : '../..', 'schemas');

// strictRequired is off: `anyOf: [{required: [TemplateId]}, …]` names properties declared beside it, not inside.
const ajv = new Ajv({ allErrors: false, verbose: true, strict: true, strictRequired: false, allowUnionTypes: true });
for (const file of readdirSync(SCHEMAS_DIR).filter((f) => f.endsWith('.json'))) {
  ajv.addSchema(JSON.parse(readFileSync(path.join(SCHEMAS_DIR, file), 'utf8')) as object);
}
// Compile every schema now, so a broken one stops the start instead of failing a request.
for (const id of Object.keys(ajv.schemas)) {
  if (id.endsWith('.json')) ajv.getSchema(id);
}

/** The CI XML API's request and Operation schemas (`$id` = file name). */
export type XmlSchemaId =
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
  | 'operation.file-hash-code.json'
  | 'operation.watermark.json'
  | 'operation.video-enhance.json'
  | 'operation.split-video-parts.json'
  | 'operation.segment-video-body.json'
  | 'operation.file-compress.json'
  | 'operation.file-uncompress.json'
  | 'update-media-queue.request.json'
  | 'create-template.request.json';

/** The JSON APIs' body schemas: one per task-API action, and the admin API's. */
export type JsonSchemaId = `task-api.${string}.json` | 'admin.create-app.request.json';

/** The compiled validator of a schema in `schemas/`; throws (a bug, not a bad request) if there is none. */
export function schemaValidator(id: XmlSchemaId | JsonSchemaId): ValidateFunction {
  const validate = ajv.getSchema(id);
  if (!validate) throw new Error(`schema ${id} is not in ${SCHEMAS_DIR}`);
  return validate;
}

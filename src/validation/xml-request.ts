import type { ErrorObject } from 'ajv';
import { CiError } from '../errors.js';
import type { XmlObject } from '../xml/tree.js';
import { schemaValidator, type XmlSchemaId } from './schemas.js';

/*
 * The CI XML API's entry point: a parsed `<Request>` (or one of its
 * Operations) against its schema, a failure as CI's `InvalidArgument` naming
 * the element, as `Request/Operation/Output/Object is required.`
 */

/** Throws `InvalidArgument` naming the first element that breaks the schema. */
export function assertMatchesSchema(id: XmlSchemaId, value: XmlObject, elementPath: string): void {
  const validate = schemaValidator(id);
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
    case 'anyOf': {
      // Either a choice of required elements (TemplateId or the Tag's container) or a choice of shapes (one Key or a list of them).
      const branches = error.schema as Array<{ required?: string[] }>;
      if (branches.every((branch) => branch.required !== undefined)) return `${where} needs one of: ${branches.map((branch) => branch.required!.join('+')).join(', ')}.`;
      return `${where} ${described ?? 'is not of an accepted form'}.`;
    }
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

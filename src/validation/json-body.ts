import { schemaValidator, type JsonSchemaId } from './schemas.js';

/*
 * The JSON APIs' entry point (task API, admin API): a parsed body against its
 * schema, with the same Ajv as the XML bodies. It returns words, not an
 * error: each front door wraps them in its own envelope and status (the task
 * API's `{"code": 0, "msg"}` 400, the admin API's `{"error"}` 400).
 */

/**
 * What is wrong with a JSON body, in words a client can act on ("priority
 * must be an integer from 1 to 10 (higher runs first)"), or undefined when it
 * matches its schema.
 *
 * @example
 * const problem = jsonSchemaProblem(`task-api.${action}.json`, body);
 * if (problem) throw new TaskError('BadRequest', `${problem} (action ${action})`);
 */
export function jsonSchemaProblem(id: JsonSchemaId, value: unknown): string | undefined {
  const validate = schemaValidator(id);
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

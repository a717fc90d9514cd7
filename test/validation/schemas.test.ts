import { expect } from 'chai';
import { CiError } from '../../src/errors.js';
import { SUPPORTED_TAGS } from '../../src/processors/tags.js';
import { jsonSchemaProblem } from '../../src/validation/json-body.js';
import { schemaValidator } from '../../src/validation/schemas.js';
import { assertMatchesSchema } from '../../src/validation/xml-request.js';

const TASK_ACTIONS = ['create_task', 'get_next_task', 'update_progress', 'complete_task', 'fail_task', 'get_task', 'cancel_task', 'list_tasks'];

describe('validation: one set of schemas for every front door', () => {
  it('has an Operation schema for every supported Tag and a body schema for every task-API action', () => {
    for (const [tag, spec] of Object.entries(SUPPORTED_TAGS)) expect(() => schemaValidator(spec.operationSchema), tag).not.to.throw();
    for (const action of TASK_ACTIONS) expect(() => schemaValidator(`task-api.${action}.json`), action).not.to.throw();
    expect(() => schemaValidator('task-api.no_such_action.json')).to.throw(/is not in/);
  });

  it('refuses a CI request as InvalidArgument naming the element', () => {
    let thrown: unknown;
    try {
      assertMatchesSchema('update-media-queue.request.json', { Name: 'q', State: 'Asleep' }, 'Request');
    } catch (err) {
      thrown = err;
    }
    expect(thrown).to.be.instanceOf(CiError);
    expect((thrown as CiError).code).to.equal('InvalidArgument');
    expect((thrown as CiError).message).to.equal('Request/State must be Active or Paused.');
  });

  it('names the element and its accepted forms when an anyOf of shapes fails (4 WatermarkTemplateIds were a 500)', () => {
    const operation = { Transcode: {}, WatermarkTemplateId: ['t1a', 't1b', 't1c', 't1d'], Output: { Region: 'ap-local', Bucket: 'local-1250000000', Object: 'o.mp4' } };
    expect(() => assertMatchesSchema('operation.transcode.json', operation, 'Request/Operation'))
      .to.throw(CiError, 'Request/Operation/WatermarkTemplateId must be up to 3 Watermark template ids such as t1…');
    const keys = { FileCompressConfig: { Key: Array.from({ length: 1001 }, (_, i) => `k${i}`) }, Output: { Region: 'ap-local', Bucket: 'local-1250000000', Object: 'o.zip' } };
    expect(() => assertMatchesSchema('operation.file-compress.json', keys, 'Request/Operation'))
      .to.throw(CiError, 'Request/Operation/FileCompressConfig/Key must be up to 1000 object keys.');
  });

  it('describes a bad task-API body in words a client can act on', () => {
    expect(jsonSchemaProblem('task-api.create_task.json', { app_key: 'k' })).to.equal('task_type is required');
    expect(jsonSchemaProblem('task-api.create_task.json', { app_key: 'k', task_type: 't', priority: 11 })).to.equal('priority must be an integer from 1 to 10 (higher runs first)');
    expect(jsonSchemaProblem('task-api.create_task.json', { app_key: 'k', task_type: 't' })).to.equal(undefined);
  });

  it('checks the admin API\'s create-app body: a name of 1 to 64 printable characters, other fields ignored', () => {
    const id = 'admin.create-app.request.json';
    expect(jsonSchemaProblem(id, {})).to.equal('name is required');
    for (const name of ['', 5, 'a\nb', 'x'.repeat(65)]) expect(jsonSchemaProblem(id, { name }), JSON.stringify(name)).to.equal('name must be 1 to 64 printable characters');
    for (const name of ['x', 'x'.repeat(64), '数据 app']) expect(jsonSchemaProblem(id, { name }), name).to.equal(undefined);
    expect(jsonSchemaProblem(id, { name: 'ok', note: 'extra' })).to.equal(undefined);
  });
});

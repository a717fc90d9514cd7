import { expect } from 'chai';
import { startTestService, type TestService } from '../helpers/service.js';
import { admin, callTask, okTask } from './helpers.js';

/*
 * The task API as a hostile client uses it: every refusal is the JSON
 * envelope with a 4xx, never a 500, and another app's task ids are 404 in
 * every action.
 */
describe('task API: hostile clients', function () {
  this.timeout(60_000);
  let api: TestService;
  let key: string;
  before(async () => {
    api = await startTestService();
    key = api.service.app.appKey;
  });
  after(() => api.stop());

  it('refuses JSON nested too deep with 400 (JSON.stringify and jsonb overflowed: a 500)', async () => {
    const deep = `${'['.repeat(100_000)}1${']'.repeat(100_000)}`;
    const answer = await callTask(api, 'create_task', `{"app_key":"${key}","task_type":"t","task_data":{"a":${deep}}}`);
    expect(answer).to.include({ status: 400, code: 0, data: null });
    expect(answer.msg).to.match(/nests objects and arrays more than 128 deep/);
    const task = await okTask(api, 'create_task', { app_key: key, task_type: 'deep-ok', task_data: { a: JSON.parse(`${'['.repeat(100)}"[{"${']'.repeat(100)}`) } });
    const claimed = await okTask(api, 'get_next_task', { app_key: key, worker_id: 'w-deep', task_types: ['deep-ok'] });
    expect(claimed.id).to.equal(task.task_id);
    const result = `{"x":${'{"y":'.repeat(200)}1${'}'.repeat(200)}}`;
    const refused = await callTask(api, 'complete_task', `{"app_key":"${key}","task_id":${task.task_id},"result":${result}}`);
    expect(refused).to.include({ status: 400, code: 0 });
    expect((await okTask(api, 'get_task', { app_key: key, task_id: task.task_id })).status).to.equal('processing');
  });

  it('answers a NUL in a stored text field with 400 naming the NUL, and stores nothing', async () => {
    for (const [action, body] of [
      ['create_task', `{"app_key":"${key}","task_type":"nul","task_data":{"a":"x\\u0000y"}}`],
      ['create_task', `{"app_key":"${key}","task_type":"nul","unique_key":"k\\u0000"}`],
      ['create_task', `{"app_key":"${key}","task_type":"nul","task_data":{"lone":"\\ud800"}}`],
      ['get_next_task', `{"app_key":"${key}","worker_id":"w\\u0000"}`],
    ] as const) {
      const answer = await callTask(api, action, body);
      expect(answer, body).to.include({ status: 400, code: 0, data: null });
      expect(answer.msg, body).to.match(/NUL character/);
    }
    expect((await okTask(api, 'list_tasks', { app_key: key, task_type: 'nul' })).tasks).to.deep.equal([]);
  });

  it('keeps __proto__ and constructor keys as data, and another app\'s task ids are 404 in every action', async () => {
    const created = await okTask(api, 'create_task', { app_key: key, task_type: 'proto', task_data: JSON.parse('{"__proto__":{"polluted":1},"constructor":{"prototype":{"x":1}}}') });
    const claimed = await okTask(api, 'get_next_task', { app_key: key, worker_id: 'w1', task_types: ['proto'] });
    expect(Object.keys(claimed.task_data)).to.have.members(['__proto__', 'constructor']);
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    const other = (await admin(api, 'POST', '/admin/apps', { name: 'hostile-other' })).body.app_key as string;
    const id = created.task_id as number;
    for (const [action, extra] of [['get_task', {}], ['cancel_task', {}], ['update_progress', { progress: 1 }], ['complete_task', { result: {} }], ['fail_task', { allow_retry: true }]] as const) {
      const answer = await callTask(api, action, { app_key: other, task_id: id, ...extra });
      expect(answer, action).to.include({ status: 404, code: 0 });
    }
    expect(await callTask(api, 'get_next_task', { app_key: other, worker_id: 'w1', task_types: ['proto'] })).to.include({ code: 0, data: null });
    // The holder completes; a retried complete_task is 409 and the first result stays.
    await okTask(api, 'complete_task', { app_key: key, task_id: id, worker_id: 'w1', result: JSON.parse('{"__proto__":{"a":1}}') });
    const again = await callTask(api, 'complete_task', { app_key: key, task_id: id, worker_id: 'w1', result: { b: 2 } });
    expect(again).to.include({ status: 409, code: 0 });
    const task = await okTask(api, 'get_task', { app_key: key, task_id: id });
    expect(task.status).to.equal('completed');
    expect(Object.keys(task.result)).to.deep.equal(['__proto__']);
  });
});

describe('task API: a hostile external worker\'s result for a CI job', function () {
  this.timeout(60_000);
  let api: TestService;
  before(async () => { api = await startTestService({ env: { MEDIAJOBS_EXTERNAL_TAGS: 'SpeechRecognition' } }); });
  after(() => api.stop());

  it('refuses result keys that are no XML names, lists in lists and nesting past 32 (GET /jobs and the whole listing answered 500 or malformed XML)', async () => {
    const key = api.service.app.appKey;
    const created = await api.request('POST', '/jobs', { body: '<Request><Tag>SpeechRecognition</Tag><Input><Object>input/talk.mp3</Object></Input><Operation><SpeechRecognition><EngineModelType>16k_zh</EngineModelType></SpeechRecognition></Operation></Request>' });
    expect(created.status, created.text).to.equal(200);
    const jobId = created.xml.Response.JobsDetail.JobId as string;
    const handed = await okTask(api, 'get_next_task', { app_key: key, worker_id: 'asr', task_types: ['SpeechRecognition'] });
    for (const [what, result, message] of [
      ['a key with a space and <', '{"1 bad<":{"T":"x"}}', /not an XML element name/],
      ['an empty key', '{"":1}', /not an XML element name/],
      ['a key starting with xml', '{"xmlns":1}', /not an XML element name/],
      ['a list in a list', '{"R":[1,[2,[3]]]}', /array directly inside an array/],
      ['nesting 120 deep', `{"R":${'{"a":'.repeat(120)}1${'}'.repeat(120)}}`, /nests deeper than 32/],
    ] as const) {
      const answer = await callTask(api, 'complete_task', `{"app_key":"${key}","task_id":${handed.id},"worker_id":"asr","result":${result}}`);
      expect(answer, what).to.include({ status: 400, code: 0, data: null });
      expect(answer.msg, what).to.match(message);
    }
    expect((await okTask(api, 'get_task', { app_key: key, task_id: handed.id })).status).to.equal('processing');
    await okTask(api, 'complete_task', { app_key: key, task_id: handed.id, worker_id: 'asr', result: { SpeechRecognitionResult: { Result: 'ok', Words: [{ Word: 'a' }, { Word: 'b' }] } } });
    const detail = await api.request('GET', `/jobs/${jobId}`);
    expect(detail.status, detail.text).to.equal(200);
    expect(detail.xml.Response.JobsDetail.Operation.SpeechRecognitionResult.Words).to.deep.equal([{ Word: 'a' }, { Word: 'b' }]);
    expect((await api.request('GET', '/jobs?tag=SpeechRecognition')).status).to.equal(200);
  });
});

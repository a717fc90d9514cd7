import { expect } from 'chai';
import { httpRequest, startTestService, type TestService } from '../helpers/service.js';
import { callTask, okTask } from './helpers.js';

describe('task API: POST /api.php?action=…', function () {
  this.timeout(60_000);
  let api: TestService;
  let key: string;

  before(async () => {
    api = await startTestService({ env: { MEDIAJOBS_TASK_LEASE: '1s' } });
    key = api.service.app.appKey;
  });
  after(() => api.stop());

  describe('create_task', () => {
    it('stores a pending task with an integer id, in the app\'s bucket', async () => {
      const data = await okTask(api, 'create_task', { app_key: key, task_type: 'video_extract', task_data: { video_url: 'https://example.com/v.mp4' }, priority: 3 });
      expect(data.task_id).to.be.a('number');
      expect(data.status).to.equal('pending');
      const task = await okTask(api, 'get_task', { app_key: key, task_id: data.task_id });
      expect(task).to.include({ task_id: data.task_id, task_type: 'video_extract', status: 'pending', priority: 3, attempt: 0, max_retries: 3, external: true });
      expect(task.task_data).to.deep.equal({ video_url: 'https://example.com/v.mp4' });
    });

    it('returns the unfinished task holding a unique_key instead of a new one', async () => {
      const first = await okTask(api, 'create_task', { app_key: key, task_type: 'uk', unique_key: 'k1' });
      const second = await okTask(api, 'create_task', { app_key: key, task_type: 'uk', unique_key: 'k1' });
      expect(second.task_id).to.equal(first.task_id);
      await okTask(api, 'cancel_task', { app_key: key, task_id: first.task_id });
      const third = await okTask(api, 'create_task', { app_key: key, task_type: 'uk', unique_key: 'k1' });
      expect(third.task_id).to.not.equal(first.task_id);
    });

    for (const [what, body, message] of [
      ['a bad task_type', { task_type: 'a b' }, /task_type must be 1 to 64/],
      ['a priority out of range', { task_type: 't', priority: 11 }, /priority must be an integer from 1 to 10/],
      ['a task_data that is not an object', { task_type: 't', task_data: [1] }, /task_data must be a JSON object/],
      ['an unknown field', { task_type: 't', colour: 'red' }, /colour is not a field/],
      ['a callback_url that is not http', { task_type: 't', callback_url: 'ftp://x/y' }, /callback_url/],
      ['an unknown queue', { task_type: 't', queue: 'nope' }, /queue "nope" is not one of this app's queues/],
      ['a missing task_type', {}, /task_type is required/],
    ] as const) {
      it(`answers 400 for ${what}`, async () => {
        const answer = await callTask(api, 'create_task', { app_key: key, ...body });
        expect(answer).to.include({ status: 400, code: 0, data: null });
        expect(answer.msg).to.match(message);
      });
    }

    it('makes a CI job of a Tag our workers run, from the Input and Operation in task_data', async () => {
      const data = await okTask(api, 'create_task', { app_key: key, task_type: 'MediaInfo', task_data: { Input: { Object: 'input/clip.mp4' }, Operation: { UserData: 'from-tasks' } } });
      const task = await okTask(api, 'get_task', { app_key: key, task_id: data.task_id });
      expect(task).to.include({ task_type: 'MediaInfo', status: 'pending', external: false });
      expect(task.task_data).to.deep.equal({ Input: { Object: 'input/clip.mp4' }, Operation: { UserData: 'from-tasks', JobLevel: '0' } });
      const detail = (await api.request('GET', `/jobs/${task.job_id}`)).xml.Response.JobsDetail;
      expect(detail).to.include({ Tag: 'MediaInfo', State: 'Submitted' });
      expect(detail.Input.Object).to.equal('input/clip.mp4');
      // Ours to run, never an external worker's.
      expect(await callTask(api, 'get_next_task', { app_key: key, worker_id: 'w', task_types: ['MediaInfo'] })).to.include({ code: 0, data: null });
      const bad = await callTask(api, 'create_task', { app_key: key, task_type: 'PicProcess', task_data: { Input: { Object: 'a.jpg' } } });
      expect(bad).to.include({ status: 400, code: 0 });
      expect(bad.msg).to.match(/Operation/);
    });

    it('answers 400 for task_data over 256 KiB', async () => {
      const answer = await callTask(api, 'create_task', { app_key: key, task_type: 't', task_data: { blob: 'x'.repeat(300 * 1024) } });
      expect(answer).to.include({ status: 400, code: 0 });
      expect(answer.msg).to.match(/larger than 262144 bytes/);
    });
  });

  describe('envelope errors', () => {
    it('answers 401 without an app_key and with a wrong one', async () => {
      for (const body of [{ task_type: 't' }, { app_key: '', task_type: 't' }, { app_key: 'nope', task_type: 't' }, { app_key: `${key}x`, task_type: 't' }]) {
        const answer = await callTask(api, 'create_task', body);
        expect(answer, JSON.stringify(body)).to.include({ status: 401, code: 0, data: null });
      }
    });

    it('answers 400 for malformed JSON, a non-object body and an unknown or missing action', async () => {
      expect(await callTask(api, 'create_task', '{"app_key":')).to.include({ status: 400, code: 0 });
      expect(await callTask(api, 'create_task', '[1,2]')).to.include({ status: 400, code: 0 });
      const unknown = await callTask(api, 'drop_tables', { app_key: key });
      expect(unknown).to.include({ status: 400, code: 0 });
      expect(unknown.msg).to.match(/unknown action "drop_tables".*create_task/);
      expect(await callTask(api, '', { app_key: key })).to.include({ status: 400, code: 0 });
    });

    it('never answers bad input with a 5xx', async () => {
      const raw = (action: string, body: string | Buffer) => httpRequest(`${api.baseUrl}/api.php?action=${action}`, 'POST', body, { 'content-type': 'application/json' });
      const cases: Array<[string, string | Buffer]> = [
        ['create_task', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
        ['create_task', `{"app_key":"${key}","task_type":"t","task_data":{"x":"${'y'.repeat(2 * 1024 * 1024)}"}}`],
        ['__proto__', `{"app_key":"${key}"}`],
        ['constructor', `{"app_key":"${key}"}`],
        ['get_task', `{"app_key":"${key}","task_id":1152921504606846976}`],
        ['get_task', `{"app_key":"${key}","task_id":-1}`],
        ['create_task', `{"app_key":"${key}","task_type":"t","task_data":${'['.repeat(5000)}${']'.repeat(5000)}}`],
        ['create_task', `{"app_key":"${key}","task_type":"t","__proto__":{"x":1}}`],
        ['get_next_task', `{"app_key":"${key}","worker_id":"w","wait":-1}`],
        ['get_next_task', `{"app_key":"${key}","worker_id":"${'w'.repeat(65)}"}`],
        ['list_tasks', `{"app_key":"${key}","limit":0}`],
        ['update_progress', `{"app_key":"${key}","task_id":1,"progress":101}`],
        ['create_task', `{"app_key":${JSON.stringify(key + '\u0000')},"task_type":"t"}`],
        ['create_task', ''],
      ];
      for (const [action, body] of cases) {
        const res = await raw(action, body);
        expect(res.status, `${action} ${String(body).slice(0, 60)}: ${res.text.slice(0, 200)}`).to.be.oneOf([400, 401]);
        expect(JSON.parse(res.text)).to.include({ code: 0, data: null });
      }
    });

    it('fails only the create the database refuses when creates share a statement', async () => {
      const bodies = Array.from({ length: 8 }, (_, i) => ({ app_key: key, task_type: 'shared_stmt', task_data: { text: i === 3 ? 'nul \u0000 here' : `ok ${i}` } }));
      const answers = await Promise.all(bodies.map((body) => callTask(api, 'create_task', body)));
      expect(answers.map((a) => a.status)).to.deep.equal([200, 200, 200, 400, 200, 200, 200, 200]);
      const listed = await okTask(api, 'list_tasks', { app_key: key, task_type: 'shared_stmt', limit: 100 });
      expect(listed.tasks).to.have.length(7);
    });

    it('answers 405 to a GET', async () => {
      const res = await api.request('GET', '/api.php?action=get_task');
      expect(res.status).to.equal(405);
      expect(JSON.parse(res.text)).to.include({ code: 0, data: null });
    });

    it('answers 404 for an unknown task id and 400 for a task id that is not an integer', async () => {
      for (const action of ['get_task', 'cancel_task', 'update_progress', 'complete_task', 'fail_task']) {
        const answer = await callTask(api, action, { app_key: key, task_id: 999_999, ...(action === 'update_progress' ? { progress: 1 } : {}) });
        expect(answer, action).to.include({ status: 404, code: 0 });
        expect(answer.msg).to.match(/task 999999 does not exist/);
      }
      expect(await callTask(api, 'get_task', { app_key: key, task_id: '1' })).to.include({ status: 400, code: 0 });
      expect(await callTask(api, 'get_task', { app_key: key, task_id: 1.5 })).to.include({ status: 400, code: 0 });
    });
  });

  describe('a task\'s life', () => {
    it('hands out, takes progress, completes, and shows the result', async () => {
      const { task_id } = await okTask(api, 'create_task', { app_key: key, task_type: 'life', task_data: { n: 1 }, priority: 5 });
      const handed = await okTask(api, 'get_next_task', { app_key: key, worker_id: 'w1', task_types: ['life'] });
      expect(handed).to.include({ id: task_id, task_type: 'life', priority: 5, max_retries: 3, attempt: 1 });
      expect(handed.task_data).to.deep.equal({ n: 1 });
      expect(Date.parse(handed.lease_expires_at)).to.be.greaterThan(Date.now());
      const progress = await okTask(api, 'update_progress', { app_key: key, task_id, progress: 50, message: 'half way', worker_id: 'w1' });
      expect(progress).to.include({ task_id, progress: 50 });
      const shown = await okTask(api, 'get_task', { app_key: key, task_id });
      expect(shown).to.include({ status: 'processing', progress: 50, message: 'half way', worker_id: 'w1' });
      expect(await callTask(api, 'complete_task', { app_key: key, task_id, worker_id: 'w2', result: {} })).to.include({ status: 409, code: 0 });
      await okTask(api, 'complete_task', { app_key: key, task_id, worker_id: 'w1', result: { output_file: 'o.srt', duration: 120 } });
      const done = await okTask(api, 'get_task', { app_key: key, task_id });
      expect(done).to.include({ status: 'completed', progress: 100, error_message: null, worker_id: null });
      expect(done.result).to.deep.equal({ output_file: 'o.srt', duration: 120 });
      for (const action of ['update_progress', 'complete_task', 'fail_task', 'cancel_task']) {
        const answer = await callTask(api, action, { app_key: key, task_id, ...(action === 'update_progress' ? { progress: 1 } : {}) });
        expect(answer, action).to.include({ status: 409, code: 0 });
        expect(answer.msg).to.match(/completed/);
      }
    });

    it('answers "no task available" with HTTP 200 and code 0', async () => {
      const answer = await callTask(api, 'get_next_task', { app_key: key, worker_id: 'w1', task_types: ['nothing-of-this-type'] });
      expect(answer).to.deep.equal({ status: 200, code: 0, msg: 'no task available', data: null });
    });

    it('hands out the highest priority first, then the oldest', async () => {
      const ids: number[] = [];
      for (const priority of [2, 9, 5, 9]) ids.push((await okTask(api, 'create_task', { app_key: key, task_type: 'prio', priority })).task_id);
      const order: number[] = [];
      for (let i = 0; i < 4; i++) order.push((await okTask(api, 'get_next_task', { app_key: key, worker_id: 'w', task_types: ['prio'] })).id);
      expect(order).to.deep.equal([ids[1], ids[3], ids[2], ids[0]]);
      for (const id of order) await okTask(api, 'complete_task', { app_key: key, task_id: id, result: null });
    });

    it('hands out only the asked types', async () => {
      const a = (await okTask(api, 'create_task', { app_key: key, task_type: 'type_a', priority: 10 })).task_id;
      const b = (await okTask(api, 'create_task', { app_key: key, task_type: 'type_b', priority: 1 })).task_id;
      expect((await okTask(api, 'get_next_task', { app_key: key, worker_id: 'w', task_types: ['type_b'] })).id).to.equal(b);
      expect(await callTask(api, 'get_next_task', { app_key: key, worker_id: 'w', task_types: ['type_b', 'type_c'] })).to.include({ status: 200, code: 0, data: null });
      expect((await okTask(api, 'get_next_task', { app_key: key, worker_id: 'w', task_types: ['type_a'] })).id).to.equal(a);
      for (const id of [a, b]) await okTask(api, 'complete_task', { app_key: key, task_id: id });
    });

    it('retries a failed task with allow_retry until max_retries, then fails it', async function () {
      this.timeout(30_000);
      const { task_id } = await okTask(api, 'create_task', { app_key: key, task_type: 'flaky', max_retries: 1 });
      const first = await okTask(api, 'get_next_task', { app_key: key, worker_id: 'w', task_types: ['flaky'] });
      expect(first.attempt).to.equal(1);
      const retry = await okTask(api, 'fail_task', { app_key: key, task_id, error_message: 'download failed', allow_retry: true });
      expect(retry).to.include({ task_id, status: 'pending' });
      expect((await okTask(api, 'get_task', { app_key: key, task_id })).status).to.equal('pending');
      const second = await okTask(api, 'get_next_task', { app_key: key, worker_id: 'w', task_types: ['flaky'], wait: 10 });
      expect(second).to.include({ id: task_id, attempt: 2 });
      const last = await okTask(api, 'fail_task', { app_key: key, task_id, error_message: 'download failed again', allow_retry: true });
      expect(last).to.include({ task_id, status: 'failed' });
      const shown = await okTask(api, 'get_task', { app_key: key, task_id });
      expect(shown).to.include({ status: 'failed', attempt: 2 });
      expect(shown.error_message).to.match(/download failed again/);
    });

    it('fails a task at once without allow_retry', async () => {
      const { task_id } = await okTask(api, 'create_task', { app_key: key, task_type: 'once' });
      await okTask(api, 'get_next_task', { app_key: key, worker_id: 'w', task_types: ['once'] });
      expect(await okTask(api, 'fail_task', { app_key: key, task_id, error_message: 'bad input' })).to.include({ status: 'failed' });
      expect(await okTask(api, 'get_task', { app_key: key, task_id })).to.include({ status: 'failed', error_message: 'bad input', attempt: 1 });
    });

    it('puts an abandoned task back to pending when its lease runs out, counting the attempt', async function () {
      this.timeout(20_000);
      const { task_id } = await okTask(api, 'create_task', { app_key: key, task_type: 'abandoned' });
      await okTask(api, 'get_next_task', { app_key: key, worker_id: 'dead', task_types: ['abandoned'] });
      // MEDIAJOBS_TASK_LEASE is 1 s here; the API's maintenance takes it back and wakes the long poll.
      const again = await okTask(api, 'get_next_task', { app_key: key, worker_id: 'alive', task_types: ['abandoned'], wait: 10 });
      expect(again).to.include({ id: task_id, attempt: 2 });
      const late = await callTask(api, 'update_progress', { app_key: key, task_id, progress: 10, worker_id: 'dead' });
      expect(late).to.include({ status: 409, code: 0 });
      expect(late.msg).to.match(/held by worker alive/);
      await okTask(api, 'complete_task', { app_key: key, task_id, worker_id: 'alive' });
    });

    it('cancels a pending and a processing task', async () => {
      const pending = (await okTask(api, 'create_task', { app_key: key, task_type: 'cancel_me' })).task_id;
      expect(await okTask(api, 'cancel_task', { app_key: key, task_id: pending })).to.deep.equal({ task_id: pending, status: 'cancelled' });
      const running = (await okTask(api, 'create_task', { app_key: key, task_type: 'cancel_me' })).task_id;
      await okTask(api, 'get_next_task', { app_key: key, worker_id: 'w', task_types: ['cancel_me'] });
      await okTask(api, 'cancel_task', { app_key: key, task_id: running });
      const late = await callTask(api, 'update_progress', { app_key: key, task_id: running, progress: 10 });
      expect(late).to.include({ status: 409 });
      expect(late.msg).to.match(/cancelled/);
      expect(await callTask(api, 'cancel_task', { app_key: key, task_id: running })).to.include({ status: 409 });
    });

    it('expires a task not started within expire_in', async function () {
      this.timeout(20_000);
      const { task_id } = await okTask(api, 'create_task', { app_key: key, task_type: 'expiring', expire_in: 1 });
      const deadline = Date.now() + 10_000;
      let status = 'pending';
      while (status !== 'expired' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        status = (await okTask(api, 'get_task', { app_key: key, task_id })).status;
      }
      expect(status).to.equal('expired');
      expect(await callTask(api, 'get_next_task', { app_key: key, worker_id: 'w', task_types: ['expiring'] })).to.include({ status: 200, code: 0, data: null });
    });
  });

  describe('list_tasks', () => {
    it('filters by status and type and pages by task id', async () => {
      const ids: number[] = [];
      for (let i = 0; i < 5; i++) ids.push((await okTask(api, 'create_task', { app_key: key, task_type: 'listed' })).task_id);
      await okTask(api, 'cancel_task', { app_key: key, task_id: ids[1] });
      const first = await okTask(api, 'list_tasks', { app_key: key, task_type: 'listed', status: 'pending', limit: 2 });
      expect(first.tasks.map((t: any) => t.task_id)).to.deep.equal([ids[4], ids[3]]);
      const second = await okTask(api, 'list_tasks', { app_key: key, task_type: 'listed', status: 'pending', limit: 2, after: first.next_after });
      expect(second.tasks.map((t: any) => t.task_id)).to.deep.equal([ids[2], ids[0]]);
      expect(second.next_after).to.equal(null);
      const asc = await okTask(api, 'list_tasks', { app_key: key, task_type: 'listed', order: 'asc', limit: 10 });
      expect(asc.tasks.map((t: any) => t.task_id)).to.deep.equal(ids);
      const cancelled = await okTask(api, 'list_tasks', { app_key: key, task_type: 'listed', status: 'cancelled' });
      expect(cancelled.tasks.map((t: any) => t.task_id)).to.deep.equal([ids[1]]);
      expect(await callTask(api, 'list_tasks', { app_key: key, status: 'done' })).to.include({ status: 400 });
    });
  });
});

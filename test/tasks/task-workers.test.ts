import { execFile } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createHmac } from 'node:crypto';
import { expect } from 'chai';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startTestService, waitFor, type TestService } from '../helpers/service.js';
import { admin, callTask, okTask } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));

describe('task API: clients, concurrent workers, long polls, callbacks', function () {
  this.timeout(120_000);
  let api: TestService;
  let key: string;

  before(async () => {
    api = await startTestService({ env: { MEDIAJOBS_ALLOW_PRIVATE_CALLBACKS: 'true' } });
    key = api.service.app.appKey;
  });
  after(() => api.stop());

  it('works with the seed\'s Python CloudTaskClient, unchanged', async () => {
    const { stdout } = await promisify(execFile)('python3', [path.join(here, 'fixtures/drive_client.py'), `${api.baseUrl}/api.php`, key], { timeout: 60_000 });
    const answers = JSON.parse(stdout);
    expect(answers.create_task).to.deep.include({ code: 1 });
    expect(answers.create_task.data).to.have.keys('task_id', 'status');
    expect(answers.create_task.data.status).to.equal('pending');
    // Priority 8 beats the default 3.
    expect(answers.get_next_task.code).to.equal(1);
    expect(answers.get_next_task.data).to.include({ id: answers.create_task_priority.data.task_id, task_type: 'image_enhance', priority: 8, max_retries: 3 });
    expect(answers.update_progress).to.deep.include({ code: 1 });
    expect(answers.complete_task).to.deep.include({ code: 1 });
    expect(answers.get_next_task_any.data).to.include({ id: answers.create_task.data.task_id, task_type: 'video_extract' });
    expect(answers.get_next_task_none).to.deep.equal({ code: 0, msg: 'no task available', data: null });
    expect(answers.wrong_key).to.include({ code: 0, data: null });
    const done = await okTask(api, 'get_task', { app_key: key, task_id: answers.create_task_priority.data.task_id });
    expect(done).to.include({ status: 'completed', progress: 100 });
    expect(done.result).to.deep.equal({ output_file: 'https://example.com/output.srt', duration: 120, subtitle_count: 45 });
  });

  it('drains 200 tasks with 6 concurrent workers, handing none out twice', async () => {
    const created: number[] = [];
    for (let i = 0; i < 200; i += 20) {
      const batch = await Promise.all(Array.from({ length: 20 }, (_, j) => okTask(api, 'create_task', { app_key: key, task_type: 'drain', task_data: { n: i + j } })));
      created.push(...batch.map((d) => d.task_id));
    }
    const handedTo = new Map<number, string[]>();
    const worker = async (name: string) => {
      for (;;) {
        const answer = await callTask(api, 'get_next_task', { app_key: key, worker_id: name, task_types: ['drain'] });
        if (answer.code === 0) return;
        const id = answer.data.id as number;
        handedTo.set(id, [...(handedTo.get(id) ?? []), name]);
        await okTask(api, 'complete_task', { app_key: key, task_id: id, worker_id: name, result: { by: name } });
      }
    };
    await Promise.all(Array.from({ length: 6 }, (_, i) => worker(`drainer-${i}`)));
    expect([...handedTo.keys()].sort((a, b) => a - b)).to.deep.equal([...created].sort((a, b) => a - b));
    const twice = [...handedTo.entries()].filter(([, names]) => names.length > 1);
    expect(twice).to.deep.equal([]);
    const workersUsed = new Set([...handedTo.values()].flat());
    expect(workersUsed.size).to.be.greaterThan(1);
    const listed = await okTask(api, 'list_tasks', { app_key: key, task_type: 'drain', status: 'completed', limit: 100 });
    expect(listed.tasks).to.have.length(100);
    expect(listed.next_after).to.be.a('number');
  });

  it('wakes a long poll within milliseconds of a create (NOTIFY, not a sleep loop)', async () => {
    const latencies: number[] = [];
    for (let i = 0; i < 10; i++) {
      const polling = callTask(api, 'get_next_task', { app_key: key, worker_id: 'long-poller', task_types: ['wake'], wait: 10 });
      await new Promise((resolve) => setTimeout(resolve, 150));
      const sent = performance.now();
      const { task_id } = await okTask(api, 'create_task', { app_key: key, task_type: 'wake' });
      const answer = await polling;
      latencies.push(performance.now() - sent);
      expect(answer.data.id).to.equal(task_id);
      await okTask(api, 'complete_task', { app_key: key, task_id });
    }
    latencies.sort((a, b) => a - b);
    // Create and hand-out both included; far under the 1 s poll interval a sleep loop would show.
    expect(latencies[5], latencies.map((l) => l.toFixed(1)).join(' ')).to.be.below(250);
  });

  it('hands nothing to a long poll whose client hung up', async () => {
    const body = JSON.stringify({ app_key: key, worker_id: 'gone', task_types: ['hang_up'], wait: 10 });
    const req = http.request(`${api.baseUrl}/api.php?action=get_next_task`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } });
    req.on('error', () => undefined);
    req.end(body);
    await new Promise((resolve) => setTimeout(resolve, 300));
    req.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const { task_id } = await okTask(api, 'create_task', { app_key: key, task_type: 'hang_up' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const handed = await okTask(api, 'get_next_task', { app_key: key, worker_id: 'present', task_types: ['hang_up'] });
    expect(handed).to.include({ id: task_id, attempt: 1 });
  });

  it('answers a long poll with "no task available" when its wait runs out', async () => {
    const started = Date.now();
    const answer = await callTask(api, 'get_next_task', { app_key: key, worker_id: 'w', task_types: ['never'], wait: 1 });
    expect(answer).to.deep.equal({ status: 200, code: 0, msg: 'no task available', data: null });
    expect(Date.now() - started).to.be.within(900, 3000);
  });

  describe('callbacks', () => {
    let receiver: Receiver;
    before(async () => { receiver = await startReceiver(); });
    after(() => receiver.close());

    it('POSTs a signed JSON callback when a task completes, fails or is cancelled', async () => {
      const ok = (await okTask(api, 'create_task', { app_key: key, task_type: 'cb', callback_url: receiver.url })).task_id;
      await okTask(api, 'get_next_task', { app_key: key, worker_id: 'cbw', task_types: ['cb'] });
      await okTask(api, 'complete_task', { app_key: key, task_id: ok, result: { words: 3 } });
      const bad = (await okTask(api, 'create_task', { app_key: key, task_type: 'cb', callback_url: receiver.url })).task_id;
      await okTask(api, 'get_next_task', { app_key: key, worker_id: 'cbw', task_types: ['cb'] });
      await okTask(api, 'fail_task', { app_key: key, task_id: bad, error_message: 'no audio track' });
      const gone = (await okTask(api, 'create_task', { app_key: key, task_type: 'cb', callback_url: receiver.url })).task_id;
      await okTask(api, 'cancel_task', { app_key: key, task_id: gone });
      await waitFor(async () => (receiver.received.length >= 3 ? true : undefined), 20_000, 'three callbacks');
      const bodies = new Map(receiver.received.map((r) => [JSON.parse(r.body).task_id as number, r]));
      const completed = JSON.parse(bodies.get(ok)!.body);
      expect(Object.keys(completed)).to.deep.equal(['task_id', 'task_type', 'status', 'result', 'progress', 'attempt', 'created_at', 'finished_at']);
      expect(completed).to.include({ task_id: ok, task_type: 'cb', status: 'completed', progress: 100, attempt: 1 });
      expect(completed.result).to.deep.equal({ words: 3 });
      expect(JSON.parse(bodies.get(bad)!.body)).to.include({ status: 'failed', error_message: 'no audio track' });
      expect(JSON.parse(bodies.get(gone)!.body)).to.include({ status: 'cancelled', attempt: 0 });
      const request = bodies.get(ok)!;
      expect(request.headers['content-type']).to.match(/^application\/json/);
      expect(request.headers['x-mediajobs-delivery-id']).to.match(/^d[0-9a-f]{32}$/);
      const timestamp = String(request.headers['x-mediajobs-timestamp']);
      const expected = `sha256=${createHmac('sha256', api.service.callbackSecret).update(`${timestamp}.${request.body}`).digest('hex')}`;
      expect(request.headers['x-mediajobs-signature']).to.equal(expected);
    });
  });

  it('ends a task in the grouped statement with the same row as endJob gives one with a callback', async () => {
    const receiver = await startReceiver();
    try {
      const ids: number[] = [];
      for (const callback_url of [receiver.url, undefined]) {
        const { task_id } = await okTask(api, 'create_task', { app_key: key, task_type: 'same_row', ...(callback_url ? { callback_url } : {}) });
        await okTask(api, 'get_next_task', { app_key: key, worker_id: 'sr', task_types: ['same_row'] });
        await okTask(api, 'update_progress', { app_key: key, task_id, progress: 40, worker_id: 'sr' });
        await okTask(api, 'complete_task', { app_key: key, task_id, worker_id: 'sr', result: { a: [1, 2] } });
        ids.push(task_id);
      }
      const rows = await api.service.db.kysely.selectFrom('jobs')
        .select(['seq', 'state', 'code', 'message', 'progress', 'lease_owner', 'lease_expires_at', 'attempts', 'result', 'task_result'])
        .select((eb) => eb('ended_at', 'is not', null).as('ended'))
        .where('tag', '=', 'same_row').orderBy('seq').execute();
      const [viaEndJob, grouped] = rows.map(({ seq: _seq, ...row }) => row);
      expect(grouped).to.deep.equal(viaEndJob);
      expect(grouped).to.include({ state: 'Success', code: 'Success', progress: 100, lease_owner: null, ended: true });
    } finally {
      await receiver.close();
    }
  });

  describe('GET /admin/workers', () => {
    it('lists an external worker with what it runs, and our own workers', async () => {
      const withWorker = await startTestService({ worker: true, env: { MEDIAJOBS_CONCURRENCY: '2' } });
      try {
        const appKey = withWorker.service.app.appKey;
        const { task_id } = await okTask(withWorker, 'create_task', { app_key: appKey, task_type: 'listed_worker' });
        await okTask(withWorker, 'get_next_task', { app_key: appKey, worker_id: 'ext-7', task_types: ['listed_worker'] });
        const listed = await waitFor(async () => {
          const res = await admin(withWorker, 'GET', '/admin/workers');
          expect(res.status, JSON.stringify(res.body)).to.equal(200);
          const workers = res.body.workers as any[];
          return workers.some((w) => w.kind === 'internal') && workers.some((w) => w.worker_id === 'ext-7') ? workers : undefined;
        }, 10_000, 'both workers');
        const external = listed.find((w) => w.worker_id === 'ext-7');
        expect(external).to.include({ kind: 'external', app_id: withWorker.service.app.appId, state: 'active', host: '127.0.0.1' });
        expect(external.task_types).to.deep.equal(['listed_worker']);
        expect(external.running).to.deep.equal([{ task_id, job_id: external.running[0].job_id, task_type: 'listed_worker' }]);
        const internal = listed.find((w) => w.kind === 'internal');
        expect(internal).to.include({ worker_id: withWorker.service.worker!.workerId, concurrency: 2, pid: process.pid, state: 'active' });
        expect(internal.task_types).to.include.members(['MediaInfo', 'PicProcess']);
        expect((await admin(withWorker, 'GET', '/admin/workers', undefined, 'wrong')).status).to.equal(401);
        // Not seen for three task leases (5 min each by default): shown, as gone.
        await withWorker.service.db.kysely.updateTable('workers').set({ last_seen_at: new Date(Date.now() - 16 * 60_000) }).where('worker_id', '=', 'ext-7').execute();
        const later = (await admin(withWorker, 'GET', '/admin/workers')).body.workers as any[];
        expect(later.find((w) => w.worker_id === 'ext-7').state).to.equal('gone');
      } finally {
        await withWorker.stop();
      }
    });
  });
});

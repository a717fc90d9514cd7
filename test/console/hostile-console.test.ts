import { mkdir, truncate, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { expect } from 'chai';
import { encodeSession, newSession, sessionKey, SESSION_COOKIE } from '../../src/console/session.js';
import { mediaInfoRequest, submit } from '../helpers/jobs.js';
import { httpRequest, startTestService, type TestService } from '../helpers/service.js';
import { admin, callTask } from '../tasks/helpers.js';

/*
 * The console's JSON API as a hostile client uses it: malformed paths and
 * values are 400 in the console's error shape (never a 500), and an app
 * disabled or rotated from the console loses its task-API key at once, as
 * from the admin API.
 */
describe('console API: hostile clients', function () {
  this.timeout(60_000);
  let api: TestService;
  let cookie: string;
  let csrf: string;
  before(async () => {
    api = await startTestService();
    const res = await fetch(`${api.baseUrl}/console/api/login`, { method: 'POST', body: JSON.stringify({ token: api.service.adminToken }) });
    cookie = res.headers.getSetCookie()[0].split(';')[0];
    csrf = ((await res.json()) as { csrf: string }).csrf;
  });
  after(() => api.stop());

  const expectError = (res: { status: number; text: string }, status: number, what: string) => {
    expect(res.status, `${what}: ${res.text}`).to.equal(status);
    expect(JSON.parse(res.text).error.code, what).to.be.a('string');
  };

  it('answers a malformed percent escape in the path 400, with or without a session', async () => {
    expectError(await httpRequest(`${api.baseUrl}/console/api/jobs/%E0%A4%A`, 'GET', undefined, { cookie }), 400, 'job id');
    expectError(await httpRequest(`${api.baseUrl}/console/api/%zz`, 'GET'), 400, 'resource');
  });

  it('answers 404 for vendor asset names that are Object.prototype members (they were 500)', async () => {
    for (const name of ['__proto__', 'toString', 'constructor', 'hasOwnProperty']) {
      const res = await httpRequest(`${api.baseUrl}/console/vendor/${name}`, 'GET');
      expect(res.status, name).to.equal(404);
    }
    expect((await httpRequest(`${api.baseUrl}/console/vendor/preact.mjs`, 'GET')).status).to.equal(200);
  });

  it('refuses a cross-origin logout (another site\'s form ended the session)', async () => {
    const res = await httpRequest(`${api.baseUrl}/console/api/logout`, 'POST', '{}', { cookie, origin: 'http://evil.example' });
    expectError(res, 403, 'cross-origin logout');
    expect((await httpRequest(`${api.baseUrl}/console/api/session`, 'GET', undefined, { cookie })).status).to.equal(200);
  });

  it('answers a NUL in a filter or in the login body 400, not 500', async () => {
    for (const query of ['tag=a%00', 'input=a%00']) {
      expectError(await httpRequest(`${api.baseUrl}/console/api/jobs?${query}`, 'GET', undefined, { cookie }), 400, query);
    }
    expectError(await httpRequest(`${api.baseUrl}/console/api/login`, 'POST', '{"secretId":"AKID\\u0000","secretKey":"x"}'), 400, 'login');
  });

  for (const verb of ['disable', 'rotate'] as const) {
    it(`stops an app's app_key at once when the console ${verb}s it (the task API remembered it)`, async () => {
      const made = (await admin(api, 'POST', '/admin/apps', { name: `console-${verb}` })).body as Record<string, string>;
      expect(await callTask(api, 'list_tasks', { app_key: made.app_key })).to.include({ status: 200, code: 1 });
      const res = await httpRequest(`${api.baseUrl}/console/api/apps/${made.app_id}/${verb}`, 'POST', '{}', { cookie, 'x-csrf-token': csrf, 'content-type': 'application/json' });
      expect(res.status, res.text).to.equal(200);
      expect(await callTask(api, 'list_tasks', { app_key: made.app_key })).to.include({ status: 401, code: 0 });
    });
  }

  /** Opens /console/api/events with a cookie; `ended` resolves when the server ends the stream. */
  const openStream = (streamCookie: string) => {
    let text = '';
    let req!: http.ClientRequest;
    const ended = new Promise<void>((resolve) => {
      req = http.get(`${api.baseUrl}/console/api/events`, { headers: { cookie: streamCookie }, agent: false }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => { text += chunk; });
        res.on('end', () => resolve());
      });
      req.on('error', () => resolve());
    });
    const closedWithin = (ms: number) => Promise.race([ended.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
    return { text: () => text, closedWithin, close: () => req.destroy() };
  };
  const appLogin = async (name: string) => {
    const made = (await admin(api, 'POST', '/admin/apps', { name })).body as Record<string, string>;
    const res = await fetch(`${api.baseUrl}/console/api/login`, { method: 'POST', body: JSON.stringify({ secretId: made.secret_id, secretKey: made.secret_key }) });
    return { made, cookie: res.headers.getSetCookie()[0].split(';')[0] };
  };

  it('ends an app session\'s event stream when the app is disabled (admin API) or rotated (console); it never carried another app\'s rows', async () => {
    const b = await appLogin('stream-b');
    const c = await appLogin('stream-c');
    const streamB = openStream(b.cookie);
    const streamC = openStream(c.cookie);
    await new Promise((r) => setTimeout(r, 300));
    const theirs = await submit(api, mediaInfoRequest('input/a.mp4'));
    expect(await callTask(api, 'create_task', { app_key: b.made.app_key, task_type: 'b-own' })).to.include({ code: 1 });
    await new Promise((r) => setTimeout(r, 500));
    expect(streamB.text()).to.include('b-own').and.not.include(theirs);
    expect(await streamB.closedWithin(100)).to.equal(false);
    expect((await admin(api, 'DELETE', `/admin/apps/${b.made.app_id}`)).status).to.equal(200);
    expect(await streamB.closedWithin(3000), 'disabled app\'s stream').to.equal(true);
    const rotated = await httpRequest(`${api.baseUrl}/console/api/apps/${c.made.app_id}/rotate`, 'POST', '{}', { cookie, 'x-csrf-token': csrf, 'content-type': 'application/json' });
    expect(rotated.status).to.equal(200);
    expect(await streamC.closedWithin(3000), 'rotated app\'s stream').to.equal(true);
    expect(streamC.text()).to.not.include(theirs).and.not.include('b-own');
  });

  it('tells an app session\'s stream of its own delivery and queue changes only, not of other apps\'', async () => {
    const b = await appLogin('hint-b');
    const c = await appLogin('hint-c');
    const task = await callTask(api, 'create_task', { app_key: b.made.app_key, task_type: 'hinted', callback_url: 'https://example.com/cb' });
    expect(task.code).to.equal(1);
    const streamB = openStream(b.cookie);
    const streamC = openStream(c.cookie);
    await new Promise((r) => setTimeout(r, 300));
    expect(await callTask(api, 'cancel_task', { app_key: b.made.app_key, task_id: task.data.task_id })).to.include({ code: 1 });
    const queues = JSON.parse((await httpRequest(`${api.baseUrl}/console/api/queues`, 'GET', undefined, { cookie })).text) as { queues: Array<{ queue_id: string; bucket: string }> };
    const queueB = queues.queues.find((q) => q.bucket === b.made.bucket)!;
    const paused = await httpRequest(`${api.baseUrl}/console/api/queues/${queueB.queue_id}`, 'POST', '{"state":"Paused"}', { cookie, 'x-csrf-token': csrf, 'content-type': 'application/json' });
    expect(paused.status, paused.text).to.equal(200);
    await new Promise((r) => setTimeout(r, 800));
    streamB.close();
    streamC.close();
    expect(streamB.text()).to.include('event: deliveries').and.include('event: queues');
    expect(streamC.text()).to.not.include('event: deliveries').and.not.include('event: queues');
  });

  it('drops an event stream whose reader stopped reading, instead of buffering every event for it', async () => {
    let closed = false;
    let paused!: http.IncomingMessage;
    const req = http.get(`${api.baseUrl}/console/api/events`, { headers: { cookie }, agent: false }, (res) => {
      paused = res;
      res.pause();
      res.on('close', () => { closed = true; });
    });
    req.on('error', () => { closed = true; });
    await new Promise((r) => setTimeout(r, 300));
    const key = api.service.app.appKey;
    for (let i = 0; i < 10; i++) {
      await Promise.all(Array.from({ length: 30 }, () => callTask(api, 'create_task', { app_key: key, task_type: 'slow-reader', task_data: { pad: 'x'.repeat(2000) } })));
    }
    // Each round changes 300 rows: ~450 KB of events, ~18 MB in all, far past the socket buffers and the 1 MiB cap.
    for (let round = 1; round <= 40; round++) {
      await api.service.db.kysely.updateTable('jobs').set({ progress: round % 100, message: 'm'.repeat(1000) }).where('tag', '=', 'slow-reader').execute();
      await new Promise((r) => setTimeout(r, 50));
    }
    paused.resume();
    paused.on('data', () => undefined);
    const deadline = Date.now() + 5000;
    while (!closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    req.destroy();
    expect(closed, 'the stream of a reader that stopped reading was dropped').to.equal(true);
  });

  it('streams an object download instead of holding it in memory (a few large downloads exhausted the process)', async () => {
    const file = path.join(api.config.dataDir, 'buckets', 'local-1250000000', 'big', 'sparse.bin');
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, '');
    await truncate(file, 256 * 1024 * 1024);
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
    let received = 0;
    const status = await new Promise<number>((resolve, reject) => {
      http.get(`${api.baseUrl}/console/api/objects?bucket=local-1250000000&key=big/sparse.bin`, { headers: { cookie }, agent: false }, (res) => {
        res.on('data', (chunk: Buffer) => { received += chunk.length; });
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      }).on('error', reject);
    });
    clearInterval(sampler);
    expect(status).to.equal(200);
    expect(received).to.equal(256 * 1024 * 1024);
    expect((peak - before) / 1048576, 'RSS growth in MB').to.be.below(150);
    expectError(await httpRequest(`${api.baseUrl}/console/api/objects?bucket=local-1250000000&key=big/none.bin`, 'GET', undefined, { cookie }), 404, 'missing object');
    expectError(await httpRequest(`${api.baseUrl}/console/api/objects?bucket=local-1250000000&key=../../etc/passwd`, 'GET', undefined, { cookie }), 404, 'a key escaping the bucket');
  });

  it('ends an event stream when its session expires', async () => {
    const session = newSession('admin', undefined, Date.now() - 12 * 3_600_000 + 1500);
    const stream = openStream(`${SESSION_COOKIE}=${encodeSession(sessionKey(api.service.adminToken), session)}`);
    expect(await stream.closedWithin(500)).to.equal(false);
    expect(await stream.closedWithin(4000), 'expired session\'s stream').to.equal(true);
    stream.close();
  });
});

describe('console API: an external worker\'s result naming another app\'s bucket', function () {
  this.timeout(60_000);
  let api: TestService;
  before(async () => { api = await startTestService({ env: { MEDIAJOBS_EXTERNAL_TAGS: 'SpeechRecognition' } }); });
  after(() => api.stop());

  it('lists only outputs in the job\'s own app\'s buckets (another app\'s object and size stay unseen)', async () => {
    const other = (await admin(api, 'POST', '/admin/apps', { name: 'victim' })).body as Record<string, string>;
    await api.service.storage.put(other.bucket, 'private/secret.txt', Buffer.from('secret'));
    await api.service.storage.put('local-1250000000', 'output/own.txt', Buffer.from('own'));
    const created = await api.request('POST', '/jobs', { body: '<Request><Tag>SpeechRecognition</Tag><Input><Object>input/talk.mp3</Object></Input><Operation><SpeechRecognition><EngineModelType>16k_zh</EngineModelType></SpeechRecognition></Operation></Request>' });
    expect(created.status, created.text).to.equal(200);
    const jobId = created.xml.Response.JobsDetail.JobId as string;
    const key = api.service.app.appKey;
    const handed = (await callTask(api, 'get_next_task', { app_key: key, worker_id: 'asr', task_types: ['SpeechRecognition'] })).data;
    expect(await callTask(api, 'complete_task', { app_key: key, task_id: handed.id, result: { SpeechRecognitionResult: {
      Output: [{ Bucket: other.bucket, Object: 'private/secret.txt' }, { Bucket: 'local-1250000000', Object: 'output/own.txt' }],
    } } })).to.include({ code: 1 });
    const first = await api.service.db.kysely.selectFrom('apps').select(['secret_id', 'secret_key']).where('appid', '=', '1250000000').executeTakeFirstOrThrow();
    const res = await fetch(`${api.baseUrl}/console/api/login`, { method: 'POST', body: JSON.stringify({ secretId: first.secret_id, secretKey: first.secret_key }) });
    expect(res.status).to.equal(200);
    const detail = await httpRequest(`${api.baseUrl}/console/api/jobs/${jobId}`, 'GET', undefined, { cookie: res.headers.getSetCookie()[0].split(';')[0] });
    expect(detail.status, detail.text).to.equal(200);
    expect((JSON.parse(detail.text) as { outputs: Array<{ bucket: string; key: string }> }).outputs).to.deep.equal([{ bucket: 'local-1250000000', key: 'output/own.txt', size: 3 }]);
  });
});

import { expect } from 'chai';
import { httpRequest, startTestService, type TestResponse, type TestService } from '../helpers/service.js';
import { signRequest } from '../helpers/cos-signer.js';
import { loadConfig } from '../../src/config.js';
import { admin, callTask, okTask } from './helpers.js';

interface Keys {
  readonly app_id: string;
  readonly appid: string;
  readonly bucket: string;
  readonly secret_id: string;
  readonly secret_key: string;
  readonly app_key: string;
}

const MEDIAINFO = '<Request><Tag>MediaInfo</Tag><Input><Object>input/a.mp4</Object></Input></Request>';

describe('apps: the admin API and isolation between tenants', function () {
  this.timeout(60_000);
  let api: TestService;
  let first: Keys;
  let second: Keys;

  /** A request signed with an app's keys, as cos-nodejs-sdk-v5 signs it; `host` names a bucket, else the service. */
  function signed(keys: Keys, method: string, path: string, options: { body?: string; host?: string; query?: Record<string, string> } = {}): Promise<TestResponse> {
    const host = options.host ?? new URL(api.baseUrl).host;
    const query = options.query ?? {};
    const authorization = signRequest({ method, path, query, headers: { host }, secretId: keys.secret_id, secretKey: keys.secret_key });
    const qs = new URLSearchParams(query).toString();
    return httpRequest(`${api.baseUrl}${path}${qs ? `?${qs}` : ''}`, method, options.body, { host, authorization, 'content-type': 'application/xml' });
  }

  before(async () => {
    api = await startTestService();
    const app = api.service.app;
    first = { app_id: app.appId, appid: app.appid, bucket: app.bucket, secret_id: app.secretId, secret_key: app.secretKey, app_key: app.appKey };
  });
  after(() => api.stop());

  describe('the admin API', () => {
    it('refuses requests without the admin token, or with a wrong one (401, JSON)', async () => {
      const none = await httpRequest(`${api.baseUrl}/admin/apps`, 'GET');
      expect(none.status).to.equal(401);
      expect(JSON.parse(none.text).error.code).to.equal('Unauthorized');
      expect((await admin(api, 'GET', '/admin/apps', undefined, 'wrong')).status).to.equal(401);
      expect((await admin(api, 'GET', '/admin/apps', undefined, `${api.service.adminToken}x`)).status).to.equal(401);
    });

    it('creates an app (201) with its APPID, bucket and keys', async () => {
      const res = await admin(api, 'POST', '/admin/apps', { name: 'Second App' });
      expect(res.status).to.equal(201);
      expect(res.body).to.have.all.keys('app_id', 'name', 'appid', 'bucket', 'secret_id', 'secret_key', 'app_key', 'created_at', 'disabled');
      expect(res.body.name).to.equal('Second App');
      expect(res.body.appid).to.match(/^\d{10}$/).and.not.equal(first.appid);
      expect(res.body.bucket).to.equal(`second-app-${res.body.appid}`);
      expect(res.body.secret_id).to.match(/^AKID/);
      second = res.body as Keys;
    });

    it('lists apps without their secrets', async () => {
      const res = await admin(api, 'GET', '/admin/apps');
      expect(res.status).to.equal(200);
      expect(res.body.apps.map((a: any) => a.app_id)).to.deep.equal([first.app_id, second.app_id]);
      for (const app of res.body.apps) expect(app).to.not.have.any.keys('secret_key', 'app_key');
      expect(res.body.apps[0]).to.include({ appid: '1250000000', bucket: 'local-1250000000' });
    });

    it('answers 400 for a bad name, 404 for an unknown app or path, 405 for a wrong method', async () => {
      expect((await admin(api, 'POST', '/admin/apps', {})).status).to.equal(400);
      expect((await admin(api, 'POST', '/admin/apps', { name: '' })).status).to.equal(400);
      expect((await admin(api, 'POST', '/admin/apps/0123456789abcdef/rotate')).status).to.equal(404);
      expect((await admin(api, 'DELETE', '/admin/apps/nope')).status).to.equal(404);
      expect((await admin(api, 'GET', '/admin/nothing')).status).to.equal(404);
      expect((await admin(api, 'PUT', '/admin/apps')).status).to.equal(405);
    });
  });

  describe('isolation in the CI API', () => {
    let firstJob: string;
    let firstQueue: string;
    let firstTemplate: string;

    before(async () => {
      const created = await signed(first, 'POST', '/jobs', { body: MEDIAINFO });
      expect(created.status, created.text).to.equal(200);
      firstJob = created.xml.Response.JobsDetail.JobId;
      firstQueue = created.xml.Response.JobsDetail.QueueId;
      const template = await signed(first, 'POST', '/template', { body: '<Request><Tag>PicProcess</Tag><Name>t</Name><PicProcess><ProcessRule>imageMogr2/rotate/90</ProcessRule></PicProcess></Request>' });
      expect(template.status, template.text).to.equal(200);
      firstTemplate = template.xml.Response.Template.TemplateId;
    });

    it('works in the signing app\'s own bucket', async () => {
      const created = await signed(second, 'POST', '/jobs', { body: MEDIAINFO });
      expect(created.status, created.text).to.equal(200);
      expect(created.xml.Response.JobsDetail.Input.BucketId).to.equal(second.bucket);
      const listed = await signed(second, 'GET', '/jobs');
      expect(listed.status).to.equal(200);
      const ids = [listed.xml.Response.JobsDetail].flat().map((j: any) => j.JobId);
      expect(ids).to.deep.equal([created.xml.Response.JobsDetail.JobId]);
      const named = await signed(second, 'GET', '/queue', { host: `${second.bucket}.ci.ap-local.myqcloud.com` });
      expect(named.status, named.text).to.equal(200);
    });

    it('answers another app\'s bucket with 403 AccessDenied', async () => {
      for (const [method, path] of [['GET', '/jobs'], ['POST', '/jobs'], ['GET', '/queue'], ['GET', '/template'], ['GET', `/jobs/${firstJob}`]] as const) {
        const res = await signed(second, method, path, { host: `${first.bucket}.ci.ap-local.myqcloud.com`, body: method === 'POST' ? MEDIAINFO : undefined });
        expect(res.status, `${method} ${path}`).to.equal(403);
        expect(res.xml.Error.Code).to.equal('AccessDenied');
      }
    });

    it('shows another app\'s job, queue and template as if they did not exist', async () => {
      const described = await signed(second, 'GET', `/jobs/${firstJob}`);
      expect(described.status).to.equal(200);
      expect(described.xml.Response.NonExistJobIds).to.equal(firstJob);
      const cancel = await signed(second, 'PUT', `/jobs/${firstJob}`, { query: { cancel: '' } });
      expect(cancel.status).to.equal(400);
      expect(cancel.xml.Error.Message).to.match(/does not exist/);
      const queue = await signed(second, 'PUT', `/queue/${firstQueue}`, { body: '<Request><Name>x</Name><State>Paused</State></Request>' });
      expect(queue.status).to.be.oneOf([400, 404]);
      const template = await signed(second, 'DELETE', `/template/${firstTemplate}`);
      expect(template.status).to.be.oneOf([400, 404]);
      const callbacks = await signed(second, 'GET', '/callbacks', { query: { jobId: firstJob } });
      expect(callbacks.status).to.equal(400);
      // Still there for its owner.
      expect((await signed(first, 'GET', `/jobs/${firstJob}`)).xml.Response.JobsDetail.State).to.equal('Submitted');
    });

    it('lists only the signing app\'s queues and templates, and refuses its neighbour\'s template edits and redeliveries', async () => {
      const queues = await signed(second, 'GET', '/queue');
      expect(queues.status).to.equal(200);
      expect(JSON.stringify(queues.xml)).to.not.contain(firstQueue);
      const templates = await signed(second, 'GET', '/template');
      expect(templates.status).to.equal(200);
      expect(JSON.stringify(templates.xml)).to.not.contain(firstTemplate);
      const update = await signed(second, 'PUT', `/template/${firstTemplate}`, { body: '<Request><Tag>PicProcess</Tag><Name>x</Name><PicProcess><ProcessRule>imageMogr2/rotate/1</ProcessRule></PicProcess></Request>' });
      expect(update.status).to.be.oneOf([400, 404]);
      expect(JSON.stringify((await signed(first, 'GET', '/template')).xml)).to.contain(firstTemplate).and.not.contain('rotate/1');
      // A delivery of the first app's: a task with a callback, cancelled.
      const { task_id } = await okTask(api, 'create_task', { app_key: first.app_key, task_type: 'delivered', callback_url: 'http://example.com/cb' });
      await okTask(api, 'cancel_task', { app_key: first.app_key, task_id });
      const delivery = await api.service.db.kysely.selectFrom('callback_deliveries').innerJoin('jobs', 'jobs.job_id', 'callback_deliveries.job_id')
        .select(['delivery_id', 'jobs.job_id']).where('jobs.tag', '=', 'delivered').executeTakeFirstOrThrow();
      const redeliver = await signed(second, 'POST', `/callbacks/${delivery.delivery_id}`);
      expect(redeliver.status).to.equal(400);
      expect(redeliver.xml.Error.Message).to.match(/does not exist/);
      expect((await signed(second, 'GET', '/callbacks', { query: { jobId: delivery.job_id } })).status).to.equal(400);
      expect((await signed(first, 'GET', '/callbacks', { query: { jobId: delivery.job_id } })).status).to.equal(200);
    });
  });

  describe('isolation in the task API', () => {
    it('never shows, hands out, changes or lists another app\'s tasks', async () => {
      const mine = (await okTask(api, 'create_task', { app_key: first.app_key, task_type: 'iso', priority: 10 })).task_id;
      const theirs = (await okTask(api, 'create_task', { app_key: second.app_key, task_type: 'iso' })).task_id;
      for (const action of ['get_task', 'cancel_task', 'complete_task', 'fail_task']) {
        expect(await callTask(api, action, { app_key: second.app_key, task_id: mine }), action).to.include({ status: 404, code: 0 });
      }
      expect(await callTask(api, 'update_progress', { app_key: second.app_key, task_id: mine, progress: 5 })).to.include({ status: 404 });
      const listed = await okTask(api, 'list_tasks', { app_key: second.app_key, limit: 100 });
      expect(listed.tasks.map((t: any) => t.task_id)).to.include(theirs).and.not.include(mine);
      expect(listed.tasks.every((t: any) => t.job_id)).to.equal(true);
      expect((await okTask(api, 'get_next_task', { app_key: second.app_key, worker_id: 'b1' })).id).to.equal(theirs);
      expect(await callTask(api, 'get_next_task', { app_key: second.app_key, worker_id: 'b1' })).to.include({ code: 0, data: null });
      expect((await okTask(api, 'get_next_task', { app_key: first.app_key, worker_id: 'a1', task_types: ['iso'] })).id).to.equal(mine);
    });
  });

  describe('rotate and disable', () => {
    it('rotating stops the old keys at once and the new ones work', async () => {
      const res = await admin(api, 'POST', `/admin/apps/${second.app_id}/rotate`);
      expect(res.status).to.equal(200);
      const rotated = res.body as Keys;
      expect(rotated.app_key).to.not.equal(second.app_key);
      expect(rotated.secret_id).to.not.equal(second.secret_id);
      expect(await callTask(api, 'list_tasks', { app_key: second.app_key })).to.include({ status: 401 });
      expect((await signed(second, 'GET', '/jobs')).status).to.equal(403);
      expect(await callTask(api, 'list_tasks', { app_key: rotated.app_key })).to.include({ status: 200, code: 1 });
      expect((await signed(rotated, 'GET', '/jobs')).status).to.equal(200);
      second = rotated;
    });

    it('a rotation reaches another process on the same database at once (NOTIFY), though it remembers app_keys', async function () {
      if (api.config.databaseUrl === undefined) this.skip();
      const other = await startTestService({ database: { databaseUrl: api.config.databaseUrl, dataDir: api.config.dataDir } });
      try {
        expect(await callTask(other, 'list_tasks', { app_key: second.app_key })).to.include({ status: 200, code: 1 });
        const rotated = (await admin(api, 'POST', `/admin/apps/${second.app_id}/rotate`)).body as Keys;
        const deadline = Date.now() + 2000;
        let answer = await callTask(other, 'list_tasks', { app_key: second.app_key });
        while (answer.status === 200 && Date.now() < deadline) answer = await callTask(other, 'list_tasks', { app_key: second.app_key });
        expect(answer).to.include({ status: 401 });
        expect(await callTask(other, 'list_tasks', { app_key: rotated.app_key })).to.include({ status: 200, code: 1 });
        second = rotated;
      } finally {
        await other.stop();
      }
    });

    it('disabling stops its keys; its listing shows it disabled', async () => {
      const res = await admin(api, 'DELETE', `/admin/apps/${second.app_id}`);
      expect(res.status).to.equal(200);
      expect(res.body.disabled).to.equal(true);
      expect(await callTask(api, 'list_tasks', { app_key: second.app_key })).to.include({ status: 401 });
      expect((await signed(second, 'GET', '/jobs')).status).to.equal(403);
      const listed = await admin(api, 'GET', '/admin/apps');
      expect(listed.body.apps.find((a: any) => a.app_id === second.app_id).disabled).to.equal(true);
    });
  });

  describe('authentication by default', () => {
    it('requires signed CI requests with DATABASE_URL, not in the embedded mode', () => {
      expect(loadConfig({ DATABASE_URL: 'postgres://db.example/mediajobs' }).requireAuth).to.equal(true);
      expect(loadConfig({ DATABASE_URL: 'postgres://db.example/mediajobs', MEDIAJOBS_REQUIRE_AUTH: 'false' }).requireAuth).to.equal(false);
      expect(loadConfig({}).requireAuth).to.equal(false);
    });

    it('refuses an unsigned CI request (403 AccessDenied) on a server database, and serves signed ones and the task API', async () => {
      // '' is unset: the default for this run's database (the test helper otherwise turns it off).
      const defaults = await startTestService({ env: { MEDIAJOBS_REQUIRE_AUTH: '' } });
      try {
        const unsigned = await defaults.request('GET', '/jobs');
        const onServer = defaults.config.databaseUrl !== undefined;
        expect(unsigned.status).to.equal(onServer ? 403 : 200);
        if (onServer) expect(unsigned.xml.Error.Code).to.equal('AccessDenied');
        const app = defaults.service.app;
        const host = new URL(defaults.baseUrl).host;
        const authorization = signRequest({ method: 'GET', path: '/jobs', headers: { host }, secretId: app.secretId, secretKey: app.secretKey });
        expect((await httpRequest(`${defaults.baseUrl}/jobs`, 'GET', undefined, { host, authorization })).status).to.equal(200);
        expect(await callTask(defaults, 'list_tasks', { app_key: app.appKey })).to.include({ status: 200, code: 1 });
      } finally {
        await defaults.stop();
      }
    });
  });

  describe('pinned credentials', () => {
    it('MEDIAJOBS_SECRET_ID/SECRET_KEY/APP_KEY and MEDIAJOBS_ADMIN_TOKEN pin the first app and the admin token', async () => {
      const pinned = await startTestService({
        env: { MEDIAJOBS_SECRET_ID: 'AKIDpinnedpinnedpinned', MEDIAJOBS_SECRET_KEY: 'pinned-secret-key', MEDIAJOBS_APP_KEY: 'pinned-app-key', MEDIAJOBS_ADMIN_TOKEN: 'pinned-admin-token' },
      });
      try {
        expect(pinned.service.app).to.include({ secretId: 'AKIDpinnedpinnedpinned', secretKey: 'pinned-secret-key', appKey: 'pinned-app-key' });
        expect(pinned.service.adminToken).to.equal('pinned-admin-token');
        expect(await callTask(pinned, 'list_tasks', { app_key: 'pinned-app-key' })).to.include({ status: 200, code: 1 });
        expect((await admin(pinned, 'GET', '/admin/apps', undefined, 'pinned-admin-token')).status).to.equal(200);
      } finally {
        await pinned.stop();
      }
    });
  });
});

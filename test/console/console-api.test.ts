import { expect } from 'chai';
import { sql } from 'kysely';
import { claimJobs, endJobsAndClaimNext, releaseJob, retryOrFail } from '../../src/engine/queue.sql.js';
import { mediaInfoRequest, submit } from '../helpers/jobs.js';
import { startTestService, type TestService } from '../helpers/service.js';

/*
 * The console's JSON API without a browser: who may read what, the session
 * cookie, CSRF on actions, an app session's scope.
 */

describe('console API access', () => {
  let api: TestService;
  before(async () => { api = await startTestService(); });
  after(async () => { await api.stop(); });

  // fetch, for its Set-Cookie (the shared helper keeps single-valued headers only).
  const login = async (body: Record<string, string>) => {
    const res = await fetch(`${api.baseUrl}/console/api/login`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    const setCookie = res.headers.getSetCookie()[0] ?? '';
    const text = await res.text();
    return { res, setCookie, cookie: setCookie.split(';')[0], csrf: res.status === 200 ? (JSON.parse(text) as { csrf: string }).csrf : '' };
  };
  const get = (path: string, cookie = '') => api.request('GET', path, { headers: cookie ? { cookie } : {} });
  const post = (path: string, cookie: string, headers: Record<string, string> = {}, body = '{}') =>
    api.request('POST', path, { body, headers: { cookie, 'content-type': 'application/json', ...headers } });

  it('redirects / to /console/ and serves the page and its npm assets without a session', async () => {
    const root = await get('/');
    expect(root.status).to.equal(302);
    expect(root.headers.get('location')).to.equal('/console/');
    const page = await get('/console/');
    expect(page.status).to.equal(200);
    expect(page.headers.get('content-security-policy')).to.include("script-src 'self'");
    for (const asset of ['/console/app.js', '/console/vendor/preact.mjs', '/console/vendor/hooks.mjs', '/console/vendor/htm.mjs', '/console/vendor/uplot.mjs']) {
      const res = await get(asset);
      expect(res.status, asset).to.equal(200);
      expect(res.headers.get('content-type'), asset).to.match(/^text\/javascript/);
    }
    expect((await get('/console/vendor/../../package.json')).status).to.equal(404);
  });

  it('answers 401 to every data path and the event stream without a session, and refuses a forged cookie', async () => {
    for (const path of ['/console/api/session', '/console/api/jobs', '/console/api/overview', '/console/api/events', '/console/api/apps', '/console/api/workers']) {
      expect((await get(path)).status, path).to.equal(401);
    }
    const forged = `mediajobs_console=${Buffer.from(JSON.stringify({ kind: 'admin', expires: Date.now() + 1e6, csrf: 'x' })).toString('base64url')}.AAAA`;
    expect((await get('/console/api/jobs', forged)).status).to.equal(401);
  });

  it('logs in with the admin token into an HttpOnly SameSite=Strict cookie; actions need the CSRF token and a same origin', async () => {
    expect((await login({ token: 'nope' })).res.status).to.equal(401);
    const { res, setCookie, cookie, csrf } = await login({ token: api.service.adminToken });
    expect(res.status).to.equal(200);
    expect(setCookie).to.match(/httponly/i).and.to.match(/samesite=strict/i);
    expect((await get('/console/api/jobs', cookie)).status).to.equal(200);
    expect((await post('/console/api/apps', cookie, {}, '{"name":"x"}')).status).to.equal(403);
    expect((await post('/console/api/apps', cookie, { 'x-csrf-token': 'wrong' }, '{"name":"x"}')).status).to.equal(403);
    expect((await post('/console/api/apps', cookie, { 'x-csrf-token': csrf, origin: 'http://evil.example' }, '{"name":"x"}')).status).to.equal(403);
    const created = await post('/console/api/apps', cookie, { 'x-csrf-token': csrf }, '{"name":"tenant-b"}');
    expect(created.status, created.text).to.equal(201);
    expect(JSON.parse(created.text)).to.include.keys('secret_key', 'app_key');
  });

  it('shows an app session only its own jobs, refuses it the apps page, and ends it when the app is disabled', async () => {
    const admin = await login({ token: api.service.adminToken });
    const made = JSON.parse((await post('/console/api/apps', admin.cookie, { 'x-csrf-token': admin.csrf }, '{"name":"tenant-c"}')).text) as Record<string, string>;
    const mine = await submit(api, mediaInfoRequest('input/a.mp4'));
    const app = await login({ secretId: made.secret_id, secretKey: made.secret_key });
    expect(app.res.status).to.equal(200);
    const theirs = JSON.parse((await get('/console/api/jobs', app.cookie)).text) as { jobs: Array<{ job_id: string }> };
    expect(theirs.jobs.map((j) => j.job_id)).to.not.include(mine);
    expect((await get(`/console/api/jobs/${mine}`, app.cookie)).status).to.equal(404);
    expect((await get('/console/api/apps', app.cookie)).status).to.equal(403);
    expect((await post(`/console/api/jobs/${mine}/cancel`, app.cookie, { 'x-csrf-token': app.csrf })).status).to.equal(404);
    const adminView = JSON.parse((await get('/console/api/jobs', admin.cookie)).text) as { jobs: Array<{ job_id: string }> };
    expect(adminView.jobs.map((j) => j.job_id)).to.include(mine);
    expect((await post(`/console/api/apps/${made.app_id}/disable`, admin.cookie, { 'x-csrf-token': admin.csrf })).status).to.equal(200);
    expect((await get('/console/api/jobs', app.cookie)).status).to.equal(401);
  });

  it('sets a queue\'s MaxConcurrent and pauses it through UpdateMediaQueue\'s path, as DescribeMediaQueues then shows', async () => {
    const { cookie, csrf } = await login({ token: api.service.adminToken });
    await submit(api, mediaInfoRequest('input/a.mp4'));
    const [queue] = (JSON.parse((await get('/console/api/queues', cookie)).text) as { queues: Array<{ queue_id: string }> }).queues;
    expect((await post(`/console/api/queues/${queue.queue_id}`, cookie, { 'x-csrf-token': csrf }, '{"maxConcurrent":0}')).status).to.equal(400);
    const res = await post(`/console/api/queues/${queue.queue_id}`, cookie, { 'x-csrf-token': csrf, origin: `https://${new URL(api.baseUrl).host}` }, '{"maxConcurrent":7,"state":"Paused"}');
    expect(res.status, res.text).to.equal(200);
    const described = (await api.request('GET', '/queue')).xml.Response.QueueList;
    const one = Array.isArray(described) ? described.find((q: { QueueId: string }) => q.QueueId === queue.queue_id) : described;
    expect(one.MaxConcurrent).to.equal('7');
    expect(one.State).to.equal('Paused');
    expect((await post(`/console/api/queues/${queue.queue_id}`, cookie, { 'x-csrf-token': csrf }, '{"state":"Active"}')).status).to.equal(200);
  });

  it('lists a job\'s output objects that exist, with a download link an app of another APPID cannot use', async () => {
    const admin = await login({ token: api.service.adminToken });
    const res = await api.request('POST', '/jobs', { body: '<Request><Tag>PicProcess</Tag><Input><Object>input/p.jpg</Object></Input><Operation><PicProcess><ProcessRule>imageMogr2/rotate/90</ProcessRule></PicProcess>'
      + '<Output><Region>ap-local</Region><Bucket>local-1250000000</Bucket><Object>output/rotated.jpg</Object></Output></Operation></Request>' });
    expect(res.status, res.text).to.equal(200);
    const id = res.xml.Response.JobsDetail.JobId as string;
    await api.service.storage.put('local-1250000000', 'output/rotated.jpg', Buffer.from('not really a jpeg'));
    const detail = JSON.parse((await get(`/console/api/jobs/${id}`, admin.cookie)).text) as { outputs: Array<{ bucket: string; key: string; size: number }> };
    expect(detail.outputs).to.deep.equal([{ bucket: 'local-1250000000', key: 'output/rotated.jpg', size: 17 }]);
    const download = await get('/console/api/objects?bucket=local-1250000000&key=output%2Frotated.jpg', admin.cookie);
    expect(download.status).to.equal(200);
    expect(download.text).to.equal('not really a jpeg');
    const made = JSON.parse((await post('/console/api/apps', admin.cookie, { 'x-csrf-token': admin.csrf }, '{"name":"tenant-d"}')).text) as Record<string, string>;
    const other = await login({ secretId: made.secret_id, secretKey: made.secret_key });
    expect((await get('/console/api/objects?bucket=local-1250000000&key=output%2Frotated.jpg', other.cookie)).status).to.equal(404);
  });

  it('retries a Failed job as one more attempt of the same job, and refuses a job that is not Failed with 409', async () => {
    const { cookie, csrf } = await login({ token: api.service.adminToken });
    const id = await submit(api, mediaInfoRequest('input/a.mp4'));
    expect((await post(`/console/api/jobs/${id}/retry`, cookie, { 'x-csrf-token': csrf })).status).to.equal(409);
    await sql`UPDATE jobs SET state = 'Failed', code = 'InvalidMedia', message = 'bad', attempts = 3, ended_at = now(), started_at = now() WHERE job_id = ${id}`.execute(api.service.db.kysely);
    const res = await post(`/console/api/jobs/${id}/retry`, cookie, { 'x-csrf-token': csrf });
    expect(res.status, res.text).to.equal(200);
    const detail = (await api.request('GET', `/jobs/${id}`)).xml.Response.JobsDetail;
    expect(detail.State).to.equal('Submitted');
    expect(detail.Code).to.equal('');
    expect(detail.EndTime).to.equal('-');
    const row = await api.service.db.kysely.selectFrom('jobs').select(['attempts', 'max_attempts']).where('job_id', '=', id).executeTakeFirstOrThrow();
    expect(row).to.deep.equal({ attempts: 3, max_attempts: 4 });
    expect((await post(`/console/api/jobs/${id}/retry`, cookie, { 'x-csrf-token': csrf })).status).to.equal(409);
  });

  it('shows each attempt with its worker in the detail timeline: a job that fails once and succeeds on retry, a job handed back uncounted', async () => {
    // A service of its own, so that the claims below take these jobs and no other test's.
    const own = await startTestService();
    try {
      const db = own.service.db.kysely;
      const login = await fetch(`${own.baseUrl}/console/api/login`, { method: 'POST', body: JSON.stringify({ token: own.service.adminToken }), headers: { 'content-type': 'application/json' } });
      const cookie = (login.headers.getSetCookie()[0] ?? '').split(';')[0];
      const detail = async (id: string) => JSON.parse((await own.request('GET', `/console/api/jobs/${id}`, { headers: { cookie } })).text) as {
        attempts: Array<{ attempt: number; worker: string | null; state: string; code: string | null; message: string | null; started_at: string; ended_at: string | null }>;
        timeline: Array<{ what: string; detail?: string }>;
      };
      // The engine's own statements, as a worker runs them: claim on A, a transient failure puts it back, claim on B, end Success with the next claim.
      const id = await submit(own, mediaInfoRequest('input/a.mp4'));
      const [first] = await claimJobs(db, 'host-a:11:aaaa', 60_000, 1);
      expect(first.job.jobId).to.equal(id);
      expect((await detail(id)).attempts.map((a) => [a.attempt, a.worker, a.state, a.ended_at])).to.deep.equal([[1, 'host-a:11:aaaa', 'Running', null]]);
      await retryOrFail(db, first.job, 'host-a:11:aaaa', 0, 'ffprobe was killed');
      const [second] = await claimJobs(db, 'host-b:22:bbbb', 60_000, 1);
      expect(second.job.jobId).to.equal(id);
      expect(second.job.attempts).to.equal(2);
      await endJobsAndClaimNext(db, [{ jobId: id, to: 'Success', outcome: { code: 'Success', message: '' } }], 'host-b:22:bbbb', 60_000, 1);
      const done = await detail(id);
      expect(done.attempts.map(({ attempt, worker, state, code, message }) => ({ attempt, worker, state, code, message }))).to.deep.equal([
        { attempt: 1, worker: 'host-a:11:aaaa', state: 'Retry', code: null, message: 'Attempt 1 failed: ffprobe was killed' },
        { attempt: 2, worker: 'host-b:22:bbbb', state: 'Success', code: 'Success', message: '' },
      ]);
      expect(done.attempts.every((a) => a.ended_at !== null && a.ended_at >= a.started_at)).to.equal(true);
      expect(done.attempts[1].started_at >= done.attempts[0].ended_at!).to.equal(true);
      // The timeline: created, attempt 1 on A, its retry, attempt 2 on B, one Success.
      expect(done.timeline.map((p) => p.what)).to.deep.equal(['created', 'started', 'Retry', 'started', 'Success']);
      expect(done.timeline[1].detail).to.equal('attempt 1 of 3 on host-a:11:aaaa');
      expect(done.timeline[3].detail).to.equal('attempt 2 of 3 on host-b:22:bbbb');
      const row = await db.selectFrom('jobs').select(['state', 'attempts', 'ended_at']).where('job_id', '=', id).executeTakeFirstOrThrow();
      expect(row.state).to.equal('Success');
      expect(row.ended_at?.toISOString()).to.equal(done.attempts[1].ended_at);

      // Handed back by a stopping worker (the attempt given back), then claimed by another: attempt 1 is the second worker's.
      const handed = await submit(own, mediaInfoRequest('input/b.mp4'));
      const [c] = await claimJobs(db, 'host-c:33:cccc', 60_000, 1);
      expect(c.job.jobId).to.equal(handed);
      await releaseJob(db, c.job, 'host-c:33:cccc');
      expect((await detail(handed)).attempts.map((a) => [a.attempt, a.worker, a.state])).to.deep.equal([[1, 'host-c:33:cccc', 'Released']]);
      await claimJobs(db, 'host-d:44:dddd', 60_000, 1);
      expect((await detail(handed)).attempts.map((a) => [a.attempt, a.worker, a.state, a.ended_at])).to.deep.equal([[1, 'host-d:44:dddd', 'Running', null]]);
      // Cancelled while running: the attempt ends Cancel, and the job's end is not shown twice.
      const { csrf } = await login.json() as { csrf: string };
      expect((await own.request('POST', `/console/api/jobs/${handed}/cancel`, { body: '{}', headers: { cookie, 'content-type': 'application/json', 'x-csrf-token': csrf } })).status).to.equal(200);
      const cancelled = await detail(handed);
      expect(cancelled.attempts.map((a) => [a.attempt, a.state, a.code])).to.deep.equal([[1, 'Cancel', 'Cancel']]);
      expect(cancelled.timeline.filter((p) => p.what === 'Cancel')).to.have.length(1);
    } finally {
      await own.stop();
    }
  });

  it('cancels a job through the same path as CancelMediaJob, and refuses a second cancel with 409', async () => {
    const { cookie, csrf } = await login({ token: api.service.adminToken });
    const id = await submit(api, mediaInfoRequest('input/a.mp4'));
    const res = await post(`/console/api/jobs/${id}/cancel`, cookie, { 'x-csrf-token': csrf });
    expect(res.status, res.text).to.equal(200);
    expect((JSON.parse(res.text) as { job: { state: string } }).job.state).to.equal('Cancel');
    const detail = await api.request('GET', `/jobs/${id}`);
    expect(detail.xml.Response.JobsDetail.State).to.equal('Cancel');
    expect((await post(`/console/api/jobs/${id}/cancel`, cookie, { 'x-csrf-token': csrf })).status).to.equal(409);
  });
});

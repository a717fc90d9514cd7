import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { httpRequest, startTestService, waitFor, type TestService } from '../helpers/service.js';
import { admin, callTask } from '../tasks/helpers.js';
import { MAX_TAG_LABELS } from '../../src/metrics/metrics.js';

/*
 * The admin API as a hostile client uses it, and what any client can make
 * the service remember: /metrics labels come from known operations only.
 */
describe('admin API and /metrics: hostile clients', function () {
  this.timeout(60_000);
  let api: TestService;
  before(async () => { api = await startTestService(); });
  after(() => api.stop());

  it('answers wrong tokens, malformed JSON, oversized bodies and bad names in its own JSON error shape', async () => {
    for (const [what, res] of [
      ['no token', await admin(api, 'GET', '/admin/apps', undefined, '')],
      ['a wrong token of the right length', await admin(api, 'GET', '/admin/apps', undefined, api.service.adminToken.replace(/.$/, (c) => (c === 'a' ? 'b' : 'a')))],
    ] as const) {
      expect(res.status, what).to.equal(401);
      expect(res.body.error.code, what).to.equal('Unauthorized');
    }
    const auth = { authorization: `Bearer ${api.service.adminToken}` };
    for (const [what, body, status] of [
      ['malformed JSON', '{"name":', 400],
      ['an array', '[1]', 400],
      ['a NUL in the name', '{"name":"a\\u0000"}', 400],
      ['a body over the cap', Buffer.alloc(2 * 1024 * 1024, 0x20), 400],
    ] as const) {
      const res = await httpRequest(`${api.baseUrl}/admin/apps`, 'POST', body, auth);
      expect(res.status, `${what}: ${res.text}`).to.equal(status);
      expect(JSON.parse(res.text).error.code, what).to.equal('BadRequest');
    }
  });

  it('never turns a client\'s action name, admin path or console path into a /metrics series (unauthenticated clients minted them without end)', async () => {
    const marks = Array.from({ length: 20 }, () => `zz${randomBytes(6).toString('hex')}`);
    for (const mark of marks) {
      await httpRequest(`${api.baseUrl}/api.php?action=${mark}`, 'POST', '{}');
      await httpRequest(`${api.baseUrl}/admin/${mark}`, 'GET');
      await httpRequest(`${api.baseUrl}/console/api/${mark}/${mark}`, 'GET');
      await httpRequest(`${api.baseUrl}/console/api/jobs/j0/${mark}`, 'GET');
    }
    const metrics = (await httpRequest(`${api.baseUrl}/metrics`, 'GET')).text;
    for (const mark of marks) expect(metrics).to.not.include(mark);
    expect(metrics).to.include('operation="task-api:?"').and.include('operation="admin:GET /admin/?"').and.include('operation="console:?"');
  });

  it(`keeps at most ${MAX_TAG_LABELS} task types as labels of the job counters; the rest count as "other"`, async () => {
    const key = api.service.app.appKey;
    for (let batch = 0; batch < (MAX_TAG_LABELS + 20) / 20; batch++) {
      await Promise.all(Array.from({ length: 20 }, (_, i) => callTask(api, 'create_task', { app_key: key, task_type: `type-${batch}-${i}` })));
    }
    const created = await waitFor(async () => {
      const lines = (await httpRequest(`${api.baseUrl}/metrics`, 'GET')).text.split('\n').filter((l) => l.startsWith('mediajobs_jobs_created_total{'));
      const total = lines.reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
      return total >= MAX_TAG_LABELS + 20 ? lines : undefined;
    }, 20_000, 'every create counted');
    expect(created.length).to.be.at.most(MAX_TAG_LABELS + 1);
    expect(created.some((l) => l.includes('tag="other"'))).to.equal(true);
  });
});

import { expect } from 'chai';
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
});

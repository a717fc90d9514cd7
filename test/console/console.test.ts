import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { mediaInfoRequest, putFixture, submit } from '../helpers/jobs.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startTestService, waitFor, type TestService } from '../helpers/service.js';
import { BROWSER_MISSING, OUTPUT_DIR, launchBrowser, screenshotOnFailure, type Browser } from './browser.js';

/*
 * The console in a real browser: Debian's chromium through playwright-core.
 * Jobs are submitted through the CI API and the task API, and the console must
 * show them without a reload (the SSE feed). The overview and a job's detail
 * are saved for the README (CONSOLE_SCREENSHOTS_DIR=docs).
 */

/** Where the README's screenshots go: test-output/console unless CONSOLE_SCREENSHOTS_DIR=docs (as they were made), so a test run leaves the tree clean. */
const DOCS = path.resolve(process.env.CONSOLE_SCREENSHOTS_DIR ?? OUTPUT_DIR);

describe('console in a browser', function () {
  this.timeout(120_000);
  let api: TestService;
  let browser: Browser | undefined;
  let receiver: Receiver;
  const latencies: number[] = [];

  before(async function () {
    if (BROWSER_MISSING) {
      console.log(`      skipped: ${BROWSER_MISSING}`);
      this.skip();
    }
    receiver = await startReceiver();
    api = await startTestService({ worker: true, env: { MEDIAJOBS_CONCURRENCY: '2', MEDIAJOBS_ALLOW_PRIVATE_CALLBACKS: 'true' } });
    await putFixture(api, 'fixtures/media/h264-aac.mp4', 'input/demo.mp4');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await api?.stop();
    await receiver?.close();
    if (latencies.length) {
      const sorted = [...latencies].sort((a, b) => a - b);
      console.log(`      submit → row visible: ${sorted.map((x) => x.toFixed(0)).join(', ')} ms (median ${sorted[Math.floor(sorted.length / 2)].toFixed(0)} ms)`);
    }
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      const file = await screenshotOnFailure(browser?.page, this.currentTest.fullTitle());
      if (file) console.log(`      screenshot: ${file}`);
    }
  });

  const page = () => browser!.page;
  const go = async (hash: string) => {
    await page().evaluate((h) => { location.hash = h; }, hash);
  };

  it('refuses the API without a session, then logs in with the admin token from / (redirected to /console/)', async () => {
    const res = await api.request('GET', '/console/api/jobs');
    expect(res.status).to.equal(401);
    const response = await page().goto(`${api.baseUrl}/`);
    expect(response?.url()).to.equal(`${api.baseUrl}/console/`);
    await page().fill('[data-testid=login-admin] input[name=token]', 'wrong');
    await page().click('[data-testid=login-admin] button[type=submit]');
    await page().waitForSelector('p.error');
    await page().fill('[data-testid=login-admin] input[name=token]', api.service.adminToken);
    await page().click('[data-testid=login-admin] button[type=submit]');
    await page().waitForSelector('[data-testid=overview]');
    await page().waitForSelector('[data-testid=live].up');
    const cookies = await browser!.context.cookies();
    const session = cookies.find((c) => c.name === 'mediajobs_console');
    expect(session?.httpOnly).to.equal(true);
    expect(session?.sameSite).to.equal('Strict');
  });

  it('shows a job submitted through the API appear live and reach Success, then its detail and JobsDetail XML', async () => {
    await go('#/jobs');
    await page().waitForSelector('[data-testid=jobs] table');
    let jobId = '';
    for (let i = 0; i < 5; i++) {
      const sent = performance.now();
      jobId = await submit(api, mediaInfoRequest('input/demo.mp4', { callBack: receiver.url }));
      await page().waitForSelector(`tr[data-job-id="${jobId}"]`, { timeout: 5000 });
      latencies.push(performance.now() - sent);
      await page().waitForSelector(`tr[data-job-id="${jobId}"][data-state="Success"]`, { timeout: 20_000 });
    }
    expect(Math.max(...latencies)).to.be.below(1000);
    await page().click(`tr[data-job-id="${jobId}"] a`);
    await page().waitForSelector(`[data-testid=job-detail][data-job-id="${jobId}"][data-state="Success"]`);
    const xml = await page().textContent('[data-testid=job-document]');
    expect(xml).to.include(`<JobId>${jobId}</JobId>`);
    expect(xml).to.include('<State>Success</State>');
    // Its callback, delivered, with its attempt; then a redelivery reaches the receiver again.
    await waitFor(async () => (receiver.received.length >= 5 ? true : undefined), 10_000, 'the callbacks');
    await page().waitForSelector('.delivery .state-Delivered');
    const before = receiver.received.length;
    await page().click('.delivery [data-action=redeliver]');
    await waitFor(async () => (receiver.received.length > before ? true : undefined), 10_000, 'the redelivery');
    await page().waitForFunction(() => document.querySelectorAll('.delivery table tr').length >= 2, undefined, { timeout: 10_000 });
    mkdirSync(DOCS, { recursive: true });
    await page().screenshot({ path: path.join(DOCS, 'console-job-detail.png'), fullPage: false });
  });

  it('pauses a queue from the Queues page: a new job waits as Pause, and runs once resumed', async () => {
    await go('#/queues');
    const pause = await page().waitForSelector('tr[data-state="Active"] [data-action=pause]');
    await pause.click();
    await page().waitForSelector('tr[data-state="Paused"] [data-action=resume]');
    await go('#/jobs');
    await page().waitForSelector('[data-testid=jobs] table');
    const jobId = await submit(api, mediaInfoRequest('input/demo.mp4'));
    await page().waitForSelector(`tr[data-job-id="${jobId}"][data-state="Pause"]`, { timeout: 5000 });
    await go('#/queues');
    await (await page().waitForSelector('tr[data-state="Paused"] [data-action=resume]')).click();
    await page().waitForSelector('tr[data-state="Active"] [data-action=pause]');
    await go('#/jobs');
    await page().waitForSelector(`tr[data-job-id="${jobId}"][data-state="Success"]`, { timeout: 20_000 });
  });

  it('cancels a running task (held by an external worker) from its detail page', async () => {
    const call = async (action: string, body: Record<string, unknown>) => {
      const res = await api.request('POST', `/api.php?action=${action}`, { body: JSON.stringify({ app_key: api.service.app.appKey, ...body }), headers: { 'content-type': 'application/json' } });
      const parsed = JSON.parse(res.text) as { code: number; data: Record<string, any> };
      expect(parsed.code, res.text).to.equal(1);
      return parsed.data;
    };
    const { task_id } = await call('create_task', { task_type: 'video_extract', task_data: { video_url: 'https://example.com/v.mp4' } });
    await call('get_next_task', { worker_id: 'browser-test', task_types: ['video_extract'] });
    const { job_id } = await call('get_task', { task_id });
    await call('update_progress', { task_id, progress: 40, message: 'halfway' });
    // The Workers page lists the external worker with the task it holds and its progress.
    await go('#/workers');
    await page().waitForSelector(`tr[data-worker-id="browser-test"] a[href="#/jobs/${job_id}"]`);
    expect(await page().textContent('tr[data-worker-id="browser-test"] .progress')).to.equal('40%');
    await go(`#/jobs/${job_id}`);
    await page().waitForSelector(`[data-testid=job-detail][data-state="Running"]`);
    await page().click('[data-action=cancel]');
    await page().waitForSelector(`[data-testid=job-detail][data-state="Cancel"]`, { timeout: 5000 });
    expect((await call('get_task', { task_id })).status).to.equal('cancelled');
  });

  it('retries a Failed job from its detail page: once its input exists it runs again to Success', async () => {
    const jobId = await submit(api, mediaInfoRequest('input/late.mp4'));
    await go(`#/jobs/${jobId}`);
    await page().waitForSelector(`[data-testid=job-detail][data-state="Failed"]`, { timeout: 20_000 });
    await putFixture(api, 'fixtures/media/h264-aac.mp4', 'input/late.mp4');
    await page().click('[data-action=retry]');
    await page().waitForSelector(`[data-testid=job-detail][data-state="Success"]`, { timeout: 20_000 });
    expect(await page().textContent('[data-testid=job-document]')).to.include('<State>Success</State>');
    // Both runs in the attempts table (sql/0014), each with its worker: the Failed one, then the retry's Success.
    await page().waitForSelector('[data-testid=job-attempts] tr[data-state="Success"]', { timeout: 5000 });
    const runs = await page().$$eval('[data-testid=job-attempts] tbody tr', (rows) => rows.map((r) => [r.getAttribute('data-state'), r.getAttribute('data-worker')]));
    expect(runs.map(([state]) => state)).to.deep.equal([...runs.slice(0, -2).map(() => 'Retry'), 'Failed', 'Success']);
    expect(runs.every(([, worker]) => Boolean(worker))).to.equal(true);
  });

  it('creates an app, showing its keys once', async () => {
    await go('#/apps');
    await page().waitForSelector('[data-testid=apps] table');
    await page().fill('[data-testid=apps] input[name=name]', 'browser-made');
    await page().click('[data-action=create-app]');
    const key = await page().waitForSelector('[data-testid=secret-key]');
    expect((await key.textContent())?.length).to.be.greaterThan(16);
    await page().waitForSelector('tr[data-app-name="browser-made"]');
  });

  it('logs in from the one-click URL, in Chinese for a zh browser and dark when the system is dark', async () => {
    const zh = await launchBrowser({ locale: 'zh-CN', colorScheme: 'dark' });
    try {
      await zh.page.goto(`${api.baseUrl}/console/#token=${encodeURIComponent(api.service.adminToken)}`);
      await zh.page.waitForSelector('[data-testid=overview]');
      expect(await zh.page.textContent('[data-nav=overview]')).to.equal('概览');
      expect(zh.page.url()).to.not.include('token=');
      expect(await zh.page.evaluate(() => getComputedStyle(document.body).backgroundColor)).to.equal('rgb(18, 22, 27)');
      await zh.page.evaluate(() => { location.hash = '#/jobs'; });
      await zh.page.waitForSelector('tr[data-state="Success"]');
      // Local times, the CI timestamp on hover.
      expect(await zh.page.getAttribute('tr[data-state="Success"] time', 'title')).to.match(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}$/);
    } finally {
      await zh.close();
    }
  });

  it('loads the page fresh into a filled jobs list, then the overview (docs/console-overview.png)', async () => {
    const loads: number[] = [];
    for (let i = 0; i < 3; i++) {
      // From another document: a goto that changes only the fragment would not load the page again.
      await page().goto('about:blank');
      const t0 = performance.now();
      await page().goto(`${api.baseUrl}/console/#/jobs`);
      await page().waitForSelector('tr[data-job-id]');
      loads.push(performance.now() - t0);
    }
    const dcl = await page().evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).domContentLoadedEventEnd);
    console.log(`      page load → first jobs row: ${loads.map((x) => x.toFixed(0)).join(', ')} ms (DOMContentLoaded ${dcl.toFixed(0)} ms)`);
    expect(Math.min(...loads)).to.be.below(2000);
    await go('#/overview');
    await page().waitForSelector('[data-testid=throughput-chart] canvas');
    mkdirSync(DOCS, { recursive: true });
    await page().screenshot({ path: path.join(DOCS, 'console-overview.png'), fullPage: false });
  });
});

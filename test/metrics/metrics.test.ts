import { expect } from 'chai';
import { mediaInfoRequest, putFixture, submit, waitForState } from '../helpers/jobs.js';
import { startReceiver } from '../helpers/receiver.js';
import { startTestService, waitFor, type TestService } from '../helpers/service.js';

/** The value of one sample of a Prometheus text exposition, 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_:]+)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return 0;
}

describe('metrics, healthz and readyz', () => {
  let api: TestService;
  before(async () => {
    api = await startTestService({ worker: true, env: { MEDIAJOBS_CONCURRENCY: '1', MEDIAJOBS_ALLOW_PRIVATE_CALLBACKS: 'true' } });
    await putFixture(api, 'fixtures/media/h264-aac.mp4', 'input/demo.mp4');
  });
  after(async () => { await api.stop(); });

  it('GET /healthz answers 200, GET /readyz 200 once every migration is applied', async () => {
    expect((await api.request('GET', '/healthz')).status).to.equal(200);
    const ready = await api.request('GET', '/readyz');
    expect(ready.status, ready.text).to.equal(200);
    expect(JSON.parse(ready.text)).to.deep.equal({ status: 'ready' });
  });

  it('counts a job created and ended, its run time, claim latency, the queue gauges and the HTTP requests, scraped before and after', async () => {
    const before = (await api.request('GET', '/metrics')).text;
    expect(before).to.include('# TYPE mediajobs_jobs_created_total counter');
    expect(before).to.include('process_cpu_seconds_total');
    const labels = { app: '1250000000', tag: 'MediaInfo' };
    const id = await submit(api, mediaInfoRequest('input/demo.mp4'));
    expect((await waitForState(api, id)).State).to.equal('Success');
    // The counts come from the changes feed (NOTIFY), a moment after the commit; the gauges are read at most once a second.
    const after = await waitFor(async () => {
      const text = (await api.request('GET', '/metrics')).text;
      const ended = sample(text, 'mediajobs_jobs_ended_total', { ...labels, state: 'Success' }) > sample(before, 'mediajobs_jobs_ended_total', { ...labels, state: 'Success' });
      return ended && text.includes('mediajobs_queue_waiting_jobs{') ? text : undefined;
    }, 5000, 'the ended counter and the queue gauges');
    expect(sample(after, 'mediajobs_jobs_created_total', labels) - sample(before, 'mediajobs_jobs_created_total', labels)).to.equal(1);
    expect(sample(after, 'mediajobs_jobs_ended_total', { ...labels, state: 'Success' }) - sample(before, 'mediajobs_jobs_ended_total', { ...labels, state: 'Success' })).to.equal(1);
    expect(sample(after, 'mediajobs_job_run_seconds_count', { tag: 'MediaInfo' }) - sample(before, 'mediajobs_job_run_seconds_count', { tag: 'MediaInfo' })).to.equal(1);
    expect(sample(after, 'mediajobs_claim_latency_seconds_count', { tag: 'MediaInfo' }) - sample(before, 'mediajobs_claim_latency_seconds_count', { tag: 'MediaInfo' })).to.equal(1);
    expect(sample(after, 'mediajobs_http_requests_total', { operation: 'CreateMediaJobs', status: '200' })).to.equal(1);
    expect(sample(after, 'mediajobs_http_request_duration_seconds_count', { operation: 'DescribeMediaJob' })).to.be.greaterThan(0);
    expect(after).to.match(/mediajobs_queue_waiting_jobs\{queue_id="p[0-9a-f]{32}",queue="[^"]*",bucket="local-1250000000"\} 0/);
    expect(after).to.match(/mediajobs_queue_running_jobs\{[^}]*\} 0/);
    expect(after).to.match(/mediajobs_queue_oldest_waiting_seconds\{[^}]*\} 0/);
    expect(sample(after, 'mediajobs_workers', { kind: 'internal' })).to.equal(1);
  });

  it('counts callback attempts by outcome: a refused one as failed, then the delivered one', async () => {
    const receiver = await startReceiver();
    try {
      let first = true;
      receiver.answer = () => (first ? ((first = false), 500) : 200);
      const before = (await api.request('GET', '/metrics')).text;
      const id = await submit(api, mediaInfoRequest('input/demo.mp4', { callBack: receiver.url }));
      await waitForState(api, id);
      const after = await waitFor(async () => {
        const text = (await api.request('GET', '/metrics')).text;
        return sample(text, 'mediajobs_callback_attempts_total', { outcome: 'delivered' }) > sample(before, 'mediajobs_callback_attempts_total', { outcome: 'delivered' }) ? text : undefined;
      }, 15_000, 'the delivered attempt');
      expect(sample(after, 'mediajobs_callback_attempts_total', { outcome: 'failed' }) - sample(before, 'mediajobs_callback_attempts_total', { outcome: 'failed' })).to.equal(1);
      expect(sample(after, 'mediajobs_callback_attempts_total', { outcome: 'delivered' }) - sample(before, 'mediajobs_callback_attempts_total', { outcome: 'delivered' })).to.equal(1);
    } finally {
      await receiver.close();
    }
  });

  it('requires MEDIAJOBS_METRICS_TOKEN when it is set', async () => {
    const guarded = await startTestService({ env: { MEDIAJOBS_METRICS_TOKEN: 'scrape-me' } });
    try {
      expect((await guarded.request('GET', '/metrics')).status).to.equal(401);
      expect((await guarded.request('GET', '/metrics', { headers: { authorization: 'Bearer wrong' } })).status).to.equal(401);
      const ok = await guarded.request('GET', '/metrics', { headers: { authorization: 'Bearer scrape-me' } });
      expect(ok.status).to.equal(200);
      expect(ok.text).to.include('mediajobs_http_requests_total');
      expect((await guarded.request('GET', '/healthz')).status).to.equal(200);
    } finally {
      await guarded.stop();
    }
  });
});

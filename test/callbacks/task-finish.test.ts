import { expect } from 'chai';
import type { Processor } from '../../src/processors/processor.js';
import { loadCallbackSecret } from '../../src/callbacks/sender.js';
import { verifySignature } from '../../src/callbacks/signature.js';
import { freshDatabase } from '../helpers/databases.js';
import { defaultQueueId, mediaInfoRequest, putFixture, setQueue, submit, waitForState } from '../helpers/jobs.js';
import { startReceiver, unusedPort, type Receiver } from '../helpers/receiver.js';
import { asArray, startTestService, waitFor, type TestService } from '../helpers/service.js';

const LOCAL = { MEDIAJOBS_ALLOW_PRIVATE_CALLBACKS: 'true', MEDIAJOBS_POLL_INTERVAL: '200ms' };

function jobsDetailXml(body: string): string {
  const match = /<JobsDetail>.*<\/JobsDetail>/s.exec(body);
  if (!match) throw new Error(`no JobsDetail in ${body}`);
  return match[0];
}

async function deliveries(api: TestService, jobId: string): Promise<any[]> {
  const res = await api.request('GET', `/callbacks?jobId=${jobId}`);
  expect(res.status, res.text).to.equal(200);
  return asArray(res.xml.Response.Delivery);
}

describe('TaskFinish callbacks', () => {
  let receiver: Receiver;
  beforeEach(async () => { receiver = await startReceiver(); });
  afterEach(async () => { await receiver.close(); });

  describe('with real MediaInfo jobs', () => {
    let api: TestService;
    before(async () => {
      api = await startTestService({ worker: true, env: LOCAL });
      await putFixture(api, 'fixtures/media/h264-aac.mp4', 'input/demo.mp4');
    });
    after(async () => { await api.stop(); });

    it('POSTs the XML notification whose JobsDetail equals GET /jobs/<id>, signed and with a delivery id', async () => {
      const id = await submit(api, mediaInfoRequest('input/demo.mp4', { callBack: receiver.url }));
      await waitFor(async () => (receiver.received.length ? true : undefined));
      const [callback] = receiver.received;
      expect(callback.headers['content-type']).to.match(/^application\/xml/);
      expect(callback.body).to.match(/^<Response><EventName>TaskFinish<\/EventName><JobsDetail>/);
      const described = await api.request('GET', `/jobs/${id}`);
      expect(jobsDetailXml(callback.body)).to.equal(jobsDetailXml(described.text));
      expect(callback.headers['x-mediajobs-delivery-id']).to.match(/^d[0-9a-f]{32}$/);
      const secret = await loadCallbackSecret(api.service.db);
      expect(verifySignature({
        secret,
        body: callback.body,
        timestamp: String(callback.headers['x-mediajobs-timestamp']),
        signature: String(callback.headers['x-mediajobs-signature']),
      })).to.equal(true);
      const [delivery] = await waitFor(async () => {
        const list = await deliveries(api, id);
        return list[0]?.State === 'Delivered' ? list : undefined;
      });
      expect(delivery).to.include({ JobId: id, Url: receiver.url, Format: 'XML', State: 'Delivered', Attempts: '1' });
      expect(delivery.Attempt.HttpStatus).to.equal('200');
    });

    it('POSTs JSON with every value a string and empty elements left out when CallBackFormat is JSON', async () => {
      const id = await submit(api, mediaInfoRequest('input/demo.mp4', { callBack: receiver.url, callBackFormat: 'JSON' }));
      await waitFor(async () => (receiver.received.length ? true : undefined));
      const [callback] = receiver.received;
      expect(callback.headers['content-type']).to.match(/^application\/json/);
      const json = JSON.parse(callback.body);
      expect(json.EventName).to.equal('TaskFinish');
      expect(json.JobsDetail.JobId).to.equal(id);
      expect(json.JobsDetail.State).to.equal('Success');
      expect(json.JobsDetail).to.not.have.property('Message');
      expect(json.JobsDetail.Operation.MediaInfo.Stream.Video).to.be.an('array').with.length(1);
      expect(json.JobsDetail.Operation.MediaInfo.Stream.Video[0].Width).to.be.a('string');
      expect(json.JobsDetail.Operation.MediaInfo.Stream).to.not.have.property('Subtitle');
      const described = (await api.request('GET', `/jobs/${id}`)).xml.Response.JobsDetail;
      expect(json.JobsDetail.Operation.MediaInfo.Format).to.deep.equal(described.Operation.MediaInfo.Format);
    });
  });

  describe('routing', () => {
    let api: TestService;
    const instant: Processor = { tag: 'MediaInfo', run: async () => ({}) };
    before(async () => { api = await startTestService({ worker: true, env: LOCAL, processors: new Map([['MediaInfo', instant]]) }); });
    after(async () => { await api.stop(); });

    it('uses the queue NotifyConfig when the job has no CallBack, the job\'s CallBack when it has one, and nothing for "no"', async () => {
      const queueReceiver = await startReceiver();
      try {
        const queueId = await defaultQueueId(api);
        await setQueue(api, queueId, 'Active', `<NotifyConfig><State>On</State><Type>Url</Type><Url>${queueReceiver.url}</Url><Event>TransCodingFinish</Event><ResultFormat>JSON</ResultFormat></NotifyConfig>`);
        const viaQueue = await submit(api, mediaInfoRequest('a.mp4'));
        const viaJob = await submit(api, mediaInfoRequest('b.mp4', { callBack: receiver.url }));
        const silenced = await submit(api, mediaInfoRequest('c.mp4', { callBack: 'no' }));
        for (const id of [viaQueue, viaJob, silenced]) await waitForState(api, id);
        await waitFor(async () => (queueReceiver.received.length && receiver.received.length ? true : undefined));
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(queueReceiver.received.map((r) => JSON.parse(r.body).JobsDetail.JobId)).to.deep.equal([viaQueue]);
        expect(receiver.received).to.have.length(1);
        expect(receiver.received[0].body).to.include(viaJob);
        // The job's own callback keeps the queue's ResultFormat when it sets none.
        expect(receiver.received[0].headers['content-type']).to.match(/json/);
        expect(await deliveries(api, silenced)).to.have.length(0);
        await setQueue(api, queueId, 'Active', `<NotifyConfig><State>Off</State><Url>${queueReceiver.url}</Url><Event>TaskFinish</Event></NotifyConfig>`);
        const off = await submit(api, mediaInfoRequest('d.mp4'));
        await waitForState(api, off);
        expect(await deliveries(api, off)).to.have.length(0);
      } finally {
        await queueReceiver.close();
      }
    });

    it('refuses a CallBack on a private address at submit time when private callbacks are off', async () => {
      const strict = await startTestService({ env: { MEDIAJOBS_ALLOW_PRIVATE_CALLBACKS: 'false' } });
      try {
        for (const url of ['http://127.0.0.1:9/cb', 'http://10.0.0.1/cb', 'http://[::1]/cb', 'http://localhost/cb', 'http://169.254.169.254/latest']) {
          const res = await strict.request('POST', '/jobs', { body: mediaInfoRequest('a.mp4', { callBack: url }) });
          expect(res.status, url).to.equal(400);
          expect(res.xml.Error.Code).to.equal('InvalidArgument');
          expect(res.xml.Error.Message).to.match(/CallBack/);
        }
      } finally {
        await strict.stop();
      }
    });
  });

  describe('delivery through outages', () => {
    const instant: Processor = { tag: 'MediaInfo', run: async () => ({}) };

    it('keeps trying a receiver that is down, then answers 500, until it comes back', async function () {
      this.timeout(60_000);
      const port = await unusedPort();
      const api = await startTestService({ worker: true, env: LOCAL, processors: new Map([['MediaInfo', instant]]) });
      try {
        const url = `http://127.0.0.1:${port}/callback`;
        const id = await submit(api, mediaInfoRequest('a.mp4', { callBack: url }));
        await waitFor(async () => ((await deliveries(api, id))[0]?.Attempts === '1' ? true : undefined), 10_000, 'a refused attempt');
        const down = await startReceiver(port);
        try {
          down.answer = () => (down.received.length <= 1 ? 500 : 200);
          await waitFor(async () => ((await deliveries(api, id))[0]?.State === 'Delivered' ? true : undefined), 30_000, 'delivery');
          const [delivery] = await deliveries(api, id);
          const attempts = asArray(delivery.Attempt);
          expect(attempts.length).to.be.at.least(3);
          expect(attempts[0].HttpStatus).to.equal('-');
          expect(attempts[0].Error).to.match(/ECONNREFUSED/);
          expect(attempts.some((a: any) => a.HttpStatus === '500')).to.equal(true);
          expect(attempts.at(-1).HttpStatus).to.equal('200');
          expect(new Set(down.received.map((r) => r.headers['x-mediajobs-delivery-id'])).size).to.equal(1);
        } finally {
          await down.close();
        }
      } finally {
        await api.stop();
      }
    });

    it('loses nothing when the service restarts between attempts', async function () {
      this.timeout(60_000);
      const database = await freshDatabase();
      receiver.answer = () => 500;
      const first = await startTestService({ database, worker: true, env: LOCAL, processors: new Map([['MediaInfo', instant]]) });
      const id = await submit(first, mediaInfoRequest('a.mp4', { callBack: receiver.url }));
      await waitFor(async () => (receiver.received.length ? true : undefined));
      await first.stop();
      receiver.answer = () => 200;
      const second = await startTestService({ database, worker: true, env: LOCAL, processors: new Map([['MediaInfo', instant]]) });
      try {
        await waitFor(async () => ((await deliveries(second, id))[0]?.State === 'Delivered' ? true : undefined), 30_000, 'delivery after restart');
        expect(receiver.received.at(-1)!.body).to.include(id);
      } finally {
        await second.stop();
      }
    });

    it('delivers exactly one notification per job for 1,000 jobs finishing together', async function () {
      this.timeout(120_000);
      const api = await startTestService({ worker: true, env: { ...LOCAL, MEDIAJOBS_CONCURRENCY: '16' }, processors: new Map([['MediaInfo', instant]]) });
      try {
        const queueId = await defaultQueueId(api);
        await setQueue(api, queueId, 'Paused');
        const operations = `<Operation><Tag>MediaInfo</Tag></Operation>`.repeat(5);
        const body = `<Request><Input><Object>a.mp4</Object></Input>${operations}<CallBack>${receiver.url}</CallBack></Request>`;
        for (let i = 0; i < 200; i++) {
          const res = await api.request('POST', '/jobs', { body });
          expect(res.status).to.equal(200);
        }
        await setQueue(api, queueId, 'Active', '<MaxConcurrent>100</MaxConcurrent>');
        await waitFor(async () => {
          const row = await api.service.db.kysely.selectFrom('callback_deliveries').select((eb) => eb.fn.countAll<string>().as('n')).where('state', '=', 'Delivered').executeTakeFirstOrThrow();
          return Number(row.n) === 1000 ? true : undefined;
        }, 100_000, '1000 delivered notifications');
        const ids = receiver.received.map((r) => r.headers['x-mediajobs-delivery-id']);
        expect(new Set(ids).size).to.equal(1000);
        expect(ids.length).to.equal(1000);
        const jobIds = new Set(receiver.received.map((r) => /<JobId>(j[0-9a-f]{32})<\/JobId>/.exec(r.body)![1]));
        expect(jobIds.size).to.equal(1000);
      } finally {
        await api.stop();
      }
    });
  });
});

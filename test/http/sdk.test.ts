import { expect } from 'chai';
import COS from 'cos-nodejs-sdk-v5';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sdkListJobsQuery } from '../helpers/cos-signer.js';
import { asArray, startTestService, type TestService } from '../helpers/service.js';

/*
 * The real cos-nodejs-sdk-v5 client against the service with signatures
 * enforced (shared/sdk-wire-format.md). The SDK talks to a recording
 * pass-through proxy in front of the service, so each test can also check
 * what went over the wire: no 5xx, and no SDK retry (`x-cos-sdk-retry`),
 * since a retried POST /jobs would create the job twice.
 */

const JOB_ID = /^j[0-9a-f]{32}$/;
const QUEUE_ID = /^p[0-9a-f]{32}$/;
const CI_HOST = 'test-1250000000.ci.ap-guangzhou.myqcloud.com';

interface Exchange {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  status?: number;
}

/** A transparent HTTP proxy that records each request and the status it got. */
async function startRecordingProxy(targetPort: number): Promise<{ port: number; log: Exchange[]; close(): Promise<void> }> {
  const log: Exchange[] = [];
  const server = http.createServer((req, res) => {
    const exchange: Exchange = { method: req.method ?? '', url: req.url ?? '', headers: req.headers };
    log.push(exchange);
    const upstream = http.request({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers, agent: false }, (answer) => {
      exchange.status = answer.statusCode;
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => { res.destroy(); });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    log,
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
}

function mediaInfoBody(): string {
  return COS.util.json2xml({
    Request: {
      Tag: 'MediaInfo',
      Input: { Object: 'input/demo.mp4' },
      Operation: { UserData: 'This is my data.', JobLevel: '0' },
      CallBack: 'http://callback.demo.com',
      CallBackFormat: 'JSON',
    },
  });
}

function picProcessBody(): string {
  return COS.util.json2xml({
    Request: {
      Tag: 'PicProcess',
      Input: { Object: 'input/demo.jpg' },
      Operation: {
        PicProcess: { IsPicInfo: 'true', ProcessRule: 'imageMogr2/rotate/90' },
        Output: { Region: 'ap-guangzhou', Bucket: 'test-1250000000', Object: 'output/rotated.jpg' },
        UserData: 'pic & <rotate> "90"',
        JobLevel: '1',
      },
    },
  });
}

/** The SDK's rejection, for error-path tests. */
async function sdkError(promise: Promise<unknown>): Promise<COS.CosSdkError> {
  try {
    await promise;
  } catch (err) {
    return err as COS.CosSdkError;
  }
  throw new Error('the SDK call succeeded but should have failed');
}

describe('cos-nodejs-sdk-v5 against the service (signatures required)', () => {
  let api: TestService;
  let proxy: Awaited<ReturnType<typeof startRecordingProxy>>;
  let base: string;
  let cos: COS;

  before(async () => {
    api = await startTestService({ env: { MEDIAJOBS_REQUIRE_AUTH: 'true' } });
    proxy = await startRecordingProxy(api.service.port!);
    base = `http://127.0.0.1:${proxy.port}`;
    cos = new COS({ SecretId: api.service.app.secretId, SecretKey: api.service.app.secretKey });
  });
  after(async () => {
    await proxy?.close();
    await api?.stop();
  });
  beforeEach(() => { proxy.log.length = 0; });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') return;
    for (const exchange of proxy.log) {
      expect(exchange.status, `${exchange.method} ${exchange.url}`).to.be.a('number').and.below(500);
      expect(exchange.headers['x-cos-sdk-retry'], `${exchange.method} ${exchange.url} was retried`).to.equal(undefined);
    }
  });

  async function jobCount(): Promise<number> {
    const db = api.service.db.kysely;
    return Number((await db.selectFrom('jobs').select(db.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
  }

  async function createMediaInfo(client = cos, url = `${base}/jobs`): Promise<any> {
    const data = await client.request({ Method: 'POST', Key: 'jobs', Url: url, Body: mediaInfoBody(), ContentType: 'application/xml' });
    expect(data.statusCode).to.equal(200);
    return data.Response.JobsDetail;
  }

  it('refuses an unsigned request (the service really checks signatures)', async () => {
    const res = await api.request('GET', '/jobs');
    expect(res.status).to.equal(403);
    expect(res.xml.Error.Code).to.equal('AccessDenied');
  });

  describe('mode A: Url on 127.0.0.1', () => {
    it('creates a MediaInfo job', async () => {
      const before = await jobCount();
      const data = await cos.request({ Method: 'POST', Key: 'jobs', Url: `${base}/jobs`, Body: mediaInfoBody(), ContentType: 'application/xml' });
      expect(data.statusCode).to.equal(200);
      expect(data.RequestId).to.be.a('string').and.equal(data.headers?.['x-ci-request-id']);
      const detail = data.Response.JobsDetail;
      expect(detail.Code).to.equal('Success');
      expect(detail.Message).to.equal('');
      expect(detail.JobId).to.match(JOB_ID);
      expect(detail.State).to.equal('Submitted');
      expect(detail.StartTime).to.equal('-');
      expect(detail.QueueId).to.match(QUEUE_ID);
      expect(detail.Tag).to.equal('MediaInfo');
      expect(detail.Input).to.deep.equal({ BucketId: 'local-1250000000', Object: 'input/demo.mp4', Region: 'ap-local' });
      expect(detail.Operation).to.deep.equal({ UserData: 'This is my data.', JobLevel: '0' });
      expect(await jobCount()).to.equal(before + 1);
      expect(proxy.log.map((e) => [e.method, e.url, e.status])).to.deep.equal([['POST', '/jobs', 200]]);
      expect(String(proxy.log[0].headers.authorization)).to.match(/q-header-list=content-length;content-type;host&/);
    });

    it('creates a PicProcess job and round-trips escaped UserData', async () => {
      const data = await cos.request({ Method: 'POST', Key: 'jobs', Url: `${base}/jobs`, Body: picProcessBody(), ContentType: 'application/xml' });
      const detail = data.Response.JobsDetail;
      expect(detail.Tag).to.equal('PicProcess');
      expect(detail.State).to.equal('Submitted');
      expect(detail.Operation).to.deep.equal({
        PicProcess: { IsPicInfo: 'true', ProcessRule: 'imageMogr2/rotate/90' },
        Output: { Region: 'ap-guangzhou', Bucket: 'test-1250000000', Object: 'output/rotated.jpg' },
        UserData: 'pic & <rotate> "90"',
        JobLevel: '1',
      });
    });

    it('describes one job, and several with the unknown ones as NonExistJobIds', async () => {
      const a = (await createMediaInfo()).JobId;
      const b = (await createMediaInfo()).JobId;
      const one = await cos.request({ Method: 'GET', Key: `jobs/${a}`, Url: `${base}/jobs/${a}` });
      expect(one.Response.JobsDetail.JobId).to.equal(a);
      expect(one.Response.NonExistJobIds).to.equal(undefined);

      const missing = 'j' + 'e'.repeat(32);
      const several = await cos.request({ Method: 'GET', Key: `jobs/${a},${missing},${b}`, Url: `${base}/jobs/${a},${missing},${b}` });
      expect(asArray(several.Response.JobsDetail).map((d: any) => d.JobId)).to.deep.equal([a, b]);
      expect(several.Response.NonExistJobIds).to.equal(missing);
    });

    it('lists jobs with the Query of the docs (workflowId empty, startCreationTime with +0800)', async () => {
      const created = await createMediaInfo();
      const data = await cos.request({
        Method: 'GET',
        Key: 'jobs',
        Url: `${base}/jobs`,
        Query: sdkListJobsQuery(created.QueueId),
      });
      expect(data.statusCode).to.equal(200);
      const jobs = asArray(data.Response.JobsDetail);
      expect(jobs.length).to.be.within(1, 10);
      expect(jobs[0].JobId).to.equal(created.JobId);
      for (const job of jobs) expect(job).to.include({ Tag: 'MediaInfo', QueueId: created.QueueId });
      expect(proxy.log[1].url).to.equal(`/jobs?queueId=${created.QueueId}&tag=MediaInfo&size=10&states=All&orderByTime=Desc&startCreationTime=2001-01-01T00%3A00%3A00%2B0800&workflowId=`);
      expect(String(proxy.log[1].headers.authorization)).to.include('q-url-param-list=orderbytime;queueid;size;startcreationtime;states;tag;workflowid&');

      const none = await cos.request({ Method: 'GET', Key: 'jobs', Url: `${base}/jobs`, Query: { tag: 'MediaInfo', startCreationTime: '2999-01-01T00:00:00+0800' } });
      expect(none.Response.JobsDetail).to.equal(undefined);
      expect(none.Response.NextToken).to.equal('');
    });

    it("cancels with Action: 'cancel' (sent as ?cancel=)", async () => {
      const id = (await createMediaInfo()).JobId;
      const data = await cos.request({ Method: 'PUT', Key: `jobs/${id}`, Url: `${base}/jobs/${id}`, Action: 'cancel' });
      expect(data.statusCode).to.equal(200);
      expect(proxy.log.at(-1)!.url).to.equal(`/jobs/${id}?cancel=`);
      const after = await cos.request({ Method: 'GET', Key: `jobs/${id}`, Url: `${base}/jobs/${id}` });
      expect(after.Response.JobsDetail.State).to.equal('Cancel');
    });

    it('lists queues with GET /queue', async () => {
      const queueId = (await createMediaInfo()).QueueId;
      const data = await cos.request({ Method: 'GET', Key: 'queue', Url: `${base}/queue`, Query: { state: 'Active', category: 'CateAll', pageNumber: 1, pageSize: 10 } });
      expect(data.statusCode).to.equal(200);
      expect(data.Response.RequestId).to.equal(data.RequestId);
      expect(data.Response).to.include({ TotalCount: '1', PageNumber: '1', PageSize: '10' });
      expect(data.Response.QueueList).to.include({ QueueId: queueId, State: 'Active', Category: 'Transcoding' });
      expect(data.Response.QueueList.NotifyConfig).to.have.keys(['Url', 'Event', 'Type', 'State', 'ResultFormat']);
    });
  });

  describe('mode B: Ip option and a virtual-host Url', () => {
    let cosB: COS;
    const url = (path: string) => `http://${CI_HOST}/${path}`;
    before(() => {
      cosB = new COS({ SecretId: api.service.app.secretId, SecretKey: api.service.app.secretKey, Ip: `127.0.0.1:${proxy.port}` });
    });

    it('takes the job bucket and region from the Host', async () => {
      const detail = await createMediaInfo(cosB, url('jobs'));
      expect(detail.Input).to.deep.equal({ BucketId: 'test-1250000000', Object: 'input/demo.mp4', Region: 'ap-guangzhou' });
      expect(proxy.log[0].headers.host).to.equal(CI_HOST);

      const described = await cosB.request({ Method: 'GET', Key: `jobs/${detail.JobId}`, Url: url(`jobs/${detail.JobId}`) });
      expect(described.Response.JobsDetail.Input.BucketId).to.equal('test-1250000000');
      // The same id is not visible in the default bucket of mode A.
      const fromA = await cos.request({ Method: 'GET', Key: `jobs/${detail.JobId}`, Url: `${base}/jobs/${detail.JobId}` });
      expect(fromA.Response.NonExistJobIds).to.equal(detail.JobId);
    });

    it('lists, cancels and shows queues of the Host bucket', async () => {
      const first = await createMediaInfo(cosB, url('jobs'));
      const list = await cosB.request({
        Method: 'GET',
        Key: 'jobs',
        Url: url('jobs'),
        Query: sdkListJobsQuery(first.QueueId),
      });
      const jobs = asArray(list.Response.JobsDetail);
      expect(jobs[0].JobId).to.equal(first.JobId);
      for (const job of jobs) expect(job.Input.BucketId).to.equal('test-1250000000');

      expect((await cosB.request({ Method: 'PUT', Key: `jobs/${first.JobId}`, Url: url(`jobs/${first.JobId}`), Action: 'cancel' })).statusCode).to.equal(200);
      const after = await cosB.request({ Method: 'GET', Key: `jobs/${first.JobId}`, Url: url(`jobs/${first.JobId}`) });
      expect(after.Response.JobsDetail.State).to.equal('Cancel');

      const queues = await cosB.request({ Method: 'GET', Key: 'queue', Url: url('queue'), Query: { state: 'Active', category: 'CateAll', pageNumber: 1, pageSize: 10 } });
      expect(queues.Response.QueueList.QueueId).to.equal(first.QueueId);
      for (const exchange of proxy.log) expect(exchange.headers.host).to.equal(CI_HOST);
    });
  });

  describe('error path', () => {
    it('gives err.code InvalidArgument and the message for a 400, and stores nothing', async () => {
      const before = await jobCount();
      const body = COS.util.json2xml({ Request: { Tag: 'VideoTag', Input: { Object: 'input/demo.mp4' } } });
      const err = await sdkError(cos.request({ Method: 'POST', Key: 'jobs', Url: `${base}/jobs`, Body: body, ContentType: 'application/xml' }));
      expect(err.statusCode).to.equal(400);
      expect(err.code).to.equal('InvalidArgument');
      expect(err.message).to.match(/^Request\/Tag "VideoTag" is not supported; supported Tags: /);
      expect(err.error).to.include({ Code: 'InvalidArgument' });
      expect(err.RequestId).to.be.a('string').and.not.empty;
      expect(await jobCount()).to.equal(before);
    });

    it('gives InvalidArgument for a bad list parameter', async () => {
      const err = await sdkError(cos.request({ Method: 'GET', Key: 'jobs', Url: `${base}/jobs`, Query: { size: 1000 } }));
      expect(err.statusCode).to.equal(400);
      expect(err.code).to.equal('InvalidArgument');
      expect(err.message).to.equal('size must be an integer from 1 to 100.');
    });

    it('gives SignatureDoesNotMatch for a wrong SecretKey, and stores nothing', async () => {
      const before = await jobCount();
      const wrong = new COS({ SecretId: api.service.app.secretId, SecretKey: `${api.service.app.secretKey}x` });
      const err = await sdkError(wrong.request({ Method: 'POST', Key: 'jobs', Url: `${base}/jobs`, Body: mediaInfoBody(), ContentType: 'application/xml' }));
      expect(err.statusCode).to.equal(403);
      expect(err.code).to.equal('SignatureDoesNotMatch');
      expect(err.message).to.be.a('string').and.not.empty;
      expect(await jobCount()).to.equal(before);
      expect(proxy.log).to.have.length(1);
    });

    it('gives InvalidAccessKeyId for an unknown SecretId', async () => {
      const stranger = new COS({ SecretId: 'AKIDnotakeyofthisservice0000000', SecretKey: 'whatever' });
      const err = await sdkError(stranger.request({ Method: 'GET', Key: 'queue', Url: `${base}/queue` }));
      expect(err.statusCode).to.equal(403);
      expect(err.code).to.equal('InvalidAccessKeyId');
    });

    it('refuses an SDK signature replayed with another Host', async () => {
      await cos.request({ Method: 'GET', Key: 'queue', Url: `${base}/queue`, Query: { state: 'Active' } });
      const authorization = String(proxy.log.at(-1)!.headers.authorization);
      const replay = await api.request('GET', '/queue?state=Active', { headers: { authorization, host: CI_HOST } });
      expect(replay.status).to.equal(403);
      expect(replay.xml.Error.Code).to.equal('SignatureDoesNotMatch');
      const same = await api.request('GET', '/queue?state=Active', { headers: { authorization, host: `127.0.0.1:${proxy.port}` } });
      expect(same.status, same.text).to.equal(200);
    });
  });
});

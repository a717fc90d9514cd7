import { expect } from 'chai';
import COS from 'cos-nodejs-sdk-v5';
import { signRequest } from '../helpers/cos-signer.js';
import { asArray, httpRequest, startTestService, type TestResponse, type TestService } from '../helpers/service.js';
import { admin } from '../tasks/helpers.js';
import { childNames } from '../helpers/assertions.js';

/*
 * The bucket-listing endpoints of every CI service (/mediabucket, /picbucket,
 * /ai_bucket, /asrbucket, /file_bucket, /docbucket) and the queue families
 * (/ai_queue, /asrqueue, /file_queue, /docqueue), signatures required, with
 * two apps so that each one's buckets stay its own. Element names are those
 * of the Go SDK's result structs (ci_media.go, ci_doc.go).
 */

interface Keys { readonly secretId: string; readonly secretKey: string; readonly appid: string; readonly bucket: string }

const CI_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}$/;
const SERVICE_HOST = 'ci.ap-guangzhou.myqcloud.com';

/** Path → the Go result structs' element names: the list (Describe…Buckets) and the created bucket (Create…Bucket). */
const GO_FAMILIES: ReadonlyArray<readonly [path: string, list: string, created: string]> = [
  ['/mediabucket', 'MediaBucketList', 'MediaBucket'],
  ['/picbucket', 'PicBucketList', 'PicBucket'],
  ['/ai_bucket', 'AiBucketList', 'AiBucket'],
  ['/asrbucket', 'AsrBucketList', 'AsrBucket'],
  ['/file_bucket', 'FileBucketList', 'FileBucket'],
  ['/docbucket', 'DocBucketList', 'DocBucket'],
];

describe('service buckets and queue families', function () {
  this.timeout(60_000);
  let api: TestService;
  let first: Keys;
  let second: Keys;

  /** A request signed as cos-nodejs-sdk-v5 signs it. */
  function signed(keys: Keys, method: string, path: string, options: { host?: string; query?: Record<string, string>; body?: string } = {}): Promise<TestResponse> {
    const headers: Record<string, string> = { host: options.host ?? SERVICE_HOST };
    if (method === 'POST' || method === 'PUT') headers['content-length'] = String(Buffer.byteLength(options.body ?? ''));
    const query = options.query ?? {};
    const authorization = signRequest({ method, path, query, headers, secretId: keys.secretId, secretKey: keys.secretKey });
    const qs = new URLSearchParams(query).toString();
    return httpRequest(`${api.baseUrl}${path}${qs ? `?${qs}` : ''}`, method, options.body, { ...headers, authorization });
  }

  function listed(res: TestResponse, listElement: string): string[] {
    expect(res.status, res.text).to.equal(200);
    return asArray(res.xml.Response[listElement]).map((b: Record<string, string>) => b.BucketId);
  }

  before(async () => {
    api = await startTestService({ env: { MEDIAJOBS_REQUIRE_AUTH: 'true' } });
    const app = api.service.app;
    first = { secretId: app.secretId, secretKey: app.secretKey, appid: app.appid, bucket: app.bucket };
    const created = await admin(api, 'POST', '/admin/apps', { name: 'Other' });
    expect(created.status).to.equal(201);
    second = { secretId: created.body.secret_id, secretKey: created.body.secret_key, appid: created.body.appid, bucket: created.body.bucket };
    // Buckets in storage: two more of the first app, one more of the second (PutBucket, path style).
    for (const [keys, bucket] of [[first, `media-${first.appid}`], [first, `zz-${first.appid}`], [second, `theirs-${second.appid}`]] as const) {
      const put = await signed(keys, 'PUT', `/${bucket}`, { host: new URL(api.baseUrl).host });
      expect(put.status, put.text).to.equal(200);
    }
  });
  after(() => api?.stop());

  it('lists the app\'s buckets in every family, in the elements Go decodes, on the service host without a bucket', async () => {
    const expected = [first.bucket, `media-${first.appid}`, `zz-${first.appid}`].sort();
    for (const [path, list] of GO_FAMILIES) {
      const res = await signed(first, 'GET', path);
      expect(childNames(res.text, 'Response'), path).to.deep.equal(['RequestId', 'TotalCount', 'PageNumber', 'PageSize', list, list, list]);
      expect(listed(res, list), path).to.deep.equal(expected);
      expect(res.xml.Response).to.include({ TotalCount: '3', PageNumber: '1', PageSize: '10' });
      for (const bucket of asArray(res.xml.Response[list]) as Record<string, string>[]) {
        expect(childNames(res.text, list)).to.deep.equal(['BucketId', 'Name', 'Region', 'CreateTime']);
        expect(bucket.Name).to.equal(bucket.BucketId);
        // The region of the Host the request was sent to.
        expect(bucket.Region).to.equal('ap-guangzhou');
        expect(bucket.CreateTime).to.match(CI_TIME);
      }
    }
  });

  it('never lists another app\'s buckets, and lists its own bucket before anything is stored in it', async () => {
    expect(await api.service.storage.bucketExists(second.bucket)).to.equal(false);
    expect(listed(await signed(second, 'GET', '/mediabucket'), 'MediaBucketList')).to.deep.equal([second.bucket, `theirs-${second.appid}`].sort());
    const named = await signed(first, 'GET', '/mediabucket', { query: { bucketNames: `theirs-${second.appid},${second.bucket}` } });
    expect(named.xml.Response.TotalCount).to.equal('0');
    expect(named.text).not.to.contain('<MediaBucketList>');
  });

  it('pages, and filters by exact names, by name prefix and by region', async () => {
    const page2 = await signed(first, 'GET', '/picbucket', { query: { pageNumber: '2', pageSize: '2' } });
    expect(listed(page2, 'PicBucketList')).to.deep.equal([`zz-${first.appid}`]);
    expect(page2.xml.Response).to.include({ TotalCount: '3', PageNumber: '2', PageSize: '2' });
    const exact = await signed(first, 'GET', '/mediabucket', { query: { bucketNames: `zz-${first.appid}, media-${first.appid}` } });
    expect(listed(exact, 'MediaBucketList')).to.deep.equal([`media-${first.appid}`, `zz-${first.appid}`]);
    expect(listed(await signed(first, 'GET', '/mediabucket', { query: { bucketName: 'zz' } }), 'MediaBucketList')).to.deep.equal([`zz-${first.appid}`]);
    const all = await signed(first, 'GET', '/mediabucket', { query: { regions: 'ap-beijing,All' } });
    expect(all.xml.Response.TotalCount).to.equal('3');
    const elsewhere = await signed(first, 'GET', '/mediabucket', { query: { regions: 'ap-beijing,ap-shanghai' } });
    expect(elsewhere.xml.Response.TotalCount).to.equal('0');
    for (const query of [{ pageSize: '101' }, { pageNumber: '0' }, { pageSize: 'ten' }] as Record<string, string>[]) {
      const bad = await signed(first, 'GET', '/mediabucket', { query });
      expect(bad.status, JSON.stringify(query)).to.equal(400);
      expect(bad.xml.Error.Code).to.equal('InvalidArgument');
    }
  });

  it('turns a service on for the Host\'s bucket (answered as CI does), refuses another app\'s bucket (403) and an unknown one (404)', async () => {
    for (const [path, , created] of GO_FAMILIES) {
      const res = await signed(first, 'POST', path, { host: `media-${first.appid}.ci.ap-guangzhou.myqcloud.com` });
      expect(res.status, `${path} ${res.text}`).to.equal(200);
      expect(childNames(res.text, 'Response')).to.deep.equal(['RequestId', created]);
      expect(res.xml.Response[created]).to.include({ BucketId: `media-${first.appid}`, Name: `media-${first.appid}`, Region: 'ap-guangzhou' });
    }
    const own = await signed(first, 'POST', '/mediabucket');
    expect(own.xml.Response.MediaBucket.BucketId).to.equal(first.bucket);
    const foreign = await signed(first, 'POST', '/mediabucket', { host: `theirs-${second.appid}.ci.ap-guangzhou.myqcloud.com` });
    expect(foreign.status).to.equal(403);
    expect(foreign.xml.Error.Code).to.equal('AccessDenied');
    const unknown = await signed(first, 'POST', '/docbucket', { host: `nothing-${first.appid}.ci.ap-guangzhou.myqcloud.com` });
    expect(unknown.status).to.equal(404);
    expect(unknown.xml.Error.Code).to.equal('NoSuchBucket');
    const listedForeign = await signed(first, 'GET', '/mediabucket', { host: `theirs-${second.appid}.ci.ap-guangzhou.myqcloud.com` });
    expect(listedForeign.status).to.equal(403);
  });

  it('answers the SDK\'s own call (cos.request with Key mediabucket)', async () => {
    const cos = new COS({ SecretId: first.secretId, SecretKey: first.secretKey });
    const data = await cos.request({ Method: 'GET', Key: 'mediabucket', Url: `${api.baseUrl}/mediabucket`, Query: { pageNumber: '1', pageSize: '2' } });
    expect(data.statusCode).to.equal(200);
    expect(asArray(data.Response.MediaBucketList).map((b: any) => b.BucketId)).to.deep.equal([first.bucket, `media-${first.appid}`].sort());
    expect(data.Response.TotalCount).to.equal('3');
  });

  it('answers the AI, speech, file and document queue families with the bucket\'s queues, and updates them through their own paths', async () => {
    const media = await signed(first, 'GET', '/queue', { host: `media-${first.appid}.ci.ap-guangzhou.myqcloud.com` });
    const queueId = asArray(media.xml.Response.QueueList)[0].QueueId as string;
    for (const path of ['/ai_queue', '/asrqueue', '/file_queue', '/docqueue']) {
      const res = await signed(first, 'GET', path, { host: `media-${first.appid}.ci.ap-guangzhou.myqcloud.com`, query: { state: 'All' } });
      expect(res.status, res.text).to.equal(200);
      expect(childNames(res.text, 'Response').slice(0, 4), path).to.deep.equal(['RequestId', 'TotalCount', 'PageNumber', 'PageSize']);
      expect(asArray(res.xml.Response.QueueList).map((q) => q.QueueId), path).to.deep.equal([queueId]);
    }
    for (const [path, name] of [['/ai_queue', 'ai'], ['/asrqueue', 'asr'], ['/docqueue', 'doc']]) {
      const res = await signed(first, 'PUT', `${path}/${queueId}`, {
        host: `media-${first.appid}.ci.ap-guangzhou.myqcloud.com`, body: `<Request><Name>${name}</Name><State>Active</State></Request>`,
      });
      expect(res.status, res.text).to.equal(200);
      expect(res.xml.Response.Queue).to.include({ QueueId: queueId, Name: name });
    }
    // Another app's bucket's queues stay out of reach.
    const foreign = await signed(first, 'GET', '/ai_queue', { host: `theirs-${second.appid}.ci.ap-guangzhou.myqcloud.com` });
    expect(foreign.status).to.equal(403);
    const noUpdate = await signed(first, 'PUT', `/file_queue/${queueId}`, { host: `media-${first.appid}.ci.ap-guangzhou.myqcloud.com`, body: '<Request><Name>x</Name></Request>' });
    expect(noUpdate.status).to.equal(404);
    expect(noUpdate.xml.Error.Code, noUpdate.text).to.be.a('string');
  });
});

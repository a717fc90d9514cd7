import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { flipSignature, signRequest } from '../helpers/cos-signer.js';
import { httpRequest, startTestService, type TestResponse, type TestService } from '../helpers/service.js';
import { admin } from '../tasks/helpers.js';

/*
 * The object API over raw HTTP, signatures required: path style, the host
 * rules, hostile keys and bodies, tampered signatures, and tenancy (one
 * app's keys refused on another app's bucket).
 */

interface Keys { readonly secretId: string; readonly secretKey: string; readonly appid: string; readonly bucket: string }

const md5 = (data: Buffer | string) => createHash('md5').update(data).digest('hex');

describe('objects: the object API over HTTP', function () {
  this.timeout(60_000);
  let api: TestService;
  let first: Keys;
  let second: Keys;

  /** A request signed as cos-nodejs-sdk-v5 signs it; the signed path is the decoded one. */
  function signed(keys: Keys, method: string, wirePath: string, options: { body?: string | Buffer; host?: string; query?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<TestResponse> {
    const host = options.host ?? new URL(api.baseUrl).host;
    const query = options.query ?? {};
    const headers: Record<string, string> = { host, ...options.headers };
    if (options.body !== undefined || method === 'PUT' || method === 'POST') headers['content-length'] = String(options.body === undefined ? 0 : Buffer.byteLength(options.body));
    const authorization = signRequest({ method, path: decodeURIComponent(wirePath), query, headers, secretId: keys.secretId, secretKey: keys.secretKey });
    const qs = new URLSearchParams(query).toString();
    return httpRequest(`${api.baseUrl}${wirePath}${qs ? `?${qs}` : ''}`, method, options.body, { ...headers, authorization });
  }

  before(async () => {
    api = await startTestService({ env: { MEDIAJOBS_REQUIRE_AUTH: 'true' } });
    const app = api.service.app;
    first = { secretId: app.secretId, secretKey: app.secretKey, appid: app.appid, bucket: app.bucket };
    const created = await admin(api, 'POST', '/admin/apps', { name: 'Other' });
    second = { secretId: created.body.secret_id, secretKey: created.body.secret_key, appid: created.body.appid, bucket: created.body.bucket };
  });
  after(() => api?.stop());

  describe('host routing', () => {
    it('reads path style /<bucket>/<key> as that bucket\'s object', async () => {
      const put = await signed(first, 'PUT', `/${first.bucket}/path/style.txt`, { body: 'path style' });
      expect(put.status, put.text).to.equal(200);
      expect(put.headers.get('etag')).to.equal(`"${md5('path style')}"`);
      const vhost = await signed(first, 'GET', '/path/style.txt', { host: `${first.bucket}.cos.ap-local.example.com` });
      expect(vhost.text).to.equal('path style');
      const list = await signed(first, 'GET', `/${first.bucket}`, { query: { prefix: 'path/' } });
      expect(list.status).to.equal(200);
      expect(list.xml.ListBucketResult.Contents.Key).to.equal('path/style.txt');
    });

    it('keeps the CI paths on a bare host, and makes /jobs an object on a cos host', async () => {
      const ci = await signed(first, 'GET', '/jobs', { query: { tag: 'MediaInfo' } });
      expect(ci.status, ci.text).to.equal(200);
      expect(ci.xml).to.have.property('Response');
      const host = `${first.bucket}.cos.ap-local.example.com`;
      expect((await signed(first, 'PUT', '/jobs', { host, body: 'an object named jobs' })).status).to.equal(200);
      expect((await signed(first, 'GET', '/jobs', { host })).text).to.equal('an object named jobs');
    });

    it('answers GetBucket on a cos host\'s / and the console on a bare host\'s unsigned /', async () => {
      const list = await signed(first, 'GET', '/', { host: `${first.bucket}.cos.ap-local.example.com` });
      expect(list.status).to.equal(200);
      expect(list.xml.ListBucketResult.Name).to.equal(first.bucket);
      const root = await httpRequest(`${api.baseUrl}/`, 'GET');
      expect(root.status).to.equal(302);
    });
  });

  describe('GetObject details', () => {
    before(async () => {
      await signed(first, 'PUT', '/details.txt', { body: 'details body', headers: { 'content-type': 'text/plain', 'x-cos-meta-a': '1', 'cache-control': 'max-age=5' } });
    });

    it('applies response-content-* overrides', async () => {
      const res = await signed(first, 'GET', '/details.txt', { query: { 'response-content-type': 'application/x-over', 'response-content-disposition': 'attachment; filename="d.txt"' } });
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.equal('application/x-over');
      expect(res.headers.get('content-disposition')).to.equal('attachment; filename="d.txt"');
      expect(res.headers.get('cache-control')).to.equal('max-age=5');
      expect(res.headers.get('x-cos-meta-a')).to.equal('1');
    });

    it('answers 304 to If-Modified-Since at or after its time, and 412 to a failing If-Match', async () => {
      const head = await signed(first, 'HEAD', '/details.txt');
      const lastModified = head.headers.get('last-modified')!;
      expect((await signed(first, 'GET', '/details.txt', { headers: { 'if-modified-since': lastModified } })).status).to.equal(304);
      expect((await signed(first, 'GET', '/details.txt', { headers: { 'if-modified-since': 'Mon, 01 Jan 2001 00:00:00 GMT' } })).status).to.equal(200);
      const failed = await signed(first, 'GET', '/details.txt', { headers: { 'if-match': '"0000"' } });
      expect(failed.status).to.equal(412);
      expect(failed.xml.Error.Code).to.equal('PreconditionFailed');
    });

    it('answers 416 InvalidRange for a range past the end', async () => {
      const res = await signed(first, 'GET', '/details.txt', { headers: { range: 'bytes=100-200' } });
      expect(res.status).to.equal(416);
      expect(res.xml.Error.Code).to.equal('InvalidRange');
      expect(res.headers.get('content-range')).to.equal('bytes */12');
    });

    it('answers NoSuchKey for a missing object and NoSuchBucket for a missing bucket', async () => {
      const missing = await signed(first, 'GET', '/nothing/here.txt');
      expect(missing.status).to.equal(404);
      expect(missing.xml.Error.Code).to.equal('NoSuchKey');
      const bucket = await signed(first, 'GET', `/never-${first.appid}/x.txt`);
      expect(bucket.status).to.equal(404);
      expect(bucket.xml.Error.Code).to.equal('NoSuchBucket');
    });
  });

  describe('hostile keys and bodies', () => {
    const refusals: Array<[string, string, number, string]> = [
      ['a ".." segment', '/a/..%2Fb.txt', 400, 'InvalidArgument'],
      ['a NUL', '/a%00b.txt', 400, 'InvalidArgument'],
      ['an absolute path', '//etc/passwd', 400, 'InvalidArgument'],
      ['a backslash', '/a%5C..%5Cb', 400, 'InvalidArgument'],
      ['851 bytes', `/${'k'.repeat(200)}/${'k'.repeat(200)}/${'k'.repeat(200)}/${'k'.repeat(248)}`, 400, 'KeyTooLong'],
    ];
    for (const [what, wirePath, status, code] of refusals) {
      it(`refuses a key with ${what} (${code})`, async () => {
        const res = await signed(first, 'PUT', wirePath, { body: 'x' });
        expect(res.status, res.text).to.equal(status);
        expect(res.xml.Error.Code).to.equal(code);
      });
    }

    it('stores a key of exactly 850 bytes, in UTF-8', async () => {
      const key = `${'é'.repeat(100)}/${'k'.repeat(200)}/${'k'.repeat(200)}/${'k'.repeat(247)}`;
      expect(Buffer.byteLength(key)).to.equal(850);
      const wire = `/${key.split('/').map(encodeURIComponent).join('/')}`;
      expect((await signed(first, 'PUT', wire, { body: 'long' })).status).to.equal(200);
      expect((await signed(first, 'GET', wire)).text).to.equal('long');
    });

    it('refuses a body whose Content-MD5 does not match (BadDigest), storing nothing', async () => {
      const res = await signed(first, 'PUT', '/digest.txt', { body: 'real body', headers: { 'content-md5': createHash('md5').update('other').digest('base64') } });
      expect(res.status).to.equal(400);
      expect(res.xml.Error.Code).to.equal('BadDigest');
      expect((await signed(first, 'HEAD', '/digest.txt')).status).to.equal(404);
      const bad = await signed(first, 'PUT', '/digest.txt', { body: 'x', headers: { 'content-md5': 'not-base64' } });
      expect(bad.xml.Error.Code).to.equal('InvalidDigest');
      const good = await signed(first, 'PUT', '/digest.txt', { body: 'real body', headers: { 'content-md5': createHash('md5').update('real body').digest('base64') } });
      expect(good.status).to.equal(200);
    });

    it('round-trips a binary body of a few MB byte for byte, and leaves no temporary file', async () => {
      const body = randomBytes(4 * 1024 * 1024 + 3);
      expect((await signed(first, 'PUT', '/bin/random.bin', { body })).headers.get('etag')).to.equal(`"${md5(body)}"`);
      const res = await new Promise<Buffer>((resolve, reject) => {
        const host = new URL(api.baseUrl).host;
        const authorization = signRequest({ method: 'GET', path: '/bin/random.bin', headers: { host }, secretId: first.secretId, secretKey: first.secretKey });
        void import('node:http').then(({ default: http }) => http.get(`${api.baseUrl}/bin/random.bin`, { headers: { authorization, host } }, (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => resolve(Buffer.concat(chunks)));
        }).on('error', reject));
      });
      expect(Buffer.compare(res, body)).to.equal(0);
      const dir = path.join(api.config.dataDir, 'buckets', first.bucket, 'bin');
      expect(existsSync(path.join(dir, 'random.bin'))).to.equal(true);
    });

    it('keeps the old object and leaves no temporary file when the client hangs up mid-body', async () => {
      await signed(first, 'PUT', '/abort/target.bin', { body: 'old contents' });
      const host = new URL(api.baseUrl).host;
      const authorization = signRequest({ method: 'PUT', path: '/abort/target.bin', headers: { host, 'content-length': String(8 * 1024 * 1024) }, secretId: first.secretId, secretKey: first.secretKey });
      const { default: net } = await import('node:net');
      await new Promise<void>((resolve, reject) => {
        const socket = net.connect(Number(new URL(api.baseUrl).port), '127.0.0.1', () => {
          socket.write(`PUT /abort/target.bin HTTP/1.1\r\nHost: ${host}\r\nAuthorization: ${authorization}\r\nContent-Length: ${8 * 1024 * 1024}\r\n\r\n`);
          socket.write(Buffer.alloc(1024 * 1024, 1), () => setTimeout(() => { socket.destroy(); resolve(); }, 200));
        });
        socket.on('error', reject);
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await signed(first, 'GET', '/abort/target.bin')).text).to.equal('old contents');
      const dir = path.join(api.config.dataDir, 'buckets', first.bucket, 'abort');
      const { readdirSync } = await import('node:fs');
      expect(readdirSync(dir)).to.deep.equal(['target.bin']);
    });

    it('refuses a malformed DeleteMultipleObjects body (MalformedXML)', async () => {
      const res = await signed(first, 'POST', '/', { query: { delete: '' }, body: '<Delete><Object>' });
      expect(res.status).to.equal(400);
      expect(res.xml.Error.Code).to.equal('MalformedXML');
    });

    it('refuses CompleteMultipartUpload for an unknown upload (NoSuchUpload) and parts out of order', async () => {
      const unknown = await signed(first, 'POST', '/mp.bin', { query: { uploadId: 'f'.repeat(32) }, body: '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"x"</ETag></Part></CompleteMultipartUpload>' });
      expect(unknown.xml.Error.Code).to.equal('NoSuchUpload');
      const init = await signed(first, 'POST', '/mp.bin', { query: { uploads: '' } });
      const uploadId = init.xml.InitiateMultipartUploadResult.UploadId as string;
      const p1 = await signed(first, 'PUT', '/mp.bin', { query: { partNumber: '1', uploadId }, body: 'a' });
      const p2 = await signed(first, 'PUT', '/mp.bin', { query: { partNumber: '2', uploadId }, body: 'b' });
      const order = await signed(first, 'POST', '/mp.bin', { query: { uploadId }, body: `<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>${p2.headers.get('etag')}</ETag></Part><Part><PartNumber>1</PartNumber><ETag>${p1.headers.get('etag')}</ETag></Part></CompleteMultipartUpload>` });
      expect(order.xml.Error.Code).to.equal('InvalidPartOrder');
      const small = await signed(first, 'POST', '/mp.bin', { query: { uploadId }, body: `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>${p1.headers.get('etag')}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>${p2.headers.get('etag')}</ETag></Part></CompleteMultipartUpload>` });
      expect(small.xml.Error.Code).to.equal('EntityTooSmall');
      const parts = await signed(first, 'GET', '/mp.bin', { query: { uploadId } });
      expect(parts.xml.ListPartsResult.Part).to.have.length(2);
      expect((await signed(first, 'DELETE', '/mp.bin', { query: { uploadId } })).status).to.equal(204);
      expect((await signed(first, 'GET', '/mp.bin', { query: { uploadId } })).xml.Error.Code).to.equal('NoSuchUpload');
    });

    it('refuses sub-resources it does not implement rather than overwrite the object', async () => {
      await signed(first, 'PUT', '/acl.txt', { body: 'keep me' });
      const res = await signed(first, 'PUT', '/acl.txt', { query: { acl: '' }, body: '<AccessControlPolicy/>' });
      expect(res.status).to.equal(501);
      expect(res.xml.Error.Code).to.equal('NotImplemented');
      expect((await signed(first, 'GET', '/acl.txt')).text).to.equal('keep me');
    });
  });

  describe('signatures', () => {
    it('refuses an unsigned request (AccessDenied) when signatures are required', async () => {
      const res = await httpRequest(`${api.baseUrl}/details.txt`, 'GET');
      expect(res.status).to.equal(403);
      expect(res.xml.Error.Code).to.equal('AccessDenied');
    });

    it('refuses a flipped signature, a wrong key and a changed path', async () => {
      const host = new URL(api.baseUrl).host;
      const authorization = signRequest({ method: 'GET', path: '/details.txt', headers: { host }, secretId: first.secretId, secretKey: first.secretKey });
      const flipped = await httpRequest(`${api.baseUrl}/details.txt`, 'GET', undefined, { host, authorization: flipSignature(authorization) });
      expect(flipped.xml.Error.Code).to.equal('SignatureDoesNotMatch');
      const otherPath = await httpRequest(`${api.baseUrl}/other.txt`, 'GET', undefined, { host, authorization });
      expect(otherPath.xml.Error.Code).to.equal('SignatureDoesNotMatch');
      const wrongKey = signRequest({ method: 'GET', path: '/details.txt', headers: { host }, secretId: first.secretId, secretKey: 'wrong' });
      expect((await httpRequest(`${api.baseUrl}/details.txt`, 'GET', undefined, { host, authorization: wrongKey })).status).to.equal(403);
      const put = signRequest({ method: 'PUT', path: '/details.txt', headers: { host, 'content-length': '4' }, secretId: first.secretId, secretKey: first.secretKey });
      const longer = await httpRequest(`${api.baseUrl}/details.txt`, 'PUT', 'evil body', { host, authorization: put });
      expect(longer.xml.Error.Code).to.equal('SignatureDoesNotMatch');
    });
  });

  describe('tenancy', () => {
    it('refuses another app\'s bucket in every style (AccessDenied)', async () => {
      await signed(first, 'PUT', '/mine.txt', { body: 'first app only' });
      const viaHost = await signed(second, 'GET', '/mine.txt', { host: `${first.bucket}.cos.ap-local.example.com` });
      expect(viaHost.status).to.equal(403);
      expect(viaHost.xml.Error.Code).to.equal('AccessDenied');
      const viaPath = await signed(second, 'GET', `/${first.bucket}/mine.txt`);
      expect(viaPath.xml.Error.Code).to.equal('AccessDenied');
      const list = await signed(second, 'GET', `/${first.bucket}`);
      expect(list.xml.Error.Code).to.equal('AccessDenied');
      const copy = await signed(second, 'PUT', '/stolen.txt', { headers: { 'x-cos-copy-source': `${first.bucket}.cos.ap-local.myqcloud.com/mine.txt` } });
      expect(copy.xml.Error.Code).to.equal('AccessDenied');
      const create = await signed(second, 'PUT', `/new-${first.appid}`);
      expect(create.xml.Error.Code).to.equal('AccessDenied');
    });

    it('gives a bare-host request of the second app its own bucket', async () => {
      expect((await signed(second, 'PUT', '/own.txt', { body: 'second' })).status).to.equal(200);
      expect((await signed(second, 'GET', `/${second.bucket}/own.txt`)).text).to.equal('second');
      expect((await signed(first, 'GET', '/own.txt')).status).to.equal(404);
    });
  });

  describe('buckets', () => {
    it('creates, heads, refuses to delete a non-empty one, and deletes an empty one', async () => {
      const bucket = `made-${first.appid}`;
      expect((await signed(first, 'HEAD', `/${bucket}`)).status).to.equal(404);
      expect((await signed(first, 'PUT', `/${bucket}`)).status).to.equal(200);
      expect((await signed(first, 'PUT', `/${bucket}`)).xml.Error.Code).to.equal('BucketAlreadyOwnedByYou');
      expect((await signed(first, 'HEAD', `/${bucket}`)).status).to.equal(200);
      await signed(first, 'PUT', `/${bucket}/x.txt`, { body: 'x' });
      expect((await signed(first, 'DELETE', `/${bucket}`)).xml.Error.Code).to.equal('BucketNotEmpty');
      expect((await signed(first, 'DELETE', `/${bucket}/x.txt`)).status).to.equal(204);
      expect((await signed(first, 'DELETE', `/${bucket}`)).status).to.equal(204);
      expect((await signed(first, 'HEAD', `/${bucket}`)).status).to.equal(404);
    });

    it('pages GetBucket with max-keys and ListObjectsV2 continuation tokens', async () => {
      const bucket = `pages-${first.appid}`;
      await signed(first, 'PUT', `/${bucket}`);
      for (let i = 0; i < 5; i += 1) await signed(first, 'PUT', `/${bucket}/k${i}`, { body: String(i) });
      const v2 = await signed(first, 'GET', `/${bucket}`, { query: { 'list-type': '2', 'max-keys': '3' } });
      const page = v2.xml.ListBucketResult;
      expect(page.KeyCount).to.equal('3');
      expect(page.IsTruncated).to.equal('true');
      const rest = await signed(first, 'GET', `/${bucket}`, { query: { 'list-type': '2', 'continuation-token': page.NextContinuationToken } });
      expect(rest.xml.ListBucketResult.Contents.map((c: any) => c.Key)).to.deep.equal(['k3', 'k4']);
      const clamp = await signed(first, 'GET', `/${bucket}`, { query: { 'max-keys': '5000' } });
      expect(clamp.xml.ListBucketResult.MaxKeys).to.equal('1000');
      const bad = await signed(first, 'GET', `/${bucket}`, { query: { 'max-keys': '-1' } });
      expect(bad.xml.Error.Code).to.equal('InvalidArgument');
    });
  });
});

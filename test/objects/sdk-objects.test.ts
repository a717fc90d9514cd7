import { expect } from 'chai';
import COS from 'cos-nodejs-sdk-v5';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { asArray, httpRequest, startTestService, type TestService } from '../helpers/service.js';

/*
 * The real cos-nodejs-sdk-v5 object calls against the service, signatures
 * required, in both host styles: virtual host (`<bucket>.cos.<region>.…` in
 * the Host, the SDK's `Ip` option carrying the connection to 127.0.0.1) and
 * a bare host (the SDK's `Domain: '127.0.0.1:<port>'`, objects of the
 * default bucket). The SDK's ForcePathStyle throws in its constructor, so
 * path style is covered with raw signed requests in object-api.test.ts.
 */

const REGION = 'ap-guangzhou';
const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');

describe('objects: cos-nodejs-sdk-v5 against the object API', function () {
  this.timeout(60_000);
  let api: TestService;
  let vhost: COS;
  let bare: COS;
  let bucket: string;
  let scratch: string;

  before(async () => {
    api = await startTestService({ env: { MEDIAJOBS_REQUIRE_AUTH: 'true' } });
    const { secretId, secretKey, appid } = api.service.app;
    bucket = `sdk-${appid}`;
    vhost = new COS({ SecretId: secretId, SecretKey: secretKey, Ip: `127.0.0.1:${api.service.port}`, Protocol: 'http:' });
    bare = new COS({ SecretId: secretId, SecretKey: secretKey, Domain: `127.0.0.1:${api.service.port}`, Protocol: 'http:' });
    scratch = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-sdk-objects-'));
    await vhost.putBucket({ Bucket: bucket, Region: REGION });
  });
  after(async () => {
    rmSync(scratch, { recursive: true, force: true });
    await api?.stop();
  });

  describe('virtual-host style (Host <bucket>.cos.<region>.myqcloud.com)', () => {
    it('puts an object and reads it back byte for byte, with its ETag, type and x-cos-meta-*', async () => {
      const body = randomBytes(3 * 1024 * 1024 + 17);
      const put = await vhost.putObject({ Bucket: bucket, Region: REGION, Key: 'dir/blob.bin', Body: body, ContentType: 'application/x-test', Headers: { 'x-cos-meta-owner': 'alice' } });
      expect(put.statusCode).to.equal(200);
      expect(put.ETag).to.equal(`"${md5(body)}"`);

      const got = await vhost.getObject({ Bucket: bucket, Region: REGION, Key: 'dir/blob.bin' });
      expect(got.statusCode).to.equal(200);
      expect(Buffer.compare(got.Body as Buffer, body)).to.equal(0);
      expect(got.headers?.['content-type']).to.equal('application/x-test');
      expect(got.headers?.['x-cos-meta-owner']).to.equal('alice');
      expect(got.ETag).to.equal(`"${md5(body)}"`);

      const head = await vhost.headObject({ Bucket: bucket, Region: REGION, Key: 'dir/blob.bin' });
      expect(head.statusCode).to.equal(200);
      expect(head.headers?.['content-length']).to.equal(String(body.length));
      expect(head.ETag).to.equal(`"${md5(body)}"`);
    });

    it('reads a Range (206 with Content-Range)', async () => {
      const body = Buffer.from('0123456789abcdefghij');
      await vhost.putObject({ Bucket: bucket, Region: REGION, Key: 'range.txt', Body: body });
      const got = await vhost.getObject({ Bucket: bucket, Region: REGION, Key: 'range.txt', Range: 'bytes=5-9' });
      expect(got.statusCode).to.equal(206);
      expect((got.Body as Buffer).toString()).to.equal('56789');
      expect(got.headers?.['content-range']).to.equal('bytes 5-9/20');
      const tail = await vhost.getObject({ Bucket: bucket, Region: REGION, Key: 'range.txt', Range: 'bytes=-3' });
      expect((tail.Body as Buffer).toString()).to.equal('hij');
    });

    it('answers 304 to If-None-Match with the current ETag', async () => {
      const put = await vhost.putObject({ Bucket: bucket, Region: REGION, Key: 'cond.txt', Body: 'same' });
      const err = await vhost.getObject({ Bucket: bucket, Region: REGION, Key: 'cond.txt', IfNoneMatch: put.ETag }).then(() => undefined, (e: any) => e);
      // The SDK reports a 304 as an error with statusCode 304.
      expect(err?.statusCode).to.equal(304);
    });

    it('deletes an object (then NoSuchKey)', async () => {
      await vhost.putObject({ Bucket: bucket, Region: REGION, Key: 'gone.txt', Body: 'x' });
      const del = await vhost.deleteObject({ Bucket: bucket, Region: REGION, Key: 'gone.txt' });
      expect(del.statusCode).to.equal(204);
      const err = await vhost.getObject({ Bucket: bucket, Region: REGION, Key: 'gone.txt' }).then(() => undefined, (e: any) => e);
      expect(err?.statusCode).to.equal(404);
      expect(err?.code).to.equal('NoSuchKey');
    });

    it('lists with prefix and delimiter (Contents and CommonPrefixes)', async () => {
      for (const key of ['list/a.txt', 'list/b/1.txt', 'list/b/2.txt', 'list/c/3.txt', 'list/d.txt', 'other.txt']) {
        await vhost.putObject({ Bucket: bucket, Region: REGION, Key: key, Body: key });
      }
      const page = await vhost.getBucket({ Bucket: bucket, Region: REGION, Prefix: 'list/', Delimiter: '/' });
      expect(page.Contents.map((c: any) => c.Key)).to.deep.equal(['list/a.txt', 'list/d.txt']);
      expect(page.CommonPrefixes.map((c: any) => c.Prefix)).to.deep.equal(['list/b/', 'list/c/']);
      expect(page.IsTruncated).to.equal('false');
      expect(page.Contents[0].ETag).to.equal(`"${md5(Buffer.from('list/a.txt'))}"`);

      const first = await vhost.getBucket({ Bucket: bucket, Region: REGION, Prefix: 'list/', MaxKeys: 2 });
      expect(first.Contents.map((c: any) => c.Key)).to.deep.equal(['list/a.txt', 'list/b/1.txt']);
      expect(first.IsTruncated).to.equal('true');
      const next = await vhost.getBucket({ Bucket: bucket, Region: REGION, Prefix: 'list/', Marker: first.NextMarker, MaxKeys: 10 });
      expect(next.Contents.map((c: any) => c.Key)).to.deep.equal(['list/b/2.txt', 'list/c/3.txt', 'list/d.txt']);
    });

    it('uploads a file above the slice size as a multipart upload (ETag "<md5 of md5s>-N")', async () => {
      const body = randomBytes(3 * 1024 * 1024 + 5);
      const file = path.join(scratch, 'multi.bin');
      writeFileSync(file, body);
      const done = await vhost.uploadFile({ Bucket: bucket, Region: REGION, Key: 'multi/part.bin', FilePath: file, SliceSize: 1024 * 1024, ChunkSize: 1024 * 1024 });
      const parts = [0, 1, 2, 3].map((i) => createHash('md5').update(body.subarray(i * 1024 * 1024, (i + 1) * 1024 * 1024)).digest());
      const expected = `"${md5(Buffer.concat(parts))}-4"`;
      expect(done.ETag).to.equal(expected);
      const got = await vhost.getObject({ Bucket: bucket, Region: REGION, Key: 'multi/part.bin' });
      expect(Buffer.compare(got.Body as Buffer, body)).to.equal(0);
      expect(got.ETag).to.equal(expected);
      const uploads: any = await vhost.multipartList({ Bucket: bucket, Region: REGION, Prefix: 'multi/' } as any);
      expect(asArray(uploads.Upload)).to.have.length(0);
    });

    it('copies an object (CopyObject keeps the metadata)', async () => {
      await vhost.putObject({ Bucket: bucket, Region: REGION, Key: 'copy/src.txt', Body: 'copied', ContentType: 'text/x-src', Headers: { 'x-cos-meta-k': 'v' } });
      const copy = await vhost.putObjectCopy({ Bucket: bucket, Region: REGION, Key: 'copy/dst.txt', CopySource: `${bucket}.cos.${REGION}.myqcloud.com/copy/src.txt` });
      expect(copy.ETag).to.equal(`"${md5(Buffer.from('copied'))}"`);
      const got = await vhost.getObject({ Bucket: bucket, Region: REGION, Key: 'copy/dst.txt' });
      expect((got.Body as Buffer).toString()).to.equal('copied');
      expect(got.headers?.['content-type']).to.equal('text/x-src');
      expect(got.headers?.['x-cos-meta-k']).to.equal('v');
    });

    it('deletes several objects at once', async () => {
      for (const key of ['multi-del/1', 'multi-del/2']) await vhost.putObject({ Bucket: bucket, Region: REGION, Key: key, Body: key });
      const res = await vhost.deleteMultipleObject({ Bucket: bucket, Region: REGION, Objects: [{ Key: 'multi-del/1' }, { Key: 'multi-del/2' }, { Key: 'multi-del/never' }] });
      expect(res.Deleted.map((d: any) => d.Key).sort()).to.deep.equal(['multi-del/1', 'multi-del/2', 'multi-del/never']);
      const list = await vhost.getBucket({ Bucket: bucket, Region: REGION, Prefix: 'multi-del/' });
      expect(list.Contents).to.deep.equal([]);
    });

    it('serves presigned GET and PUT URLs (getObjectUrl), and refuses one whose key was changed', async () => {
      const host = `${bucket}.cos.${REGION}.myqcloud.com`;
      const local = (url: string) => url.replace(/^https?:\/\/[^/]+/, `http://127.0.0.1:${api.service.port}`);
      const putUrl = vhost.getObjectUrl({ Bucket: bucket, Region: REGION, Key: 'presigned/up.txt', Method: 'PUT', Sign: true, Expires: 600 }, () => undefined);
      const up = await httpRequest(local(putUrl), 'PUT', 'by url', { host });
      expect(up.status, up.text).to.equal(200);
      const getUrl = vhost.getObjectUrl({ Bucket: bucket, Region: REGION, Key: 'presigned/up.txt', Sign: true, Expires: 600 }, () => undefined);
      const down = await httpRequest(local(getUrl), 'GET', undefined, { host });
      expect(down.status).to.equal(200);
      expect(down.text).to.equal('by url');
      const tampered = await httpRequest(local(getUrl).replace('presigned/up.txt', 'presigned/other.txt'), 'GET', undefined, { host });
      expect(tampered.status).to.equal(403);
      expect(tampered.xml.Error.Code).to.equal('SignatureDoesNotMatch');
    });
  });

  describe('bare host (Domain 127.0.0.1:<port>): the default bucket', () => {
    it('puts, heads, gets and lists an object of the default bucket', async () => {
      const body = randomBytes(2 * 1024 * 1024);
      const defaultBucket = api.service.app.bucket;
      const put = await bare.putObject({ Bucket: defaultBucket, Region: REGION, Key: 'bare/one.bin', Body: body });
      expect(put.ETag).to.equal(`"${md5(body)}"`);
      const got = await bare.getObject({ Bucket: defaultBucket, Region: REGION, Key: 'bare/one.bin' });
      expect(Buffer.compare(got.Body as Buffer, body)).to.equal(0);
      const list = await bare.getBucket({ Bucket: defaultBucket, Region: REGION, Prefix: 'bare/' });
      expect(list.Contents.map((c: any) => c.Key)).to.deep.equal(['bare/one.bin']);
      // The object is the same one the vhost style reaches.
      const same = await vhost.headObject({ Bucket: defaultBucket, Region: REGION, Key: 'bare/one.bin' });
      expect(same.ETag).to.equal(put.ETag);
    });

    it('uploads a multipart file on the bare host too', async () => {
      const body = randomBytes(2 * 1024 * 1024 + 1);
      const file = path.join(scratch, 'bare-multi.bin');
      writeFileSync(file, body);
      const done = await bare.uploadFile({ Bucket: api.service.app.bucket, Region: REGION, Key: 'bare/multi.bin', FilePath: file, SliceSize: 1024 * 1024 });
      expect(done.ETag).to.match(/^"[0-9a-f]{32}-3"$/);
      const got = await bare.getObject({ Bucket: api.service.app.bucket, Region: REGION, Key: 'bare/multi.bin' });
      expect(Buffer.compare(got.Body as Buffer, body)).to.equal(0);
    });
  });
});

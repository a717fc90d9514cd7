import { expect } from 'chai';
import COS from 'cos-nodejs-sdk-v5';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { signRequest } from '../helpers/cos-signer.js';
import { httpRequest, startTestService, type TestService } from '../helpers/service.js';

/*
 * CI's synchronous processing on GetObject: imageMogr2 rules through the
 * PicProcess rule parser and sharp pipeline, and ci-process=videoinfo
 * through the MediaInfo processor; signatures required.
 */

const REGION = 'ap-local';

describe('objects: processing on GetObject (imageMogr2, ci-process=videoinfo)', function () {
  this.timeout(60_000);
  let api: TestService;
  let cos: COS;
  let bucket: string;

  function signedGet(path: string, query: Record<string, string>) {
    const host = new URL(api.baseUrl).host;
    const { secretId, secretKey } = api.service.app;
    const authorization = signRequest({ method: 'GET', path, query, headers: { host }, secretId, secretKey });
    const qs = Object.entries(query).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
    return new Promise<{ status: number; type: string; body: Buffer }>((resolve, reject) => {
      void import('node:http').then(({ default: http }) => http.get(`${api.baseUrl}${path}?${qs}`, { headers: { host, authorization } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: Buffer.concat(chunks) }));
      }).on('error', reject));
    });
  }

  before(async () => {
    api = await startTestService({ env: { MEDIAJOBS_REQUIRE_AUTH: 'true' } });
    const { secretId, secretKey } = api.service.app;
    bucket = api.service.app.bucket;
    cos = new COS({ SecretId: secretId, SecretKey: secretKey, Ip: `127.0.0.1:${api.service.port}`, Protocol: 'http:' });
    await cos.putObject({ Bucket: bucket, Region: REGION, Key: 'img/photo.jpg', Body: readFileSync('fixtures/images/photo-orient6.jpg') });
    await cos.putObject({ Bucket: bucket, Region: REGION, Key: 'media/clip.mp4', Body: readFileSync('fixtures/media/h264-aac.mp4') });
  });
  after(() => api?.stop());

  it('answers a thumbnail for ?imageMogr2/thumbnail/64x through the SDK, without storing it', async () => {
    const got = await cos.getObject({ Bucket: bucket, Region: REGION, Key: 'img/photo.jpg', Query: { 'imageMogr2/thumbnail/64x': '' } } as any);
    expect(got.statusCode).to.equal(200);
    expect(got.headers?.['content-type']).to.equal('image/jpeg');
    const meta = await sharp(got.Body as Buffer).metadata();
    expect(meta.width).to.equal(64);
    const list = await cos.getBucket({ Bucket: bucket, Region: REGION, Prefix: 'img/' });
    expect(list.Contents.map((c: any) => c.Key)).to.deep.equal(['img/photo.jpg']);
  });

  it('chains rules with | and answers the same bytes again from the cache', async () => {
    const rule = 'imageMogr2/thumbnail/48x|imageMogr2/format/png';
    const first = await signedGet('/img/photo.jpg', { [rule]: '' });
    expect(first.status).to.equal(200);
    expect(first.type).to.equal('image/png');
    expect((await sharp(first.body).metadata()).format).to.equal('png');
    const second = await signedGet('/img/photo.jpg', { [rule]: '' });
    expect(Buffer.compare(first.body, second.body)).to.equal(0);
  });

  it('refuses a malformed rule and a rule over the output limits (400 InvalidArgument)', async () => {
    const bad = await signedGet('/img/photo.jpg', { 'imageMogr2/thumbnail/abc': '' });
    expect(bad.status).to.equal(400);
    expect(bad.body.toString()).to.include('<Code>InvalidArgument</Code>');
    const huge = await signedGet('/img/photo.jpg', { 'imageMogr2/thumbnail/99999x99999!': '' });
    expect(huge.status).to.equal(400);
  });

  it('answers ?imageInfo as CI\'s JSON, every value a string', async () => {
    const res = await signedGet('/img/photo.jpg', { imageInfo: '' });
    expect(res.status).to.equal(200);
    expect(res.type).to.match(/^application\/json/);
    const data = readFileSync('fixtures/images/photo-orient6.jpg');
    const meta = await sharp(data).metadata();
    const info = JSON.parse(res.body.toString());
    expect(info).to.deep.include({ format: 'jpeg', width: String(meta.width), height: String(meta.height), size: String(data.length), frame_count: '1', bit_depth: '8' });
    expect(info.md5).to.equal((await import('node:crypto')).createHash('md5').update(data).digest('hex'));
    expect(Object.values(info).every((v) => typeof v === 'string')).to.equal(true);
    const notImage = await signedGet('/media/clip.mp4', { imageInfo: '' });
    expect(notImage.status).to.equal(400);
  });

  it('answers one frame for ?ci-process=snapshot (jpg, png with a width), and InvalidArgument past the end', async () => {
    const jpg = await signedGet('/media/clip.mp4', { 'ci-process': 'snapshot', time: '1', format: 'jpg' });
    expect(jpg.status, jpg.body.toString()).to.equal(200);
    expect(jpg.type).to.equal('image/jpeg');
    expect((await sharp(jpg.body).metadata()).format).to.equal('jpeg');
    const png = await signedGet('/media/clip.mp4', { 'ci-process': 'snapshot', time: '0.5', format: 'png', width: '96' });
    expect(png.type).to.equal('image/png');
    expect((await sharp(png.body).metadata()).width).to.equal(96);
    const late = await signedGet('/media/clip.mp4', { 'ci-process': 'snapshot', time: '9999' });
    expect(late.status).to.equal(400);
    const noTime = await signedGet('/media/clip.mp4', { 'ci-process': 'snapshot' });
    expect(noTime.status).to.equal(400);
  });

  it('processes on upload with Pic-Operations and answers UploadResult', async () => {
    const ops = JSON.stringify({ is_pic_info: 1, rules: [{ fileid: 'thumb.png', rule: 'imageMogr2/thumbnail/32x|imageMogr2/format/png' }, { fileid: '/top/rotated.jpg', rule: 'imageMogr2/rotate/90' }] });
    const res: any = await cos.putObject({ Bucket: bucket, Region: REGION, Key: 'up/photo.jpg', Body: readFileSync('fixtures/images/photo-orient6.jpg'), Headers: { 'Pic-Operations': ops } });
    expect(res.statusCode).to.equal(200);
    const upload = res.UploadResult;
    expect(upload.OriginalInfo.Key).to.equal('up/photo.jpg');
    expect(upload.OriginalInfo.ImageInfo.Format).to.equal('JPEG');
    expect(upload.OriginalInfo.ImageInfo.Ave).to.match(/^0x[0-9a-f]{6}$/);
    const objects = Array.isArray(upload.ProcessResults.Object) ? upload.ProcessResults.Object : [upload.ProcessResults.Object];
    expect(objects.map((o: any) => [o.Key, o.Format])).to.deep.equal([['up/thumb.png', 'PNG'], ['top/rotated.jpg', 'JPEG']]);
    expect(objects[0].Width).to.equal('32');
    const thumb = await cos.getObject({ Bucket: bucket, Region: REGION, Key: 'up/thumb.png' });
    expect(thumb.headers?.['content-type']).to.equal('image/png');
    expect((await sharp(thumb.Body as Buffer).metadata()).width).to.equal(32);
    const bad = await cos.putObject({ Bucket: bucket, Region: REGION, Key: 'up/bad.jpg', Body: 'x', Headers: { 'Pic-Operations': '{"rules":[{"fileid":"../../x","rule":"imageMogr2/rotate/90"}]}' } }).then(() => undefined, (e: any) => e);
    expect(bad?.statusCode).to.equal(400);
    expect((await cos.headObject({ Bucket: bucket, Region: REGION, Key: 'up/bad.jpg' }).then(() => 200, (e: any) => e.statusCode))).to.equal(404);
  });

  it('answers MediaInfo for ?ci-process=videoinfo, NoSuchKey for a missing object, NotImplemented for unknown ci-process values', async () => {
    const res = await signedGet('/media/clip.mp4', { 'ci-process': 'videoinfo' });
    expect(res.status, res.body.toString()).to.equal(200);
    const text = res.body.toString();
    expect(text).to.match(/^<Response><MediaInfo>/);
    expect(text).to.include('<FormatName>mov,mp4,m4a,3gp,3g2,mj2</FormatName>');
    const missing = await signedGet('/media/none.mp4', { 'ci-process': 'videoinfo' });
    expect(missing.status).to.equal(404);
    const other = await signedGet('/media/clip.mp4', { 'ci-process': 'voiceseparate' });
    expect(other.status).to.equal(501);
    const unsigned = await httpRequest(`${api.baseUrl}/media/clip.mp4?ci-process=videoinfo`, 'GET');
    expect(unsigned.status).to.equal(403);
  });

  function signedRequest(method: string, path: string, options: { query?: Record<string, string>; host?: string; body?: string } = {}) {
    const host = options.host ?? new URL(api.baseUrl).host;
    const { secretId, secretKey } = api.service.app;
    const query = options.query ?? {};
    const authorization = signRequest({ method, path, query, headers: { host }, secretId, secretKey });
    const qs = Object.entries(query).map(([k, v]) => (v === '' ? encodeURIComponent(k) : `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)).join('&');
    return httpRequest(`${api.baseUrl}${path}${qs ? `?${qs}` : ''}`, method, options.body, { host, authorization, ...(options.body !== undefined ? { 'content-type': 'application/xml' } : {}) });
  }
  const foreignBucket = () => `other-${Number(api.service.app.appid) + 1}`;

  it('answers ?exif as CI\'s JSON of the EXIF tags, "no exif data" without EXIF, 404 for a missing object, 403 for another APPID\'s bucket', async () => {
    const res = await signedRequest('GET', '/img/photo.jpg', { query: { exif: '' } });
    expect(res.status, res.text).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/json/);
    const exif = JSON.parse(res.text);
    expect(exif.Orientation).to.deep.equal({ val: '6' });
    for (const [name, tag] of Object.entries(exif)) {
      expect(Object.keys(tag as object), name).to.deep.equal(['val']);
      expect(typeof (tag as { val: unknown }).val, name).to.equal('string');
    }
    await cos.putObject({ Bucket: bucket, Region: REGION, Key: 'img/alpha.png', Body: readFileSync('fixtures/images/alpha.png') });
    const png = await signedRequest('GET', '/img/alpha.png', { query: { exif: '' } });
    expect(png.status).to.equal(200);
    expect(JSON.parse(png.text)).to.deep.equal({ error: 'no exif data' });
    const missing = await signedRequest('GET', '/img/none.jpg', { query: { exif: '' } });
    expect(missing.status).to.equal(404);
    expect(missing.xml.Error.Code).to.equal('NoSuchKey');
    const foreign = await signedRequest('GET', `/${foreignBucket()}/img/photo.jpg`, { query: { exif: '' } });
    expect(foreign.status).to.equal(403);
    expect(foreign.xml.Error.Code).to.equal('AccessDenied');
    const notImage = await signedRequest('GET', '/media/clip.mp4', { query: { exif: '' } });
    expect(notImage.status).to.equal(400);
    expect(notImage.xml.Error.Code).to.equal('InvalidArgument');
    const unsigned = await httpRequest(`${api.baseUrl}/img/photo.jpg?exif`, 'GET');
    expect(unsigned.status).to.equal(403);
  });

  it('answers POST /mediainfo (the Go SDK\'s GenerateMediaInfo) as ?ci-process=videoinfo; 400 for a malformed body, 404 missing, 403 foreign', async () => {
    const body = '<Request><Input><Object>media/clip.mp4</Object></Input></Request>';
    const res = await signedRequest('POST', '/mediainfo', { body });
    expect(res.status, res.text).to.equal(200);
    expect(res.text).to.match(/^<Response><MediaInfo>/);
    expect(res.xml.Response.MediaInfo.Format.FormatName).to.equal('mov,mp4,m4a,3gp,3g2,mj2');
    const viaGet = await signedGet('/media/clip.mp4', { 'ci-process': 'videoinfo' });
    expect(res.text).to.equal(viaGet.body.toString());
    const ciHost = await signedRequest('POST', '/mediainfo', { body, host: `${bucket}.ci.${REGION}.myqcloud.com` });
    expect(ciHost.status, ciHost.text).to.equal(200);
    const malformed = await signedRequest('POST', '/mediainfo', { body: '<Request><Input><Object>media/clip.mp4</Input>' });
    expect(malformed.status).to.equal(400);
    expect(malformed.xml.Error.Code).to.be.a('string');
    const noInput = await signedRequest('POST', '/mediainfo', { body: '<Request><Tag>x</Tag></Request>' });
    expect(noInput.status).to.equal(400);
    expect(noInput.xml.Error.Code).to.equal('InvalidArgument');
    const hostile = await signedRequest('POST', '/mediainfo', { body: '<Request><Input><Object>../etc/passwd</Object></Input></Request>' });
    expect(hostile.status).to.equal(400);
    const missing = await signedRequest('POST', '/mediainfo', { body: '<Request><Input><Object>media/none.mp4</Object></Input></Request>' });
    expect(missing.status).to.equal(404);
    expect(missing.xml.Error.Code).to.equal('NoSuchKey');
    const foreign = await signedRequest('POST', '/mediainfo', { body, host: `${foreignBucket()}.ci.${REGION}.myqcloud.com` });
    expect(foreign.status).to.equal(403);
    expect(foreign.xml.Error.Code).to.equal('AccessDenied');
    const unsigned = await httpRequest(`${api.baseUrl}/mediainfo`, 'POST', body, { 'content-type': 'application/xml' });
    expect(unsigned.status).to.equal(403);
  });
});

import { expect } from 'chai';
import COS from 'cos-nodejs-sdk-v5';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
// @ts-expect-error s3rver ships no types
import S3rver from 's3rver';
import { freshDatabase } from '../helpers/databases.js';
import { spawnWorker, type WorkerProcess } from '../helpers/processes.js';
import { startTestService, type TestService } from '../helpers/service.js';


/*
 * MEDIAJOBS_STORAGE=s3 end to end, on s3rver started in-process, as several
 * machines would run it: two API services and two `mediajobs worker`
 * processes, each with its own data dir, share one database and one S3
 * endpoint. Objects go in through one API with the real SDK, jobs run on the
 * worker processes reading their inputs through the Storage interface (a
 * streamed temporary file), and the outputs are read back through the other
 * API, whose data dir never holds them.
 */

const REGION = 'ap-local';
const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');

describe('objects: MEDIAJOBS_STORAGE=s3 (s3rver), two services sharing objects', function () {
  this.timeout(90_000);
  let s3: any;
  let scratch: string;
  let one: TestService;
  let two: TestService;
  let cosOne: COS;
  let cosTwo: COS;
  let bucket: string;
  let workers: WorkerProcess[] = [];

  before(async () => {
    scratch = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-s3-service-'));
    s3 = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: path.join(scratch, 's3') });
    const { port } = await s3.run();
    const env = {
      MEDIAJOBS_STORAGE: 's3', MEDIAJOBS_S3_ENDPOINT: `http://127.0.0.1:${port}`, MEDIAJOBS_S3_REGION: 'us-east-1',
      MEDIAJOBS_S3_ACCESS_KEY_ID: 'S3RVER', MEDIAJOBS_S3_SECRET_ACCESS_KEY: 'S3RVER', MEDIAJOBS_S3_BUCKET_PREFIX: 'mj-',
      MEDIAJOBS_REQUIRE_AUTH: 'true',
    };
    const database = await freshDatabase();
    one = await startTestService({ env, database });
    two = await startTestService({ env, database: { databaseUrl: database.databaseUrl, dataDir: path.join(scratch, 'second-data-dir') } });
    workers = [1, 2].map((n) => spawnWorker({ ...env, DATABASE_URL: database.databaseUrl, MEDIAJOBS_DATA_DIR: path.join(scratch, `worker-${n}`), MEDIAJOBS_CONCURRENCY: '2' }));
    await Promise.all(workers.map((w) => w.ready));
    const app = one.service.app;
    bucket = app.bucket;
    cosOne = new COS({ SecretId: app.secretId, SecretKey: app.secretKey, Ip: `127.0.0.1:${one.service.port}`, Protocol: 'http:' });
    cosTwo = new COS({ SecretId: app.secretId, SecretKey: app.secretKey, Ip: `127.0.0.1:${two.service.port}`, Protocol: 'http:' });
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.kill()));
    await two?.stop();
    await one?.stop();
    await s3?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('puts through one service and reads byte for byte (whole and ranged) through the other', async () => {
    const body = randomBytes(3 * 1024 * 1024 + 1);
    const put = await cosOne.putObject({ Bucket: bucket, Region: REGION, Key: 'shared/blob.bin', Body: body, ContentType: 'application/x-blob', Headers: { 'x-cos-meta-from': 'one' } });
    expect(put.ETag).to.equal(`"${md5(body)}"`);
    const got = await cosTwo.getObject({ Bucket: bucket, Region: REGION, Key: 'shared/blob.bin' });
    expect(Buffer.compare(got.Body as Buffer, body)).to.equal(0);
    expect(got.headers?.['content-type']).to.equal('application/x-blob');
    expect(got.headers?.['x-cos-meta-from']).to.equal('one');
    const part = await cosTwo.getObject({ Bucket: bucket, Region: REGION, Key: 'shared/blob.bin', Range: 'bytes=1000-1999' });
    expect(Buffer.compare(part.Body as Buffer, body.subarray(1000, 2000))).to.equal(0);
    const list = await cosTwo.getBucket({ Bucket: bucket, Region: REGION, Prefix: 'shared/' });
    expect(list.Contents.map((c: any) => c.Key)).to.deep.equal(['shared/blob.bin']);
    expect(existsSync(path.join(scratch, 'second-data-dir', 'buckets'))).to.equal(false);
  });

  it('uploads a file above the slice size through the store\'s multipart upload', async () => {
    const body = randomBytes(2 * 1024 * 1024 + 7);
    const file = path.join(scratch, 'multi.bin');
    writeFileSync(file, body);
    await cosOne.uploadFile({ Bucket: bucket, Region: REGION, Key: 'shared/multi.bin', FilePath: file, SliceSize: 1024 * 1024 });
    const got = await cosTwo.getObject({ Bucket: bucket, Region: REGION, Key: 'shared/multi.bin' });
    expect(Buffer.compare(got.Body as Buffer, body)).to.equal(0);
  });

  it('runs MediaInfo and PicProcess jobs on the worker processes, inputs and outputs in the store', async () => {
    await cosOne.putObject({ Bucket: bucket, Region: REGION, Key: 'in/video.mp4', Body: readFileSync('fixtures/media/h264-aac.mp4') });
    await cosOne.putObject({ Bucket: bucket, Region: REGION, Key: 'in/photo.jpg', Body: readFileSync('fixtures/images/photo-orient6.jpg') });
    const signedSubmit = async (body: string) => {
      const res = await cosTwo.request({ Method: 'POST', Key: 'jobs', Url: `http://127.0.0.1:${two.service.port}/jobs`, Body: body, ContentType: 'application/xml' });
      return (res as any).Response.JobsDetail.JobId as string;
    };

    const info = await signedSubmit('<Request><Tag>MediaInfo</Tag><Input><Object>in/video.mp4</Object></Input></Request>');
    const pic = await signedSubmit(`<Request><Tag>PicProcess</Tag><Input><Object>in/photo.jpg</Object></Input><Operation><PicProcess><ProcessRule>imageMogr2/thumbnail/64x</ProcessRule></PicProcess><Output><Region>${REGION}</Region><Bucket>${bucket}</Bucket><Object>out/thumb.jpg</Object></Output></Operation></Request>`);
    const waitSigned = async (id: string) => {
      for (let i = 0; i < 300; i += 1) {
        const res: any = await cosTwo.request({ Method: 'GET', Key: `jobs/${id}`, Url: `http://127.0.0.1:${two.service.port}/jobs/${id}` });
        const detail = res.Response.JobsDetail;
        if (['Success', 'Failed', 'Cancel'].includes(detail.State)) return detail;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      throw new Error(`job ${id} did not end`);
    };

    const more = await Promise.all([1, 2, 3, 4].map(() => signedSubmit('<Request><Tag>MediaInfo</Tag><Input><Object>in/video.mp4</Object></Input></Request>')));
    for (const id of more) expect((await waitSigned(id)).State).to.equal('Success');
    const infoDetail = await waitSigned(info);
    expect(infoDetail.State, JSON.stringify(infoDetail)).to.equal('Success');
    expect(infoDetail.Operation.MediaInfo.Format.FormatName).to.match(/mp4/);
    const picDetail = await waitSigned(pic);
    expect(picDetail.State, JSON.stringify(picDetail)).to.equal('Success');
    const thumb = await cosTwo.getObject({ Bucket: bucket, Region: REGION, Key: 'out/thumb.jpg' });
    expect((thumb.Body as Buffer).subarray(0, 2).toString('hex')).to.equal('ffd8');
    expect(thumb.headers?.['content-type']).to.equal('image/jpeg');
    // Neither API service runs a worker: the worker processes ran the jobs, and kept no objects of their own.
    expect(one.service.worker).to.equal(undefined);
    for (const n of [1, 2]) expect(existsSync(path.join(scratch, `worker-${n}`, 'buckets'))).to.equal(false);
  });
});

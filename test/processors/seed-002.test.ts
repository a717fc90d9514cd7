import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import COS from 'cos-nodejs-sdk-v5';
import { XMLParser } from 'fast-xml-parser';
import { runFfprobe } from '../../src/media/ffprobe.js';
import { createSpawner } from '../../src/media/spawner.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { startTestService, waitFor, type TestService } from '../helpers/service.js';

/*
 * Seed 002's InvokeTranscodeJob as a Go user runs it: the XML the Go SDK
 * marshals from its CreateJobsOptions (struct order: Output before Transcode,
 * TimeInterval before Audio, the empty Duration left out), sent by the real
 * cos-nodejs-sdk-v5 with signatures required, to the CI-style Host of the
 * seed's bucket (only its APPID changed to the app's) in the seed's region.
 * No CallBack: as in the seed, the TaskFinish callback comes from the queue's
 * NotifyConfig, and it must read as seed 002's JobNotifyCallback sample.
 * (Its InvokeMultiJobs runs in snapshot-animation.test.ts.)
 */

const BUCKET = 'test-1250000000';
const HOST = `${BUCKET}.ci.ap-chongqing.myqcloud.com`;
const GO_BODY = '<Request><Tag>Transcode</Tag><Input><Object>input/test.mp4</Object></Input><Operation>'
  + `<Output><Region>ap-chongqing</Region><Bucket>${BUCKET}</Bucket><Object>output/test.mp4</Object></Output>`
  + '<Transcode><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec></Video><TimeInterval><Start>10</Start></TimeInterval><Audio><Codec>AAC</Codec></Audio></Transcode>'
  + '<UserData>hello world</UserData></Operation></Request>';

const spawner = createSpawner();
after(() => spawner.close());

describe('seed 002\'s InvokeTranscodeJob through cos-nodejs-sdk-v5, and its TaskFinish callback', function () {
  this.timeout(60_000);
  let api: TestService;
  let receiver: Receiver;
  let cos: COS;
  const url = (p: string) => `http://${HOST}/${p}`;

  before(async () => {
    api = await startTestService({ worker: true, env: { MEDIAJOBS_REQUIRE_AUTH: 'true', MEDIAJOBS_ALLOW_PRIVATE_CALLBACKS: 'true' } });
    receiver = await startReceiver();
    cos = new COS({ SecretId: api.service.app.secretId, SecretKey: api.service.app.secretKey, Ip: `127.0.0.1:${api.service.port}` });
    await api.service.storage.put(BUCKET, 'input/test.mp4', readFileSync('fixtures/media/clip-12s.mp4'));
  });
  after(async () => {
    await receiver?.close();
    await api?.stop();
  });

  it('creates the job as the SDK sends it, cuts from 10 s to the end, and delivers a TaskFinish that decodes into MediaResult/OutputFile/Md5Info', async () => {
    const queues = await cos.request({ Method: 'GET', Key: 'queue', Url: url('queue') });
    const queueId = queues.Response.QueueList.QueueId as string;
    const notify = COS.util.json2xml({
      Request: { Name: 'seed-002', QueueID: queueId, State: 'Active', NotifyConfig: { State: 'On', Type: 'Url', Url: receiver.url, Event: 'TaskFinish', ResultFormat: 'XML' } },
    });
    expect((await cos.request({ Method: 'PUT', Key: `queue/${queueId}`, Url: url(`queue/${queueId}`), Body: notify, ContentType: 'application/xml' })).statusCode).to.equal(200);

    const created = await cos.request({ Method: 'POST', Key: 'jobs', Url: url('jobs'), Body: GO_BODY, ContentType: 'application/xml' });
    expect(created.statusCode).to.equal(200);
    const job = created.Response.JobsDetail;
    expect(job).to.include({ Tag: 'Transcode', State: 'Submitted', QueueId: queueId });
    expect(job.Input).to.deep.equal({ BucketId: BUCKET, Object: 'input/test.mp4', Region: 'ap-chongqing' });
    expect(job.Operation.UserData).to.equal('hello world');

    const received = await waitFor(async () => receiver.received.find((r) => r.body.includes(job.JobId)), 30_000, 'the TaskFinish callback');
    // Read as Go's JobsNotifyBody reads it: repeated elements as lists, every value text.
    const parser = new XMLParser({ parseTagValue: false, isArray: (name, jpath) => ['JobsDetail', 'Md5Info', 'Video', 'Audio'].includes(name) || String(jpath).endsWith('OutputFile.ObjectName') });
    const body = parser.parse(received.body).Response;
    expect(body.EventName).to.equal('TaskFinish');
    expect(body.JobsDetail).to.have.length(1);
    const detail = body.JobsDetail[0];
    expect(detail).to.include({ Code: 'Success', JobId: job.JobId, State: 'Success', Progress: '100', Tag: 'Transcode', QueueId: queueId });
    expect(detail.Input).to.deep.equal({ BucketId: BUCKET, Object: 'input/test.mp4', Region: 'ap-chongqing' });
    const { Operation: operation } = detail;
    expect(operation.UserData).to.equal('hello world');
    // Go's int: text it could not parse would fail the whole decode.
    expect(operation.JobLevel).to.match(/^\d+$/);
    expect(operation.Output).to.deep.equal({ Bucket: BUCKET, Object: 'output/test.mp4', Region: 'ap-chongqing' });

    const stored = await api.service.storage.get(BUCKET, 'output/test.mp4');
    expect(operation.MediaResult).to.deep.equal({
      OutputFile: {
        Bucket: BUCKET,
        Md5Info: [{ Md5: createHash('md5').update(stored).digest('hex'), ObjectName: 'output/test.mp4' }],
        ObjectName: ['output/test.mp4'],
        ObjectPrefix: '',
        Region: 'ap-chongqing',
      },
    });
    // The seed's children, in its (alphabetical) order.
    expect(Object.keys(operation.MediaResult.OutputFile)).to.deep.equal(['Bucket', 'Md5Info', 'ObjectName', 'ObjectPrefix', 'Region']);
    const { Format: format, Stream: streams } = operation.MediaInfo;
    expect(Number(format.Duration)).to.be.closeTo(2, 0.1);
    expect(streams.Video.map((v: Record<string, string>) => v.CodecName)).to.deep.equal(['h264']);
    expect(streams.Audio.map((a: Record<string, string>) => a.CodecName)).to.deep.equal(['aac']);

    // What was stored: the last 2 s of the 12 s clip (20 frames at 10 fps), H.264 and AAC.
    const report = await runFfprobe(path.join(api.config.dataDir, 'buckets', BUCKET, 'output/test.mp4'), { spawner });
    expect(report.streams?.map((s) => s.codec_name)).to.have.members(['h264', 'aac']);
    expect(Number(report.streams?.find((s) => s.codec_type === 'video')?.nb_frames)).to.be.closeTo(20, 1);

    const described = await cos.request({ Method: 'GET', Key: `jobs/${job.JobId as string}`, Url: url(`jobs/${job.JobId as string}`) });
    expect(described.Response.JobsDetail.Operation.MediaResult.OutputFile.Md5Info.Md5).to.equal(operation.MediaResult.OutputFile.Md5Info[0].Md5);
  });
});

import path from 'node:path';
import { expect } from 'chai';
import { runFfprobe } from '../../src/media/ffprobe.js';
import { createSpawner } from '../../src/media/spawner.js';
import { BUCKET, startWorkerService, waitForState } from '../helpers/jobs.js';
import { asArray, type TestService } from '../helpers/service.js';

/*
 * The multi-Operation form with six ffmpeg-side Tags on one input in a
 * folder, each Output/Object using another of CI's placeholders; and a bad
 * Operation anywhere in the list refused at submit, before any job exists.
 * (Seed 002's InvokeMultiJobs: snapshot-animation.test.ts.)
 */

const spawner = createSpawner();
after(() => spawner.close());

const output = (object: string) => `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output>`;

describe('multi-Operation jobs mixing the ffmpeg Tags', function () {
  this.timeout(90_000);
  let api: TestService;
  before(async () => {
    api = await startWorkerService({ 'media/in/test.mp4': 'fixtures/media/clip-12s.mp4' });
  });
  after(async () => { await api.stop(); });

  const probe = (key: string) => runFfprobe(path.join(api.config.dataDir, 'buckets', BUCKET, key), { spawner });

  it('runs MediaInfo, Segment, SmartCover, StreamExtract, VideoProcess and NoiseReduction from one request, placeholders expanded per job', async () => {
    const body = '<Request><Input><Object>media/in/test.mp4</Object></Input>'
      + '<Operation><Tag>MediaInfo</Tag></Operation>'
      + `<Operation><Tag>Segment</Tag><Segment><Format>mp4</Format><Duration>4</Duration></Segment>${output('${InputPath}/seg/${InputName}-${Number}.${ext}')}</Operation>`
      + `<Operation><Tag>SmartCover</Tag><SmartCover><Count>2</Count><Width>128</Width></SmartCover>${output('${InputPath}/covers/${InputNameAndExt}-${number}.jpg')}</Operation>`
      + `<Operation><Tag>StreamExtract</Tag><Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><StreamExtract><Index>1</Index><Object>\${InputPath}/audio/\${InputName}.m4a</Object></StreamExtract></Output></Operation>`
      + '<Operation><Tag>VideoProcess</Tag><VideoProcess><MsSharpen><Enable>true</Enable><SharpenLevel>5</SharpenLevel></MsSharpen></VideoProcess>'
      + `<Transcode><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset></Video></Transcode>${output('out/${JobId}.${ext}')}</Operation>`
      + `<Operation><Tag>NoiseReduction</Tag><NoiseReduction><Format>mp3</Format></NoiseReduction>${output('${InputPath}/clean/${InputName}.${Ext}')}</Operation>`
      + '</Request>';
    const res = await api.request('POST', '/jobs', { body });
    expect(res.status, res.text).to.equal(200);
    const created = asArray(res.xml.Response.JobsDetail);
    expect(created.map((d) => d.Tag)).to.deep.equal(['MediaInfo', 'Segment', 'SmartCover', 'StreamExtract', 'VideoProcess', 'NoiseReduction']);
    const [info, segment, covers, extract, processed, clean] = await Promise.all(created.map((d) => waitForState(api, d.JobId as string, undefined, 60_000)));
    for (const d of [info, segment, covers, extract, processed, clean]) expect(d.State, `${d.Tag as string}: ${d.Message as string}`).to.equal('Success');

    expect(Number(info.Operation.MediaInfo.Format.Duration)).to.be.closeTo(12, 0.1);
    expect(segment.Operation.MediaResult.OutputFile).to.include({ ObjectPrefix: 'media/in/seg/test-' });
    // Cut at key frames (see segment.test.ts): 3 or 4 pieces of the 12 s.
    expect(asArray(segment.Operation.MediaResult.OutputFile.ObjectName).slice(0, 3)).to.deep.equal(['0.mp4', '1.mp4', '2.mp4']);
    expect(covers.Operation.MediaResult.OutputFile).to.deep.include({ ObjectPrefix: 'media/in/covers/test.mp4-', ObjectName: ['0.jpg', '1.jpg'] });
    expect(extract.Operation.MediaResult.OutputFile.ObjectName).to.equal('media/in/audio/test.m4a');
    expect(processed.Operation.MediaResult.OutputFile.ObjectName).to.equal(`out/${processed.JobId as string}.mp4`);
    expect(clean.Operation.MediaResult.OutputFile.ObjectName).to.equal('media/in/clean/test.mp3');

    expect((await probe('media/in/seg/test-2.mp4')).streams?.map((s) => s.codec_type)).to.have.members(['video', 'audio']);
    expect((await probe('media/in/covers/test.mp4-1.jpg')).streams?.[0]).to.include({ codec_name: 'mjpeg', width: 128 });
    expect((await probe('media/in/audio/test.m4a')).streams?.map((s) => s.codec_name)).to.deep.equal(['aac']);
    expect(Number((await probe(`out/${processed.JobId as string}.mp4`)).format?.duration)).to.be.closeTo(12, 0.1);
    expect((await probe('media/in/clean/test.mp3')).streams?.map((s) => s.codec_name)).to.deep.equal(['mp3']);
  });

  it('refuses the whole request at submit when any one Operation is wrong, naming it, and creates none of the jobs', async () => {
    const good = `<Operation><Tag>Snapshot</Tag><Snapshot><Count>1</Count></Snapshot>${output('out/s.jpg')}</Operation>`;
    const bad: Array<[string, RegExp]> = [
      [`<Operation><Tag>Transcode</Tag><Transcode><Container><Format>mp4</Format></Container></Transcode>${output('out/${Unknown}.mp4')}</Operation>`, /Operation\[3\]\/Output\/Object has an unknown placeholder/],
      [`<Operation><Tag>Animation</Tag><Animation><Container><Format>gif</Format></Container><Video><Codec>gif</Codec></Video></Animation>${output('out/a.gif')}</Operation>`, /Operation\[3\]\/Animation\/Video needs/],
      [`<Operation><Tag>Segment</Tag><Segment><Format>mp4</Format><Duration>4</Duration></Segment>${output('out/p.mp4')}</Operation>`, /Operation\[3\]\/Output\/Object needs \$\{Number\}/],
      [`<Operation><Tag>Concat</Tag><ConcatTemplate><ConcatFragment><Url>media/in/test.mp4</Url></ConcatFragment><Container><Format>webm</Format></Container></ConcatTemplate>${output('out/c.mp4')}</Operation>`, /Operation\[3\]\/ConcatTemplate\/Container\/Format/],
    ];
    const count = async () => asArray((await api.request('GET', '/jobs?size=100&states=All')).xml.Response.JobsDetail).length;
    const before = await count();
    for (const [operation, message] of bad) {
      const res = await api.request('POST', '/jobs', { body: `<Request><Input><Object>media/in/test.mp4</Object></Input>${good}${good}${operation}</Request>` });
      expect(res.status, operation).to.equal(400);
      expect(res.xml.Error.Code).to.equal('InvalidArgument');
      expect(res.xml.Error.Message).to.match(message);
    }
    expect(await count()).to.equal(before);
  });
});

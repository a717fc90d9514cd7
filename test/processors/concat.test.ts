import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import { bundledFfmpegPath } from '../../src/media/ffmpeg-capabilities.js';
import { bundledFfprobePath, runFfprobe } from '../../src/media/ffprobe.js';
import { createSpawner } from '../../src/media/spawner.js';
import { fragmentKey } from '../../src/processors/concat.js';
import { BUCKET, putFixture, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import type { TestService } from '../helpers/service.js';

const spawner = createSpawner();
after(() => spawner.close());

describe('Concat jobs with the real ffmpeg', function () {
  this.timeout(60_000);
  let api: TestService;
  before(async () => {
    api = await startWorkerService({ 'in/a.mp4': 'fixtures/media/h264-aac.mp4', 'in/b.mp4': 'fixtures/media/hevc.mp4', 'in/c.mp4': 'fixtures/media/clip-12s.mp4' });
  });
  after(async () => { await api.stop(); });

  const probe = (key: string) => runFfprobe(path.join(api.config.dataDir, 'buckets', BUCKET, key), { spawner });

  it('reads fragment URLs of the job\'s bucket only', () => {
    expect(fragmentKey(`https://${BUCKET}.cos.ap-guangzhou.myqcloud.com/in/a%20b.mp4`, BUCKET, 'Url')).to.equal('in/a b.mp4');
    expect(fragmentKey('in/a.mp4', BUCKET, 'Url')).to.equal('in/a.mp4');
    expect(() => fragmentKey('https://other-1250000001.cos.ap-guangzhou.myqcloud.com/a.mp4', BUCKET, 'Url')).to.throw(/job's bucket/);
  });

  it('joins fragments without an Input (as CI\'s examples send it): different sizes, one without audio; duration = sum of the trimmed pieces', async () => {
    const body = '<Request><Tag>Concat</Tag><Operation><ConcatTemplate>'
      + `<ConcatFragment><Url>https://${BUCKET}.cos.ap-local.myqcloud.com/in/a.mp4</Url><FragmentIndex>0</FragmentIndex></ConcatFragment>`
      + `<ConcatFragment><Url>https://${BUCKET}.cos.ap-local.myqcloud.com/in/b.mp4</Url><FragmentIndex>1</FragmentIndex></ConcatFragment>`
      + `<ConcatFragment><Url>https://${BUCKET}.cos.ap-local.myqcloud.com/in/c.mp4</Url><FragmentIndex>2</FragmentIndex><StartTime>1</StartTime><EndTime>4</EndTime></ConcatFragment>`
      + '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset></Video><Audio><Codec>aac</Codec></Audio></ConcatTemplate>'
      + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>out/joined.\${ext}</Object></Output></Operation></Request>`;
    const detail = await waitForState(api, await submit(api, body));
    expect(detail.State, detail.Message).to.equal('Success');
    const report = await probe('out/joined.mp4');
    expect(Number(report.format?.duration)).to.be.closeTo(2 + 2 + 3, 0.2);
    const video = report.streams?.find((s) => s.codec_type === 'video');
    expect([video?.codec_name, Number(video?.width), Number(video?.height)]).to.deep.equal(['h264', 320, 240]);
    expect(report.streams?.some((s) => s.codec_type === 'audio')).to.equal(true);
    expect(detail.Operation.MediaResult.OutputFile).to.include({ ObjectName: 'out/joined.mp4', ObjectPrefix: '' });
  });

  it('DirectConcat copies the streams of like pieces (the output\'s video packets are the inputs\' plus a few bytes of framing) and re-encodes unlike ones', async () => {
    const body = (second: string, object: string) => '<Request><Tag>Concat</Tag><Operation><ConcatTemplate><DirectConcat>true</DirectConcat>'
      + '<ConcatFragment><Url>in/a.mp4</Url></ConcatFragment>'
      + `<ConcatFragment><Url>${second}</Url></ConcatFragment>`
      + '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset></Video><Audio><Codec>aac</Codec></Audio></ConcatTemplate>'
      + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output></Operation></Request>`;
    const packetSizes = async (key: string) => execFileSync(bundledFfprobePath(), ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=size', '-of', 'csv=p=0',
      path.join(api.config.dataDir, 'buckets', BUCKET, key)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);

    const copied = await waitForState(api, await submit(api, body('in/a.mp4', 'out/direct.mp4')));
    expect(copied.State, copied.Message).to.equal('Success');
    const report = await probe('out/direct.mp4');
    expect(Number(report.format?.duration)).to.be.closeTo(4, 0.15);
    expect(report.streams?.map((s) => s.codec_name)).to.have.members(['h264', 'aac']);
    const input = await packetSizes('in/a.mp4');
    expect(input.length).to.be.above(10);
    // Copied, not re-encoded: the same frames, each grown only by the access-unit delimiter the MPEG-TS step adds (6 bytes; the key frame also gets SPS/PPS).
    const output = await packetSizes('out/direct.mp4');
    expect(output).to.have.length(2 * input.length);
    const growth = output.map((size, i) => size - input[i % input.length]);
    expect(Math.min(...growth), growth.join(',')).to.be.at.least(0);
    expect(Math.max(...growth), growth.join(',')).to.be.at.most(64);

    const mixed = await waitForState(api, await submit(api, body('in/c.mp4', 'out/reencoded.mp4')));
    expect(mixed.State, mixed.Message).to.equal('Success');
    expect(Number((await probe('out/reencoded.mp4')).format?.duration)).to.be.closeTo(14, 0.2);
    const reencoded = (await packetSizes('out/reencoded.mp4')).slice(0, input.length).map((size, i) => size - input[i]);
    expect(reencoded.some((d) => d < 0 || d > 64), 're-encoded packets differ').to.equal(true);
  });

  it('mixes AudioMix into the joined audio: a Repeat source under two silent pieces plays to the end, which the pieces set', async () => {
    await putFixture(api, 'fixtures/media/audio-only.mp3', 'in/tone.mp3');
    const body = '<Request><Tag>Concat</Tag><Operation><ConcatTemplate>'
      + '<ConcatFragment><Url>in/b.mp4</Url></ConcatFragment><ConcatFragment><Url>in/b.mp4</Url></ConcatFragment>'
      + '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset></Video><Audio><Codec>aac</Codec></Audio>'
      + `<AudioMix><AudioSource>https://${BUCKET}.cos.ap-local.myqcloud.com/in/tone.mp3</AudioSource><MixMode>Repeat</MixMode><Replace>true</Replace></AudioMix></ConcatTemplate>`
      + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>out/scored.mp4</Object></Output></Operation></Request>`;
    const detail = await waitForState(api, await submit(api, body));
    expect(detail.State, detail.Message).to.equal('Success');
    expect(detail.Operation.ConcatTemplate.AudioMix.MixMode).to.equal('Repeat');
    const report = await probe('out/scored.mp4');
    expect(Number(report.format?.duration)).to.be.closeTo(4, 0.2);
    // The pieces have no audio (silence, -91 dB); the 2 s tone loops through the last second too.
    const lastSecond = spawnSync(bundledFfmpegPath(), ['-hide_banner', '-ss', '3', '-i', path.join(api.config.dataDir, 'buckets', BUCKET, 'out/scored.mp4'), '-af', 'volumedetect', '-f', 'null', '-'], { encoding: 'utf8' });
    const mean = Number(/mean_volume: (-?[\d.]+) dB/.exec(lastSecond.stderr)?.[1]);
    expect(mean, lastSecond.stderr.slice(-300)).to.be.above(-40);
  });

  it('places fragments by Mode around the job\'s Input (Start before it, End after it) at the Video\'s Width, each piece where its sound says it is', async () => {
    const body = '<Request><Tag>Concat</Tag><Input><Object>in/b.mp4</Object></Input><Operation><ConcatTemplate>'
      + '<ConcatFragment><Url>in/a.mp4</Url><Mode>End</Mode></ConcatFragment>'
      + '<ConcatFragment><Url>in/c.mp4</Url><Mode>Start</Mode><StartTime>0</StartTime><EndTime>3</EndTime></ConcatFragment>'
      + '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Width>160</Width><Preset>ultrafast</Preset></Video><Audio><Codec>aac</Codec></Audio></ConcatTemplate>'
      + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>out/modes.mp4</Object></Output></Operation></Request>`;
    const detail = await waitForState(api, await submit(api, body));
    expect(detail.State, detail.Message).to.equal('Success');
    const report = await probe('out/modes.mp4');
    expect(Number(report.format?.duration)).to.be.closeTo(3 + 2 + 2, 0.2);
    const video = report.streams?.find((s) => s.codec_type === 'video');
    expect([Number(video?.width), Number(video?.height)]).to.deep.equal([160, 120]);
    // c (Start, 3 s of tone), then the Input b (2 s, no audio: silence), then a (End, 2 s of tone).
    const meanVolume = (from: number, length: number) => {
      const run = spawnSync(bundledFfmpegPath(), ['-hide_banner', '-ss', String(from), '-t', String(length), '-i', path.join(api.config.dataDir, 'buckets', BUCKET, 'out/modes.mp4'),
        '-af', 'volumedetect', '-f', 'null', '-'], { encoding: 'utf8' });
      return Number(/mean_volume: (-?[\d.]+) dB/.exec(run.stderr)?.[1]);
    };
    expect(meanVolume(0.3, 2.4)).to.be.above(-40);
    expect(meanVolume(3.3, 1.4)).to.be.below(-80);
    expect(meanVolume(5.3, 1.4)).to.be.above(-40);
  });

  it('joins a phone clip (a 90° display matrix) upright at its displayed size, also with DirectConcat (MPEG-TS would lose the matrix, so it is re-encoded)', async () => {
    await putFixture(api, 'fixtures/media/rotated-phone.mp4', 'in/phone.mp4');
    const body = (direct: boolean, second: string, object: string) => `<Request><Tag>Concat</Tag><Operation><ConcatTemplate>${direct ? '<DirectConcat>true</DirectConcat>' : ''}`
      + `<ConcatFragment><Url>in/phone.mp4</Url></ConcatFragment><ConcatFragment><Url>${second}</Url></ConcatFragment>`
      + '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset></Video><Audio><Codec>aac</Codec></Audio></ConcatTemplate>'
      + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output></Operation></Request>`;
    for (const [direct, second, object] of [[false, 'in/a.mp4', 'out/phone-first.mp4'], [true, 'in/phone.mp4', 'out/phones.mp4']] as const) {
      const detail = await waitForState(api, await submit(api, body(direct, second, object)));
      expect(detail.State, detail.Message).to.equal('Success');
      const video = (await probe(object)).streams?.find((s) => s.codec_type === 'video');
      // Stored 320x240, shown 240x320: the output stands upright with no rotation left for a player to apply.
      expect([Number(video?.width), Number(video?.height)], object).to.deep.equal([240, 320]);
      expect(Number(detail.Operation.MediaInfo.Stream.Video.Rotation), object).to.equal(0);
      expect(Number((await probe(object)).format?.duration), object).to.be.closeTo(4, 0.2);
    }
  });

  it('writes Concat\'s other containers: ts by stream copy, flv with MP3, aac audio only', async () => {
    const body = (container: string, object: string) => '<Request><Tag>Concat</Tag><Operation><ConcatTemplate>'
      + '<ConcatFragment><Url>in/a.mp4</Url></ConcatFragment><ConcatFragment><Url>in/a.mp4</Url></ConcatFragment>'
      + `${container}</ConcatTemplate><Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output></Operation></Request>`;
    const cases: Array<[string, string, string, string[]]> = [
      ['<DirectConcat>true</DirectConcat><Container><Format>ts</Format></Container>', 'out/joined.ts', 'mpegts', ['h264', 'aac']],
      ['<Container><Format>flv</Format></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset></Video><Audio><Codec>mp3</Codec><Samplerate>44100</Samplerate></Audio>', 'out/joined.flv', 'flv', ['h264', 'mp3']],
      ['<Container><Format>aac</Format></Container><Audio><Codec>aac</Codec></Audio>', 'out/joined.aac', 'aac', ['aac']],
    ];
    for (const [container, object, format, codecs] of cases) {
      const detail = await waitForState(api, await submit(api, body(container, object)));
      expect(detail.State, `${object}: ${detail.Message as string}`).to.equal('Success');
      const report = await probe(object);
      expect(report.format?.format_name, object).to.equal(format);
      expect(report.streams?.map((s) => s.codec_name), object).to.have.members(codecs);
      // ADTS carries no duration (ffprobe estimates one from the bitrate): the others hold the two 2 s pieces.
      if (format !== 'aac') expect(Number(report.streams?.find((s) => s.codec_type === 'video')?.duration ?? report.format?.duration), object).to.be.closeTo(4, 0.15);
    }
  });

  it('puts the job\'s Input at Index among the fragments, and a missing fragment fails NoSuchKey', async () => {
    const body = (frag: string) => '<Request><Tag>Concat</Tag><Input><Object>in/c.mp4</Object></Input><Operation><ConcatTemplate>'
      + `<ConcatFragment><Url>${frag}</Url></ConcatFragment><Index>1</Index>`
      + '<Container><Format>mp3</Format></Container><Audio><Codec>mp3</Codec></Audio></ConcatTemplate>'
      + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>out/both.mp3</Object></Output></Operation></Request>`;
    const detail = await waitForState(api, await submit(api, body('in/a.mp4')));
    expect(detail.State, detail.Message).to.equal('Success');
    expect(Number((await probe('out/both.mp3')).format?.duration)).to.be.closeTo(14, 0.2);
    const missing = await waitForState(api, await submit(api, body('in/none.mp4')));
    expect([missing.State, missing.Code]).to.deep.equal(['Failed', 'NoSuchKey']);
    const foreign = await api.request('POST', '/jobs', { body: body('https://other-1250000001.cos.ap-local.myqcloud.com/in/a.mp4') });
    expect(foreign.status, foreign.text).to.equal(400);
    expect(foreign.xml.Error.Message).to.match(/job's bucket/);
    const noInput = await api.request('POST', '/jobs', { body: `<Request><Tag>Transcode</Tag><Operation><Transcode/><Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>o.mp4</Object></Output></Operation></Request>` });
    expect(noInput.status).to.equal(400);
    expect(noInput.xml.Error.Message).to.match(/Request\/Input is required/);
  });
});

import { createHash } from 'node:crypto';
import path from 'node:path';
import { expect } from 'chai';
import { runFfprobe } from '../../src/media/ffprobe.js';
import { createSpawner } from '../../src/media/spawner.js';
import { BUCKET, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import { expectEncryptedHls } from '../helpers/hls.js';
import { asArray, type TestService } from '../helpers/service.js';

const spawner = createSpawner();
after(() => spawner.close());

function segmentRequest(segment: string, object: string): string {
  return `<Request><Tag>Segment</Tag><Input><Object>input/test.mp4</Object></Input><Operation><Segment>${segment}</Segment>`
    + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output></Operation></Request>`;
}

describe('Segment jobs with the real ffmpeg', function () {
  this.timeout(60_000);
  let api: TestService;
  before(async () => {
    api = await startWorkerService({ 'input/test.mp4': 'fixtures/media/clip-12s.mp4' });
  });
  after(async () => { await api.stop(); });

  const duration = async (key: string) => Number((await runFfprobe(path.join(api.config.dataDir, 'buckets', BUCKET, key), { spawner })).format?.duration);

  it('cuts MP4 pieces of Duration at key frames without re-encoding; the pieces add up to the input', async () => {
    const detail = await waitForState(api, await submit(api, segmentRequest('<Format>mp4</Format><Duration>4</Duration>', 'output/parts/p-${Number}.mp4')));
    expect(detail.State, detail.Message).to.equal('Success');
    const file = detail.Operation.MediaResult.OutputFile;
    expect(file.ObjectPrefix).to.equal('output/parts/p-');
    // Cuts fall on the first key frame at or after each 4 s mark (the fixture's: 0, 2, 4, 6, 7.9, 9.9, 11.9 s).
    expect(file.ObjectName).to.have.length.within(3, 4);
    expect(file.ObjectName).to.deep.equal((file.ObjectName as string[]).map((_, i) => `${i}.mp4`));
    const md5 = asArray(file.Md5Info);
    let total = 0;
    for (const [i, name] of (file.ObjectName as string[]).entries()) {
      const key = `output/parts/p-${name}`;
      expect(md5[i]).to.deep.equal({ Md5: createHash('md5').update(await api.service.storage.get(BUCKET, key)).digest('hex'), ObjectName: key });
      total += await duration(key);
    }
    expect(total).to.be.closeTo(12, 0.2);
    expect(detail.Operation.MediaInfo.Stream.Video.CodecName).to.equal('h264');
  });

  it('writes hls (a playlist naming its segments) and ts pieces, audio pieces, and refuses pieces without ${Number}', async () => {
    const hls = await waitForState(api, await submit(api, segmentRequest('<Format>hls</Format><Duration>4</Duration>', 'output/seg/index.m3u8')));
    expect(hls.State, hls.Message).to.equal('Success');
    const names = asArray(hls.Operation.MediaResult.OutputFile.ObjectName) as string[];
    expect(names[0]).to.equal('output/seg/index.m3u8');
    expect(names.slice(1)).to.deep.equal(['output/seg/index-0.ts', 'output/seg/index-1.ts', 'output/seg/index-2.ts']);
    // The playlist names exactly those segments, beside it, and its EXTINFs add up to the input.
    const playlist = (await api.service.storage.get(BUCKET, 'output/seg/index.m3u8')).toString();
    expect(playlist.split('\n').filter((line) => line !== '' && !line.startsWith('#'))).to.deep.equal(['index-0.ts', 'index-1.ts', 'index-2.ts']);
    expect([...playlist.matchAll(/#EXTINF:([\d.]+)/g)].reduce((sum, m) => sum + Number(m[1]), 0)).to.be.closeTo(12, 0.2);
    expect(playlist).to.include('#EXT-X-ENDLIST');

    const ts = await waitForState(api, await submit(api, segmentRequest('<Format>ts</Format><Duration>4</Duration>', 'output/ts/t-${Number}.ts')));
    expect(ts.State, ts.Message).to.equal('Success');
    const pieces = asArray(ts.Operation.MediaResult.OutputFile.ObjectName) as string[];
    expect(pieces).to.have.length.within(3, 4);
    let total = 0;
    for (const name of pieces) {
      const report = await runFfprobe(path.join(api.config.dataDir, 'buckets', BUCKET, `output/ts/t-${name}`), { spawner });
      expect(report.format?.format_name).to.equal('mpegts');
      expect(report.streams?.map((s) => s.codec_name)).to.have.members(['h264', 'aac']);
      // The video's: a piece's audio may begin a few packets before its first key frame (in sync, as copied).
      total += Number(report.streams?.find((s) => s.codec_type === 'video')?.duration);
    }
    expect(total).to.be.closeTo(12, 0.1);

    const mp3 = await waitForState(api, await submit(api, segmentRequest('<Format>mp3</Format><Duration>5</Duration>', 'output/a-${Number}.mp3')));
    expect(mp3.State, mp3.Message).to.equal('Success');
    expect(mp3.Operation.MediaResult.OutputFile.ObjectName).to.deep.equal(['0.mp3', '1.mp3', '2.mp3']);
    expect(await duration('output/a-0.mp3')).to.be.closeTo(5, 0.1);

    const refused = await api.request('POST', '/jobs', { body: segmentRequest('<Format>mp4</Format><Duration>4</Duration>', 'output/one.mp4') });
    expect(refused.status).to.equal(400);
    expect(refused.xml.Error.Message).to.match(/\$\{Number\}/);
  });

  it('encrypts hls segments with AES-128 under HlsEncrypt (the job\'s key stored beside the playlist, unlisted), and refuses it without UriKey', async () => {
    const hlsEncrypt = '<HlsEncrypt><IsHlsEncrypt>true</IsHlsEncrypt><UriKey>https://keys.example.com/seg.key</UriKey></HlsEncrypt>';
    const hls = await waitForState(api, await submit(api, segmentRequest(`<Format>m3u8</Format><Duration>4</Duration>${hlsEncrypt}`, 'output/segenc/index.m3u8')));
    expect(hls.State, hls.Message).to.equal('Success');
    await expectEncryptedHls(api, spawner, 'output/segenc/index.m3u8', 'https://keys.example.com/seg.key', 12);
    const file = hls.Operation.MediaResult.OutputFile;
    expect(file.ObjectName).to.deep.equal(['output/segenc/index.m3u8', 'output/segenc/index-0.ts', 'output/segenc/index-1.ts', 'output/segenc/index-2.ts']);
    expect(asArray(file.Md5Info).map((m: { ObjectName: string }) => m.ObjectName)).to.deep.equal(file.ObjectName);
    // MediaInfo comes from the decrypted first segment.
    expect(hls.Operation.MediaInfo.Stream.Video.CodecName).to.equal('h264');

    const refused = await api.request('POST', '/jobs', { body: segmentRequest('<Format>hls</Format><HlsEncrypt><IsHlsEncrypt>true</IsHlsEncrypt></HlsEncrypt>', 'output/x.m3u8') });
    expect(refused.status).to.equal(400);
    expect(refused.xml.Error.Message).to.match(/Segment\/HlsEncrypt\/UriKey is required/);
  });
});

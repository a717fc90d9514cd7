import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import sharp from 'sharp';
import { bundledFfprobePath, runFfprobe, type FfprobeReport } from '../../src/media/ffprobe.js';
import { bundledFfmpegPath } from '../../src/media/ffmpeg-capabilities.js';
import { INPUT_OPTIONS, type ToolInput } from '../../src/media/input-policy.js';
import { createSpawner } from '../../src/media/spawner.js';
import { FfmpegError, runFfmpeg } from '../../src/media/ffmpeg.js';
import { buildTranscodeArgs, parseTranscode } from '../../src/processors/transcode.js';
import { freshDatabase } from '../helpers/databases.js';
import { BUCKET, describeJob, putFixture, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import { asArray, startTestService, waitFor, type TestService } from '../helpers/service.js';
import { expectEncryptedHls, isClearTs } from '../helpers/hls.js';
import { ffmpegPidsOf } from '../helpers/processes.js';

const spawner = createSpawner();
const INPUT: ToolInput = { options: INPUT_OPTIONS, url: 'file:/d/in.mp4', filePath: '/d/in.mp4' };
after(() => spawner.close());

function transcodeRequest(input: string, transcode: string, output: string, extra = ''): string {
  return `<Request><Tag>Transcode</Tag><Input><Object>${input}</Object></Input><Operation><Transcode>${transcode}</Transcode>`
    + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${output}</Object></Output>${extra}</Operation></Request>`;
}

async function probe(api: TestService, key: string): Promise<FfprobeReport> {
  const file = path.join(api.config.dataDir, 'buckets', BUCKET, key);
  return runFfprobe(file, { spawner, ffprobePath: '' });
}

function stream(report: FfprobeReport, type: string) {
  return report.streams?.find((s) => s.codec_type === type);
}

function md5(data: Buffer): string {
  return createHash('md5').update(data).digest('hex');
}

describe('Transcode command lines', () => {
  it('maps CI elements to ffmpeg arguments, the input as input-policy.ts hands it over', () => {
    const spec = parseTranscode({
      Container: { Format: 'mp4' },
      Video: { Codec: 'H.264', Width: '160', Crf: '30', Preset: 'veryfast', Profile: 'main', Fps: '15' },
      Audio: { Codec: 'AAC', Samplerate: '44100', Bitrate: '64', Channels: '1' },
      TimeInterval: { Start: '1.5', Duration: '2' },
    });
    expect(buildTranscodeArgs(spec, { input: INPUT, output: '/w/out.mp4' })).to.deep.equal([
      '-ss', '1.5', ...INPUT_OPTIONS, '-i', 'file:/d/in.mp4',
      '-map', '0:v:0?', '-vf', 'scale=160:-2,setsar=1', '-map', '0:a:0?', '-t', '2',
      '-c:v', 'libx264', '-r', '15', '-crf', '30', '-preset', 'veryfast', '-profile:v', 'main', '-pix_fmt', 'yuv420p',
      '-c:a', 'aac', '-ar', '44100', '-b:a', '64k', '-ac', '1',
      '-sn', '-dn', '-movflags', '+faststart', '-f', 'mp4', '/w/out.mp4',
    ]);
  });

  it('pads or crops to Width x Height by AdjDarMethod, and caps by IsCheckReso', () => {
    const pad = parseTranscode({ Video: { Width: '320', Height: '320' }, TransConfig: { AdjDarMethod: 'pad' } });
    expect(buildTranscodeArgs(pad, { input: INPUT, output: 'o' })).to.include('scale=320:320:force_original_aspect_ratio=decrease,pad=320:320:(ow-iw)/2:(oh-ih)/2,setsar=1');
    const checked = parseTranscode({ Video: { Width: '640' }, TransConfig: { IsCheckReso: 'true' } });
    expect(buildTranscodeArgs(checked, { input: INPUT, output: 'o' }, { width: 320, height: 240 })).to.not.include('-vf');
    const strict = parseTranscode({ Video: { Width: '640' }, TransConfig: { IsCheckReso: 'true', ResoAdjMethod: '1' } });
    expect(() => buildTranscodeArgs(strict, { input: INPUT, output: 'o' }, { width: 320, height: 240 })).to.throw(/exceeds/);
  });

  it('encrypts hls through a key info file only when HlsEncrypt asks for it on an hls container', () => {
    const encrypt = { HlsEncrypt: { IsHlsEncrypt: 'true', UriKey: 'https://k.example.com/k' } };
    const hls = parseTranscode({ Container: { Format: 'hls' }, TransConfig: encrypt });
    expect(hls.hlsEncrypt).to.deep.equal({ uriKey: 'https://k.example.com/k' });
    expect(buildTranscodeArgs(hls, { input: INPUT, output: '/w/p.m3u8', segmentPattern: '/w/p-%d.ts', hlsKeyInfo: '/w/keyinfo.txt' }).slice(-7))
      .to.deep.equal(['-hls_segment_filename', '/w/p-%d.ts', '-hls_key_info_file', '/w/keyinfo.txt', '-f', 'hls', '/w/p.m3u8']);
    expect(parseTranscode({ Container: { Format: 'mp4' }, TransConfig: encrypt }).hlsEncrypt).to.equal(undefined);
    expect(parseTranscode({ Container: { Format: 'hls' }, TransConfig: { HlsEncrypt: { IsHlsEncrypt: 'false', UriKey: 'k' } } }).hlsEncrypt).to.equal(undefined);
    expect(parseTranscode({ Container: { Format: 'hls' }, TransConfig: { HlsEncrypt: { IsHlsEncrypt: 'true', UriKey: '../keys/p.key' } } }).hlsEncrypt).to.deep.equal({ uriKey: '../keys/p.key' });
  });

  it('refuses codecs a container cannot hold, odd sizes and unknown formats', () => {
    expect(() => parseTranscode({ Container: { Format: 'webm' }, Video: { Codec: 'H.264' } })).to.throw(/cannot go into/);
    expect(() => parseTranscode({ Video: { Width: '161' } })).to.throw(/even/);
    expect(() => parseTranscode({ Container: { Format: 'rm' } })).to.throw(/Container\/Format/);
    expect(() => parseTranscode({ Container: { Format: 'mp3' }, Audio: { Codec: 'aac' } })).to.throw(/cannot go into/);
  });
});

describe('the ffmpeg runner', function () {
  this.timeout(60_000);

  it('reports progress from -progress while ffmpeg runs, and kills it at its timeout', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ffmpeg-run-'));
    try {
      // Long enough for a few progress polls (every 500 ms): the 12 s clip scaled up to 960 px, ~2.5 s on the 2-core host.
      const spec = parseTranscode({ Video: { Codec: 'H.264', Width: '960', Preset: 'fast' }, Audio: { Remove: 'true' } });
      const file = path.resolve('fixtures/media/clip-12s.mp4');
      const input: ToolInput = { options: INPUT_OPTIONS, url: `file:${file}`, filePath: file };
      const args = buildTranscodeArgs(spec, { input, output: path.join(dir, 'out.mp4') });
      const seen: number[] = [];
      const run = (timeoutMs: number) => runFfmpeg(args, {
        spawner, binary: bundledFfmpegPath(), signal: new AbortController().signal, timeoutMs,
        progressFile: path.join(dir, 'progress.txt'), durationSec: 12, onProgress: (f) => seen.push(f),
      });
      await run(60_000);
      expect(seen.length).to.be.greaterThan(1);
      expect(seen).to.deep.equal([...seen].sort((a, b) => a - b));
      expect(seen[0]).to.be.below(1);
      expect(seen.filter((f) => f > 0 && f < 1)).to.not.be.empty;
      expect(seen.at(-1)).to.equal(1);
      const started = Date.now();
      const err = await run(700).then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(FfmpegError).and.include({ reason: 'timeout' });
      expect(Date.now() - started).to.be.below(5_000);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Transcode jobs with the real ffmpeg', function () {
  this.timeout(90_000);
  let api: TestService;
  let fakeDir: string;
  before(async () => {
    api = await startWorkerService({
      'input/demo.mp4': 'fixtures/media/h264-aac.mp4',
      'input/test.mp4': 'fixtures/media/clip-12s.mp4',
      'input/truncated.mp4': 'fixtures/media/truncated.mp4',
      'input/not-media.mp4': 'fixtures/media/not-media.mp4',
    });
    fakeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'fake-ffmpeg-'));
  });
  after(async () => {
    await api.stop();
    await fs.rm(fakeDir, { recursive: true, force: true });
  });

  it('transcodes H.264 to a smaller H.264 MP4 and reports MediaResult with the object\'s MD5 and the output\'s MediaInfo', async () => {
    const detail = await waitForState(api, await submit(api, transcodeRequest('input/demo.mp4',
      '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Width>160</Width><Preset>veryfast</Preset></Video><Audio><Codec>AAC</Codec><Bitrate>48</Bitrate></Audio>',
      'output/${InputName}-small.${ext}', '<UserData>ticket-42</UserData>')));
    expect(detail.State, detail.Message).to.equal('Success');
    expect(detail.Progress).to.equal('100');
    const report = await probe(api, 'output/demo-small.mp4');
    expect(stream(report, 'video')).to.include({ codec_name: 'h264' });
    expect([Number(stream(report, 'video')?.width), Number(stream(report, 'video')?.height)]).to.deep.equal([160, 120]);
    expect(stream(report, 'audio')?.codec_name).to.equal('aac');
    expect(Number(report.format?.duration)).to.be.closeTo(2, 0.05);
    const file = detail.Operation.MediaResult.OutputFile;
    const data = await api.service.storage.get(BUCKET, 'output/demo-small.mp4');
    expect(file).to.deep.equal({ Bucket: BUCKET, Md5Info: { Md5: md5(data), ObjectName: 'output/demo-small.mp4' }, ObjectName: 'output/demo-small.mp4', ObjectPrefix: '', Region: 'ap-local' });
    expect(detail.Operation.MediaInfo.Stream.Video.Width).to.equal('160');
    expect(detail.Operation.Transcode.Video.Codec).to.equal('H.264');
    expect(detail.Operation.Output.Object).to.equal('output/${InputName}-small.${ext}');
    // CI's order: echo, results, then UserData and JobLevel.
    const res = await api.request('GET', `/jobs/${detail.JobId as string}`);
    const order = ['<Transcode>', '<Output>', '<MediaInfo>', '<MediaResult>', '<UserData>', '<JobLevel>'].map((tag) => res.text.indexOf(tag));
    expect(order).to.deep.equal([...order].sort((a, b) => a - b));
    expect(order.every((at) => at > 0)).to.equal(true);
  });

  it('turns a phone clip (a 90° display matrix) upright, applies Width and IsCheckReso to what is displayed, and snapshots it upright too', async () => {
    await putFixture(api, 'fixtures/media/rotated-phone.mp4', 'input/phone.mp4');
    const detail = await waitForState(api, await submit(api, transcodeRequest('input/phone.mp4',
      '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Width>128</Width><Preset>ultrafast</Preset></Video>', 'output/phone.mp4')));
    expect(detail.State, detail.Message).to.equal('Success');
    // Stored 320x240, displayed 240x320: 128 px wide keeps the portrait aspect, and no rotation is left to apply.
    const video = detail.Operation.MediaInfo.Stream.Video;
    expect([video.Width, video.Height]).to.deep.equal(['128', '170']);
    expect(Number(video.Rotation || 0)).to.equal(0);
    // IsCheckReso compares with the displayed 240x320: 300 px wide would enlarge it, so the source's size is kept.
    const checked = await waitForState(api, await submit(api, transcodeRequest('input/phone.mp4',
      '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Width>300</Width><Preset>ultrafast</Preset></Video><TransConfig><IsCheckReso>true</IsCheckReso></TransConfig>',
      'output/phone-checked.mp4')));
    expect(checked.State, checked.Message).to.equal('Success');
    expect([checked.Operation.MediaInfo.Stream.Video.Width, checked.Operation.MediaInfo.Stream.Video.Height]).to.deep.equal(['240', '320']);
    const shot = await waitForState(api, await submit(api, '<Request><Tag>Snapshot</Tag><Input><Object>input/phone.mp4</Object></Input><Operation>'
      + `<Snapshot><Count>1</Count></Snapshot><Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>output/phone.jpg</Object></Output></Operation></Request>`));
    expect(shot.State, shot.Message).to.equal('Success');
    const frame = await probe(api, 'output/phone.jpg');
    expect([Number(frame.streams?.[0]?.width), Number(frame.streams?.[0]?.height)]).to.deep.equal([240, 320]);
  });

  it('cuts with TimeInterval, writes audio-only MP3 and HLS with its segments', async () => {
    const cut = await waitForState(api, await submit(api, transcodeRequest('input/test.mp4',
      '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset></Video><TimeInterval><Start>3</Start><Duration>4</Duration></TimeInterval>', 'output/cut.mp4')));
    expect(cut.State, cut.Message).to.equal('Success');
    expect(Number((await probe(api, 'output/cut.mp4')).format?.duration)).to.be.closeTo(4, 0.15);

    const mp3 = await waitForState(api, await submit(api, transcodeRequest('input/demo.mp4',
      '<Container><Format>mp3</Format></Container><Audio><Codec>mp3</Codec><Samplerate>22050</Samplerate><Bitrate>32</Bitrate><Channels>1</Channels></Audio>', 'output/demo.${ext}')));
    expect(mp3.State, mp3.Message).to.equal('Success');
    const audio = await probe(api, 'output/demo.mp3');
    expect(audio.streams?.map((s) => s.codec_name)).to.deep.equal(['mp3']);
    expect(stream(audio, 'audio')).to.include({ sample_rate: '22050', channels: 1 });

    const hls = await waitForState(api, await submit(api, transcodeRequest('input/test.mp4',
      '<Container><Format>hls</Format><ClipConfig><Duration>4</Duration></ClipConfig></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset></Video>', 'output/hls/play.${ext}')));
    expect(hls.State, hls.Message).to.equal('Success');
    const playlist = (await api.service.storage.get(BUCKET, 'output/hls/play.m3u8')).toString();
    const segments = playlist.split('\n').filter((l) => l.endsWith('.ts'));
    expect(segments).to.have.length(3);
    expect(asArray(hls.Operation.MediaResult.OutputFile.ObjectName)).to.deep.equal(['output/hls/play.m3u8', ...segments.map((s) => `output/hls/${s}`)]);
    const extinf = [...playlist.matchAll(/#EXTINF:([\d.]+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
    expect(extinf).to.be.closeTo(12, 0.2);
    expect(Number(hls.Operation.MediaInfo.Format.Duration)).to.be.closeTo(12, 0.2);
    expect(stream(await probe(api, `output/hls/${segments[1]}`), 'video')?.codec_name).to.equal('h264');
    // Without HlsEncrypt: segments in the clear, no key named or stored.
    expect(playlist).to.not.include('#EXT-X-KEY');
    expect(isClearTs(await api.service.storage.get(BUCKET, `output/hls/${segments[0]}`))).to.equal(true);
    expect(await api.service.storage.stat(BUCKET, 'output/hls/play.key')).to.equal(undefined);
  });

  it('encrypts hls segments with AES-128 under HlsEncrypt: the playlist names UriKey, the job\'s own key is stored beside it and unlisted', async () => {
    const hlsEncrypt = (uri: string) => '<Container><Format>hls</Format><ClipConfig><Duration>4</Duration></ClipConfig></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset></Video>'
      + `<TransConfig><HlsEncrypt><IsHlsEncrypt>true</IsHlsEncrypt><UriKey>${uri}</UriKey></HlsEncrypt></TransConfig>`;
    const uri = 'https://keys.example.com/hls/key?id=42&amp;v=1';
    const job = await waitForState(api, await submit(api, transcodeRequest('input/test.mp4', hlsEncrypt(uri), 'output/enc/play.m3u8')));
    expect(job.State, job.Message).to.equal('Success');
    const key = await expectEncryptedHls(api, spawner, 'output/enc/play.m3u8', 'https://keys.example.com/hls/key?id=42&v=1', 12);
    // The result lists the playlist and segments as without encryption: CI names no key object.
    const file = job.Operation.MediaResult.OutputFile;
    const names = asArray(file.ObjectName) as string[];
    expect(names[0]).to.equal('output/enc/play.m3u8');
    expect(names.slice(1)).to.have.length(3).and.satisfy((n: string[]) => n.every((k) => /^output\/enc\/play-\d\.ts$/.test(k)));
    expect(asArray(file.Md5Info).map((m: { ObjectName: string }) => m.ObjectName)).to.deep.equal(names);
    // MediaInfo comes from the decrypted first segment.
    expect(job.Operation.MediaInfo.Stream.Video.CodecName).to.equal('h264');
    expect(Number(job.Operation.MediaInfo.Format.Duration)).to.be.closeTo(12, 0.2);
    expect(job.Operation.Transcode.TransConfig.HlsEncrypt.UriKey).to.equal('https://keys.example.com/hls/key?id=42&v=1');

    // A relative UriKey naming the stored key: a local player (here ffprobe) plays the encrypted playlist from the bucket's folder.
    const local = await waitForState(api, await submit(api, transcodeRequest('input/test.mp4', hlsEncrypt('rel.key'), 'output/enc/rel.m3u8')));
    expect(local.State, local.Message).to.equal('Success');
    const localKey = await expectEncryptedHls(api, spawner, 'output/enc/rel.m3u8', 'rel.key', 12);
    expect(localKey.equals(key), 'a fresh key per job').to.equal(false);
    const playlistFile = path.join(api.config.dataDir, 'buckets', BUCKET, 'output/enc/rel.m3u8');
    const whole = JSON.parse(execFileSync(bundledFfprobePath(), ['-v', 'error', '-allowed_extensions', 'ALL', '-show_entries', 'format=duration', '-of', 'json', playlistFile]).toString());
    expect(Number(whole.format.duration)).to.be.closeTo(12, 0.2);
  });

  it('refuses at submit HlsEncrypt without a usable UriKey and DashEncrypt/IsEncrypt true; ignores HlsEncrypt on a container other than hls', async () => {
    const transConfig = (format: string, config: string) => `<Container><Format>${format}</Format></Container><TransConfig>${config}</TransConfig>`;
    const cases: Array<[string, RegExp]> = [
      [transConfig('hls', '<HlsEncrypt><IsHlsEncrypt>true</IsHlsEncrypt></HlsEncrypt>'), /TransConfig\/HlsEncrypt\/UriKey is required/],
      [transConfig('hls', '<HlsEncrypt><IsHlsEncrypt>1</IsHlsEncrypt><UriKey> </UriKey></HlsEncrypt>'), /TransConfig\/HlsEncrypt\/UriKey is required/],
      [transConfig('hls', '<HlsEncrypt><IsHlsEncrypt>true</IsHlsEncrypt><UriKey>file:///etc/key</UriKey></HlsEncrypt>'), /UriKey must be an http\(s\) URL/],
      [transConfig('hls', '<HlsEncrypt><IsHlsEncrypt>true</IsHlsEncrypt><UriKey>https://k.example.com/a"b</UriKey></HlsEncrypt>'), /UriKey must be a URI without/],
      [transConfig('hls', `<HlsEncrypt><IsHlsEncrypt>true</IsHlsEncrypt><UriKey>https://k.example.com/${'a'.repeat(1024)}</UriKey></HlsEncrypt>`), /at most 1024/],
      [transConfig('mp4', '<DashEncrypt><IsEncrypt>true</IsEncrypt><UriKey>https://k.example.com/d</UriKey></DashEncrypt>'), /DashEncrypt\/IsEncrypt true asks for encrypted DASH/],
    ];
    for (const [transcode, message] of cases) {
      const res = await api.request('POST', '/jobs', { body: transcodeRequest('input/demo.mp4', transcode, 'output/refused.m3u8') });
      expect(res.status, transcode).to.equal(400);
      expect(res.xml.Error.Code).to.equal('InvalidArgument');
      expect(res.xml.Error.Message).to.match(message);
    }
    const template = await api.request('POST', '/template', {
      body: '<Request><Tag>Transcode</Tag><Name>dash</Name><Container><Format>mp4</Format></Container><TransConfig><DashEncrypt><IsEncrypt>true</IsEncrypt></DashEncrypt></TransConfig></Request>',
    });
    expect(template.status).to.equal(400);
    expect(template.text).to.match(/DashEncrypt/);
    // CI encrypts hls only: elsewhere HlsEncrypt (even without UriKey) changes nothing, and DashEncrypt false is accepted.
    const mp4 = await waitForState(api, await submit(api, transcodeRequest('input/demo.mp4',
      transConfig('mp4', '<HlsEncrypt><IsHlsEncrypt>true</IsHlsEncrypt></HlsEncrypt><DashEncrypt><IsEncrypt>false</IsEncrypt></DashEncrypt>'), 'output/clear.mp4')));
    expect(mp4.State, mp4.Message).to.equal('Success');
    expect(stream(await probe(api, 'output/clear.mp4'), 'video')?.codec_name).to.equal('h264');
    expect(await api.service.storage.stat(BUCKET, 'output/clear.key')).to.equal(undefined);
  });

  it('reads its input only as input-policy.ts allows: a key with %d is one file, a playlist object is refused', async () => {
    await putFixture(api, 'fixtures/media/h264-aac.mp4', 'input/pct%d.mp4');
    const pct = await waitForState(api, await submit(api, transcodeRequest('input/pct%d.mp4', '<Container><Format>mp3</Format></Container>', 'output/pct.mp3')));
    expect(pct.State, pct.Message).to.equal('Success');
    await api.service.storage.put(BUCKET, 'input/list.m3u8', Buffer.from('#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\ndemo.mp4\n#EXT-X-ENDLIST\n'));
    const playlist = await waitForState(api, await submit(api, transcodeRequest('input/list.m3u8', '<Container><Format>mp4</Format></Container>', 'output/list.mp4')));
    expect([playlist.State, playlist.Code]).to.deep.equal(['Failed', 'InvalidMedia']);
  });

  it('ends Failed InvalidMedia with the tool\'s reason for a truncated or non-media input', async () => {
    for (const input of ['input/truncated.mp4', 'input/not-media.mp4']) {
      const detail = await waitForState(api, await submit(api, transcodeRequest(input, '<Container><Format>mp4</Format></Container>', 'output/never.mp4')));
      expect(detail.State).to.equal('Failed');
      expect(detail.Code).to.equal('InvalidMedia');
      expect(detail.Message).to.include('moov atom not found').and.include(input).and.not.include(api.config.dataDir);
    }
    expect(await api.service.storage.stat(BUCKET, 'output/never.mp4')).to.equal(undefined);
  });

  it('refuses at submit what the request gets wrong, naming the element', async () => {
    const cases: Array<[string, RegExp]> = [
      ['<Container><Format>webm</Format></Container><Video><Codec>H.264</Codec></Video>', /Video\/Codec H.264 cannot go into Container\/Format webm/],
      ['<Container><Format>mp4</Format></Container><Video><Widht>100</Widht></Video>', /Widht/],
      ['<Container><Format>mp4</Format></Container><Video><Crf>99</Crf></Video>', /Video\/Crf/],
    ];
    for (const [transcode, message] of cases) {
      const res = await api.request('POST', '/jobs', { body: transcodeRequest('input/demo.mp4', transcode, 'output/x.mp4') });
      expect(res.status, transcode).to.equal(400);
      expect(res.xml.Error.Code).to.equal('InvalidArgument');
      expect(res.xml.Error.Message).to.match(message);
    }
    const placeholder = await api.request('POST', '/jobs', { body: transcodeRequest('input/demo.mp4', '<Container><Format>mp4</Format></Container>', 'output/${Number}.mp4') });
    expect(placeholder.status).to.equal(400);
  });

  it('refuses at submit, in every element Go\'s SDK decodes as a bool, text its ParseBool refuses (the verbatim echo would fail Go\'s decode of the whole answer)', async () => {
    const output = (object: string) => `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output>`;
    const jobs: Array<[string, (value: string) => string]> = [
      ['Snapshot/IsCheckCount', (v) => `<Request><Tag>Snapshot</Tag><Input><Object>input/demo.mp4</Object></Input><Operation><Snapshot><Count>2</Count><IsCheckCount>${v}</IsCheckCount></Snapshot>${output('o/${Number}.jpg')}</Operation></Request>`],
      ['Snapshot/IsCheckBlack', (v) => `<Request><Tag>Snapshot</Tag><Input><Object>input/demo.mp4</Object></Input><Operation><Snapshot><Count>2</Count><IsCheckBlack>${v}</IsCheckBlack></Snapshot>${output('o/${Number}.jpg')}</Operation></Request>`],
      ['Segment/HlsEncrypt/IsHlsEncrypt', (v) => `<Request><Tag>Segment</Tag><Input><Object>input/demo.mp4</Object></Input><Operation><Segment><Format>hls</Format><HlsEncrypt><IsHlsEncrypt>${v}</IsHlsEncrypt></HlsEncrypt></Segment>${output('o/p.m3u8')}</Operation></Request>`],
      ['TransConfig/HlsEncrypt/IsHlsEncrypt', (v) => transcodeRequest('input/demo.mp4', `<Container><Format>hls</Format></Container><TransConfig><HlsEncrypt><IsHlsEncrypt>${v}</IsHlsEncrypt></HlsEncrypt></TransConfig>`, 'o/t.m3u8')],
    ];
    for (const [element, body] of jobs) {
      for (const refused of ['yes', 'tRue']) {
        const res = await api.request('POST', '/jobs', { body: body(refused) });
        expect(res.status, `${element} ${refused}`).to.equal(400);
        expect(res.xml.Error.Message).to.include(element);
      }
      const accepted = await api.request('POST', '/jobs', { body: body('False') });
      expect(accepted.status, `${element}: ${accepted.text}`).to.equal(200);
    }
    const template = await api.request('POST', '/template', { body: '<Request><Tag>Snapshot</Tag><Name>black</Name><Snapshot><Count>1</Count><IsCheckBlack>yes</IsCheckBlack></Snapshot></Request>' });
    expect(template.status).to.equal(400);
    const hash = await api.request('POST', '/file_jobs', {
      body: '<Request><Tag>FileHashCode</Tag><Input><Object>input/demo.mp4</Object></Input><Operation><FileHashCodeConfig><Type>MD5</Type><AddToHeader>fAlse</AddToHeader></FileHashCodeConfig></Operation></Request>',
    });
    expect(hash.status).to.equal(400);
    expect(hash.xml.Error.Message).to.include('AddToHeader');
  });

  it('refuses at submit an encoder the configured ffmpeg lacks (H.265 without libx265)', async () => {
    // A wrapper that lists the real binary's encoders without libx265 (and runs it for anything else).
    const real = bundledFfmpegPath();
    const script = path.join(fakeDir, 'ffmpeg');
    await fs.writeFile(script, `#!/bin/sh\nif [ "$2" = "-encoders" ]; then "${real}" "$@" | grep -v libx265; else exec "${real}" "$@"; fi\n`, { mode: 0o755 });
    const other = await startTestService({ env: { MEDIAJOBS_FFMPEG_PATH: script } });
    try {
      const res = await other.request('POST', '/jobs', { body: transcodeRequest('input/demo.mp4', '<Container><Format>mp4</Format></Container><Video><Codec>H.265</Codec></Video>', 'output/x.mp4') });
      expect(res.status).to.equal(400);
      expect(res.xml.Error.Message).to.match(/no encoder libx265/);
      const ok = await other.request('POST', '/jobs', { body: transcodeRequest('input/demo.mp4', '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec></Video>', 'output/x.mp4') });
      expect(ok.status, ok.text).to.equal(200);
    } finally {
      await other.stop();
    }
  });

  it('fails JobTimeout when ffmpeg runs past MEDIAJOBS_FFMPEG_TIMEOUT, and leaves no output', async () => {
    const short = await startTestService({ worker: true, env: { MEDIAJOBS_FFMPEG_TIMEOUT: '1s' } });
    try {
      await putFixture(short, 'fixtures/media/clip-12s.mp4', 'input/test.mp4');
      const detail = await waitForState(short, await submit(short, transcodeRequest('input/test.mp4',
        '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Width>1920</Width><Preset>veryslow</Preset></Video>', 'output/slow.mp4')));
      expect([detail.State, detail.Code]).to.deep.equal(['Failed', 'JobTimeout']);
      expect(detail.Message).to.include('MEDIAJOBS_FFMPEG_TIMEOUT');
      expect(await short.service.storage.stat(BUCKET, 'output/slow.mp4')).to.equal(undefined);
    } finally {
      await short.stop();
    }
  });

  it('reports Progress between 0 and 100 from ffmpeg\'s -progress for a small input too, when TimeInterval/Duration gives the length', async () => {
    // Inputs under 8 MB are not probed; the length ffmpeg's out_time is measured against comes from the request.
    const jobId = await submit(api, transcodeRequest('input/test.mp4',
      '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Width>1280</Width><Preset>slow</Preset></Video><TimeInterval><Start>0</Start><Duration>12</Duration></TimeInterval>',
      'output/progress.mp4'));
    const seen = await waitFor(async () => {
      const detail = await describeJob(api, jobId);
      const progress = Number(detail.Progress);
      if (detail.State !== 'Running') return detail.State === 'Submitted' ? undefined : { state: detail.State as string, progress };
      return progress > 5 && progress < 90 ? { state: 'Running', progress } : undefined;
    }, 40_000, 'a Progress between 5 and 90');
    expect(seen.state, 'the job ended before any progress was seen').to.equal('Running');
    expect((await api.request('PUT', `/jobs/${jobId}?cancel`)).status).to.equal(200);
    await waitForState(api, jobId, 'Cancel');
  });

  it('a shutdown past its grace period kills the running ffmpeg, removes its work folder and leaves no output; the job goes back to the queue', async () => {
    const database = await freshDatabase();
    const short = await startTestService({ worker: true, database, env: { MEDIAJOBS_SHUTDOWN_GRACE: '300ms' } });
    await putFixture(short, 'fixtures/media/clip-12s.mp4', 'input/test.mp4');
    const jobId = await submit(short, transcodeRequest('input/test.mp4',
      '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Width>1920</Width><Preset>veryslow</Preset></Video>', 'output/interrupted.mp4'));
    await waitFor(async () => (ffmpegPidsOf(jobId).length > 0 ? true : undefined), 20_000, 'ffmpeg to start');
    await short.stop();
    await waitFor(async () => (ffmpegPidsOf(jobId).length === 0 ? true : undefined), 5_000, 'ffmpeg to be gone');
    const dataDir = short.config.dataDir;
    expect(readdirSync(path.join(dataDir, 'tmp')).filter((d) => d.startsWith(jobId))).to.deep.equal([]);
    expect(existsSync(path.join(dataDir, 'buckets', BUCKET, 'output/interrupted.mp4'))).to.equal(false);
    const after = await startTestService({ database });
    try {
      expect((await describeJob(after, jobId)).State).to.equal('Submitted');
    } finally {
      await after.stop();
    }
  });

  it('cancel kills ffmpeg and leaves no output', async () => {
    // Slow on purpose: 12 s scaled up to 1920x1440 with x264's slowest preset.
    const jobId = await submit(api, transcodeRequest('input/test.mp4',
      '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Width>1920</Width><Preset>veryslow</Preset></Video>', 'output/cancelled.mp4'));
    const running = () => ffmpegPidsOf(jobId);
    await waitFor(async () => (running().length > 0 ? true : undefined), 20_000, 'ffmpeg to start');
    const res = await api.request('PUT', `/jobs/${jobId}?cancel`);
    expect(res.status, res.text).to.equal(200);
    await waitForState(api, jobId, 'Cancel');
    await waitFor(async () => (running().length === 0 ? true : undefined), 5_000, 'ffmpeg to be gone');
    expect(await api.service.storage.stat(BUCKET, 'output/cancelled.mp4')).to.equal(undefined);
    const workDirs = () => readdirSync(path.join(api.config.dataDir, 'tmp')).filter((d) => d.startsWith(jobId));
    await waitFor(async () => (workDirs().length === 0 ? true : undefined), 5_000, 'the work folder to be removed');
  });
});

describe('Transcode containers and codecs, checked on the real outputs', function () {
  this.timeout(120_000);
  let api: TestService;
  before(async () => {
    api = await startWorkerService({ 'input/demo.mp4': 'fixtures/media/h264-aac.mp4', 'input/silent.mp4': 'fixtures/media/hevc.mp4' });
  });
  after(async () => { await api.stop(); });

  /** Times of the video's key frames. */
  function keyFrameTimes(key: string): number[] {
    return execFileSync(bundledFfprobePath(), ['-v', 'error', '-skip_frame', 'nokey', '-select_streams', 'v:0', '-show_entries', 'frame=pkt_pts_time', '-of', 'csv=p=0',
      path.join(api.config.dataDir, 'buckets', BUCKET, key)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  }

  /** The video frames ffprobe decodes. */
  function videoFrames(key: string): number {
    return Number(execFileSync(bundledFfprobePath(), ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0',
      path.join(api.config.dataDir, 'buckets', BUCKET, key)], { encoding: 'utf8' }).trim());
  }

  interface Expected {
    readonly format: string;
    readonly video?: Readonly<Record<string, unknown>>;
    readonly audio?: Readonly<Record<string, unknown>>;
  }

  // h264-aac.mp4: 2 s of 320x240 at 25 fps with 44.1 kHz stereo AAC; hevc.mp4: 2 s of 320x240 HEVC, no audio.
  const cases: Array<{ name: string; input?: string; transcode: string; key: string; expected: Expected; frames?: number }> = [
    {
      name: 'flv: H.264 Baseline by Height alone (the width follows the aspect), Fps 15, Gop 15; MP3 22.05 kHz mono',
      transcode: '<Container><Format>flv</Format></Container><Video><Codec>H.264</Codec><Height>180</Height><Fps>15</Fps><Gop>15</Gop><Profile>baseline</Profile><Preset>veryfast</Preset></Video>'
        + '<Audio><Codec>mp3</Codec><Samplerate>22050</Samplerate><Channels>1</Channels></Audio>',
      key: 'out/m.flv',
      expected: { format: 'flv', video: { codec_name: 'h264', width: 240, height: 180, avg_frame_rate: '15/1' }, audio: { codec_name: 'mp3', sample_rate: '22050', channels: 1 } },
      frames: 30,
    },
    {
      name: 'mkv: H.265 and Opus (48 kHz)',
      transcode: '<Container><Format>mkv</Format></Container><Video><Codec>H.265</Codec><Width>160</Width></Video><Audio><Codec>opus</Codec><Channels>2</Channels></Audio>',
      key: 'out/m.mkv',
      expected: { format: 'matroska,webm', video: { codec_name: 'hevc', width: 160, height: 120 }, audio: { codec_name: 'opus', sample_rate: '48000', channels: 2 } },
    },
    {
      name: 'webm: VP9 and Opus',
      transcode: '<Container><Format>webm</Format></Container><Video><Codec>VP9</Codec><Width>160</Width></Video><Audio><Codec>opus</Codec></Audio>',
      key: 'out/vp9.webm',
      expected: { format: 'matroska,webm', video: { codec_name: 'vp9', width: 160, height: 120 }, audio: { codec_name: 'opus' } },
    },
    {
      name: 'webm: VP8 at a Bitrate, and Vorbis',
      transcode: '<Container><Format>WebM</Format></Container><Video><Codec>VP8</Codec><Width>160</Width><Bitrate>100</Bitrate></Video><Audio><Codec>Vorbis</Codec></Audio>',
      key: 'out/vp8.webm',
      expected: { format: 'matroska,webm', video: { codec_name: 'vp8', width: 160, height: 120 }, audio: { codec_name: 'vorbis' } },
    },
    {
      name: 'mp4: AV1',
      transcode: '<Container><Format>mp4</Format></Container><Video><Codec>AV1</Codec><Width>128</Width><Preset>8</Preset></Video><Audio><Codec>aac</Codec></Audio>',
      key: 'out/av1.mp4',
      expected: { format: 'mov,mp4,m4a,3gp,3g2,mj2', video: { codec_name: 'av1', width: 128, height: 96 }, audio: { codec_name: 'aac' } },
    },
    {
      name: 'mp4 with Video/Remove: the audio alone',
      transcode: '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Remove>true</Remove></Video><Audio><Codec>aac</Codec><Bitrate>32</Bitrate></Audio>',
      key: 'out/no-video.mp4',
      expected: { format: 'mov,mp4,m4a,3gp,3g2,mj2', audio: { codec_name: 'aac', channels: 2 } },
    },
    {
      name: 'mp4 with Audio/Remove: the video alone',
      transcode: '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset></Video><Audio><Remove>true</Remove></Audio>',
      key: 'out/no-audio.mp4',
      expected: { format: 'mov,mp4,m4a,3gp,3g2,mj2', video: { codec_name: 'h264', width: 320, height: 240 } },
    },
    {
      name: 'a video without audio into mp4 with an Audio block: the video alone, no failure',
      input: 'input/silent.mp4',
      transcode: '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Width>160</Width><Preset>ultrafast</Preset></Video><Audio><Codec>aac</Codec></Audio>',
      key: 'out/silent.mp4',
      expected: { format: 'mov,mp4,m4a,3gp,3g2,mj2', video: { codec_name: 'h264', width: 160, height: 120 } },
      frames: 60,
    },
    {
      name: 'mp4 padded to a square (AdjDarMethod pad)',
      transcode: '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Width>320</Width><Height>320</Height><Preset>ultrafast</Preset></Video><TransConfig><AdjDarMethod>pad</AdjDarMethod></TransConfig>',
      key: 'out/pad.mp4',
      expected: { format: 'mov,mp4,m4a,3gp,3g2,mj2', video: { codec_name: 'h264', width: 320, height: 320, sample_aspect_ratio: '1:1' }, audio: { codec_name: 'aac' } },
    },
    {
      name: 'mp4 cropped to a square (AdjDarMethod crop)',
      transcode: '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Width>200</Width><Height>200</Height><Preset>ultrafast</Preset></Video><TransConfig><AdjDarMethod>crop</AdjDarMethod></TransConfig>',
      key: 'out/crop.mp4',
      expected: { format: 'mov,mp4,m4a,3gp,3g2,mj2', video: { codec_name: 'h264', width: 200, height: 200, sample_aspect_ratio: '1:1' }, audio: { codec_name: 'aac' } },
    },
    {
      name: 'mp4 with IsCheckReso: a Width above the source\'s keeps the source\'s size',
      transcode: '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Width>640</Width><Preset>ultrafast</Preset></Video><TransConfig><IsCheckReso>true</IsCheckReso><ResoAdjMethod>0</ResoAdjMethod></TransConfig>',
      key: 'out/checked.mp4',
      expected: { format: 'mov,mp4,m4a,3gp,3g2,mj2', video: { codec_name: 'h264', width: 320, height: 240 }, audio: { codec_name: 'aac' } },
    },
    {
      name: 'mp4 at a video Bitrate of 100 kbps',
      transcode: '<Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Bitrate>100</Bitrate><Preset>veryfast</Preset></Video>',
      key: 'out/b100.mp4',
      expected: { format: 'mov,mp4,m4a,3gp,3g2,mj2', video: { codec_name: 'h264', width: 320, height: 240 }, audio: { codec_name: 'aac' } },
    },
    { name: 'm4a: AAC', transcode: '<Container><Format>m4a</Format></Container>', key: 'out/a.m4a', expected: { format: 'mov,mp4,m4a,3gp,3g2,mj2', audio: { codec_name: 'aac' } } },
    { name: 'aac: ADTS', transcode: '<Container><Format>aac</Format></Container><Audio><Codec>aac</Codec><Samplerate>48000</Samplerate></Audio>', key: 'out/a.aac', expected: { format: 'aac', audio: { codec_name: 'aac', sample_rate: '48000' } } },
    { name: 'flac', transcode: '<Container><Format>flac</Format></Container><Audio><Codec>flac</Codec><Channels>1</Channels></Audio>', key: 'out/a.flac', expected: { format: 'flac', audio: { codec_name: 'flac', channels: 1 } } },
    { name: 'wav: PCM', transcode: '<Container><Format>wav</Format></Container>', key: 'out/a.wav', expected: { format: 'wav', audio: { codec_name: 'pcm_s16le', sample_rate: '44100', channels: 2 } } },
    { name: 'gif', transcode: '<Container><Format>gif</Format></Container><Video><Width>160</Width></Video>', key: 'out/a.gif', expected: { format: 'gif', video: { codec_name: 'gif', width: 160, height: 120 } } },
  ];

  it('writes each container with the codecs asked for, its size, rate and length, and the MD5 of what was stored', async () => {
    const jobs = await Promise.all(cases.map(async (c) => submit(api, transcodeRequest(c.input ?? 'input/demo.mp4', c.transcode, c.key))));
    for (const [i, c] of cases.entries()) {
      const detail = await waitForState(api, jobs[i], undefined, 60_000);
      expect(detail.State, `${c.name}: ${detail.Message as string}`).to.equal('Success');
      const report = await probe(api, c.key);
      expect(report.format?.format_name, c.name).to.equal(c.expected.format);
      expect(report.streams?.map((s) => s.codec_type), c.name).to.deep.equal([...(c.expected.video ? ['video'] : []), ...(c.expected.audio ? ['audio'] : [])]);
      if (c.expected.video) expect(stream(report, 'video'), c.name).to.include(c.expected.video);
      if (c.expected.audio) expect(stream(report, 'audio'), c.name).to.include(c.expected.audio);
      if (c.expected.video) {
        // The input's 2 s within a frame: 30 at Fps 15 (ffmpeg's rate change may repeat the last), 60 from the 29.97 fps HEVC, 50 otherwise.
        expect(videoFrames(c.key), c.name).to.be.closeTo(c.frames ?? 50, 1);
      } else if (c.expected.format !== 'aac') {
        // ADTS has no duration to read (ffprobe guesses one from the bitrate); the others hold 2 s plus the encoder's priming.
        expect(Number(report.format?.duration), c.name).to.be.closeTo(2, 0.05);
      }
      const md5Info = detail.Operation.MediaResult.OutputFile.Md5Info;
      expect(md5Info, c.name).to.deep.equal({ Md5: md5(await api.service.storage.get(BUCKET, c.key)), ObjectName: c.key });
    }
    // ABR over 2 s lands near its target (the input's own video runs at 135 kbps).
    expect(Number(stream(await probe(api, 'out/b100.mp4'), 'video')?.bit_rate) / 1000).to.be.within(60, 140);
    // pad keeps the whole 4:3 picture between black bands of 40 px (a stretch would fill the square).
    const frame = execFileSync(bundledFfmpegPath(), ['-v', 'error', '-i', path.join(api.config.dataDir, 'buckets', BUCKET, 'out/pad.mp4'), '-frames:v', '1', '-f', 'image2', '-c:v', 'png', 'pipe:1']);
    const { data, info } = await sharp(frame).raw().toBuffer({ resolveWithObject: true });
    const brightness = (x: number, y: number) => [0, 1, 2].reduce((sum, c) => sum + data[(y * info.width + x) * info.channels + c], 0) / 3;
    for (const y of [5, 34, 285, 314]) expect(brightness(240, y), `band row ${y}`).to.be.below(20);
    expect(Math.max(...[60, 100, 140, 180, 220, 260].map((y) => brightness(240, y)))).to.be.above(60);
    // Baseline (x264 writes Constrained Baseline) and a key frame every 15 frames at 15 fps: a second apart.
    expect(stream(await probe(api, 'out/m.flv'), 'video')?.profile).to.match(/Baseline/);
    const keys = keyFrameTimes('out/m.flv');
    expect(keys.length).to.be.at.least(2);
    expect(keys.slice(1).map((t, i) => Math.round((t - keys[i]) * 1000) / 1000)).to.satisfy((gaps: number[]) => gaps.every((g) => g === 1));
  });
});


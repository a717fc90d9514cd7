import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { XMLParser } from 'fast-xml-parser';
import sharp from 'sharp';
import { bundledFfmpegPath } from '../../src/media/ffmpeg-capabilities.js';
import { runFfprobe } from '../../src/media/ffprobe.js';
import { INPUT_OPTIONS, type ToolInput } from '../../src/media/input-policy.js';
import { createSpawner } from '../../src/media/spawner.js';
import { buildAnimationArgs, parseAnimation } from '../../src/processors/animation.js';
import { blackEnd, buildBlackEndArgs, buildSnapshotArgs, parseSnapshot, pickInterval } from '../../src/processors/snapshot.js';
import { BUCKET, describeJob, putFixture, submit, waitForState } from '../helpers/jobs.js';
import { decodedFrame, ffmpegPidsOf } from '../helpers/processes.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { asArray, startTestService, waitFor, type TestService } from '../helpers/service.js';

const spawner = createSpawner();
const INPUT: ToolInput = { options: INPUT_OPTIONS, url: 'file:/d/in.mp4', filePath: '/d/in.mp4' };
after(() => spawner.close());

function request(tag: string, container: string, output: string): string {
  return `<Request><Tag>${tag}</Tag><Input><Object>input/test.mp4</Object></Input><Operation>${container}`
    + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket>${output}</Output></Operation></Request>`;
}

describe('Snapshot and Animation command lines', () => {
  it('picks frames on a fixed grid after a fast seek, scaled, numbered from 0', () => {
    const spec = parseSnapshot({ Mode: 'Interval', Start: '1', TimeInterval: '2', Count: '3', Width: '128' });
    expect(buildSnapshotArgs(spec, { input: INPUT, dir: '/w/f', format: 'jpg' }, pickInterval(spec, 12))).to.deep.equal([
      '-ss', '1', ...INPUT_OPTIONS, '-i', 'file:/d/in.mp4', '-map', '0:v:0',
      '-vf', "select='gte(t,selected_n*2)',scale=128:-2", '-vsync', 'vfr', '-frames:v', '3', '-an', '-sn', '-dn', '-c:v', 'mjpeg',
      '-q:v', '2', '-pix_fmt', 'yuvj420p', '-f', 'image2', '-start_number', '0', '/w/f/%d.jpg',
    ]);
    expect(pickInterval(parseSnapshot({ Mode: 'Average', Start: '2', Count: '5' }), 12)).to.equal(2);
    expect(pickInterval(parseSnapshot({ Mode: 'Interval', TimeInterval: '5', Count: '4', IsCheckCount: 'true' }), 12)).to.equal(3);
    expect(() => parseSnapshot({ Mode: 'Sometimes', Count: '1' })).to.throw(/Mode/);
    expect(() => parseSnapshot({ Mode: 'Interval' })).to.throw(/Count is required/);
  });

  it('IsCheckBlack: only from Start 0, BlackLevel [30,100] and PixelBlackThreshold [0,255] with ffmpeg blackframe\'s defaults, a pass that stops at the first frame not black', () => {
    expect(parseSnapshot({ Count: '1', IsCheckBlack: 'true' }).skipBlack).to.deep.equal({ blackLevel: 98, pixelThreshold: 32 });
    expect(parseSnapshot({ Count: '1', IsCheckBlack: 'True', Start: '0', BlackLevel: '30', PixelBlackThreshold: '0' }).skipBlack).to.deep.equal({ blackLevel: 30, pixelThreshold: 0 });
    expect(parseSnapshot({ Count: '1', IsCheckBlack: '1', BlackLevel: '100', PixelBlackThreshold: '255' }).skipBlack).to.deep.equal({ blackLevel: 100, pixelThreshold: 255 });
    expect(parseSnapshot({ Count: '1', IsCheckBlack: 'true', Start: '1' }).skipBlack).to.equal(undefined);
    expect(parseSnapshot({ Count: '1', BlackLevel: '50' }).skipBlack).to.equal(undefined);
    for (const [element, value] of [['BlackLevel', '29'], ['BlackLevel', '101'], ['BlackLevel', '50.5'], ['PixelBlackThreshold', '256'], ['PixelBlackThreshold', '-1']]) {
      expect(() => parseSnapshot({ Count: '1', IsCheckBlack: 'true', [element]: value }), `${element} ${value}`).to.throw(`Snapshot/${element}`);
    }
    expect(buildBlackEndArgs({ blackLevel: 90, pixelThreshold: 20 }, INPUT, '/w/black.txt')).to.deep.equal([
      ...INPUT_OPTIONS, '-i', 'file:/d/in.mp4', '-map', '0:v:0',
      '-vf', 'blackframe=amount=0:threshold=20,metadata=mode=select:key=lavfi.blackframe.pblack:value=90:function=less,settb=AVTB,metadata=print:file=/w/black.txt',
      '-frames:v', '1', '-an', '-sn', '-dn', '-f', 'null', '-',
    ]);
    // ffmpeg may print a frame or two more before it stops: the first is the one.
    expect(blackEnd('frame:0    pts:2033333 pts_time:2.03333\nlavfi.blackframe.pblack=3\nframe:1    pts:2100000 pts_time:2.1\n')).to.equal(2.033333);
    expect(blackEnd('frame:0    pts:-40000 pts_time:-0.04\n')).to.equal(0);
    expect(blackEnd('')).to.equal(undefined);
  });

  it('samples Animation frames by the doc\'s priority and needs one way to sample', () => {
    const spec = parseAnimation({ Container: { Format: 'gif' }, Video: { Codec: 'gif', AnimateFramesPerSecond: '2', AnimateOnlyKeepKeyFrame: 'true', Width: '128' } });
    expect(spec.sampling).to.deep.equal({ kind: 'fps', fps: 2 });
    expect(buildAnimationArgs(spec, { input: INPUT, output: '/w/o.gif' })).to.include.members(['fps=2,scale=128:-2:flags=lanczos']);
    expect(() => parseAnimation({ Container: { Format: 'gif' }, Video: { Codec: 'gif' } })).to.throw(/needs AnimateFramesPerSecond/);
    expect(() => parseAnimation({ Container: { Format: 'webp' }, Video: { Codec: 'gif', AnimateOnlyKeepKeyFrame: 'true' } })).to.throw(/does not match/);
  });
});

describe('Snapshot and Animation jobs with the real ffmpeg', function () {
  this.timeout(90_000);
  let api: TestService;
  let receiver: Receiver;
  before(async () => {
    api = await startTestService({ worker: true, env: { MEDIAJOBS_ALLOW_PRIVATE_CALLBACKS: 'true' } });
    receiver = await startReceiver();
    await putFixture(api, 'fixtures/media/clip-12s.mp4', 'input/test.mp4');
    await putFixture(api, 'fixtures/media/audio-only.mp3', 'input/audio.mp3');
  });
  after(async () => {
    await receiver.close();
    await api.stop();
  });

  async function image(key: string) {
    return sharp(await api.service.storage.get(BUCKET, key), { animated: true }).metadata();
  }

  it('Interval: frames named from ${Number}, reported as prefix + relative names with an empty MediaInfo', async () => {
    const detail = await waitForState(api, await submit(api, request('Snapshot',
      '<Snapshot><Mode>Interval</Mode><Start>1</Start><TimeInterval>2</TimeInterval><Count>3</Count><Width>128</Width></Snapshot>',
      '<Object>output/shot-${Number}.jpg</Object>')));
    expect(detail.State, detail.Message).to.equal('Success');
    expect(detail.Operation.MediaResult.OutputFile).to.deep.equal({
      Bucket: BUCKET, Md5Info: '', ObjectName: ['0.jpg', '1.jpg', '2.jpg'], ObjectPrefix: 'output/shot-', Region: 'ap-local',
    });
    expect(detail.Operation.MediaInfo).to.deep.equal({ Format: '', Stream: { Audio: '', Subtitle: '', Video: '' } });
    for (const n of [0, 1, 2]) expect(await image(`output/shot-${n}.jpg`)).to.include({ format: 'jpeg', width: 128, height: 96 });
    expect(await api.service.storage.stat(BUCKET, 'output/shot-3.jpg')).to.equal(undefined);
  });

  it('Average spreads Count frames, KeyFrame takes the key frames, PNG from CIParam', async () => {
    const average = await waitForState(api, await submit(api, request('Snapshot',
      '<Snapshot><Mode>Average</Mode><Count>4</Count><CIParam>imageMogr2/format/png</CIParam></Snapshot>', '<Object>output/avg-${Number}.${ext}</Object>')));
    expect(average.State, average.Message).to.equal('Success');
    expect(average.Operation.MediaResult.OutputFile.ObjectName).to.deep.equal(['0.png', '1.png', '2.png', '3.png']);
    expect(await image('output/avg-3.png')).to.include({ format: 'png', width: 160 });
    const keys = await waitForState(api, await submit(api, request('Snapshot',
      '<Snapshot><Mode>KeyFrame</Mode><Count>100</Count></Snapshot>', '<Object>output/key-${Number}.jpg</Object>')));
    expect(keys.State, keys.Message).to.equal('Success');
    // The fixture's key frames: 0, 2, 4, 6, 7.9, 9.9 and 11.9 s (x264 moved the last three to scene cuts).
    expect(asArray(keys.Operation.MediaResult.OutputFile.ObjectName)).to.have.length(7);
  });

  it('takes each frame at its time: Interval from Start every TimeInterval, Average over the video (PNG frames equal to ffmpeg\'s own decode there)', async () => {
    const pixels = async (png: Buffer) => (await sharp(png).raw().toBuffer()).toString('base64');
    /** Whether an output image has exactly the pixels of the input's frame at `seconds`, as ffmpeg decodes it there. */
    const sameAsFrameAt = async (key: string, seconds: number) => {
      const frame = execFileSync(bundledFfmpegPath(), ['-v', 'error', '-ss', String(seconds), '-i', path.join(api.config.dataDir, 'buckets', BUCKET, 'input/test.mp4'),
        '-frames:v', '1', '-f', 'image2', '-c:v', 'png', 'pipe:1']);
      return (await pixels(frame)) === (await pixels(await api.service.storage.get(BUCKET, key)));
    };
    const cases: Array<[string, string, number[]]> = [
      ['<Mode>Interval</Mode><Start>1</Start><TimeInterval>2</TimeInterval><Count>3</Count>', 'output/at-i-${Number}.png', [1, 3, 5]],
      ['<Mode>Average</Mode><Count>4</Count>', 'output/at-a-${Number}.png', [0, 3, 6, 9]],
    ];
    for (const [snapshot, object, times] of cases) {
      const detail = await waitForState(api, await submit(api, request('Snapshot', `<Snapshot>${snapshot}</Snapshot>`, `<Object>${object}</Object>`)));
      expect(detail.State, detail.Message).to.equal('Success');
      for (const [n, seconds] of times.entries()) {
        const key = object.replace('${Number}', String(n));
        expect(await sameAsFrameAt(key, seconds), `${key} at ${seconds} s`).to.equal(true);
        expect(await sameAsFrameAt(key, seconds + 0.1), `${key} is not the next frame`).to.equal(false);
      }
    }
    // 2 s of video with 12 s of audio: Average spreads its frames over the video, so all 4 exist.
    const longAudio = execFileSync(bundledFfmpegPath(), ['-v', 'error', '-i', path.resolve('fixtures/media/hevc.mp4'), '-i', path.resolve('fixtures/media/clip-12s.mp4'),
      '-map', '0:v', '-map', '1:a', '-c', 'copy', '-f', 'mp4', '-movflags', 'frag_keyframe+empty_moov', 'pipe:1']);
    await api.service.storage.put(BUCKET, 'input/long-audio.mp4', longAudio);
    const spread = await waitForState(api, await submit(api, request('Snapshot', '<Snapshot><Mode>Average</Mode><Count>4</Count></Snapshot>', '<Object>output/spread-${Number}.jpg</Object>')
      .replace('input/test.mp4', 'input/long-audio.mp4')));
    expect(spread.State, spread.Message).to.equal('Success');
    expect(spread.Operation.MediaResult.OutputFile.ObjectName).to.deep.equal(['0.jpg', '1.jpg', '2.jpg', '3.jpg']);
  });

  it('writes sprite sheets of the frames (SnapshotAndSprite) and lists them in SpriteOutputFile', async () => {
    const detail = await waitForState(api, await submit(api, request('Snapshot',
      '<Snapshot><Mode>Interval</Mode><TimeInterval>1</TimeInterval><Count>6</Count><SnapshotOutMode>SnapshotAndSprite</SnapshotOutMode>'
        + '<SpriteSnapshotConfig><CellWidth>64</CellWidth><CellHeight>48</CellHeight><Padding>2</Padding><Margin>4</Margin><Color>AliceBlue</Color><Columns>2</Columns><Lines>2</Lines></SpriteSnapshotConfig></Snapshot>',
      '<Object>output/s-${Number}.jpg</Object><SpriteObject>output/sprite-${Number}.jpg</SpriteObject>')));
    expect(detail.State, detail.Message).to.equal('Success');
    const file = detail.Operation.MediaResult.OutputFile;
    expect(file.ObjectName).to.have.length(6);
    expect(file.SpriteOutputFile).to.deep.equal({ Bucket: BUCKET, Md5Info: '', ObjectName: ['0.jpg', '1.jpg'], ObjectPrefix: 'output/sprite-', Region: 'ap-local' });
    // 2 columns of 64 px, one padding of 2, margins of 4 on both sides.
    expect(await image('output/sprite-0.jpg')).to.include({ width: 4 + 64 + 2 + 64 + 4, height: 4 + 48 + 2 + 48 + 4 });
    expect(detail.Operation.Output.SpriteObject).to.equal('output/sprite-${Number}.jpg');
  });

  it('sends a JSON TaskFinish callback without Md5Info in OutputFile and SpriteOutputFile, as CI omits it for Snapshot', async () => {
    const jobId = await submit(api, request('Snapshot',
      '<Snapshot><Mode>Interval</Mode><Start>1</Start><TimeInterval>3</TimeInterval><Count>2</Count><Width>128</Width><SnapshotOutMode>SnapshotAndSprite</SnapshotOutMode>'
        + '<SpriteSnapshotConfig><Columns>2</Columns><Lines>1</Lines></SpriteSnapshotConfig></Snapshot>',
      '<Object>output/j-${Number}.jpg</Object><SpriteObject>output/js-${Number}.jpg</SpriteObject>').replace('</Request>', `<CallBack>${receiver.url}</CallBack><CallBackFormat>JSON</CallBackFormat></Request>`));
    expect((await waitForState(api, jobId)).State).to.equal('Success');
    const received = await waitFor(async () => receiver.received.find((r) => r.body.includes(jobId)));
    // Taken out of the receiver's list: the InvokeMultiJobs test below reads every XML callback there.
    receiver.received.splice(receiver.received.indexOf(received), 1);
    expect(received.headers['content-type']).to.match(/application\/json/);
    const file = JSON.parse(received.body).JobsDetail.Operation.MediaResult.OutputFile;
    expect(file).to.deep.equal({
      Bucket: BUCKET, ObjectName: ['0.jpg', '1.jpg'], ObjectPrefix: 'output/j-', Region: 'ap-local',
      SpriteOutputFile: { Bucket: BUCKET, ObjectName: '0.jpg', ObjectPrefix: 'output/js-', Region: 'ap-local' },
    });
  });

  it('refuses at submit several frames without ${Number}, and fails a Snapshot of audio as InvalidMedia', async () => {
    const res = await api.request('POST', '/jobs', { body: request('Snapshot', '<Snapshot><Count>3</Count></Snapshot>', '<Object>output/one.jpg</Object>') });
    expect(res.status).to.equal(400);
    expect(res.xml.Error.Message).to.match(/\$\{Number\}/);
    const audio = await waitForState(api, await submit(api, request('Snapshot', '<Snapshot><Count>1</Count></Snapshot>', '<Object>output/a.jpg</Object>').replace('input/test.mp4', 'input/audio.mp3')));
    expect([audio.State, audio.Code]).to.deep.equal(['Failed', 'InvalidMedia']);
    const late = await waitForState(api, await submit(api, request('Snapshot', '<Snapshot><Start>30</Start><Count>1</Count></Snapshot>', '<Object>output/late.jpg</Object>')));
    expect([late.State, late.Code]).to.deep.equal(['Failed', 'InvalidArgument']);
    expect(late.Message).to.include('Start 30');
  });

  describe('IsCheckBlack', () => {
    const made = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-black-'));
    /** An mp4 made by the bundled ffmpeg from lavfi sources joined end to end, stored under `key`. */
    async function putClip(key: string, sources: string[], extra: string[] = []): Promise<string> {
      const file = path.join(made, path.basename(key));
      const inputs = sources.flatMap((s) => ['-f', 'lavfi', '-i', s]);
      const joined = `${sources.map((_, i) => `[${i}:v]`).join('')}concat=n=${sources.length}:v=1:a=0`;
      execFileSync(bundledFfmpegPath(), ['-v', 'error', '-y', ...inputs, '-filter_complex', joined, '-c:v', 'libx264', '-pix_fmt', 'yuv420p', ...extra, file]);
      await api.service.storage.put(BUCKET, key, readFileSync(file));
      return path.join(api.config.dataDir, 'buckets', BUCKET, key);
    }
    let intro: string;
    let allBlack: string;
    let halfBlack: string;
    before(async () => {
      // 2 s of black then 4 s of test pattern, 160x120 at 10 fps, a key frame every second.
      intro = await putClip('input/intro.mp4', ['color=black:s=160x120:r=10:d=2', 'testsrc2=s=160x120:r=10:d=4'], ['-g', '10', '-keyint_min', '10']);
      allBlack = await putClip('input/all-black.mp4', ['color=black:s=160x120:r=10:d=3']);
      // 2 s whose left half is black and right half white (50 % black), then the test pattern.
      halfBlack = await putClip('input/half-black.mp4', ['color=black:s=80x120:r=10:d=2,pad=160:120:0:0:white', 'testsrc2=s=160x120:r=10:d=4']);
    });

    const raw = async (png: Buffer) => (await sharp(png).removeAlpha().raw().toBuffer()).toString('base64');
    /** Whether the stored PNG `key` has exactly the pixels ffmpeg decodes from `file` at `seconds`. */
    const sameAsFrameAt = async (key: string, file: string, seconds: number) =>
      (await raw(await api.service.storage.get(BUCKET, key))) === (await decodedFrame(file, seconds)).data.toString('base64');
    const meanLuma = async (key: string) => (await sharp(await api.service.storage.get(BUCKET, key)).greyscale().stats()).channels[0].mean;
    async function snapshot(input: string, fields: string, object: string) {
      const detail = await waitForState(api, await submit(api, request('Snapshot', `<Snapshot>${fields}</Snapshot>`, `<Object>${object}</Object>`).replace('input/test.mp4', input)));
      expect(detail.State, detail.Message).to.equal('Success');
      return detail;
    }

    it('Interval: the frames start at the first frame after the leading black, and from 0 without the check', async () => {
      const detail = await snapshot('input/intro.mp4', '<Mode>Interval</Mode><Count>2</Count><TimeInterval>1</TimeInterval><IsCheckBlack>true</IsCheckBlack>', 'output/cb-i-${Number}.png');
      expect(detail.Operation.MediaResult.OutputFile.ObjectName).to.deep.equal(['0.png', '1.png']);
      expect(await meanLuma('output/cb-i-0.png')).to.be.above(60);
      expect(await sameAsFrameAt('output/cb-i-0.png', intro, 2), 'first frame at 2 s').to.equal(true);
      expect(await sameAsFrameAt('output/cb-i-1.png', intro, 3), 'second frame at 3 s').to.equal(true);
      expect(await sameAsFrameAt('output/cb-i-0.png', intro, 2.1), 'not the frame after').to.equal(false);

      await snapshot('input/intro.mp4', '<Mode>Interval</Mode><Count>2</Count><TimeInterval>1</TimeInterval>', 'output/nb-i-${Number}.png');
      expect(await meanLuma('output/nb-i-0.png')).to.be.below(20);
      expect(await sameAsFrameAt('output/nb-i-0.png', intro, 0)).to.equal(true);
      expect(await sameAsFrameAt('output/nb-i-1.png', intro, 1)).to.equal(true);
    });

    it('Average spreads the frames from the end of the black to the end of the video; KeyFrame takes the key frames from there', async () => {
      // 6 s, black to 2 s: 2 frames over the 4 s left, at 2 and 4 s (without the check: 0 and 3 s).
      await snapshot('input/intro.mp4', '<Mode>Average</Mode><Count>2</Count><IsCheckBlack>true</IsCheckBlack>', 'output/cb-a-${Number}.png');
      expect(await meanLuma('output/cb-a-0.png')).to.be.above(60);
      expect(await sameAsFrameAt('output/cb-a-0.png', intro, 2)).to.equal(true);
      expect(await sameAsFrameAt('output/cb-a-1.png', intro, 4)).to.equal(true);
      await snapshot('input/intro.mp4', '<Mode>Average</Mode><Count>2</Count>', 'output/nb-a-${Number}.png');
      expect(await meanLuma('output/nb-a-0.png')).to.be.below(20);
      expect(await sameAsFrameAt('output/nb-a-1.png', intro, 3)).to.equal(true);

      await snapshot('input/intro.mp4', '<Mode>KeyFrame</Mode><Count>2</Count><IsCheckBlack>true</IsCheckBlack>', 'output/cb-k-${Number}.png');
      expect(await sameAsFrameAt('output/cb-k-0.png', intro, 2)).to.equal(true);
      expect(await sameAsFrameAt('output/cb-k-1.png', intro, 3)).to.equal(true);
      await snapshot('input/intro.mp4', '<Mode>KeyFrame</Mode><Count>1</Count>', 'output/nb-k-${Number}.png');
      expect(await meanLuma('output/nb-k-0.png')).to.be.below(20);
    });

    it('ignores the check with a Start above 0, and takes the frames from 0 of an input black throughout', async () => {
      await snapshot('input/intro.mp4', '<Mode>Interval</Mode><Start>1</Start><Count>2</Count><TimeInterval>1</TimeInterval><IsCheckBlack>true</IsCheckBlack>', 'output/cb-s-${Number}.png');
      expect(await meanLuma('output/cb-s-0.png')).to.be.below(20);
      expect(await sameAsFrameAt('output/cb-s-0.png', intro, 1)).to.equal(true);
      expect(await sameAsFrameAt('output/cb-s-1.png', intro, 2)).to.equal(true);

      const detail = await snapshot('input/all-black.mp4', '<Mode>Interval</Mode><Count>2</Count><TimeInterval>1</TimeInterval><IsCheckBlack>true</IsCheckBlack>', 'output/cb-b-${Number}.png');
      expect(detail.Operation.MediaResult.OutputFile.ObjectName).to.deep.equal(['0.png', '1.png']);
      expect(await sameAsFrameAt('output/cb-b-0.png', allBlack, 0)).to.equal(true);
      expect(await sameAsFrameAt('output/cb-b-1.png', allBlack, 1)).to.equal(true);
    });

    it('BlackLevel and PixelBlackThreshold decide what is black: half a frame is black at BlackLevel 40 only, and not with PixelBlackThreshold 0', async () => {
      const cases: Array<[string, string, number]> = [
        ['', 'dflt', 0],
        ['<BlackLevel>40</BlackLevel>', 'l40', 2],
        ['<BlackLevel>40</BlackLevel><PixelBlackThreshold>0</PixelBlackThreshold>', 'l40t0', 0],
      ];
      for (const [fields, name, seconds] of cases) {
        await snapshot('input/half-black.mp4', `<Mode>Interval</Mode><Count>1</Count><IsCheckBlack>true</IsCheckBlack>${fields}`, `output/cb-h-${name}.png`);
        expect(await sameAsFrameAt(`output/cb-h-${name}.png`, halfBlack, seconds), `${name}: the frame at ${seconds} s`).to.equal(true);
      }
    });

    it('refuses at submit a BlackLevel outside [30,100] or a PixelBlackThreshold outside [0,255]', async () => {
      for (const [element, value] of [['BlackLevel', '29'], ['BlackLevel', '101'], ['BlackLevel', 'dark'], ['PixelBlackThreshold', '256'], ['PixelBlackThreshold', '-3']]) {
        const res = await api.request('POST', '/jobs', {
          body: request('Snapshot', `<Snapshot><Count>1</Count><IsCheckBlack>true</IsCheckBlack><${element}>${value}</${element}></Snapshot>`, '<Object>output/never.jpg</Object>'),
        });
        expect(res.status, `${element} ${value}`).to.equal(400);
        expect(res.xml.Error.Code).to.equal('InvalidArgument');
        expect(res.xml.Error.Message).to.include(`Snapshot/${element}`);
      }
      const template = await api.request('POST', '/template', { body: '<Request><Tag>Snapshot</Tag><Name>black</Name><Snapshot><Count>1</Count><BlackLevel>20</BlackLevel></Snapshot></Request>' });
      expect(template.status).to.equal(400);
    });

    it('runs the black pass in the job\'s ffmpeg run: a cancel kills it and stores nothing', async () => {
      // 120 s of 1080p black: copies of a 1 s clip, made in well under a second, that take the pass seconds to read.
      const one = path.join(made, 'one.mp4');
      const long = path.join(made, 'long.mp4');
      execFileSync(bundledFfmpegPath(), ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'color=black:s=1920x1080:r=25:d=1', '-c:v', 'libx264', '-preset', 'ultrafast', one]);
      execFileSync(bundledFfmpegPath(), ['-v', 'error', '-y', '-stream_loop', '119', '-i', one, '-c', 'copy', long]);
      await api.service.storage.put(BUCKET, 'input/long-black.mp4', readFileSync(long));
      const jobId = await submit(api, request('Snapshot', '<Snapshot><Count>1</Count><IsCheckBlack>true</IsCheckBlack></Snapshot>', '<Object>output/cancelled.jpg</Object>')
        .replace('input/test.mp4', 'input/long-black.mp4'));
      const argv = (pid: number) => { try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { return ''; } };
      await waitFor(async () => (ffmpegPidsOf(jobId).some((pid) => argv(pid).includes('blackframe')) ? true : undefined), 20_000, 'the black pass to start');
      // The pass has no length to report progress against: the job is not past 5 % before the frames are taken.
      expect(Number((await describeJob(api, jobId)).Progress)).to.be.at.most(5);
      const res = await api.request('PUT', `/jobs/${jobId}?cancel`);
      expect(res.status, res.text).to.equal(200);
      await waitForState(api, jobId, 'Cancel');
      await waitFor(async () => (ffmpegPidsOf(jobId).length === 0 ? true : undefined), 5_000, 'ffmpeg to be gone');
      expect(await api.service.storage.stat(BUCKET, 'output/cancelled.jpg')).to.equal(undefined);
    });
  });

  it('Animation: a GIF at 2 frames a second over 4 s, and a WebP of the key frames at Quality 60', async () => {
    const gif = await waitForState(api, await submit(api, request('Animation',
      '<Animation><Container><Format>hgif</Format></Container><Video><Codec>gif</Codec><Width>128</Width><AnimateFramesPerSecond>2</AnimateFramesPerSecond></Video>'
        + '<TimeInterval><Start>2</Start><Duration>4</Duration></TimeInterval></Animation>', '<Object>output/anim.${ext}</Object>')));
    expect(gif.State, gif.Message).to.equal('Success');
    expect(await image('output/anim.gif')).to.include({ format: 'gif', width: 128, pageHeight: 96, pages: 8 });
    const data = await api.service.storage.get(BUCKET, 'output/anim.gif');
    expect(gif.Operation.MediaResult.OutputFile.Md5Info).to.deep.equal({ Md5: createHash('md5').update(data).digest('hex'), ObjectName: 'output/anim.gif' });
    expect(gif.Operation.MediaInfo.Stream.Video.CodecName).to.equal('gif');

    const webp = await waitForState(api, await submit(api, request('Animation',
      '<Animation><Container><Format>webp</Format></Container><Video><Codec>webp</Codec><AnimateOnlyKeepKeyFrame>true</AnimateOnlyKeepKeyFrame><Quality>60</Quality><Fps>2</Fps></Video></Animation>',
      '<Object>output/keys.webp</Object>')));
    expect(webp.State, webp.Message).to.equal('Success');
    expect(await image('output/keys.webp')).to.include({ format: 'webp', width: 160, pages: 7 });
    // Quality is honoured: the same frames at 10 take far fewer bytes than at 60.
    const low = await waitForState(api, await submit(api, request('Animation',
      '<Animation><Container><Format>webp</Format></Container><Video><Codec>webp</Codec><AnimateOnlyKeepKeyFrame>true</AnimateOnlyKeepKeyFrame><Quality>10</Quality><Fps>2</Fps></Video></Animation>',
      '<Object>output/keys-low.webp</Object>')));
    expect(low.State, low.Message).to.equal('Success');
    const size = async (key: string) => (await api.service.storage.get(BUCKET, key)).length;
    expect(await size('output/keys-low.webp')).to.be.below(0.7 * await size('output/keys.webp'));
  });

  it('Animation: a frame every AnimateTimeIntervalOfFrame seconds, played at Fps (faster or slower than sampled: no frame lost), Height alone keeping the aspect', async () => {
    const detail = await waitForState(api, await submit(api, request('Animation',
      '<Animation><Container><Format>gif</Format></Container><Video><Codec>gif</Codec><Height>128</Height><Fps>4</Fps><AnimateTimeIntervalOfFrame>1.5</AnimateTimeIntervalOfFrame></Video>'
        + '<TimeInterval><Start>1</Start><Duration>6</Duration></TimeInterval></Animation>', '<Object>output/every.gif</Object>')));
    expect(detail.State, detail.Message).to.equal('Success');
    // 6 s sampled every 1.5 s: 4 frames, each shown 1/4 s; 160x120 at 128 px high is 170 px wide (even).
    const meta = await image('output/every.gif');
    expect(meta).to.include({ format: 'gif', width: 170, pageHeight: 128, pages: 4 });
    expect(meta.delay).to.deep.equal([250, 250, 250, 250]);

    // Played slower than sampled: 4 s at 2 frames a second are 8 frames of 1 s each, all of them kept.
    const slow = await waitForState(api, await submit(api, request('Animation',
      '<Animation><Container><Format>gif</Format></Container><Video><Codec>gif</Codec><Fps>1</Fps><AnimateFramesPerSecond>2</AnimateFramesPerSecond></Video>'
        + '<TimeInterval><Start>0</Start><Duration>4</Duration></TimeInterval></Animation>', '<Object>output/slow.gif</Object>')));
    expect(slow.State, slow.Message).to.equal('Success');
    const slowMeta = await image('output/slow.gif');
    expect(slowMeta.pages).to.equal(8);
    expect(slowMeta.delay).to.deep.equal(Array(8).fill(1000));
  });

  it('runs seed 002\'s InvokeMultiJobs (Snapshot + Transcode + Animation) as the Go SDK sends it, and its TaskFinish callbacks carry MediaResult/OutputFile/Md5Info', async () => {
    // The Go SDK's XML for seed 002's CreateMultiMediaJobsOptions, with its bucket renamed to ours (another APPID is refused) and a CallBack added.
    const body = '<Request><Input><Object>input/test.mp4</Object></Input>'
      + `<Operation><Tag>Snapshot</Tag><Output><Region>ap-chongqing</Region><Bucket>${BUCKET}</Bucket><Object>output/go_\${Number}.mp4</Object></Output>`
      + '<Snapshot><Mode>Interval</Mode><Start>0</Start><Count>1</Count></Snapshot></Operation>'
      + `<Operation><Tag>Transcode</Tag><Output><Region>ap-chongqing</Region><Bucket>${BUCKET}</Bucket><Object>output/go_test.mp4</Object></Output>`
      + '<Transcode><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec></Video><Audio><Codec>AAC</Codec></Audio><TimeInterval><Start>10</Start><Duration></Duration></TimeInterval></Transcode></Operation>'
      + `<Operation><Tag>Animation</Tag><Output><Region>ap-chongqing</Region><Bucket>${BUCKET}</Bucket><Object>output/go_117374C.gif</Object></Output>`
      + '<Animation><Container><Format>gif</Format></Container><Video><Codec>gif</Codec><AnimateOnlyKeepKeyFrame>true</AnimateOnlyKeepKeyFrame></Video><TimeInterval><Start>0</Start><Duration></Duration></TimeInterval></Animation></Operation>'
      + `<CallBack>${receiver.url}</CallBack></Request>`;
    const res = await api.request('POST', '/jobs', { body });
    expect(res.status, res.text).to.equal(200);
    const created = asArray(res.xml.Response.JobsDetail);
    expect(created.map((d) => d.Operation.Tag)).to.deep.equal(['Snapshot', 'Transcode', 'Animation']);
    const details = await Promise.all(created.map((d) => waitForState(api, d.JobId as string)));
    for (const d of details) expect(d.State, `${d.Tag as string}: ${d.Message as string}`).to.equal('Success');

    expect(details[0].Operation.MediaResult.OutputFile).to.include({ ObjectName: '0.mp4', ObjectPrefix: 'output/go_' });
    expect(await image('output/go_0.mp4')).to.include({ format: 'jpeg' });
    const cut = await runFfprobe(path.join(api.config.dataDir, 'buckets', BUCKET, 'output/go_test.mp4'), { spawner });
    expect(Number(cut.format?.duration)).to.be.closeTo(2, 0.1);
    expect((await image('output/go_117374C.gif')).pages).to.equal(7);

    await waitFor(async () => (receiver.received.length >= 3 ? true : undefined));
    // Parsed as the Go SDK's JobsNotifyBody would be: Response/JobsDetail/Operation/MediaResult/OutputFile/Md5Info.
    const parser = new XMLParser({ parseTagValue: false, isArray: (name, jpath) => name === 'Md5Info' || String(jpath).endsWith('OutputFile.ObjectName') });
    const byTag = new Map(receiver.received.map((r) => {
      const detail = parser.parse(r.body).Response.JobsDetail;
      return [detail.Tag as string, detail];
    }));
    const transcode = byTag.get('Transcode');
    expect(transcode.Operation.MediaResult.OutputFile.Md5Info[0]).to.deep.equal({
      Md5: createHash('md5').update(await api.service.storage.get(BUCKET, 'output/go_test.mp4')).digest('hex'),
      ObjectName: 'output/go_test.mp4',
    });
    expect(transcode.Operation.MediaResult.OutputFile).to.include({ Bucket: BUCKET, Region: 'ap-chongqing', ObjectPrefix: '' });
    expect(transcode.Operation.MediaInfo.Stream.Video.CodecName).to.equal('h264');
    expect(byTag.get('Animation').Operation.MediaResult.OutputFile.ObjectName).to.deep.equal(['output/go_117374C.gif']);
    expect(byTag.get('Snapshot').Operation.MediaResult.OutputFile.ObjectName).to.deep.equal(['0.mp4']);
  });
});

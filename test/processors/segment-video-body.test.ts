import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import sharp from 'sharp';
import { bundledFfmpegPath, keyDistanceUnits } from '../../src/media/ffmpeg-capabilities.js';
import { runFfprobe } from '../../src/media/ffprobe.js';
import { createSpawner } from '../../src/media/spawner.js';
import { createProcessorRegistry } from '../../src/processors/index.js';
import { keyFilters, parseSegmentVideoBody, segmentGraph } from '../../src/processors/segment-video-body.js';
import { BUCKET, expectProgressThenCancel, putFixture, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import { decodedFrame, makeSlowClip } from '../helpers/processes.js';
import { startTestService, type TestService } from '../helpers/service.js';

const spawner = createSpawner();
after(() => spawner.close());

const output = (object: string) => `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output>`;

function request(body: string, object: string, input = 'in/green.mp4'): string {
  return `<Request><Tag>SegmentVideoBody</Tag><Input><Object>${input}</Object></Input>`
    + `<Operation><SegmentVideoBody>${body}</SegmentVideoBody>${output(object)}</Operation></Request>`;
}

const GREEN = '<SegmentType>GreenScreenSeg</SegmentType>';

/**
 * The clips keyed here, 160x120 at 10 fps, 2 s, made by the bundled ffmpeg:
 * - green.mp4: a red 40x40 box moving right (x = 20 + 30t, y = 20) over pure
 *   green, a still mid-green patch (0x4CAF50, half keyed) at (120, 80) 30x30,
 *   and a 440 Hz tone;
 * - solid.mp4: a yellow 40x40 box at (60, 40) over 0x2040C0, no audio.
 */
function makeClips(dir: string): { green: string; solid: string; background: string } {
  const run = (args: string[]) => execFileSync(bundledFfmpegPath(), ['-v', 'error', '-y', ...args]);
  const green = path.join(dir, 'green.mp4');
  run(['-f', 'lavfi', '-i', 'color=c=0x00FF00:s=160x120:r=10:d=2', '-f', 'lavfi', '-i', 'color=c=0xFF0000:s=40x40:r=10:d=2',
    '-f', 'lavfi', '-i', 'color=c=0x4CAF50:s=30x30:r=10:d=2', '-f', 'lavfi', '-i', 'sine=f=440:d=2',
    '-filter_complex', "[0:v][1:v]overlay=x='20+t*30':y=20[a];[a][2:v]overlay=x=120:y=80[v]", '-map', '[v]', '-map', '3:a',
    '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', green]);
  const solid = path.join(dir, 'solid.mp4');
  run(['-f', 'lavfi', '-i', 'color=c=0x2040C0:s=160x120:r=10:d=2', '-f', 'lavfi', '-i', 'color=c=0xFFFF00:s=40x40:r=10:d=2',
    '-filter_complex', '[0:v][1:v]overlay=x=60:y=40[v]', '-map', '[v]', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', solid]);
  return { green, solid, background: path.join(dir, 'two.png') };
}

describe('Tag=SegmentVideoBody', function () {
  this.timeout(90_000);

  it('parses the colour-key modes with CI\'s defaults, builds their graphs, and refuses HumanSeg pointing at MEDIAJOBS_EXTERNAL_TAGS', async () => {
    const mask = parseSegmentVideoBody({ SegmentType: 'GreenScreenSeg' }, BUCKET);
    expect(mask).to.deep.equal({ mode: 'Mask', segmentType: 'GreenScreenSeg', background: '0x000000', backgroundKey: undefined, threshold: 0, remove: '0x000000' });
    expect(segmentGraph(mask).build('pre', 'vout', 1)).to.deep.equal(['[pre]format=yuva444p,chromakey=color=0x00FF00:similarity=0.3:blend=0.1,alphaextract[vout]']);
    const solid = parseSegmentVideoBody({ SegmentType: 'solidcolorseg', Mode: 'Foreground', RemoveRed: '32', RemoveGreen: '64', RemoveBlue: '192', BackgroundRed: '255', BinaryThreshold: '128' }, BUCKET);
    expect(keyFilters(solid)).to.deep.equal(['format=rgba', 'colorkey=color=0x2040C0:similarity=0.15:blend=0.05', "lut=a='gte(val,128)*255'"]);
    expect(segmentGraph(solid).build('pre', 'vout', 1)).to.deep.equal([
      '[pre]split[seg_k][seg_b]', '[seg_b]drawbox=x=0:y=0:w=iw:h=ih:color=0xFF0000:t=fill[seg_bg]',
      "[seg_k]format=rgba,colorkey=color=0x2040C0:similarity=0.15:blend=0.05,lut=a='gte(val,128)*255'[seg_fg]", '[seg_bg][seg_fg]overlay[vout]',
    ]);
    // A binary measuring in the later units gets the same key.
    expect(keyFilters(mask, { chroma: Math.SQRT1_2, colour: 1 / Math.sqrt(3) })[1]).to.equal('chromakey=color=0x00FF00:similarity=0.2121:blend=0.0707');
    expect(await keyDistanceUnits('')).to.deep.equal({ chroma: 1, colour: 1 });
    const combination = parseSegmentVideoBody({ SegmentType: 'GreenScreenSeg', Mode: 'Combination', BackgroundLogoUrl: `https://${BUCKET}.cos.ap-local.myqcloud.com/bg/a%20b.png` }, BUCKET);
    expect(combination.backgroundKey).to.equal('bg/a b.png');
    const graph = segmentGraph(combination);
    expect(graph.inputs).to.deep.equal([{ key: 'bg/a b.png', where: 'SegmentVideoBody/BackgroundLogoUrl' }]);
    expect(graph.build('pre', 'base', 2).slice(1, 4)).to.deep.equal(['[2:v]format=yuv420p[seg_raw]', '[seg_raw][seg_b]scale2ref=w=iw:h=ih[seg_img][seg_ref]', '[seg_ref][seg_img]overlay=shortest=1[seg_bg]']);
    expect(() => parseSegmentVideoBody({}, BUCKET)).to.throw(/SegmentType HumanSeg \(the default when SegmentType is absent\) needs an AI model.*MEDIAJOBS_EXTERNAL_TAGS/);
    expect(() => parseSegmentVideoBody({ SegmentType: 'HumanSeg', Mode: 'Mask' }, BUCKET)).to.throw(/HumanSeg needs an AI model/);
    // An ffmpeg Tag: its runs are held to MEDIAJOBS_VIDEO_CONCURRENCY.
    expect(createProcessorRegistry({ spawner }).get('SegmentVideoBody')?.runsFfmpeg).to.equal(true);
  });

  describe('jobs with the real ffmpeg', () => {
    let api: TestService;
    let dir: string;
    let slowClip: string;
    before(async () => {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mediajobs-segment-'));
      const clips = makeClips(dir);
      // Orange left half, purple right half: scaled to the input's frame, each stays on its side.
      const pixels = Buffer.alloc(64 * 48 * 3);
      for (let i = 0; i < 64 * 48; i++) pixels.set(i % 64 < 32 ? [255, 128, 0] : [128, 0, 255], i * 3);
      await sharp(pixels, { raw: { width: 64, height: 48, channels: 3 } }).png().toFile(clips.background);
      api = await startWorkerService({
        'in/green.mp4': clips.green,
        'in/solid.mp4': clips.solid,
        'bg/two.png': clips.background,
        'in/truncated.mp4': 'fixtures/media/truncated.mp4',
      });
      slowClip = makeSlowClip();
    });
    after(async () => {
      await api.stop();
      await fs.rm(dir, { recursive: true, force: true });
      await fs.rm(path.dirname(slowClip), { recursive: true, force: true });
    });
    const file = (key: string) => path.join(api.config.dataDir, 'buckets', BUCKET, key);

    /** RGB of the frame at `seconds` of an output, at (x, y). */
    async function pixelsAt(key: string, seconds: number, points: Array<[number, number]>): Promise<number[][]> {
      const { data, width } = await decodedFrame(file(key), seconds);
      return points.map(([x, y]) => [...data.subarray((y * width + x) * 3, (y * width + x) * 3 + 3)]);
    }
    // At 1 s the box spans x 50–90, y 20–60.
    const BOX: [number, number] = [70, 40];
    const GREEN_BG: [number, number] = [10, 100];
    const PATCH: [number, number] = [135, 95];

    async function run(body: string, object: string, input?: string): Promise<Record<string, any>> {
      const detail = await waitForState(api, await submit(api, request(body, object, input)));
      expect(detail.State, detail.Message).to.equal('Success');
      return detail;
    }

    it('Mask: the alpha as a grey video (box white, green black, the mid-green patch grey), the audio kept; the result as Transcode\'s', async () => {
      const detail = await run(GREEN, 'out/mask.${ext}');
      expect(detail.Operation.SegmentVideoBody.SegmentType).to.equal('GreenScreenSeg');
      expect(detail.Operation.Output.Object).to.equal('out/mask.${ext}');
      expect(detail.Operation.MediaResult.OutputFile.ObjectName).to.equal('out/mask.mp4');
      expect(detail.Operation.MediaResult.OutputFile.Md5Info.Md5).to.match(/^[0-9a-f]{32}$/);
      expect(detail.Operation.MediaInfo.Stream.Video.Width).to.equal('160');
      const report = await runFfprobe(file('out/mask.mp4'), { spawner });
      expect(report.streams?.map((s) => `${s.codec_type}/${s.codec_name}`)).to.deep.equal(['video/h264', 'audio/aac']);
      expect(Number(report.format?.duration)).to.be.closeTo(2, 0.1);
      for (const seconds of [0.5, 1.5]) {
        const box: [number, number] = [Math.round(40 + 30 * seconds), 40];
        const [inBox, bg, patch] = await pixelsAt('out/mask.mp4', seconds, [box, GREEN_BG, PATCH]);
        expect(inBox.every((v) => v > 235), `box at ${seconds} s: ${inBox}`).to.equal(true);
        expect(bg.every((v) => v < 20), `background at ${seconds} s: ${bg}`).to.equal(true);
        expect(patch[0], `half-keyed patch at ${seconds} s`).to.be.within(80, 190);
        expect(Math.max(...patch) - Math.min(...patch), `grey, no colour left: ${patch}`).to.be.below(6);
      }
    });

    it('BinaryThreshold binarises the alpha at its level: the half-keyed patch turns white below it and black above it', async () => {
      await run(`${GREEN}<BinaryThreshold>60</BinaryThreshold>`, 'out/low.mp4');
      await run(`${GREEN}<BinaryThreshold>220</BinaryThreshold>`, 'out/high.mp4');
      const [lowBox, lowBg, lowPatch] = await pixelsAt('out/low.mp4', 1, [BOX, GREEN_BG, PATCH]);
      const [highBox, highBg, highPatch] = await pixelsAt('out/high.mp4', 1, [BOX, GREEN_BG, PATCH]);
      expect(lowPatch[0], 'patch with BinaryThreshold 60').to.be.above(235);
      expect(highPatch[0], 'patch with BinaryThreshold 220').to.be.below(20);
      for (const [box, bg] of [[lowBox, lowBg], [highBox, highBg]]) {
        expect(box[0]).to.be.above(235);
        expect(bg[0]).to.be.below(20);
      }
    });

    it('Foreground: the box over BackgroundRed/Green/Blue, as large and as long as the input, in the Output extension\'s container', async () => {
      const detail = await run(`${GREEN}<Mode>Foreground</Mode><BackgroundRed>48</BackgroundRed><BackgroundGreen>80</BackgroundGreen><BackgroundBlue>160</BackgroundBlue>`, 'out/fg.mkv');
      expect(detail.Operation.MediaInfo.Format.FormatName).to.include('matroska');
      const report = await runFfprobe(file('out/fg.mkv'), { spawner });
      expect(report.streams?.map((s) => s.codec_type)).to.deep.equal(['video', 'audio']);
      expect(Number(report.format?.duration)).to.be.closeTo(2, 0.1);
      const [box, bg, corner] = await pixelsAt('out/fg.mkv', 1, [BOX, GREEN_BG, [155, 5]]);
      for (const px of [bg, corner]) px.forEach((v, i) => expect(v, `background ${px}`).to.be.closeTo([48, 80, 160][i], 12));
      expect(box[0]).to.be.above(200);
      expect(box[1] + box[2]).to.be.below(80);
    });

    it('Combination: the box over the bucket\'s image, scaled to the input\'s frame, for the input\'s length', async () => {
      const url = `https://${BUCKET}.cos.ap-local.myqcloud.com/bg/two.png`;
      await run(`${GREEN}<Mode>Combination</Mode><BackgroundLogoUrl>${url}</BackgroundLogoUrl>`, 'out/combined.mp4');
      const report = await runFfprobe(file('out/combined.mp4'), { spawner });
      const video = report.streams?.find((s) => s.codec_type === 'video');
      expect([video?.width, video?.height, Number(video?.nb_frames)]).to.deep.equal([160, 120, 20]);
      for (const seconds of [0.2, 1.8]) {
        const [box, left, right] = await pixelsAt('out/combined.mp4', seconds, [[Math.round(40 + 30 * seconds), 40], [10, 100], [150, 100]]);
        left.forEach((v, i) => expect(v, `left of the image at ${seconds} s: ${left}`).to.be.closeTo([255, 128, 0][i], 16));
        right.forEach((v, i) => expect(v, `right of the image at ${seconds} s: ${right}`).to.be.closeTo([128, 0, 255][i], 16));
        expect(box[0], `box at ${seconds} s`).to.be.above(200);
        expect(box[1] + box[2]).to.be.below(80);
      }
    });

    it('SolidColorSeg removes RemoveRed/Green/Blue, and only that colour (the default, black, keys nothing here)', async () => {
      await run('<SegmentType>SolidColorSeg</SegmentType><RemoveRed>32</RemoveRed><RemoveGreen>64</RemoveGreen><RemoveBlue>192</RemoveBlue>', 'out/solid-mask.mp4', 'in/solid.mp4');
      await run('<SegmentType>SolidColorSeg</SegmentType>', 'out/solid-black.mp4', 'in/solid.mp4');
      const report = await runFfprobe(file('out/solid-mask.mp4'), { spawner });
      expect(report.streams?.map((s) => s.codec_type)).to.deep.equal(['video']);
      const [box, bg] = await pixelsAt('out/solid-mask.mp4', 1, [[80, 60], [10, 10]]);
      expect(box[0]).to.be.above(235);
      expect(bg[0]).to.be.below(20);
      const [blackBox, blackBg] = await pixelsAt('out/solid-black.mp4', 1, [[80, 60], [10, 10]]);
      expect([blackBox[0], blackBg[0]]).to.satisfy((v: number[]) => v.every((x) => x > 235));
    });

    it('runs beside another Tag in one multi-Operation request', async () => {
      const res = await api.request('POST', '/jobs', { body: '<Request><Input><Object>in/green.mp4</Object></Input>'
        + `<Operation><Tag>SegmentVideoBody</Tag><SegmentVideoBody>${GREEN}<Mode>Foreground</Mode><BackgroundBlue>255</BackgroundBlue></SegmentVideoBody>${output('out/multi-fg.mp4')}</Operation>`
        + `<Operation><Tag>Snapshot</Tag><Snapshot><Count>1</Count></Snapshot>${output('out/multi-shot-${Number}.jpg')}</Operation></Request>` });
      expect(res.status, res.text).to.equal(200);
      const jobs = res.xml.Response.JobsDetail as Array<Record<string, any>>;
      expect(jobs.map((j) => j.Tag)).to.deep.equal(['SegmentVideoBody', 'Snapshot']);
      const [keyed, shot] = await Promise.all(jobs.map((j) => waitForState(api, j.JobId as string)));
      expect([keyed.State, shot.State], `${keyed.Message} ${shot.Message}`).to.deep.equal(['Success', 'Success']);
      expect(keyed.Operation.SegmentVideoBody.Mode).to.equal('Foreground');
      const [bg] = await pixelsAt('out/multi-fg.mp4', 1, [GREEN_BG]);
      expect(bg[2]).to.be.above(230);
      expect(bg[0] + bg[1]).to.be.below(40);
      expect(await api.service.storage.stat(BUCKET, 'out/multi-shot-0.jpg')).to.not.equal(undefined);
    });

    it('refuses at submit HumanSeg (also as the default) pointing at MEDIAJOBS_EXTERNAL_TAGS, Combination without a background or with another bucket\'s, and bad values', async () => {
      const cases: Array<[string, RegExp]> = [
        ['<Mode>Mask</Mode>', /SegmentVideoBody\/SegmentType HumanSeg \(the default when SegmentType is absent\) needs an AI model.*MEDIAJOBS_EXTERNAL_TAGS/],
        ['<SegmentType>HumanSeg</SegmentType>', /SegmentVideoBody\/SegmentType HumanSeg needs an AI model.*MEDIAJOBS_EXTERNAL_TAGS.*get_next_task/],
        [`${GREEN}<Mode>Combination</Mode>`, /BackgroundLogoUrl is required with Mode Combination/],
        [`${GREEN}<Mode>Combination</Mode><BackgroundLogoUrl>https://other-1250000000.cos.ap-local.myqcloud.com/bg/two.png</BackgroundLogoUrl>`, /BackgroundLogoUrl must name an object of the job's bucket/],
        [`${GREEN}<Mode>Cutout</Mode>`, /SegmentVideoBody\/Mode must be one of Mask, Foreground, Combination/],
        ['<SegmentType>BlueScreenSeg</SegmentType>', /SegmentVideoBody\/SegmentType must be one of/],
        [`${GREEN}<BackgroundRed>256</BackgroundRed>`, /SegmentVideoBody\/BackgroundRed must be an integer in \[0, 255\]/],
        [`${GREEN}<BinaryThreshold>-1</BinaryThreshold>`, /SegmentVideoBody\/BinaryThreshold/],
        [`${GREEN}<RemoveBlue>1.5</RemoveBlue>`, /SegmentVideoBody\/RemoveBlue/],
        [`${GREEN}<Matte>x</Matte>`, /Matte/],
      ];
      for (const [body, message] of cases) {
        const res = await api.request('POST', '/jobs', { body: request(body, 'out/x.mp4') });
        expect(res.status, body).to.equal(400);
        expect(res.xml.Error.Code).to.equal('InvalidArgument');
        expect(res.xml.Error.Message, body).to.match(message);
      }
      for (const [operation, message] of [
        [output('out/x.mp4'), /SegmentVideoBody/],
        [`<SegmentVideoBody>${GREEN}</SegmentVideoBody>${output('out/x.mp3')}`, /a format without video: a SegmentVideoBody job writes video/],
        [`<SegmentVideoBody>${GREEN}</SegmentVideoBody>${output('out/${Number}.mp4')}`, /\$\{Number\} is for Tags that write several objects/],
      ] as Array<[string, RegExp]>) {
        const res = await api.request('POST', '/jobs', { body: `<Request><Tag>SegmentVideoBody</Tag><Input><Object>in/green.mp4</Object></Input><Operation>${operation}</Operation></Request>` });
        expect(res.status, operation).to.equal(400);
        expect(res.xml.Error.Message, operation).to.match(message);
      }
      // What the refusal advises works: named in MEDIAJOBS_EXTERNAL_TAGS, HumanSeg waits for an external worker.
      const external = await startTestService({ env: { MEDIAJOBS_EXTERNAL_TAGS: 'SegmentVideoBody' } });
      try {
        const res = await external.request('POST', '/jobs', { body: request('<SegmentType>HumanSeg</SegmentType>', 'out/x.mp4') });
        expect(res.status, res.text).to.equal(200);
        expect(res.xml.Response.JobsDetail.State).to.equal('Submitted');
      } finally {
        await external.stop();
      }
    });

    it('ends Failed InvalidMedia for a truncated input, and NoSuchKey for a missing background, writing nothing', async () => {
      const truncated = await waitForState(api, await submit(api, request(GREEN, 'out/never.mp4', 'in/truncated.mp4')));
      expect([truncated.State, truncated.Code]).to.deep.equal(['Failed', 'InvalidMedia']);
      expect(truncated.Message).to.include('in/truncated.mp4').and.not.include(api.config.dataDir);
      const missing = await waitForState(api, await submit(api, request(`${GREEN}<Mode>Combination</Mode><BackgroundLogoUrl>bg/none.png</BackgroundLogoUrl>`, 'out/never.mp4')));
      expect([missing.State, missing.Code]).to.deep.equal(['Failed', 'NoSuchKey']);
      expect(missing.Message).to.include('bg/none.png');
      expect(await api.service.storage.stat(BUCKET, 'out/never.mp4')).to.equal(undefined);
    });

    it('reports progress from ffmpeg while it keys, and cancel kills ffmpeg and leaves no output', async () => {
      await putFixture(api, slowClip, 'in/slow.mp4');
      const jobId = await submit(api, request(`${GREEN}<Mode>Combination</Mode><BackgroundLogoUrl>bg/two.png</BackgroundLogoUrl>`, 'out/cancelled.mp4', 'in/slow.mp4'));
      await expectProgressThenCancel(api, jobId, 'out/cancelled.mp4');
    });
  });
});

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { runFfprobe } from '../../src/media/ffprobe.js';
import { createSpawner } from '../../src/media/spawner.js';
import { frameDoublingFilter, parseEnhanceFilters } from '../../src/processors/video-enhance.js';
import { BUCKET, expectProgressThenCancel, putFixture, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import { decodedFrame, makeSlowClip } from '../helpers/processes.js';
import { startTestService, type TestService } from '../helpers/service.js';

const spawner = createSpawner();
after(() => spawner.close());

const FAST = '<Transcode><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset></Video></Transcode>';

function request(operation: string, object: string, input = 'in/test.mp4'): string {
  return `<Request><Tag>VideoEnhance</Tag><Input><Object>${input}</Object></Input><Operation>${operation}`
    + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output></Operation></Request>`;
}

describe('Tag=VideoEnhance', function () {
  this.timeout(90_000);

  it('maps ColorEnhance and MsSharpen as VideoProcess does (on without Enable, as CI\'s examples send them), FrameDoubling to minterpolate, and refuses the AI parts', () => {
    // Go's InvokeVideoEnhanceJob, less SuperResolution and SDRtoHDR.
    expect(parseEnhanceFilters({ ColorEnhance: { Contrast: '50', Correction: '100', Saturation: '100' }, MsSharpen: { SharpenLevel: '5' }, FrameEnhance: { FrameDoubling: 'true' } }))
      .to.deep.equal({ colourAndSharpen: ['eq=contrast=1.5:saturation=2', 'unsharp=5:5:0.75'], frameDoubling: true });
    expect(parseEnhanceFilters({ ColorEnhance: { Enable: 'false' }, MsSharpen: { Enable: 'true' } })).to.deep.equal({ colourAndSharpen: ['unsharp=5:5:0.75'], frameDoubling: false });
    expect(() => parseEnhanceFilters({ ColorEnhance: { Enable: 'false' }, FrameEnhance: { FrameDoubling: 'false' } })).to.throw(/needs ColorEnhance, MsSharpen or FrameEnhance/);
    expect(() => parseEnhanceFilters({ MsSharpen: '', SuperResolution: { Resolution: 'sdtohd' } })).to.throw(/SuperResolution needs an AI model.*MEDIAJOBS_EXTERNAL_TAGS/);
    // An empty block, as Go sends an empty struct: on, with CI's automatic values.
    expect(parseEnhanceFilters({ MsSharpen: '' }).colourAndSharpen).to.deep.equal(['unsharp=5:5:0.75']);
    expect(() => parseEnhanceFilters({ MsSharpen: { SharpenLevel: '11' } })).to.throw(/MsSharpen\/SharpenLevel/);
    expect(frameDoublingFilter('30000/1001')).to.equal('minterpolate=fps=60000/1001');
    expect(() => frameDoublingFilter('0/0')).to.throw(/frame rate/);
  });

  describe('jobs with the real ffmpeg', () => {
    let api: TestService;
    let slowClip: string;
    before(async () => {
      api = await startWorkerService({
        'in/test.mp4': 'fixtures/media/clip-12s.mp4',
        'in/truncated.mp4': 'fixtures/media/truncated.mp4',
        'in/not-media.mp4': 'fixtures/media/not-media.mp4',
        'marks/logo.png': 'fixtures/media/logo.png',
      });
      slowClip = makeSlowClip();
    });
    after(async () => {
      await api.stop();
      await fs.rm(path.dirname(slowClip), { recursive: true, force: true });
    });
    const file = (key: string) => path.join(api.config.dataDir, 'buckets', BUCKET, key);

    const frame = async (key: string, seconds: number) => (await decodedFrame(file(key), seconds)).data;

    /** Mean over the pixels of max(R,G,B) − min(R,G,B): how colourful a frame is. */
    function meanChroma(rgb: Buffer): number {
      let sum = 0;
      for (let i = 0; i < rgb.length; i += 3) sum += Math.max(rgb[i], rgb[i + 1], rgb[i + 2]) - Math.min(rgb[i], rgb[i + 1], rgb[i + 2]);
      return sum / (rgb.length / 3);
    }

    it('FrameDoubling doubles the frame rate and the frame count, keeping the length', async () => {
      const detail = await waitForState(api, await submit(api, request(`<VideoEnhance>${FAST}<FrameEnhance><FrameDoubling>true</FrameDoubling></FrameEnhance></VideoEnhance>`, 'out/doubled.${ext}')));
      expect(detail.State, detail.Message).to.equal('Success');
      expect(detail.Operation.VideoEnhance.FrameEnhance.FrameDoubling).to.equal('true');
      expect(detail.Operation.MediaResult.OutputFile.ObjectName).to.equal('out/doubled.mp4');
      const report = await runFfprobe(file('out/doubled.mp4'), { spawner });
      const video = report.streams?.find((s) => s.codec_type === 'video');
      expect(video?.avg_frame_rate).to.equal('20/1');
      // 120 frames at 10 fps in; minterpolate ends at the last input frame, a few short of 240.
      expect(Number(video?.nb_frames)).to.be.within(230, 241);
      expect(Number(report.format?.duration)).to.be.closeTo(12, 0.25);
      expect(report.streams?.map((s) => s.codec_type)).to.deep.equal(['video', 'audio']);
    });

    it('ColorEnhance makes the picture more colourful than the plain encode, and MsSharpen changes it too', async () => {
      const plain = await waitForState(api, await submit(api, `<Request><Tag>Transcode</Tag><Input><Object>in/test.mp4</Object></Input><Operation>${FAST}`
        + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>out/plain.mp4</Object></Output></Operation></Request>`));
      const colour = await waitForState(api, await submit(api, request(`<VideoEnhance>${FAST}<ColorEnhance><Contrast>20</Contrast><Saturation>200</Saturation></ColorEnhance></VideoEnhance>`, 'out/colour.mp4')));
      const sharpened = await waitForState(api, await submit(api, request(`<VideoEnhance>${FAST}<MsSharpen><SharpenLevel>10</SharpenLevel></MsSharpen></VideoEnhance>`, 'out/sharp.mp4')));
      for (const detail of [plain, colour, sharpened]) expect(detail.State, detail.Message).to.equal('Success');
      const [p, c, s] = await Promise.all(['out/plain.mp4', 'out/colour.mp4', 'out/sharp.mp4'].map((key) => frame(key, 3.5)));
      expect(meanChroma(c), `colourfulness ${meanChroma(c)} against ${meanChroma(p)}`).to.be.above(meanChroma(p) + 10);
      let changed = 0;
      for (let i = 0; i < p.length; i++) if (Math.abs(p[i] - s[i]) > 12) changed++;
      expect(changed / p.length, 'share of sharpened values').to.be.above(0.05);
    });

    it('takes its encode from TranscodeTemplateId (over the inline Transcode), draws a Watermark, and runs beside another Tag in one request', async () => {
      const template = await api.request('POST', '/template', { body: '<Request><Tag>Transcode</Tag><Name>small-2s</Name><Container><Format>mp4</Format></Container>'
        + '<Video><Codec>H.264</Codec><Width>128</Width><Preset>ultrafast</Preset></Video><TimeInterval><Duration>2</Duration></TimeInterval></Request>' });
      expect(template.status, template.text).to.equal(200);
      const templateId = template.xml.Response.Template.TemplateId as string;
      const output = (object: string) => `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output>`;
      const res = await api.request('POST', '/jobs', { body: '<Request><Input><Object>in/test.mp4</Object></Input>'
        + `<Operation><Tag>VideoEnhance</Tag><VideoEnhance>${FAST}<MsSharpen><SharpenLevel>3</SharpenLevel></MsSharpen></VideoEnhance>`
        + `<TranscodeTemplateId>${templateId}</TranscodeTemplateId><Watermark><Type>Image</Type><Pos>TopLeft</Pos><LocMode>Absolute</LocMode>`
        + `<Image><Url>marks/logo.png</Url><Mode>Original</Mode><Transparency>100</Transparency></Image></Watermark>${output('out/templated.mp4')}</Operation>`
        + `<Operation><Tag>Snapshot</Tag><Snapshot><Count>1</Count></Snapshot>${output('out/shot-${Number}.jpg')}</Operation></Request>` });
      expect(res.status, res.text).to.equal(200);
      const jobs = res.xml.Response.JobsDetail as Array<Record<string, any>>;
      const [enhanced, shot] = await Promise.all(jobs.map((j) => waitForState(api, j.JobId as string)));
      expect([enhanced.State, shot.State], `${enhanced.Message} ${shot.Message}`).to.deep.equal(['Success', 'Success']);
      expect(enhanced.Operation.TranscodeTemplateId).to.equal(templateId);
      const report = await runFfprobe(file('out/templated.mp4'), { spawner });
      expect(Number(report.streams?.find((s) => s.codec_type === 'video')?.width)).to.equal(128);
      expect(Number(report.format?.duration)).to.be.closeTo(2, 0.15);
      const marked = await frame('out/templated.mp4', 0.5);
      const at = (10 * 128 + 20) * 3;
      expect(marked[at], 'red in the logo, drawn on the scaled picture').to.be.above(200);
      expect(marked[at + 1] + marked[at + 2]).to.be.below(120);
    });

    it('refuses at submit SuperResolution and SDRtoHDR (pointing at MEDIAJOBS_EXTERNAL_TAGS), nothing to enhance, and bad values', async () => {
      const cases: Array<[string, RegExp]> = [
        [`<VideoEnhance>${FAST}<SuperResolution><Resolution>sdtohd</Resolution></SuperResolution><MsSharpen/></VideoEnhance>`, /VideoEnhance\/SuperResolution needs an AI model.*MEDIAJOBS_EXTERNAL_TAGS/],
        [`<VideoEnhance>${FAST}<SDRtoHDR><HdrMode>HDR10</HdrMode></SDRtoHDR><ColorEnhance><Contrast>5</Contrast></ColorEnhance></VideoEnhance>`, /VideoEnhance\/SDRtoHDR needs an AI model.*MEDIAJOBS_EXTERNAL_TAGS/],
        [`<VideoEnhance>${FAST}</VideoEnhance>`, /needs ColorEnhance, MsSharpen or FrameEnhance/],
        [`<VideoEnhance>${FAST}<ColorEnhance><Saturation>301</Saturation></ColorEnhance></VideoEnhance>`, /ColorEnhance\/Saturation/],
        [`<VideoEnhance>${FAST.replace('<Codec>H.264</Codec>', '<Remove>true</Remove>')}<MsSharpen/></VideoEnhance>`, /Transcode that keeps the video/],
        ['<VideoEnhance><MsSharpen/></VideoEnhance><DigitalWatermark><Type>Text</Type></DigitalWatermark>', /DigitalWatermark/],
        ['<UserData>x</UserData>', /needs one of: VideoEnhance, TemplateId/],
        [`<VideoEnhance><MsSharpen/></VideoEnhance><Watermark><Type>Image</Type><Pos>TopLeft</Pos><LocMode>Absolute</LocMode><Dx>1</Dx><Dy>1</Dy>`
          + '<Image><Url>https://other-1250000000.cos.ap-local.myqcloud.com/logo.png</Url><Mode>Original</Mode></Image></Watermark>', /Watermark\/Image\/Url must name an object of the job's bucket/],
      ];
      for (const [operation, message] of cases) {
        const res = await api.request('POST', '/jobs', { body: request(operation, 'out/x.mp4') });
        expect(res.status, operation).to.equal(400);
        expect(res.xml.Error.Code).to.equal('InvalidArgument');
        expect(res.xml.Error.Message).to.match(message);
      }
      // What the refusal advises works: named in MEDIAJOBS_EXTERNAL_TAGS, the same request waits for an external worker.
      const external = await startTestService({ env: { MEDIAJOBS_EXTERNAL_TAGS: 'VideoEnhance' } });
      try {
        const res = await external.request('POST', '/jobs', { body: request(cases[0][0], 'out/x.mp4') });
        expect(res.status, res.text).to.equal(200);
        expect(res.xml.Response.JobsDetail.State).to.equal('Submitted');
      } finally {
        await external.stop();
      }
    });

    it('ends Failed InvalidMedia for a truncated or non-media input, and writes nothing', async () => {
      for (const input of ['in/truncated.mp4', 'in/not-media.mp4']) {
        for (const enhance of ['<MsSharpen/>', '<FrameEnhance><FrameDoubling>true</FrameDoubling></FrameEnhance>']) {
          const detail = await waitForState(api, await submit(api, request(`<VideoEnhance>${FAST}${enhance}</VideoEnhance>`, 'out/never.mp4', input)));
          expect([detail.State, detail.Code], enhance).to.deep.equal(['Failed', 'InvalidMedia']);
          expect(detail.Message).to.include(input).and.not.include(api.config.dataDir);
        }
      }
      expect(await api.service.storage.stat(BUCKET, 'out/never.mp4')).to.equal(undefined);
    });

    it('reports progress from ffmpeg while it interpolates, and cancel kills ffmpeg and leaves no output', async () => {
      await putFixture(api, slowClip, 'in/slow.mp4');
      const jobId = await submit(api, request(`<VideoEnhance>${FAST}<FrameEnhance><FrameDoubling>true</FrameDoubling></FrameEnhance></VideoEnhance>`, 'out/cancelled.mp4', 'in/slow.mp4'));
      await expectProgressThenCancel(api, jobId, 'out/cancelled.mp4');
    });
  });
});

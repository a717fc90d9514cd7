import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../../src/config.js';
import { runFfprobe } from '../../src/media/ffprobe.js';
import { createSpawner } from '../../src/media/spawner.js';
import { watermarkOutputFormat, watermarkTranscode } from '../../src/processors/watermark-job.js';
import { BUCKET, expectProgressThenCancel, putFixture, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import { decodedFrame, makeSlowClip } from '../helpers/processes.js';
import type { TestService } from '../helpers/service.js';

const spawner = createSpawner();
after(() => spawner.close());

const LOGO = '<Watermark><Type>Image</Type><Pos>TopLeft</Pos><LocMode>Absolute</LocMode><Dx>8</Dx><Dy>8</Dy>'
  + '<Image><Url>marks/logo.png</Url><Mode>Original</Mode><Transparency>100</Transparency></Image></Watermark>';

function request(operation: string, object: string, input = 'in/test.mp4'): string {
  return `<Request><Tag>Watermark</Tag><Input><Object>${input}</Object></Input><Operation>${operation}`
    + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output></Operation></Request>`;
}

describe('Tag=Watermark', function () {
  this.timeout(90_000);

  it('takes its container from the Output object, else the input object, else mp4, and the input\'s codecs where the container holds them', () => {
    expect(watermarkOutputFormat('out/a.webm', 'in/b.mp4')).to.equal('webm');
    expect(watermarkOutputFormat('out/a.${ext}', 'in/b.mkv')).to.equal('mkv');
    expect(watermarkOutputFormat('out/a.${ext}', 'in/b.mp3')).to.equal('mp4');
    expect(watermarkOutputFormat('out/a', 'in/b')).to.equal('mp4');
    expect(watermarkOutputFormat('out/a.m3u8', 'in/b.mp4')).to.equal('hls');
    expect(() => watermarkOutputFormat('out/a.mp3', 'in/b.mp4')).to.throw(/format without video/);
    const config = loadConfig({});
    const mkv = watermarkTranscode('mkv', { video: 'vp9', audio: 'opus' }, config);
    expect([mkv.video?.codec, mkv.audio?.codec]).to.deep.equal(['vp9', 'opus']);
    // FLV holds neither: the container's defaults.
    const flv = watermarkTranscode('flv', { video: 'vp9', audio: 'opus' }, config);
    expect([flv.video?.codec, flv.audio?.codec]).to.deep.equal(['h.264', 'aac']);
  });

  describe('jobs with the real ffmpeg', () => {
    let api: TestService;
    let slowClip: string;
    before(async () => {
      api = await startWorkerService({
        'in/test.mp4': 'fixtures/media/clip-12s.mp4',
        'in/hevc.mp4': 'fixtures/media/hevc.mp4',
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

    const frame = (key: string, seconds: number) => decodedFrame(file(key), seconds);

    /** Mean absolute difference of two frames' RGB inside (or outside) a box. */
    function meanDifference(a: Buffer, b: Buffer, width: number, box: { x: number; y: number; w: number; h: number }, inside: boolean): number {
      let sum = 0;
      let count = 0;
      for (let i = 0; i < a.length; i += 3) {
        const x = (i / 3) % width;
        const y = Math.floor(i / 3 / width);
        const within = x >= box.x && x < box.x + box.w && y >= box.y && y < box.y + box.h;
        if (within !== inside) continue;
        sum += Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]);
        count += 3;
      }
      return sum / count;
    }

    it('burns an image mark in and changes nothing else: the same streams, size, length and frames, and pixels differing only under the mark', async () => {
      const detail = await waitForState(api, await submit(api, request(LOGO, 'out/marked.${ext}')));
      expect(detail.State, detail.Message).to.equal('Success');
      expect(detail.Operation.Output.Object).to.equal('out/marked.${ext}');
      expect(detail.Operation.Watermark.Image.Url).to.equal('marks/logo.png');
      expect(detail.Operation.MediaResult.OutputFile.ObjectName).to.equal('out/marked.mp4');
      expect(detail.Operation.MediaResult.OutputFile.Md5Info.Md5).to.match(/^[0-9a-f]{32}$/);
      expect(detail.Progress).to.equal('100');
      const report = await runFfprobe(file('out/marked.mp4'), { spawner });
      const video = report.streams?.find((s) => s.codec_type === 'video');
      expect(report.streams?.map((s) => `${s.codec_type}/${s.codec_name}`)).to.deep.equal(['video/h264', 'audio/aac']);
      expect([video?.width, video?.height]).to.deep.equal([160, 120]);
      expect(Number(report.format?.duration)).to.be.closeTo(12, 0.2);
      expect(video?.avg_frame_rate).to.equal('10/1');
      expect(Number(video?.nb_frames)).to.equal(120);

      for (const seconds of [0.5, 6.5]) {
        const before = await frame('in/test.mp4', seconds);
        const after = await frame('out/marked.mp4', seconds);
        expect([after.width, after.height]).to.deep.equal([160, 120]);
        const logo = { x: 8, y: 8, w: 40, h: 20 };
        // The logo is opaque red over the test pattern; around it only the re-encode's small error.
        expect(meanDifference(before.data, after.data, 160, logo, true), `under the mark at ${seconds} s`).to.be.above(40);
        expect(meanDifference(before.data, after.data, 160, { x: 6, y: 6, w: 44, h: 24 }, false), `elsewhere at ${seconds} s`).to.be.below(6);
        const at = ((8 + 10) * 160 + 8 + 20) * 3;
        expect(after.data[at], 'red in the logo').to.be.above(200);
      }
    });

    it('follows the input\'s codec (H.265 stays H.265) and draws the marks of WatermarkTemplateId alone', async () => {
      const created = await api.request('POST', '/template', { body: `<Request><Tag>Watermark</Tag><Name>logo</Name>${LOGO}</Request>` });
      expect(created.status, created.text).to.equal(200);
      const templateId = created.xml.Response.Template.TemplateId as string;
      const detail = await waitForState(api, await submit(api, request(`<WatermarkTemplateId>${templateId}</WatermarkTemplateId>`, 'out/hevc-marked.mp4', 'in/hevc.mp4')));
      expect(detail.State, detail.Message).to.equal('Success');
      expect(detail.Operation.WatermarkTemplateId).to.equal(templateId);
      expect(detail.Operation.MediaInfo.Stream.Video.CodecName).to.equal('hevc');
      const after = await frame('out/hevc-marked.mp4', 0.5);
      expect(after.data[((8 + 10) * after.width + 8 + 20) * 3], 'red in the logo').to.be.above(200);
    });

    it('runs beside other Tags in one multi-Operation request', async () => {
      const text = '<Watermark><Type>Text</Type><Pos>Bottom</Pos><LocMode>Absolute</LocMode><Dy>4</Dy>'
        + '<Text><Text>demo</Text><FontSize>20</FontSize><FontColor>0xFFFFFF</FontColor><Transparency>100</Transparency></Text></Watermark>';
      const output = (object: string) => `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output>`;
      const res = await api.request('POST', '/jobs', { body: '<Request><Input><Object>in/test.mp4</Object></Input>'
        + `<Operation><Tag>Watermark</Tag>${text}${output('out/multi-text.mkv')}</Operation>`
        + `<Operation><Tag>Transcode</Tag><Transcode><Container><Format>mp4</Format></Container><TimeInterval><Duration>1</Duration></TimeInterval></Transcode>${output('out/multi-cut.mp4')}</Operation>`
        + '</Request>' });
      expect(res.status, res.text).to.equal(200);
      const jobs = res.xml.Response.JobsDetail as Array<Record<string, any>>;
      expect(jobs.map((j) => j.Tag)).to.deep.equal(['Watermark', 'Transcode']);
      const [marked, cut] = await Promise.all(jobs.map((j) => waitForState(api, j.JobId as string)));
      expect([marked.State, cut.State], `${marked.Message} ${cut.Message}`).to.deep.equal(['Success', 'Success']);
      expect(marked.Operation.MediaInfo.Format.FormatName).to.include('matroska');
      const before = await frame('in/test.mp4', 0.5);
      const after = await frame('out/multi-text.mkv', 0.5);
      // White text across the bottom rows, the top half as it was.
      expect(meanDifference(before.data, after.data, 160, { x: 0, y: 90, w: 160, h: 30 }, true)).to.be.above(8);
      expect(meanDifference(before.data, after.data, 160, { x: 0, y: 0, w: 160, h: 60 }, true)).to.be.below(6);
    });

    it('refuses at submit what it cannot run, naming the element', async () => {
      const cases: Array<[string, string, RegExp]> = [
        ['<UserData>x</UserData>', 'out/x.mp4', /needs one of: Watermark, WatermarkTemplateId/],
        [LOGO, 'out/x.mp3', /Output\/Object ends in \.mp3, a format without video/],
        [LOGO, 'out/${Number}.mp4', /\$\{Number\} is for Tags that write several objects/],
        [LOGO.replace('TopLeft', 'Middle'), 'out/x.mp4', /Watermark\/Pos must be one of/],
        [`${LOGO}<Transcode><Container><Format>mp4</Format></Container></Transcode>`, 'out/x.mp4', /Transcode/],
        ['<WatermarkTemplateId>t1000000000000000000000000000000000</WatermarkTemplateId>', 'out/x.mp4', /WatermarkTemplateId t1000000000000000000000000000000000 is not a Watermark template/],
        // Read only from the job's bucket when it runs: another bucket's image is refused before, not a job that can only fail.
        [LOGO.replace('marks/logo.png', 'https://other-1250000000.cos.ap-local.myqcloud.com/marks/logo.png'), 'out/x.mp4', /Watermark\/Image\/Url must name an object of the job's bucket/],
      ];
      for (const [operation, object, message] of cases) {
        const res = await api.request('POST', '/jobs', { body: request(operation, object) });
        expect(res.status, operation).to.equal(400);
        expect(res.xml.Error.Code).to.equal('InvalidArgument');
        expect(res.xml.Error.Message).to.match(message);
      }
    });

    it('ends Failed InvalidMedia for a truncated or non-media input, and writes nothing', async () => {
      for (const input of ['in/truncated.mp4', 'in/not-media.mp4']) {
        const detail = await waitForState(api, await submit(api, request(LOGO, 'out/never.mp4', input)));
        expect([detail.State, detail.Code]).to.deep.equal(['Failed', 'InvalidMedia']);
        expect(detail.Message).to.include(input).and.not.include(api.config.dataDir);
      }
      expect(await api.service.storage.stat(BUCKET, 'out/never.mp4')).to.equal(undefined);
    });

    it('reports progress from ffmpeg while it runs, and cancel kills ffmpeg and leaves no output', async () => {
      await putFixture(api, slowClip, 'in/slow.mp4');
      const jobId = await submit(api, request(LOGO, 'out/cancelled.mp4', 'in/slow.mp4'));
      await expectProgressThenCancel(api, jobId, 'out/cancelled.mp4');
    });
  });
});

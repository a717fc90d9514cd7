import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import sharp from 'sharp';
import { bundledFfmpegPath } from '../../src/media/ffmpeg-capabilities.js';
import { runFfprobe } from '../../src/media/ffprobe.js';
import { INPUT_OPTIONS } from '../../src/media/input-policy.js';
import { createSpawner } from '../../src/media/spawner.js';
import { NOISE_FILTERS, noiseReductionSpec } from '../../src/processors/noise-reduction.js';
import { buildTranscodeArgs } from '../../src/processors/transcode.js';
import { videoProcessFilters } from '../../src/processors/video-process.js';
import { BUCKET, putFixture, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import type { TestService } from '../helpers/service.js';

const spawner = createSpawner();
after(() => spawner.close());

function request(tag: string, operation: string, object: string): string {
  return `<Request><Tag>${tag}</Tag><Input><Object>in/test.mp4</Object></Input><Operation>${operation}`
    + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output></Operation></Request>`;
}

describe('VideoProcess and NoiseReduction', function () {
  this.timeout(60_000);

  it('map ColorEnhance and MsSharpen to eq and unsharp, and NoiseReduction to an -af chain', () => {
    expect(videoProcessFilters({ ColorEnhance: { Enable: 'true', Contrast: '50', Saturation: '' }, MsSharpen: { Enable: 'true', SharpenLevel: '4' } }))
      .to.deep.equal(['eq=contrast=1.5:saturation=1.2', 'unsharp=5:5:0.6']);
    expect(() => videoProcessFilters({ ColorEnhance: { Enable: 'false' } })).to.throw(/needs ColorEnhance or MsSharpen/);
    const spec = noiseReductionSpec({ NoiseReduction: { Format: 'wav', Samplerate: '16000' }, Output: { Object: 'x.mp3' } });
    const args = buildTranscodeArgs(spec, { input: { options: INPUT_OPTIONS, url: 'file:/i.mp4', filePath: '/i.mp4' }, output: '/o.wav', extra: { audio: NOISE_FILTERS } });
    expect(args.slice(args.indexOf('-af'), args.indexOf('-af') + 2)).to.deep.equal(['-af', NOISE_FILTERS.join(',')]);
    expect(args.slice(args.indexOf('-c:a'), args.indexOf('-c:a') + 4)).to.deep.equal(['-c:a', 'pcm_s16le', '-ar', '16000']);
    expect(args).to.include('-vn');
  });

  describe('jobs with the real ffmpeg', () => {
    let api: TestService;
    before(async () => {
      api = await startWorkerService({ 'in/test.mp4': 'fixtures/media/clip-12s.mp4' });
    });
    after(async () => { await api.stop(); });
    const probe = (key: string) => runFfprobe(path.join(api.config.dataDir, 'buckets', BUCKET, key), { spawner });

    it('VideoProcess enhances and sharpens through the inline Transcode', async () => {
      const detail = await waitForState(api, await submit(api, request('VideoProcess',
        '<VideoProcess><ColorEnhance><Enable>true</Enable><Contrast>20</Contrast></ColorEnhance><MsSharpen><Enable>true</Enable><SharpenLevel>3</SharpenLevel></MsSharpen></VideoProcess>'
          + '<Transcode><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset></Video><TimeInterval><Duration>2</Duration></TimeInterval></Transcode>',
        'out/enhanced.mp4')));
      expect(detail.State, detail.Message).to.equal('Success');
      expect(Number((await probe('out/enhanced.mp4')).format?.duration)).to.be.closeTo(2, 0.1);
      expect(detail.Operation.VideoProcess.ColorEnhance.Contrast).to.equal('20');
      expect(detail.Operation.MediaResult.OutputFile.ObjectName).to.equal('out/enhanced.mp4');
    });

    it('VideoProcess takes its encode from TranscodeTemplateId and draws an inline Watermark; an unknown TranscodeTemplateId is refused at submit', async () => {
      await putFixture(api, 'fixtures/media/logo.png', 'marks/logo.png');
      const template = await api.request('POST', '/template', { body: '<Request><Tag>Transcode</Tag><Name>small-1s</Name><Container><Format>mp4</Format></Container>'
        + '<Video><Codec>H.264</Codec><Width>128</Width><Preset>ultrafast</Preset><Crf>18</Crf></Video><TimeInterval><Duration>1</Duration></TimeInterval></Request>' });
      expect(template.status, template.text).to.equal(200);
      const templateId = template.xml.Response.Template.TemplateId as string;
      const operation = (id: string) => '<VideoProcess><MsSharpen><Enable>true</Enable></MsSharpen></VideoProcess>'
        + `<TranscodeTemplateId>${id}</TranscodeTemplateId>`
        + '<Watermark><Type>Image</Type><Pos>TopLeft</Pos><LocMode>Absolute</LocMode><Dx>8</Dx><Dy>8</Dy>'
        + '<Image><Url>marks/logo.png</Url><Mode>Original</Mode><Transparency>100</Transparency></Image></Watermark>';
      const detail = await waitForState(api, await submit(api, request('VideoProcess', operation(templateId), 'out/templated.mp4')));
      expect(detail.State, detail.Message).to.equal('Success');
      expect(detail.Operation.TranscodeTemplateId).to.equal(templateId);
      const report = await probe('out/templated.mp4');
      expect(Number(report.format?.duration)).to.be.closeTo(1, 0.1);
      expect(Number(report.streams?.find((s) => s.codec_type === 'video')?.width)).to.equal(128);
      const png = execFileSync(bundledFfmpegPath(), ['-v', 'error', '-i', path.join(api.config.dataDir, 'buckets', BUCKET, 'out/templated.mp4'), '-frames:v', '1', '-f', 'image2', '-c:v', 'png', 'pipe:1']);
      const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
      const at = ((8 + 10) * info.width + 8 + 20) * info.channels;
      expect(data[at], 'red where the logo is').to.be.above(200);
      expect(data[at + 1] + data[at + 2]).to.be.below(120);

      const unknown = await api.request('POST', '/jobs', { body: request('VideoProcess', operation('t1000000000000000000000000000000000'), 'out/x.mp4') });
      expect(unknown.status).to.equal(400);
      expect(unknown.xml.Error.Message).to.match(/TranscodeTemplateId t1000000000000000000000000000000000 is not a Transcode template/);
    });

    it('NoiseReduction writes the denoised audio only, its format from the Output object when none is given', async () => {
      const detail = await waitForState(api, await submit(api, request('NoiseReduction', '', 'out/clean.m4a')));
      expect(detail.State, detail.Message).to.equal('Success');
      const report = await probe('out/clean.m4a');
      expect(report.streams?.map((s) => `${s.codec_type}/${s.codec_name}`)).to.deep.equal(['audio/aac']);
      expect(Number(report.format?.duration)).to.be.closeTo(12, 0.2);
    });
  });
});

import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import sharp from 'sharp';
import { bundledFfmpegPath } from '../../src/media/ffmpeg-capabilities.js';
import { parseWatermarks, watermarkGraph } from '../../src/processors/watermark.js';
import { BUCKET, putFixture, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import type { TestService } from '../helpers/service.js';

function request(watermarks: string, object: string, extra = ''): string {
  return '<Request><Tag>Transcode</Tag><Input><Object>in/test.mp4</Object></Input><Operation>'
    + `<Transcode><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset><Crf>18</Crf></Video><TimeInterval><Duration>2</Duration></TimeInterval></Transcode>${extra}`
    + `${watermarks}<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output></Operation></Request>`;
}

describe('Transcode watermarks and AudioMix', function () {
  this.timeout(60_000);

  it('place marks by Pos, LocMode and Dx/Dy, in a filter graph ending in [vout]', () => {
    const marks = parseWatermarks([
      { Type: 'Image', Pos: 'BottomRight', LocMode: 'Relativity', Dx: '10', Dy: '5', Image: { Url: 'logo.png', Mode: 'Proportion', Width: '20', Transparency: '50' } },
      { Type: 'Text', Pos: 'Top', LocMode: 'Absolute', Dx: '99', Dy: '4', StartTime: '1', EndTime: '2', Text: { Text: 'demo', FontSize: '12', FontColor: '#00ff00', Transparency: '70' } },
    ], BUCKET);
    expect(watermarkGraph(marks, 1)).to.deep.equal([
      '[1:v]format=rgba,colorchannelmixer=aa=0.5[img0raw]',
      '[img0raw][base]scale2ref=w=iw*0.2:h=ow/mdar[img0][baseref]',
      '[baseref][img0]overlay=x=main_w-overlay_w-main_w*0.1:y=main_h-overlay_h-main_h*0.05[wm0]',
      "[wm0]drawtext=text='demo':fontsize=12:fontcolor=0x00ff00@0.7:x=(w-text_w)/2:y=4:enable='between(t,1,2)'[vout]",
    ]);
    expect(() => parseWatermarks({ Type: 'Text', Pos: 'Top', LocMode: 'Absolute', Text: { Text: "a'b" } }, BUCKET)).to.throw(/Text\/Text/);
    expect(() => parseWatermarks({ Type: 'Image', Pos: 'Top', LocMode: 'Absolute', Image: { Url: 'https://other-1250000009.cos.x.myqcloud.com/l.png' } }, BUCKET)).to.throw(/job's bucket/);
  });

  describe('jobs with the real ffmpeg', () => {
    let api: TestService;
    before(async () => {
      api = await startWorkerService({ 'in/test.mp4': 'fixtures/media/clip-12s.mp4', 'marks/logo.png': 'fixtures/media/logo.png' });
    });
    after(async () => { await api.stop(); });

    /** The RGB of one pixel of the output's frame at `seconds` (the first by default). */
    async function pixel(key: string, x: number, y: number, seconds = 0): Promise<number[]> {
      const png = execFileSync(bundledFfmpegPath(), ['-v', 'error', '-ss', String(seconds), '-i', path.join(api.config.dataDir, 'buckets', BUCKET, key), '-frames:v', '1', '-f', 'image2', '-c:v', 'png', 'pipe:1']);
      const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
      const at = (y * info.width + x) * info.channels;
      return [data[at], data[at + 1], data[at + 2]];
    }

    it('draws an image object at TopLeft + (8, 8) and a text mark, and echoes the Watermarks', async () => {
      const mark = `<Watermark><Type>Image</Type><Pos>TopLeft</Pos><LocMode>Absolute</LocMode><Dx>8</Dx><Dy>8</Dy>`
        + `<Image><Url>https://${BUCKET}.cos.ap-local.myqcloud.com/marks/logo.png</Url><Mode>Original</Mode><Transparency>100</Transparency></Image></Watermark>`
        + '<Watermark><Type>Text</Type><Pos>Bottom</Pos><LocMode>Absolute</LocMode><Dy>4</Dy><Text><Text>demo</Text><FontSize>12</FontSize><FontColor>0xFFFFFF</FontColor><Transparency>80</Transparency></Text></Watermark>';
      const detail = await waitForState(api, await submit(api, request(mark, 'out/marked.mp4')));
      expect(detail.State, detail.Message).to.equal('Success');
      const [r, g, b] = await pixel('out/marked.mp4', 8 + 20, 8 + 10);
      expect(r).to.be.above(200);
      expect(g + b).to.be.below(120);
      expect(detail.Operation.Watermark).to.have.length(2);
    });

    it('scales an image mark by Mode Proportion, places it BottomRight less Dx/Dy, and shows it from StartTime to EndTime only', async () => {
      // 50 % of the 160 px frame: the 40x20 logo becomes 80x40, at x 76-155 and y 76-115 of the 160x120 frame.
      const mark = '<Watermark><Type>Image</Type><Pos>BottomRight</Pos><LocMode>Absolute</LocMode><Dx>4</Dx><Dy>4</Dy><StartTime>2</StartTime><EndTime>4</EndTime>'
        + `<Image><Url>marks/logo.png</Url><Mode>Proportion</Mode><Width>50</Width><Transparency>100</Transparency></Image></Watermark>`;
      const body = request(mark, 'out/timed.mp4').replace('<Duration>2</Duration>', '<Duration>6</Duration>');
      const detail = await waitForState(api, await submit(api, body));
      expect(detail.State, detail.Message).to.equal('Success');
      const red = ([r, g, b]: number[]) => r > 200 && g + b < 120;
      // Near the scaled mark's top-left and bottom-right corners (where the test pattern is not red at 1 or 5 s).
      for (const [x, y] of [[78, 78], [154, 114]]) {
        expect(red(await pixel('out/timed.mp4', x, y, 3)), `(${x}, ${y}) at 3 s`).to.equal(true);
        expect(red(await pixel('out/timed.mp4', x, y, 1)), `(${x}, ${y}) at 1 s`).to.equal(false);
        expect(red(await pixel('out/timed.mp4', x, y, 5)), `(${x}, ${y}) at 5 s`).to.equal(false);
      }
      // Just outside it.
      expect(red(await pixel('out/timed.mp4', 74, 80, 3))).to.equal(false);
    });

    it('draws the marks of WatermarkTemplateId (which win over an inline Watermark), echoes the ids, and refuses an unknown or non-Watermark id at submit', async () => {
      const created = await api.request('POST', '/template', { body: '<Request><Tag>Watermark</Tag><Name>logo-top-left</Name>'
        + '<Watermark><Type>Image</Type><Pos>TopLeft</Pos><LocMode>Absolute</LocMode><Dx>8</Dx><Dy>8</Dy>'
        + `<Image><Url>https://${BUCKET}.cos.ap-local.myqcloud.com/marks/logo.png</Url><Mode>Original</Mode><Transparency>100</Transparency></Image></Watermark></Request>` });
      expect(created.status, created.text).to.equal(200);
      const templateId = created.xml.Response.Template.TemplateId as string;
      // Inline, the same logo at BottomRight: not drawn, the template's marks win.
      const inline = '<Watermark><Type>Image</Type><Pos>BottomRight</Pos><LocMode>Absolute</LocMode>'
        + '<Image><Url>marks/logo.png</Url><Mode>Original</Mode><Transparency>100</Transparency></Image></Watermark>';
      const detail = await waitForState(api, await submit(api, request(`${inline}<WatermarkTemplateId>${templateId}</WatermarkTemplateId>`, 'out/templated.mp4')));
      expect(detail.State, detail.Message).to.equal('Success');
      expect(detail.Operation.WatermarkTemplateId).to.equal(templateId);
      const [r, g, b] = await pixel('out/templated.mp4', 8 + 20, 8 + 10);
      expect(r).to.be.above(200);
      expect(g + b).to.be.below(120);
      const [r2, g2, b2] = await pixel('out/templated.mp4', 160 - 20, 120 - 10);
      expect(r2 < 200 || g2 + b2 > 120, `bottom right is ${[r2, g2, b2].join(',')}`).to.equal(true);

      const unknown = await api.request('POST', '/jobs', { body: request('<WatermarkTemplateId>t1000000000000000000000000000000000</WatermarkTemplateId>', 'out/x.mp4') });
      expect(unknown.status).to.equal(400);
      expect(unknown.xml.Error.Message).to.match(/WatermarkTemplateId t1000000000000000000000000000000000/);
      const snapshot = await api.request('POST', '/template', { body: '<Request><Tag>Snapshot</Tag><Name>one</Name><Snapshot><Count>1</Count></Snapshot></Request>' });
      const notMark = await api.request('POST', '/jobs', { body: request(`<WatermarkTemplateId>${snapshot.xml.Response.Template.TemplateId as string}</WatermarkTemplateId>`, 'out/x.mp4') });
      expect(notMark.status).to.equal(400);
      expect(notMark.xml.Error.Message).to.match(/not a Watermark template/);

      // Another bucket's image is refused at submit, inline or through a template, as the run would refuse it.
      const foreign = '<Watermark><Type>Image</Type><Pos>TopLeft</Pos><LocMode>Absolute</LocMode>'
        + '<Image><Url>https://other-1250000009.cos.ap-local.myqcloud.com/marks/logo.png</Url><Mode>Original</Mode></Image></Watermark>';
      const inlineForeign = await api.request('POST', '/jobs', { body: request(foreign, 'out/x.mp4') });
      expect(inlineForeign.status, inlineForeign.text).to.equal(400);
      expect(inlineForeign.xml.Error.Message).to.match(/Watermark\/Image\/Url must name an object of the job's bucket/);
      const foreignTemplate = await api.request('POST', '/template', { body: `<Request><Tag>Watermark</Tag><Name>foreign</Name>${foreign}</Request>` });
      expect(foreignTemplate.status, foreignTemplate.text).to.equal(200);
      const templated = await api.request('POST', '/jobs', { body: request(`<WatermarkTemplateId>${foreignTemplate.xml.Response.Template.TemplateId as string}</WatermarkTemplateId>`, 'out/x.mp4') });
      expect(templated.status, templated.text).to.equal(400);
      expect(templated.xml.Error.Message).to.match(/job's bucket/);
    });

    it('RemoveWatermark blurs its box away with delogo (in the input\'s pixels, before scaling), and is refused with H.265 or without Height', async () => {
      const logo = '<Watermark><Type>Image</Type><Pos>TopLeft</Pos><LocMode>Absolute</LocMode><Dx>8</Dx><Dy>8</Dy>'
        + '<Image><Url>marks/logo.png</Url><Mode>Original</Mode><Transparency>100</Transparency></Image></Watermark>';
      expect((await waitForState(api, await submit(api, request(logo, 'in/logo.mp4')))).State).to.equal('Success');
      const [r0] = await pixel('in/logo.mp4', 8 + 20, 8 + 10);
      expect(r0).to.be.above(200);
      // The 40x20 logo at (8, 8) of the 160x120 input, removed into a 320 px wide output.
      const body = request('<RemoveWatermark><Dx>6</Dx><Dy>6</Dy><Width>44</Width><Height>24</Height></RemoveWatermark>', 'out/clean.mp4')
        .replace('in/test.mp4', 'in/logo.mp4').replace('<Preset>', '<Width>320</Width><Preset>');
      const detail = await waitForState(api, await submit(api, body));
      expect(detail.State, detail.Message).to.equal('Success');
      expect(detail.Operation.RemoveWatermark).to.deep.equal({ Dx: '6', Dy: '6', Width: '44', Height: '24' });
      expect(detail.Operation.MediaInfo.Stream.Video.Width).to.equal('320');
      const [r, g, b] = await pixel('out/clean.mp4', (8 + 20) * 2, (8 + 10) * 2);
      expect(r - (g + b) / 2, `the logo's centre is ${[r, g, b].join(',')}`).to.be.below(60);

      const h265 = await api.request('POST', '/jobs', { body: body.replace('H.264', 'H.265').replace('<Preset>ultrafast</Preset>', '') });
      expect(h265.status).to.equal(400);
      expect(h265.xml.Error.Message).to.match(/RemoveWatermark cannot be used with Video\/Codec H.265/);
      const noHeight = await api.request('POST', '/jobs', { body: body.replace('<Height>24</Height>', '') });
      expect(noHeight.status).to.equal(400);
      expect(noHeight.xml.Error.Message).to.match(/RemoveWatermark\/Height is required/);
    });

    it('mixes an AudioMix source into the audio (Repeat loops it; Replace drops the input\'s own)', async () => {
      await putFixture(api, 'fixtures/media/audio-only.mp3', 'marks/bgm.mp3');
      const mix = (replace: string) => `<AudioMix><AudioSource>https://${BUCKET}.cos.ap-local.myqcloud.com/marks/bgm.mp3</AudioSource><MixMode>Repeat</MixMode>`
        + `<Replace>${replace}</Replace><EffectConfig><EnableStartFadein>true</EnableStartFadein><StartFadeinTime>0.5</StartFadeinTime></EffectConfig></AudioMix>`;
      const body = (replace: string, object: string) => '<Request><Tag>Transcode</Tag><Input><Object>in/test.mp4</Object></Input><Operation>'
        + `<Transcode><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset></Video><Audio><Codec>aac</Codec></Audio>${mix(replace)}</Transcode>`
        + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output></Operation></Request>`;
      for (const [replace, object] of [['false', 'out/mixed.mp4'], ['true', 'out/replaced.mp4']]) {
        const detail = await waitForState(api, await submit(api, body(replace, object)));
        expect(detail.State, detail.Message).to.equal('Success');
        // The 2 s source loops under the 12 s video, and the output still ends with the video.
        expect(Number(detail.Operation.MediaInfo.Format.Duration)).to.be.closeTo(12, 0.3);
        expect(detail.Operation.MediaInfo.Stream.Audio.CodecName).to.equal('aac');
      }
    });

    it('fails NoSuchKey for a watermark image that does not exist', async () => {
      const mark = '<Watermark><Type>Image</Type><Pos>Center</Pos><LocMode>Absolute</LocMode><Image><Url>marks/none.png</Url><Mode>Original</Mode><Transparency>50</Transparency></Image></Watermark>';
      const detail = await waitForState(api, await submit(api, request(mark, 'out/none.mp4')));
      expect([detail.State, detail.Code]).to.deep.equal(['Failed', 'NoSuchKey']);
    });
  });
});

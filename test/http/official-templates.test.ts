import { expect } from 'chai';
import sharp from 'sharp';
import { parseAnimation } from '../../src/processors/animation.js';
import { parseSnapshot } from '../../src/processors/snapshot.js';
import { parseTranscode } from '../../src/processors/transcode.js';
import { OFFICIAL_TEMPLATES } from '../../src/templates/official-presets.js';
import { BUCKET, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import { asArray, type TestService } from '../helpers/service.js';

/*
 * CI's Official (system preset) templates (templates/official-presets.ts):
 * listed under category=Official for every bucket, run by a job's
 * TemplateId with their published parameters, never changed or deleted.
 */

const CHECKS = { Transcode: parseTranscode, Snapshot: parseSnapshot, Animation: parseAnimation } as const;

describe('Official preset templates', function () {
  this.timeout(120_000);

  it('are 30 Transcode, 3 Snapshot and 18 Animation presets with distinct t0 ids, each one a job could run', () => {
    const byTag = OFFICIAL_TEMPLATES.reduce<Record<string, number>>((n, t) => ({ ...n, [t.tag]: (n[t.tag] ?? 0) + 1 }), {});
    expect(byTag).to.deep.equal({ Transcode: 30, Snapshot: 3, Animation: 18 });
    expect(new Set(OFFICIAL_TEMPLATES.map((t) => t.templateId)).size).to.equal(OFFICIAL_TEMPLATES.length);
    for (const template of OFFICIAL_TEMPLATES) {
      expect(template.templateId).to.match(/^t0[0-9a-f]{32}$/);
      expect(() => CHECKS[template.tag as keyof typeof CHECKS](template.body), template.name).not.to.throw();
    }
  });

  describe('over HTTP', () => {
    let api: TestService;
    before(async () => {
      api = await startWorkerService({ 'input/test.mp4': 'fixtures/media/clip-12s.mp4' });
    });
    after(async () => { await api?.stop(); });

    async function official(query: string): Promise<{ total: string; templates: Record<string, any>[] }> {
      const res = await api.request('GET', `/template?category=Official${query}`);
      expect(res.status, res.text).to.equal(200);
      return { total: res.xml.Response.TotalCount as string, templates: asArray(res.xml.Response.TemplateList) };
    }

    function job(tag: string, templateId: string, object: string): string {
      return `<Request><Tag>${tag}</Tag><Input><Object>input/test.mp4</Object></Input><Operation><TemplateId>${templateId}</TemplateId>`
        + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output></Operation></Request>`;
    }

    it('lists them under category Official, filtered by tag, ids and name prefix, paged, in the containers Go decodes', async () => {
      expect((await official('')).total).to.equal(String(OFFICIAL_TEMPLATES.length));
      const snapshots = await official('&tag=Snapshot');
      expect(snapshots.templates.map((t) => t.Name)).to.deep.equal(['snapshot_320 * 180_1', 'snapshot_640 * 360_2', 'snapshot_1280 * 720_3']);
      expect(snapshots.templates[0]).to.deep.equal({
        Tag: 'Snapshot', TemplateId: 't01d40e440761448fc8c538fb8d5a5b81e', Name: 'snapshot_320 * 180_1', Category: 'Official',
        Snapshot: { Mode: 'Interval', Start: '0', TimeInterval: '2', Count: '5', Width: '320', Height: '180' },
      });
      const sd = await official('&ids=t04e1ab86554984f1aa17c062fbf6c007c,t1ffffffffffffffffffffffffffffffff');
      expect(sd.templates).to.have.length(1);
      expect(sd.templates[0]).to.include({ Name: 'MP4-SD', Tag: 'Transcode' });
      expect(sd.templates[0]!.TransTpl).to.deep.equal({ Container: { Format: 'mp4' }, Video: { Codec: 'H.264', Width: '720', Bitrate: '1024' }, Audio: { Codec: 'aac', Bitrate: '128' } });
      const hls = await official('&tag=Transcode&name=H264-HLS&pageNumber=2&pageSize=2');
      expect(hls.total).to.equal('5');
      expect(hls.templates.map((t) => t.Name)).to.deep.equal(['H264-HLS-HD-720P', 'H264-HLS-FHD-1080P']);
      const webp = await official('&tag=Animation&name=webp_320');
      expect(webp.templates.map((t) => t.TransTpl.Video.Quality)).to.deep.equal(['75', '75', '75']);
      // The bucket's own templates are Custom only.
      expect((await api.request('GET', '/template?tag=Transcode')).xml.Response.TotalCount).to.equal('0');
    });

    it('runs a job naming a Transcode preset with its parameters, echoing its TemplateName', async () => {
      const detail = await waitForState(api, await submit(api, job('Transcode', 't02db40900dc1c43ad9bdbd8acec6075c5', 'output/flu.mp4')), undefined, 90_000);
      expect(detail.State, detail.Message).to.equal('Success');
      expect(detail.Operation).to.include({ TemplateId: 't02db40900dc1c43ad9bdbd8acec6075c5', TemplateName: 'MP4-FLU' });
      expect(detail.Operation.MediaInfo.Stream.Video).to.include({ Width: '640', CodecName: 'h264' });
      expect(detail.Operation.MediaInfo.Stream.Audio.CodecName).to.equal('aac');
    });

    it('runs Snapshot and Animation presets: five frames every 2 s at 320x180, a 320x180 gif of a frame every 10 s', async () => {
      const shots = await waitForState(api, await submit(api, job('Snapshot', 't01d40e440761448fc8c538fb8d5a5b81e', 'output/preset-${Number}.jpg')), undefined, 60_000);
      expect(shots.State, shots.Message).to.equal('Success');
      expect(shots.Operation.TemplateName).to.equal('snapshot_320 * 180_1');
      expect(shots.Operation.MediaResult.OutputFile.ObjectName).to.deep.equal(['0.jpg', '1.jpg', '2.jpg', '3.jpg', '4.jpg']);
      const frame = await sharp(await api.service.storage.get(BUCKET, 'output/preset-0.jpg')).metadata();
      expect([frame.width, frame.height, frame.format]).to.deep.equal([320, 180, 'jpeg']);

      const gif = await waitForState(api, await submit(api, job('Animation', 't0341b0ab2b8a340ff826e9cb4f3a7baea', 'output/preset.gif')), undefined, 60_000);
      expect(gif.State, gif.Message).to.equal('Success');
      expect(gif.Operation.TemplateName).to.equal('gif_320 * 180_2');
      const meta = await sharp(await api.service.storage.get(BUCKET, 'output/preset.gif'), { animated: true }).metadata();
      // A 12 s input sampled once every 10 s.
      expect([meta.format, meta.width, meta.pageHeight ?? meta.height]).to.deep.equal(['gif', 320, 180]);
      expect(meta.pages ?? 1).to.be.within(1, 2);
    });

    it('refuses a preset of another Tag, and updating or deleting a preset', async () => {
      const wrongTag = await api.request('POST', '/jobs', { body: job('Animation', 't04e1ab86554984f1aa17c062fbf6c007c', 'output/x.gif') });
      expect(wrongTag.status).to.equal(400);
      expect(wrongTag.xml.Error.Message).to.match(/TemplateId t04e1ab86554984f1aa17c062fbf6c007c does not exist/);
      for (const method of ['PUT', 'DELETE']) {
        const body = method === 'PUT' ? '<Request><Tag>Transcode</Tag><Name>x</Name><Container><Format>mp4</Format></Container></Request>' : undefined;
        const res = await api.request(method, '/template/t04e1ab86554984f1aa17c062fbf6c007c', { body });
        expect(res.status, method).to.equal(400);
        expect(res.xml.Error.Message).to.match(/is an Official template/);
      }
      expect((await official('&ids=t04e1ab86554984f1aa17c062fbf6c007c')).templates[0]!.Name).to.equal('MP4-SD');
    });
  });
});

import { expect } from 'chai';
import sharp from 'sharp';
import { BUCKET, putFixture, submit, waitForState } from '../helpers/jobs.js';
import { asArray, startTestService, type TestService } from '../helpers/service.js';

describe('Transcode, Snapshot and Animation templates', function () {
  this.timeout(60_000);
  let api: TestService;
  before(async () => {
    api = await startTestService({ worker: true });
    await putFixture(api, 'fixtures/media/clip-12s.mp4', 'input/test.mp4');
  });
  after(async () => { await api.stop(); });

  async function create(body: string): Promise<Record<string, any>> {
    const res = await api.request('POST', '/template', { body });
    expect(res.status, res.text).to.equal(200);
    return res.xml.Response.Template as Record<string, any>;
  }

  function job(tag: string, templateId: string, object: string): string {
    return `<Request><Tag>${tag}</Tag><Input><Object>input/test.mp4</Object></Input><Operation><TemplateId>${templateId}</TemplateId>`
      + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output></Operation></Request>`;
  }

  it('stores a Transcode template (parameters flat, answered in TransTpl) and a job naming it runs it, echoing TemplateName', async () => {
    const template = await create('<Request><Tag>Transcode</Tag><Name>mp4-128</Name><Container><Format>mp4</Format></Container>'
      + '<Video><Codec>H.264</Codec><Width>128</Width><Preset>ultrafast</Preset></Video><Audio><Codec>aac</Codec></Audio><TimeInterval><Start>1</Start><Duration>3</Duration></TimeInterval></Request>');
    expect(template).to.include({ Tag: 'Transcode', Name: 'mp4-128', Category: 'Custom' });
    expect(template.TransTpl.Video).to.include({ Codec: 'H.264', Width: '128' });
    const listed = await api.request('GET', '/template?tag=Transcode');
    expect(asArray(listed.xml.Response.TemplateList).map((t) => t.TemplateId)).to.deep.equal([template.TemplateId]);

    const detail = await waitForState(api, await submit(api, job('Transcode', template.TemplateId as string, 'output/t.mp4')));
    expect(detail.State, detail.Message).to.equal('Success');
    expect(detail.Operation).to.include({ TemplateId: template.TemplateId, TemplateName: 'mp4-128' });
    expect(detail.Operation.MediaInfo.Stream.Video.Width).to.equal('128');
    expect(Number(detail.Operation.MediaInfo.Format.Duration)).to.be.closeTo(3, 0.15);
  });

  it('stores Snapshot (in <Snapshot>) and Animation (in TransTpl) templates that jobs run', async () => {
    const snapshot = await create('<Request><Tag>Snapshot</Tag><Name>three</Name><Snapshot><Mode>Average</Mode><Count>3</Count><Width>128</Width></Snapshot></Request>');
    expect(snapshot.Snapshot).to.include({ Mode: 'Average', Count: '3' });
    const shots = await waitForState(api, await submit(api, job('Snapshot', snapshot.TemplateId as string, 'output/tpl-${Number}.jpg')));
    expect(shots.State, shots.Message).to.equal('Success');
    expect(shots.Operation.MediaResult.OutputFile.ObjectName).to.deep.equal(['0.jpg', '1.jpg', '2.jpg']);

    const animation = await create('<Request><Tag>Animation</Tag><Name>gif</Name><Container><Format>gif</Format></Container>'
      + '<Video><Codec>gif</Codec><Width>128</Width><AnimateFramesPerSecond>1</AnimateFramesPerSecond></Video><TimeInterval><Start>0</Start><Duration>3</Duration></TimeInterval></Request>');
    expect(animation.TransTpl.Container.Format).to.equal('gif');
    const gif = await waitForState(api, await submit(api, job('Animation', animation.TemplateId as string, 'output/tpl.gif')));
    expect(gif.State, gif.Message).to.equal('Success');
    expect((await sharp(await api.service.storage.get(BUCKET, 'output/tpl.gif'), { animated: true }).metadata()).pages).to.equal(3);
  });

  it('refuses a template no job could run, naming the element, and a TemplateId of another Tag', async () => {
    for (const [body, message] of [
      ['<Request><Tag>Transcode</Tag><Name>x</Name><Container><Format>webm</Format></Container><Video><Codec>H.264</Codec></Video></Request>', /Video\/Codec H.264 cannot go into/],
      ['<Request><Tag>Snapshot</Tag><Name>x</Name><Snapshot><Mode>Interval</Mode></Snapshot></Request>', /Count is required/],
      ['<Request><Tag>Animation</Tag><Name>x</Name><Container><Format>mp4</Format></Container></Request>', /Container\/Format must be gif, hgif or webp/],
    ] as const) {
      const res = await api.request('POST', '/template', { body });
      expect(res.status, body).to.equal(400);
      expect(res.xml.Error.Message).to.match(message);
    }
    const snapshot = await create('<Request><Tag>Snapshot</Tag><Name>one</Name><Snapshot><Count>1</Count></Snapshot></Request>');
    const res = await api.request('POST', '/jobs', { body: job('Transcode', snapshot.TemplateId as string, 'output/x.mp4') });
    expect(res.status).to.equal(400);
  });
});

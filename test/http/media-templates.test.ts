import { expect } from 'chai';
import sharp from 'sharp';
import { BUCKET, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import { asArray, type TestService } from '../helpers/service.js';

describe('Transcode, Snapshot and Animation templates', function () {
  this.timeout(60_000);
  let api: TestService;
  before(async () => {
    api = await startWorkerService({ 'input/test.mp4': 'fixtures/media/clip-12s.mp4' });
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

  it('stores Concat templates that Concat jobs run, and keeps Watermark and VoiceSeparate templates in CI\'s shapes', async () => {
    const concat = await create('<Request><Tag>Concat</Tag><Name>join</Name><ConcatTemplate>'
      + '<ConcatFragment><Url>input/test.mp4</Url><StartTime>0</StartTime><EndTime>2</EndTime></ConcatFragment>'
      + '<ConcatFragment><Url>input/test.mp4</Url><StartTime>5</StartTime><EndTime>6</EndTime></ConcatFragment>'
      + '<Container><Format>mp3</Format></Container><Audio><Codec>mp3</Codec></Audio></ConcatTemplate></Request>');
    expect(concat.ConcatTemplate.Container.Format).to.equal('mp3');
    const joined = await waitForState(api, await submit(api, `<Request><Tag>Concat</Tag><Operation><TemplateId>${concat.TemplateId as string}</TemplateId>`
      + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>output/joined.mp3</Object></Output></Operation></Request>`));
    expect(joined.State, joined.Message).to.equal('Success');
    expect(Number(joined.Operation.MediaInfo.Format.Duration)).to.be.closeTo(3, 0.15);

    const watermark = await create('<Request><Tag>Watermark</Tag><Name>logo</Name><Watermark><Type>Text</Type><Pos>TopRight</Pos><LocMode>Absolute</LocMode>'
      + '<Dx>8</Dx><Dy>8</Dy><Text><Text>demo</Text><FontSize>20</FontSize><FontType>simfang.ttf</FontType><FontColor>0xFFFFFF</FontColor><Transparency>80</Transparency></Text></Watermark></Request>');
    expect(watermark.Watermark.Text.Text).to.equal('demo');
    const voice = await create('<Request><Tag>VoiceSeparate</Tag><Name>vocals</Name><AudioMode>IsAudio</AudioMode><AudioConfig><Codec>mp3</Codec></AudioConfig></Request>');
    expect(voice.VoiceSeparate).to.deep.equal({ AudioMode: 'IsAudio', AudioConfig: { Codec: 'mp3' } });
    const listed = await api.request('GET', '/template?tag=VoiceSeparate');
    expect(asArray(listed.xml.Response.TemplateList).map((t) => t.Name)).to.deep.equal(['vocals']);
    const bad = await api.request('POST', '/template', { body: '<Request><Tag>SmartCover</Tag><Name>x</Name><SmartCover><Count>20</Count></SmartCover></Request>' });
    expect(bad.status).to.equal(400);
    expect(bad.xml.Error.Message).to.match(/SmartCover\/Count/);
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

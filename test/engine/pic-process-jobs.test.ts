import { expect } from 'chai';
import sharp from 'sharp';
import { createHash } from 'node:crypto';
import { BUCKET, putFixture, submit, waitForState } from '../helpers/jobs.js';
import { startTestService, type TestService } from '../helpers/service.js';

function picRequest(input: string, rule: string, output: string, isPicInfo = 'true', templateId?: string): string {
  const operation = templateId ? `<TemplateId>${templateId}</TemplateId>` : `<PicProcess><IsPicInfo>${isPicInfo}</IsPicInfo><ProcessRule>${rule}</ProcessRule></PicProcess>`;
  return `<Request><Tag>PicProcess</Tag><Input><Object>${input}</Object></Input><Operation>${operation}`
    + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${output}</Object></Output></Operation></Request>`;
}

describe('PicProcess jobs through the API and a worker', () => {
  let api: TestService;
  before(async () => {
    api = await startTestService({ worker: true });
    await putFixture(api, 'fixtures/images/photo-orient6.jpg', 'input/photo.jpg');
    await putFixture(api, 'fixtures/images/bomb.png', 'input/bomb.png');
    await putFixture(api, 'fixtures/images/truncated.jpg', 'input/truncated.jpg');
  });
  after(async () => { await api.stop(); });

  it('rotates by 90 degrees and reports PicProcessResult in CI shape', async () => {
    const source = await sharp(await api.service.storage.get(BUCKET, 'input/photo.jpg')).metadata();
    const detail = await waitForState(api, await submit(api, picRequest('input/photo.jpg', 'imageMogr2/rotate/90', 'output/rotated.jpg')));
    expect(detail.State, detail.Message).to.equal('Success');
    const output = await api.service.storage.get(BUCKET, 'output/rotated.jpg');
    const meta = await sharp(output).metadata();
    expect(meta.format).to.equal('jpeg');
    expect([meta.width, meta.height]).to.deep.equal([source.height, source.width]);
    const result = detail.Operation.PicProcessResult;
    expect(result.ObjectName).to.equal('output/rotated.jpg');
    expect(result.OriginalInfo.ImageInfo).to.include({ Format: 'JPEG', Width: String(source.width), Height: String(source.height), Orientation: '6' });
    expect(result.OriginalInfo.ImageInfo.Ave).to.match(/^0x[0-9a-f]{6}$/i);
    expect(result.ProcessResult).to.include({ Format: 'JPEG', Width: String(meta.width), Height: String(meta.height), Size: String(output.length) });
    expect(result.ProcessResult.Etag).to.equal(`"${createHash('md5').update(output).digest('hex')}"`);
    expect(result.UploadResult.ProcessResults.Object.Key).to.equal('output/rotated.jpg');
  });

  it('halves and converts to WebP with a piped rule', async () => {
    const source = await sharp(await api.service.storage.get(BUCKET, 'input/photo.jpg')).metadata();
    const detail = await waitForState(api, await submit(api, picRequest('input/photo.jpg', 'imageMogr2/thumbnail/!50p|imageMogr2/format/webp', 'output/half.webp', 'false')));
    expect(detail.State, detail.Message).to.equal('Success');
    const meta = await sharp(await api.service.storage.get(BUCKET, 'output/half.webp')).metadata();
    expect(meta.format).to.equal('webp');
    expect(meta.width).to.equal(Math.round(source.width! / 2));
    expect(meta.height).to.equal(Math.round(source.height! / 2));
    expect(detail.Operation.PicProcessResult).to.not.have.property('OriginalInfo');
    expect(detail.Operation.PicProcessResult.ProcessResult.Format).to.equal('WEBP');
  });

  it('runs a template\'s rule when the job names its TemplateId', async () => {
    const created = await api.request('POST', '/template', { body: '<Request><Tag>PicProcess</Tag><Name>w100</Name><PicProcess><IsPicInfo>false</IsPicInfo><ProcessRule>imageMogr2/thumbnail/100x</ProcessRule></PicProcess></Request>' });
    expect(created.status, created.text).to.equal(200);
    const templateId = created.xml.Response.Template.TemplateId;
    const detail = await waitForState(api, await submit(api, picRequest('input/photo.jpg', '', 'output/w100.jpg', 'false', templateId)));
    expect(detail.State, detail.Message).to.equal('Success');
    expect(detail.Operation.TemplateName).to.equal('w100');
    expect((await sharp(await api.service.storage.get(BUCKET, 'output/w100.jpg')).metadata()).width).to.equal(100);
  });

  it('fails a decompression bomb and a truncated JPEG cleanly, and the worker goes on', async () => {
    const bomb = await waitForState(api, await submit(api, picRequest('input/bomb.png', 'imageMogr2/rotate/90', 'output/bomb.png')));
    expect(bomb.State).to.equal('Failed');
    expect(bomb.Code).to.equal('ImageTooLarge');
    const truncated = await waitForState(api, await submit(api, picRequest('input/truncated.jpg', 'imageMogr2/rotate/90', 'output/t.jpg')));
    expect(truncated.State).to.equal('Failed');
    expect(truncated.Code).to.equal('InvalidMedia');
    const next = await waitForState(api, await submit(api, picRequest('input/photo.jpg', 'imageMogr2/thumbnail/64x', 'output/after.jpg')));
    expect(next.State).to.equal('Success');
  });

  it('fails a rule it does not support with InvalidArgument naming the segment', async () => {
    const detail = await waitForState(api, await submit(api, picRequest('input/photo.jpg', 'imageMogr2/rotate/90/frobnicate/3', 'output/x.jpg')));
    expect(detail.State).to.equal('Failed');
    expect(detail.Code).to.equal('InvalidArgument');
    expect(detail.Message).to.include('frobnicate');
  });
});

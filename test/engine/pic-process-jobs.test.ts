import { expect } from 'chai';
import sharp from 'sharp';
import { createHash } from 'node:crypto';
import { BUCKET, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import type { TestService } from '../helpers/service.js';

function picRequest(input: string, rule: string, output: string, isPicInfo = 'true', templateId?: string): string {
  const operation = templateId ? `<TemplateId>${templateId}</TemplateId>` : `<PicProcess><IsPicInfo>${isPicInfo}</IsPicInfo><ProcessRule>${rule}</ProcessRule></PicProcess>`;
  return `<Request><Tag>PicProcess</Tag><Input><Object>${input}</Object></Input><Operation>${operation}`
    + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${output}</Object></Output></Operation></Request>`;
}

describe('PicProcess jobs through the API and a worker', () => {
  let api: TestService;
  before(async () => {
    api = await startWorkerService({
      'input/photo.jpg': 'fixtures/images/photo-orient6.jpg',
      'input/bomb.png': 'fixtures/images/bomb.png',
      'input/truncated.jpg': 'fixtures/images/truncated.jpg',
    });
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

  it('refuses at submit a rule it does not support, with InvalidArgument naming the segment', async () => {
    const res = await api.request('POST', '/jobs', { body: picRequest('input/photo.jpg', 'imageMogr2/rotate/90/frobnicate/3', 'output/x.jpg') });
    expect(res.status, res.text).to.equal(400);
    expect(res.xml.Error.Code).to.equal('InvalidArgument');
    expect(res.xml.Error.Message).to.include('Request/Operation/PicProcess/ProcessRule').and.include('frobnicate');
  });

  it('refuses at submit an unknown placeholder and ${Number} in Output/Object, storing no job', async () => {
    for (const [output, message] of [['out/${Unknown}.jpg', 'has an unknown placeholder ${Unknown}'], ['out/${Number}.jpg', '${Number} is for Tags that write several objects']]) {
      const res = await api.request('POST', '/jobs', { body: picRequest('input/photo.jpg', 'imageMogr2/rotate/90', output) });
      expect(res.status, res.text).to.equal(400);
      expect(res.xml.Error.Message).to.include('Request/Operation/Output/Object').and.include(message);
    }
  });

  describe('bounded work: rules over the limits are refused at submit with InvalidArgument naming the limit', () => {
    const refused: [string, string, string][] = [
      ['the blur rule of issue 20', 'imageMogr2/thumbnail/9999x9999' + '|imageMogr2/blur/50x50'.repeat(91), 'the rule has 92 image operations; at most 20 are allowed in one rule'],
      ['100 rotations', 'imageMogr2' + '/rotate/1'.repeat(100), 'the rule has 100 image operations; at most 20 are allowed'],
      ['21 image operations', 'imageMogr2' + '/flip/vertical'.repeat(21), 'the rule has 21 image operations; at most 20 are allowed'],
      ['6 filters', 'imageMogr2/blur/50x50/sharpen/300/iradius/10/rradius/10/rotate/45/blur/1x1', 'the rule has 6 filters (blur, sharpen, iradius, rradius, rotate by other than a right angle); at most 5 are allowed'],
      ['a blur radius over 50', 'imageMogr2/blur/51x10', 'the radius must be from 1 to 50 in segment "blur/51x10"'],
      ['a blur sigma over 50', 'imageMogr2/blur/10x51', 'sigma must be greater than 0 and at most 50 in segment "blur/10x51"'],
      ['a sharpen over 300', 'imageMogr2/sharpen/301', 'sharpen must be from 10 to 300'],
      ['a thumbnail box over the output pixels', 'imageMogr2/thumbnail/9999x9999', 'thumbnail/9999x9999 asks for up to 99980001 pixels; the output limit is 50000000 pixels'],
      ['a thumbnail side over the output side', 'imageMogr2/thumbnail/12000x', 'thumbnail/12000x asks for a side of 12000 pixels; the output limit is 9999 pixels per side'],
    ];
    for (const [what, rule, message] of refused) {
      it(`refuses ${what}`, async () => {
        const res = await api.request('POST', '/jobs', { body: picRequest('input/photo.jpg', rule, 'output/refused.jpg') });
        expect(res.status, res.text).to.equal(400);
        expect(res.xml.Error.Code).to.equal('InvalidArgument');
        expect(res.xml.Error.Message).to.include(`Request/Operation/PicProcess/ProcessRule: ${message}`);
      });
    }

    it('refuses a job whose template asks for more than the output limits, naming the template', async () => {
      // Its rule parses (a template is checked when stored), but the output limits are the jobs'.
      const created = await api.request('POST', '/template', { body: '<Request><Tag>PicProcess</Tag><Name>huge</Name><PicProcess><ProcessRule>imageMogr2/thumbnail/9999x9999</ProcessRule></PicProcess></Request>' });
      expect(created.status, created.text).to.equal(200);
      const templateId = created.xml.Response.Template.TemplateId as string;
      const res = await api.request('POST', '/jobs', { body: picRequest('input/photo.jpg', '', 'output/refused.jpg', 'false', templateId) });
      expect(res.status, res.text).to.equal(400);
      expect(res.xml.Error.Message).to.include(`Request/Operation/TemplateId ${templateId}: ProcessRule: thumbnail/9999x9999 asks for up to 99980001 pixels`);
    });

    it('refuses a template over the operation limit when it is stored', async () => {
      const res = await api.request('POST', '/template', { body: `<Request><Tag>PicProcess</Tag><Name>blurs</Name><PicProcess><ProcessRule>imageMogr2${'/blur/50x50'.repeat(6)}</ProcessRule></PicProcess></Request>` });
      expect(res.status, res.text).to.equal(400);
      expect(res.xml.Error.Message).to.include('6 filters');
    });

    it('runs a rule at the limits: 20 operations, 5 filters', async () => {
      const rule = 'imageMogr2/thumbnail/400x/blur/3x2/sharpen/70/rotate/10/iradius/50/rradius/10' + '/flip/vertical'.repeat(14) + '/format/png/quality/80';
      const detail = await waitForState(api, await submit(api, picRequest('input/photo.jpg', rule, 'output/limits.png', 'false')));
      expect(detail.State, detail.Message).to.equal('Success');
    });
  });

  describe('permanent storage refusals end the job at once', () => {
    async function attempts(jobId: string): Promise<number> {
      const row = await api.service.db.kysely.selectFrom('jobs').select('attempts').where('job_id', '=', jobId).executeTakeFirstOrThrow();
      return Number(row.attempts);
    }

    it('fails an output that collides with a folder, or lies below an object, as InvalidArgument on the first attempt', async () => {
      await api.service.storage.put(BUCKET, 'output/taken/inside.jpg', Buffer.from('x'));
      for (const output of ['output/taken', 'input/photo.jpg/out.jpg']) {
        const started = Date.now();
        const detail = await waitForState(api, await submit(api, picRequest('input/photo.jpg', 'imageMogr2/rotate/90', output, 'false')));
        expect(detail.State, output).to.equal('Failed');
        expect(detail.Code, detail.Message).to.equal('InvalidArgument');
        expect(detail.Message).to.include(`The object ${output} cannot be written`).and.not.include(api.config.dataDir);
        expect(await attempts(detail.JobId as string), output).to.equal(1);
        expect(Date.now() - started, output).to.be.below(3000);
      }
      expect((await api.service.storage.get(BUCKET, 'input/photo.jpg')).length).to.be.above(1000);
    });
  });
});

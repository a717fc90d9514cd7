import { expect } from 'chai';
import { asArray, startTestService, type TestResponse, type TestService } from '../helpers/service.js';

const TEMPLATE_ID = /^t1[0-9a-f]{32}$/;
const CI_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}$/;
const XML = { 'content-type': 'application/xml' };

/** `isPicInfo: null` leaves the element out. */
function templateBody(name: string, rule = 'imageMogr2/rotate/90', isPicInfo: string | null = 'true'): string {
  const info = isPicInfo === null ? '' : `<IsPicInfo>${isPicInfo}</IsPicInfo>`;
  return `<?xml version="1.0" encoding="utf-8"?>\n<Request><Tag>PicProcess</Tag><Name>${name}</Name><PicProcess>${info}<ProcessRule>${rule}</ProcessRule></PicProcess></Request>`;
}

function picJob(operation: string): string {
  return `<Request><Tag>PicProcess</Tag><Input><Object>in/a.jpg</Object></Input><Operation>${operation}<Output><Region>ap-local</Region><Bucket>local-1250000000</Bucket><Object>out/a.jpg</Object></Output></Operation></Request>`;
}

/** Each test works in a bucket of its own, so list counts do not depend on test order. */
let bucketSeq = 0;
function freshHost(): string {
  bucketSeq += 1;
  return `tpl${bucketSeq}-1250000000.ci.ap-local.myqcloud.com`;
}

function expectInvalidArgument(res: TestResponse, message: RegExp): void {
  expect(res.status, res.text).to.equal(400);
  expect(res.xml.Error.Code).to.equal('InvalidArgument');
  expect(res.xml.Error.Message).to.match(message);
  for (const field of ['Code', 'Message', 'Resource', 'RequestId', 'TraceId']) expect(res.xml.Error[field]).to.be.a('string').and.not.empty;
}

describe('templates API', () => {
  let api: TestService;
  before(async () => { api = await startTestService(); });
  after(async () => { await api.stop(); });

  async function create(host: string, name: string, rule?: string): Promise<Record<string, any>> {
    const res = await api.request('POST', '/template', { body: templateBody(name, rule), headers: { ...XML, host } });
    expect(res.status, res.text).to.equal(200);
    return res.xml.Response.Template;
  }

  async function list(host: string, query = ''): Promise<{ res: TestResponse; templates: Array<Record<string, any>> }> {
    const res = await api.request('GET', `/template${query}`, { headers: { host } });
    expect(res.status, res.text).to.equal(200);
    return { res, templates: asArray(res.xml.Response.TemplateList) };
  }

  describe('POST /template', () => {
    it('creates a PicProcess template and answers in CI shape', async () => {
      const host = freshHost();
      const res = await api.request('POST', '/template', { body: templateBody('缩略图_thumb-1*'), headers: { ...XML, host } });
      expect(res.status, res.text).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/application\/xml/);
      expect(res.xml.Response.RequestId).to.equal(res.headers.get('x-ci-request-id'));
      const template = res.xml.Response.Template;
      expect(Object.keys(template)).to.deep.equal(['Tag', 'TemplateId', 'Name', 'BucketId', 'Category', 'PicProcess', 'CreateTime', 'UpdateTime']);
      expect(template.Tag).to.equal('PicProcess');
      expect(template.TemplateId).to.match(TEMPLATE_ID);
      expect(template.Name).to.equal('缩略图_thumb-1*');
      expect(template.BucketId).to.equal(host.split('.')[0]);
      expect(template.Category).to.equal('Custom');
      expect(template.PicProcess).to.deep.equal({ IsPicInfo: 'true', ProcessRule: 'imageMogr2/rotate/90' });
      expect(template.CreateTime).to.match(CI_TIME);
      expect(template.UpdateTime).to.equal(template.CreateTime);
    });

    it('stores IsPicInfo as false when it is omitted or empty', async () => {
      for (const isPicInfo of [null, '']) {
        const res = await api.request('POST', '/template', { body: templateBody('noinfo', 'imageMogr2/strip', isPicInfo), headers: { host: freshHost() } });
        expect(res.status, res.text).to.equal(200);
        expect(res.xml.Response.Template.PicProcess).to.deep.equal({ IsPicInfo: 'false', ProcessRule: 'imageMogr2/strip' });
      }
    });

    it('accepts a 64-character name', async () => {
      const template = await create(freshHost(), 'n'.repeat(60) + '图片处理');
      expect(template.Name).to.have.length(64);
    });

    const invalid: Array<[string, string, RegExp]> = [
      ['a Tag with no template here', '<Request><Tag>VideoTag</Tag><Name>a</Name><VideoTag/></Request>', /Request\/Tag "VideoTag" is not supported; supported template Tags: PicProcess/],
      ['a missing Tag', '<Request><Name>a</Name><PicProcess><ProcessRule>imageMogr2/strip</ProcessRule></PicProcess></Request>', /Request\/Tag is required; supported template Tags: PicProcess/],
      ['a missing Name', '<Request><Tag>PicProcess</Tag><PicProcess><ProcessRule>imageMogr2/strip</ProcessRule></PicProcess></Request>', /Request\/Name is required/],
      ['an empty Name', templateBody(''), /Request\/Name must not be empty/],
      ['a 65-character Name', templateBody('n'.repeat(65)), /Request\/Name must be at most 64 characters/],
      ['a Name with a space', templateBody('my template'), /Request\/Name may contain only Chinese characters, English letters, digits, _, - and \*/],
      ['a Name with a dot', templateBody('a.b'), /Request\/Name may contain only/],
      ['a missing PicProcess', '<Request><Tag>PicProcess</Tag><Name>a</Name></Request>', /Request\/PicProcess is required/],
      ['a missing ProcessRule', '<Request><Tag>PicProcess</Tag><Name>a</Name><PicProcess><IsPicInfo>true</IsPicInfo></PicProcess></Request>', /Request\/PicProcess\/ProcessRule is required/],
      ['IsPicInfo yes', templateBody('a', 'imageMogr2/strip', 'yes'), /Request\/PicProcess\/IsPicInfo must be true or false/],
      ['an unknown element', '<Request><Tag>PicProcess</Tag><Name>a</Name><PicProcess><ProcessRule>imageMogr2/strip</ProcessRule></PicProcess><Color>red</Color></Request>', /Request\/Color is not a supported element/],
      ['an unknown imageMogr2 operation', templateBody('a', 'imageMogr2/spin/90'), /Request\/PicProcess\/ProcessRule: unknown imageMogr2 operation "spin"/],
      ['a rule for another processor', templateBody('a', 'imageView2/1/w/100'), /Request\/PicProcess\/ProcessRule: .*imageView2/],
    ];
    for (const [what, body, message] of invalid) {
      it(`refuses ${what} with InvalidArgument and stores nothing`, async () => {
        const host = freshHost();
        const res = await api.request('POST', '/template', { body, headers: { ...XML, host } });
        expectInvalidArgument(res, message);
        expect((await list(host)).res.xml.Response.TotalCount).to.equal('0');
      });
    }

    it('refuses a body that is not XML with MalformedXML', async () => {
      const res = await api.request('POST', '/template', { body: '<Request><Tag>PicProcess</Tag>', headers: { host: freshHost() } });
      expect(res.status).to.equal(400);
      expect(res.xml.Error.Code).to.equal('MalformedXML');
    });
  });

  describe('GET /template', () => {
    it('lists every tag with defaults when given what the Python SDK sends', async () => {
      const host = freshHost();
      const a = await create(host, 'alpha');
      const b = await create(host, 'beta');
      const { res, templates } = await list(host, '?category=Custom&ids=&name=&pageNumber=1&pageSize=10');
      expect(Object.keys(res.xml.Response)).to.deep.equal(['RequestId', 'TotalCount', 'PageNumber', 'PageSize', 'TemplateList']);
      expect(res.xml.Response).to.include({ TotalCount: '2', PageNumber: '1', PageSize: '10' });
      expect(templates).to.deep.equal([a, b]);
    });

    it('treats empty parameters as defaults', async () => {
      const host = freshHost();
      await create(host, 'alpha');
      const { res, templates } = await list(host, '?tag=&category=&ids=&name=&pageNumber=&pageSize=');
      expect(res.xml.Response).to.include({ TotalCount: '1', PageNumber: '1', PageSize: '10' });
      expect(templates).to.have.length(1);
    });

    it('answers an empty list without TemplateList for a bucket with no templates', async () => {
      const { res, templates } = await list(freshHost());
      expect(res.xml.Response).to.include({ TotalCount: '0', PageNumber: '1', PageSize: '10' });
      expect(templates).to.deep.equal([]);
      expect(res.text).not.to.include('TemplateList');
    });

    it('filters by tag, ids and name prefix', async () => {
      const host = freshHost();
      const a = await create(host, 'thumb_small');
      const b = await create(host, 'thumb_large');
      const c = await create(host, 'rotate');
      expect((await list(host, '?tag=PicProcess')).templates.map((t) => t.Name)).to.deep.equal(['thumb_small', 'thumb_large', 'rotate']);
      expect((await list(host, '?tag=Transcode')).templates).to.deep.equal([]);
      const byIds = await list(host, `?ids=${a.TemplateId},${c.TemplateId},t1${'0'.repeat(32)}`);
      expect(byIds.templates.map((t) => t.TemplateId)).to.deep.equal([a.TemplateId, c.TemplateId]);
      expect(byIds.res.xml.Response.TotalCount).to.equal('2');
      expect((await list(host, '?name=thumb')).templates.map((t) => t.TemplateId)).to.deep.equal([a.TemplateId, b.TemplateId]);
      // A prefix, as CI documents it, and LIKE wildcards are literal.
      expect((await list(host, '?name=small')).templates).to.deep.equal([]);
      expect((await list(host, '?name=thumb%25')).templates).to.deep.equal([]);
      expect((await list(host, '?name=thumb_s')).templates.map((t) => t.Name)).to.deep.equal(['thumb_small']);
    });

    it('lists no PicProcess template for category Official, and none of the bucket\'s own', async () => {
      const host = freshHost();
      await create(host, 'alpha');
      const { res, templates } = await list(host, '?category=Official&tag=PicProcess');
      expect(res.xml.Response.TotalCount).to.equal('0');
      expect(templates).to.deep.equal([]);
    });

    it('pages with pageNumber and pageSize, TotalCount counting every match', async () => {
      const host = freshHost();
      const names = ['p1', 'p2', 'p3', 'p4', 'p5'];
      for (const name of names) await create(host, name);
      const seen: string[] = [];
      for (const pageNumber of [1, 2, 3]) {
        const { res, templates } = await list(host, `?pageNumber=${pageNumber}&pageSize=2`);
        expect(res.xml.Response).to.include({ TotalCount: '5', PageNumber: String(pageNumber), PageSize: '2' });
        seen.push(...templates.map((t) => t.Name));
      }
      expect(seen).to.deep.equal(names);
      const beyond = await list(host, '?pageNumber=4&pageSize=2');
      expect(beyond.res.xml.Response.TotalCount).to.equal('5');
      expect(beyond.templates).to.deep.equal([]);
    });

    const badQueries: Array<[string, RegExp]> = [
      ['category=Shared', /category must be Custom or Official/],
      ['pageSize=0', /pageSize must be an integer from 1 to 100/],
      ['pageSize=101', /pageSize must be an integer from 1 to 100/],
      ['pageNumber=-1', /pageNumber must be an integer/],
      ['pageNumber=x', /pageNumber must be an integer/],
      ['name=a&name=b', /name may be given only once/],
      [`ids=${Array.from({ length: 101 }, (_, i) => `t1${String(i).padStart(32, '0')}`).join(',')}`, /At most 100 ids/],
    ];
    for (const [query, message] of badQueries) {
      it(`refuses ${query.slice(0, 40)} with InvalidArgument`, async () => {
        expectInvalidArgument(await api.request('GET', `/template?${query}`, { headers: { host: freshHost() } }), message);
      });
    }
  });

  describe('PUT /template/<id>', () => {
    it('replaces name and parameters, keeps id and CreateTime, and moves UpdateTime', async () => {
      const host = freshHost();
      const created = await create(host, 'before');
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const res = await api.request('PUT', `/template/${created.TemplateId}`, { body: templateBody('after', 'imageMogr2/thumbnail/!50p', 'false'), headers: { ...XML, host } });
      expect(res.status, res.text).to.equal(200);
      expect(Object.keys(res.xml.Response)).to.deep.equal(['RequestId', 'Template']);
      const updated = res.xml.Response.Template;
      expect(updated).to.include({ TemplateId: created.TemplateId, Name: 'after', Tag: 'PicProcess', Category: 'Custom', CreateTime: created.CreateTime });
      expect(updated.PicProcess).to.deep.equal({ IsPicInfo: 'false', ProcessRule: 'imageMogr2/thumbnail/!50p' });
      expect(updated.UpdateTime).to.match(CI_TIME).and.not.equal(created.UpdateTime);
      expect((await list(host)).templates).to.deep.equal([updated]);
    });

    it('refuses an unknown or malformed id with InvalidArgument', async () => {
      const host = freshHost();
      const unknown = `t1${'a'.repeat(32)}`;
      expectInvalidArgument(await api.request('PUT', `/template/${unknown}`, { body: templateBody('x'), headers: { host } }), new RegExp(`Template ${unknown} does not exist`));
      expectInvalidArgument(await api.request('PUT', '/template/nope', { body: templateBody('x'), headers: { host } }), /nope is not a template id/);
    });

    it('validates the body as create does and leaves the template unchanged', async () => {
      const host = freshHost();
      const created = await create(host, 'keep');
      expectInvalidArgument(await api.request('PUT', `/template/${created.TemplateId}`, { body: templateBody('keep', 'imageMogr2/rotate'), headers: { host } }), /ProcessRule: operation "rotate" needs a value/);
      expectInvalidArgument(await api.request('PUT', `/template/${created.TemplateId}`, { body: templateBody('bad name!'), headers: { host } }), /Request\/Name may contain only/);
      expectInvalidArgument(await api.request('PUT', `/template/${created.TemplateId}`, { body: '<Request><Tag>Snapshot</Tag><Name>x</Name></Request>', headers: { host } }), /Request\/Snapshot is required/);
      expect((await list(host)).templates).to.deep.equal([created]);
    });
  });

  describe('DELETE /template/<id>', () => {
    it('deletes the template and answers with its id', async () => {
      const host = freshHost();
      const a = await create(host, 'gone');
      const b = await create(host, 'stays');
      const res = await api.request('DELETE', `/template/${a.TemplateId}`, { headers: { host, 'content-length': '0' } });
      expect(res.status, res.text).to.equal(200);
      expect(Object.keys(res.xml.Response)).to.deep.equal(['RequestId', 'TemplateId']);
      expect(res.xml.Response.TemplateId).to.equal(a.TemplateId);
      expect((await list(host)).templates.map((t) => t.TemplateId)).to.deep.equal([b.TemplateId]);
      expectInvalidArgument(await api.request('DELETE', `/template/${a.TemplateId}`, { headers: { host } }), /does not exist/);
    });

    it('refuses a malformed id with InvalidArgument', async () => {
      expectInvalidArgument(await api.request('DELETE', '/template/t1xyz', { headers: { host: freshHost() } }), /t1xyz is not a template id/);
    });
  });

  describe('templates belong to one bucket', () => {
    it('hides a template from other buckets: list, update, delete and job submission', async () => {
      const owner = freshHost();
      const other = freshHost();
      const template = await create(owner, 'mine');
      expect((await list(other)).templates).to.deep.equal([]);
      expect((await list(other, `?ids=${template.TemplateId}`)).templates).to.deep.equal([]);
      expectInvalidArgument(await api.request('PUT', `/template/${template.TemplateId}`, { body: templateBody('theirs'), headers: { host: other } }), /does not exist/);
      expectInvalidArgument(await api.request('DELETE', `/template/${template.TemplateId}`, { headers: { host: other } }), /does not exist/);
      const job = await api.request('POST', '/jobs', { body: picJob(`<TemplateId>${template.TemplateId}</TemplateId>`), headers: { host: other } });
      expectInvalidArgument(job, /TemplateId .* does not exist/);
      expect((await list(owner)).templates).to.deep.equal([template]);
    });
  });

  describe('PicProcess jobs with a TemplateId', () => {
    it('echo TemplateId and TemplateName and no inline PicProcess', async () => {
      const host = freshHost();
      const template = await create(host, '旋转');
      const res = await api.request('POST', '/jobs', { body: picJob(`<TemplateId>${template.TemplateId}</TemplateId>`), headers: { host } });
      expect(res.status, res.text).to.equal(200);
      const operation = res.xml.Response.JobsDetail.Operation;
      expect(operation.TemplateId).to.equal(template.TemplateId);
      expect(operation.TemplateName).to.equal('旋转');
      expect(operation).not.to.have.property('PicProcess');
      const described = await api.request('GET', `/jobs/${res.xml.Response.JobsDetail.JobId}`, { headers: { host } });
      expect(described.xml.Response.JobsDetail.Operation).to.deep.equal(operation);
    });

    it('let the TemplateId win over an inline PicProcess', async () => {
      const host = freshHost();
      const template = await create(host, 'wins');
      const inline = '<PicProcess><IsPicInfo>true</IsPicInfo><ProcessRule>imageMogr2/rotate/180</ProcessRule></PicProcess>';
      const res = await api.request('POST', '/jobs', { body: picJob(`<TemplateId>${template.TemplateId}</TemplateId>${inline}`), headers: { host } });
      expect(res.status, res.text).to.equal(200);
      const operation = res.xml.Response.JobsDetail.Operation;
      expect(operation).to.include({ TemplateId: template.TemplateId, TemplateName: 'wins' });
      expect(operation).not.to.have.property('PicProcess');
    });

    it('refuse an unknown TemplateId at submit time, including a deleted one', async () => {
      const host = freshHost();
      const template = await create(host, 'short-lived');
      await api.request('DELETE', `/template/${template.TemplateId}`, { headers: { host } });
      const before = await api.request('GET', '/jobs?size=100&states=All&tag=PicProcess', { headers: { host } });
      const res = await api.request('POST', '/jobs', { body: picJob(`<TemplateId>${template.TemplateId}</TemplateId>`), headers: { host } });
      expectInvalidArgument(res, new RegExp(`Request/Operation/TemplateId ${template.TemplateId} does not exist`));
      const after = await api.request('GET', '/jobs?size=100&states=All&tag=PicProcess', { headers: { host } });
      expect(asArray(after.xml.Response.JobsDetail)).to.have.length(asArray(before.xml.Response.JobsDetail).length);
    });
  });
});

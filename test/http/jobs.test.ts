import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { asArray, startTestService, type TestService } from '../helpers/service.js';

const CREATE_MEDIAINFO = readFileSync('fixtures/xml/create-mediainfo.xml', 'utf8');
const JOB_ID = /^j[0-9a-f]{32}$/;
const CI_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}$/;

function picRequest(extra = ''): string {
  return `<Request><Tag>PicProcess</Tag><Input><Object>in/a.jpg</Object></Input><Operation><PicProcess><IsPicInfo>true</IsPicInfo><ProcessRule>imageMogr2/rotate/90</ProcessRule></PicProcess><Output><Region>ap-local</Region><Bucket>local-1250000000</Bucket><Object>out/a.jpg</Object></Output>${extra}</Operation></Request>`;
}

describe('jobs API', () => {
  let api: TestService;
  before(async () => { api = await startTestService(); });
  after(async () => { await api.stop(); });

  describe('POST /jobs', () => {
    it('answers a MediaInfo job in CI shape: Submitted, Success, unset times as -', async () => {
      const res = await api.request('POST', '/jobs', { body: CREATE_MEDIAINFO, headers: { 'content-type': 'application/xml' } });
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/application\/xml/);
      expect(res.headers.get('x-ci-request-id')).to.be.a('string').and.not.empty;
      const detail = res.xml.Response.JobsDetail;
      expect(detail.Code).to.equal('Success');
      expect(detail.Message).to.equal('');
      expect(detail.JobId).to.match(JOB_ID);
      expect(detail.State).to.equal('Submitted');
      expect(detail.CreationTime).to.match(CI_TIME);
      expect(detail.StartTime).to.equal('-');
      expect(detail.EndTime).to.equal('-');
      expect(detail.QueueId).to.match(/^p[0-9a-f]{32}$/);
      expect(detail.Tag).to.equal('MediaInfo');
      expect(detail.Input).to.deep.equal({ BucketId: 'local-1250000000', Object: 'input/demo.mp4', Region: 'ap-local' });
      expect(detail.Operation).to.deep.equal({ UserData: 'This is my data.', JobLevel: '0' });
      expect(res.text).to.include('<Message/>');
    });

    it('takes bucket and region from a CI Host header', async () => {
      const res = await api.request('POST', '/jobs', { body: CREATE_MEDIAINFO, headers: { host: 'photos-1300000000.ci.ap-chongqing.myqcloud.com' } });
      expect(res.status).to.equal(200);
      expect(res.xml.Response.JobsDetail.Input).to.include({ BucketId: 'photos-1300000000', Region: 'ap-chongqing' });
    });

    it('creates one job per Operation, in order, in the multi-Operation form', async () => {
      const body = `<Request><Input><Object>in/a.jpg</Object></Input>
        <Operation><Tag>MediaInfo</Tag><JobLevel>2</JobLevel></Operation>
        <Operation><Tag>PicProcess</Tag><PicProcess><ProcessRule>imageMogr2/rotate/90</ProcessRule></PicProcess><Output><Region>ap-local</Region><Bucket>local-1250000000</Bucket><Object>out/b.jpg</Object></Output></Operation>
        <Operation><Tag>MediaInfo</Tag><UserData>third</UserData></Operation></Request>`;
      const res = await api.request('POST', '/jobs', { body });
      expect(res.status).to.equal(200);
      const details = asArray(res.xml.Response.JobsDetail);
      expect(details.map((d: any) => d.Tag)).to.deep.equal(['MediaInfo', 'PicProcess', 'MediaInfo']);
      expect(details.map((d: any) => d.Operation.Tag)).to.deep.equal(['MediaInfo', 'PicProcess', 'MediaInfo']);
      expect(details[0].Operation.JobLevel).to.equal('2');
      expect(details[2].Operation.UserData).to.equal('third');
      expect(new Set(details.map((d: any) => d.JobId)).size).to.equal(3);
    });

    it('echoes PicProcess and Output, and decodes entities in UserData', async () => {
      const res = await api.request('POST', '/jobs', { body: picRequest('<UserData>pic &amp; &lt;rotate&gt; &quot;90&quot;</UserData><JobLevel>1</JobLevel>') });
      expect(res.status).to.equal(200);
      const op = res.xml.Response.JobsDetail.Operation;
      expect(op.PicProcess).to.deep.equal({ IsPicInfo: 'true', ProcessRule: 'imageMogr2/rotate/90' });
      expect(op.Output).to.deep.equal({ Region: 'ap-local', Bucket: 'local-1250000000', Object: 'out/a.jpg' });
      expect(res.text).to.include('<UserData>pic &amp; &lt;rotate&gt; &quot;90&quot;</UserData>');
    });

    const invalid: Array<[string, string, RegExp]> = [
      ['an unsupported Tag', '<Request><Tag>VideoTag</Tag><Input><Object>a.mp4</Object></Input></Request>', /supported Tags: MediaInfo, PicProcess/],
      ['a missing Input', '<Request><Tag>MediaInfo</Tag></Request>', /Request\/Input is required/],
      ['a missing Input/Object', '<Request><Tag>MediaInfo</Tag><Input/></Request>', /Input/],
      ['JobLevel 3', '<Request><Tag>MediaInfo</Tag><Input><Object>a.mp4</Object></Input><Operation><JobLevel>3</JobLevel></Operation></Request>', /JobLevel must be 0, 1 or 2/],
      ['UserData over 1024 characters', `<Request><Tag>MediaInfo</Tag><Input><Object>a.mp4</Object></Input><Operation><UserData>${'x'.repeat(1025)}</UserData></Operation></Request>`, /UserData must be at most 1024/],
      ['non-ASCII UserData', '<Request><Tag>MediaInfo</Tag><Input><Object>a.mp4</Object></Input><Operation><UserData>数据</UserData></Operation></Request>', /UserData must be printable ASCII/],
      ['CallBackFormat YAML', '<Request><Tag>MediaInfo</Tag><Input><Object>a.mp4</Object></Input><CallBackFormat>YAML</CallBackFormat></Request>', /CallBackFormat must be XML or JSON/],
      ['CallBackType TDMQ', '<Request><Tag>MediaInfo</Tag><Input><Object>a.mp4</Object></Input><CallBackType>TDMQ</CallBackType></Request>', /CallBackType must be Url/],
      ['a CallBack that is not http(s)', '<Request><Tag>MediaInfo</Tag><Input><Object>a.mp4</Object></Input><CallBack>ftp://x/y</CallBack></Request>', /CallBack/],
      ['an unknown QueueId', '<Request><Tag>MediaInfo</Tag><Input><Object>a.mp4</Object></Input><QueueId>p00000000000000000000000000000000</QueueId></Request>', /QueueId p0+ does not exist/],
      ['a malformed QueueId', '<Request><Tag>MediaInfo</Tag><Input><Object>a.mp4</Object></Input><QueueId>nope</QueueId></Request>', /QueueId/],
      ['PicProcess without Output', '<Request><Tag>PicProcess</Tag><Input><Object>a.jpg</Object></Input><Operation><PicProcess><ProcessRule>imageMogr2/rotate/90</ProcessRule></PicProcess></Operation></Request>', /Output is required/],
      ['PicProcess Output without Bucket', '<Request><Tag>PicProcess</Tag><Input><Object>a.jpg</Object></Input><Operation><PicProcess><ProcessRule>r</ProcessRule></PicProcess><Output><Region>ap-local</Region><Object>o.jpg</Object></Output></Operation></Request>', /Output\/Bucket is required/],
      ['PicProcess without rule or template', '<Request><Tag>PicProcess</Tag><Input><Object>a.jpg</Object></Input><Operation><Output><Region>ap-local</Region><Bucket>b-1</Bucket><Object>o.jpg</Object></Output></Operation></Request>', /TemplateId, PicProcess/],
      ['an unknown TemplateId', '<Request><Tag>PicProcess</Tag><Input><Object>a.jpg</Object></Input><Operation><TemplateId>t1000000000000000000000000000000ff</TemplateId><Output><Region>ap-local</Region><Bucket>b-1</Bucket><Object>o.jpg</Object></Output></Operation></Request>', /TemplateId .* does not exist/],
      ['a ../ input key', '<Request><Tag>MediaInfo</Tag><Input><Object>../../etc/passwd</Object></Input></Request>', /Input\/Object/],
      ['a ../ output key', picRequest().replace('out/a.jpg', 'out/../../x.jpg'), /Output\/Object/],
      ['seven Operations', `<Request><Input><Object>a.mp4</Object></Input>${'<Operation><Tag>MediaInfo</Tag></Operation>'.repeat(7)}</Request>`, /Operation must appear 1 to 6 times/],
      ['two Operations with a top-level Tag', '<Request><Tag>MediaInfo</Tag><Input><Object>a.mp4</Object></Input><Operation/><Operation/></Request>', /must appear once/],
      ['a multi-form Operation with an unknown Tag', '<Request><Input><Object>a.mp4</Object></Input><Operation><Tag>VideoTag</Tag></Operation></Request>', /Operation\[1\]\/Tag "VideoTag" is not supported/],
    ];
    for (const [what, body, message] of invalid) {
      it(`refuses ${what} with InvalidArgument and stores nothing`, async () => {
        const before = await api.request('GET', '/jobs?size=100&states=All');
        const res = await api.request('POST', '/jobs', { body });
        expect(res.status, res.text).to.equal(400);
        expect(res.xml.Error.Code).to.equal('InvalidArgument');
        expect(res.xml.Error.Message).to.match(message);
        for (const field of ['Code', 'Message', 'Resource', 'RequestId', 'TraceId']) expect(res.xml.Error[field]).to.be.a('string').and.not.empty;
        const after = await api.request('GET', '/jobs?size=100&states=All');
        expect(asArray(after.xml.Response.JobsDetail).length).to.equal(asArray(before.xml.Response.JobsDetail).length);
      });
    }
  });

  describe('GET /jobs/<id>', () => {
    it('describes known ids and lists unknown ones as NonExistJobIds, with HTTP 200', async () => {
      const a = (await api.request('POST', '/jobs', { body: CREATE_MEDIAINFO })).xml.Response.JobsDetail.JobId;
      const b = (await api.request('POST', '/jobs', { body: CREATE_MEDIAINFO })).xml.Response.JobsDetail.JobId;
      const one = await api.request('GET', `/jobs/${a}`);
      expect(one.status).to.equal(200);
      expect(one.xml.Response.JobsDetail.JobId).to.equal(a);
      expect(one.xml.Response.NonExistJobIds).to.equal(undefined);
      const missing = 'j' + 'f'.repeat(32);
      const several = await api.request('GET', `/jobs/${a},${missing},${b},not-an-id`);
      expect(several.status).to.equal(200);
      expect(asArray(several.xml.Response.JobsDetail).map((d: any) => d.JobId)).to.deep.equal([a, b]);
      expect(asArray(several.xml.Response.NonExistJobIds)).to.deep.equal([missing, 'not-an-id']);
      const encodedComma = await api.request('GET', `/jobs/${a}%2C${b}`);
      expect(asArray(encodedComma.xml.Response.JobsDetail)).to.have.length(2);
    });

    it('refuses more than 10 ids', async () => {
      const ids = Array.from({ length: 11 }, (_, i) => 'j' + String(i).padStart(32, '0')).join(',');
      const res = await api.request('GET', `/jobs/${ids}`);
      expect(res.status).to.equal(400);
      expect(res.xml.Error.Code).to.equal('InvalidArgument');
    });

    it('does not show a job of another bucket', async () => {
      const id = (await api.request('POST', '/jobs', { body: CREATE_MEDIAINFO, headers: { host: 'other-1300000001.ci.ap-beijing.myqcloud.com' } })).xml.Response.JobsDetail.JobId;
      const res = await api.request('GET', `/jobs/${id}`);
      expect(res.xml.Response.NonExistJobIds).to.equal(id);
    });
  });

  describe('PUT /jobs/<id>?cancel', () => {
    for (const suffix of ['?cancel', '?cancel=', '']) {
      it(`cancels a Submitted job with "${suffix || 'no query'}", answering 200 and an empty body`, async () => {
        const id = (await api.request('POST', '/jobs', { body: CREATE_MEDIAINFO })).xml.Response.JobsDetail.JobId;
        const res = await api.request('PUT', `/jobs/${id}${suffix}`);
        expect(res.status).to.equal(200);
        expect(res.text).to.equal('');
        const after = await api.request('GET', `/jobs/${id}`);
        expect(after.xml.Response.JobsDetail.State).to.equal('Cancel');
        expect(after.xml.Response.JobsDetail.EndTime).to.match(CI_TIME);
      });
    }

    it('refuses to cancel a job already in a final state', async () => {
      const id = (await api.request('POST', '/jobs', { body: CREATE_MEDIAINFO })).xml.Response.JobsDetail.JobId;
      expect((await api.request('PUT', `/jobs/${id}?cancel`)).status).to.equal(200);
      const again = await api.request('PUT', `/jobs/${id}?cancel`);
      expect(again.status).to.equal(400);
      expect(again.xml.Error.Code).to.equal('InvalidArgument');
      expect(again.xml.Error.Message).to.match(/already Cancel/);
    });

    it('refuses an unknown job', async () => {
      const res = await api.request('PUT', `/jobs/j${'0'.repeat(32)}?cancel`);
      expect(res.status).to.equal(400);
      expect(res.xml.Error.Code).to.equal('InvalidArgument');
    });
  });
});

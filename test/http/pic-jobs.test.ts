import { expect } from 'chai';
import { BUCKET, startWorkerService } from '../helpers/jobs.js';
import { asArray, waitFor, type TestService } from '../helpers/service.js';

describe('the /pic_jobs and /picqueue path family', function () {
  this.timeout(30_000);
  let api: TestService;
  before(async () => {
    api = await startWorkerService({ 'input/photo.jpg': 'fixtures/images/photo-orient6.jpg' });
  });
  after(async () => { await api.stop(); });

  it('creates, describes and lists PicProcess jobs as the Python SDK calls them, on the same jobs as /jobs', async () => {
    const created = await api.request('POST', '/pic_jobs', {
      headers: { 'content-type': 'application/xml' },
      body: '<Request><Tag>PicProcess</Tag><Input><Object>input/photo.jpg</Object></Input><Operation><PicProcess><IsPicInfo>true</IsPicInfo>'
        + `<ProcessRule>imageMogr2/thumbnail/64x</ProcessRule></PicProcess><Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>output/p.jpg</Object></Output></Operation></Request>`,
    });
    expect(created.status, created.text).to.equal(200);
    const jobId = created.xml.Response.JobsDetail.JobId as string;
    const detail = await waitFor(async () => {
      const res = await api.request('GET', `/pic_jobs/${jobId}`);
      return res.xml.Response.JobsDetail.State === 'Success' ? res.xml.Response.JobsDetail : undefined;
    });
    expect(detail.Operation.PicProcessResult.ProcessResult.Width).to.equal('64');
    const viaJobs = await api.request('GET', `/jobs/${jobId}`);
    expect(viaJobs.xml.Response.JobsDetail.State).to.equal('Success');
    const listed = await api.request('GET', '/pic_jobs?tag=PicProcess&orderByTime=Desc&states=All&size=10');
    expect(asArray(listed.xml.Response.JobsDetail).map((d) => d.JobId)).to.include(jobId);
  });

  it('describes and updates the queue through /picqueue', async () => {
    const queues = await api.request('GET', '/picqueue');
    expect(queues.status, queues.text).to.equal(200);
    const queueId = asArray(queues.xml.Response.QueueList)[0].QueueId as string;
    const updated = await api.request('PUT', `/picqueue/${queueId}`, { body: '<Request><Name>pic</Name><State>Active</State></Request>' });
    expect(updated.status, updated.text).to.equal(200);
    expect(updated.xml.Response.Queue.Name).to.equal('pic');
  });
});

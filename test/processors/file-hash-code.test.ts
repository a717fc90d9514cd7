import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { startWorkerService, waitForState } from '../helpers/jobs.js';
import type { TestService } from '../helpers/service.js';

function request(config: string): string {
  return `<Request><Tag>FileHashCode</Tag><Input><Object>in/clip.mp4</Object></Input><Operation><FileHashCodeConfig>${config}</FileHashCodeConfig><UserData>u1</UserData></Operation></Request>`;
}

describe('FileHashCode jobs (/file_jobs)', function () {
  this.timeout(30_000);
  let api: TestService;
  const bytes = readFileSync('fixtures/media/clip-12s.mp4');
  before(async () => {
    api = await startWorkerService({ 'in/clip.mp4': 'fixtures/media/clip-12s.mp4' });
  });
  after(async () => { await api.stop(); });

  it('hashes the input (SHA256 as sent by Go\'s test in lower case, MD5) and reports size, time and Etag in FileHashCodeResult, through /file_jobs', async () => {
    const created = await api.request('POST', '/file_jobs', { body: request('<Type>sha256</Type><AddToHeader>false</AddToHeader>') });
    expect(created.status, created.text).to.equal(200);
    const jobId = created.xml.Response.JobsDetail.JobId as string;
    expect(jobId).to.match(/^f[0-9a-f]{32}$/);
    expect((await waitForState(api, jobId)).State).to.equal('Success');
    const described = await api.request('GET', `/file_jobs/${jobId}`);
    expect(described.status).to.equal(200);
    const operation = described.xml.Response.JobsDetail.Operation;
    // Go's FileProcessInput reads Bucket; CI's doc sample shows BucketId.
    expect(described.xml.Response.JobsDetail.Input).to.deep.equal({ Bucket: 'local-1250000000', BucketId: 'local-1250000000', Object: 'in/clip.mp4', Region: 'ap-local' });
    expect(operation.FileHashCodeConfig).to.deep.equal({ Type: 'sha256', AddToHeader: 'false' });
    const md5 = createHash('md5').update(bytes).digest('hex');
    expect(operation.FileHashCodeResult).to.include({
      SHA256: createHash('sha256').update(bytes).digest('hex'), FileSize: String(bytes.length), Etag: `"${md5}"`,
    });
    expect(operation.FileHashCodeResult.LastModified).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$/);
    expect(operation.UserData).to.equal('u1');

    const second = await api.request('POST', '/file_jobs', { body: request('<Type>MD5</Type>') });
    const detail = await waitForState(api, second.xml.Response.JobsDetail.JobId as string);
    expect(detail.Operation.FileHashCodeResult).to.include({ MD5: md5, Etag: `"${md5}"` });
  });

  it('refuses an unknown Type and AddToHeader true at submit, and fails NoSuchKey for a missing object', async () => {
    const bad = await api.request('POST', '/file_jobs', { body: request('<Type>CRC64</Type>') });
    expect(bad.status).to.equal(400);
    expect(bad.xml.Error.Message).to.match(/Type must be MD5, SHA1 or SHA256/);
    const header = await api.request('POST', '/file_jobs', { body: request('<Type>MD5</Type><AddToHeader>true</AddToHeader>') });
    expect(header.status).to.equal(400);
    expect(header.xml.Error.Message).to.match(/AddToHeader/);
    const missing = await api.request('POST', '/file_jobs', { body: request('<Type>SHA1</Type>').replace('in/clip.mp4', 'in/none.bin') });
    const detail = await waitForState(api, missing.xml.Response.JobsDetail.JobId as string);
    expect([detail.State, detail.Code]).to.deep.equal(['Failed', 'NoSuchKey']);
  });
});

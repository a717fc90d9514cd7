import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { asArray } from '../helpers/service.js';
import { tarEntries, zipEntries } from '../helpers/archives.js';
import { BUCKET, waitForState } from '../helpers/jobs.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { MAX_URL_LIST_BYTES } from '../../src/processors/file-compress.js';

const OTHER_BUCKET = 'other-1250000000';
const COMPRESS_MAX_BYTES = 300_000;

function request(config: string, object = 'out/pack.${ext}'): string {
  return '<Request><Tag>FileCompress</Tag><Operation>'
    + `<FileCompressConfig>${config}</FileCompressConfig>`
    + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output>`
    + '<UserData>pack</UserData></Operation></Request>';
}

describe('FileCompress jobs (/file_jobs)', function () {
  this.timeout(60_000);
  let api: TestService;
  const files: Record<string, Buffer> = {
    'docs/a.txt': Buffer.from('alpha\n'),
    'docs/sub/b.bin': randomBytes(70_000),
    'docs/c.txt': Buffer.from('gamma gamma gamma\n'.repeat(500)),
    'pics/a.txt': Buffer.from('another a\n'),
    'root.txt': Buffer.from('at the root\n'),
  };

  before(async () => {
    api = await startTestService({ worker: true, env: { MEDIAJOBS_FILE_COMPRESS_MAX_BYTES: String(COMPRESS_MAX_BYTES) } });
    for (const [key, data] of Object.entries(files)) await api.service.storage.put(BUCKET, key, data);
    await api.service.storage.createBucket(OTHER_BUCKET);
    await api.service.storage.put(OTHER_BUCKET, 'docs/secret.txt', Buffer.from('not yours'));
  });
  after(async () => { await api.stop(); });

  async function run(body: string): Promise<Record<string, any>> {
    const created = await api.request('POST', '/file_jobs', { body });
    expect(created.status, created.text).to.equal(200);
    expect(created.xml.Response.JobsDetail.Tag).to.equal('FileCompress');
    // CI's file jobs' ids start with f (the Go SDK's ci_fileprocess_test.go).
    expect(created.xml.Response.JobsDetail.JobId).to.match(/^f[0-9a-f]{32}$/);
    return waitForState(api, created.xml.Response.JobsDetail.JobId as string);
  }

  async function refused(body: string): Promise<string> {
    const res = await api.request('POST', '/file_jobs', { body });
    expect(res.status, res.text).to.equal(400);
    expect(res.xml.Error.Code).to.equal('InvalidArgument');
    return res.xml.Error.Message as string;
  }

  it('packs Keys into a zip keeping their folders (Flatten=0), KeyConfig renaming one and moving another, and reports FileCompressResult', async () => {
    const detail = await run(request('<Flatten>0</Flatten><Format>zip</Format><Type>better</Type>'
      + '<Key>docs/a.txt</Key><Key>/docs/sub/b.bin</Key><Key>root.txt</Key><Key>docs/c.txt</Key>'
      + '<KeyConfig><Key>root.txt</Key><Rename>renamed.txt</Rename></KeyConfig>'
      + '<KeyConfig><Key>docs/c.txt</Key><Folder>moved/here/</Folder></KeyConfig>'));
    expect(detail.State, JSON.stringify(detail)).to.equal('Success');
    expect(detail.Operation.FileCompressResult).to.deep.equal({
      Region: 'ap-local', Bucket: BUCKET, Object: 'out/pack.zip', CompressFileCount: '4', ErrorCount: '0', ErrorDetail: { ErrorCount: '0' },
    });
    expect(detail.Operation.FileCompressConfig.Format).to.equal('zip');
    expect(detail.Operation.Output.Object).to.equal('out/pack.${ext}');
    expect(detail.Operation.UserData).to.equal('pack');
    const entries = await zipEntries(await api.service.storage.get(BUCKET, 'out/pack.zip'));
    expect([...entries.keys()]).to.deep.equal(['docs/a.txt', 'docs/sub/b.bin', 'renamed.txt', 'moved/here/c.txt']);
    expect(entries.get('docs/a.txt')).to.deep.equal(files['docs/a.txt']);
    expect(entries.get('docs/sub/b.bin')).to.deep.equal(files['docs/sub/b.bin']);
    expect(entries.get('renamed.txt')).to.deep.equal(files['root.txt']);
    expect(entries.get('moved/here/c.txt')).to.deep.equal(files['docs/c.txt']);
  });

  it('packs everything under a Prefix into a tar.gz with the folders dropped (Flatten=1)', async () => {
    const detail = await run(request('<Flatten>1</Flatten><Format>tar.gz</Format><Prefix>docs/</Prefix>', 'out/flat.tgz'));
    expect(detail.State, JSON.stringify(detail)).to.equal('Success');
    const described = await api.request('GET', `/file_jobs/${detail.JobId}`);
    expect(described.xml.Response.JobsDetail.JobId).to.equal(detail.JobId);
    expect(described.xml.Response.JobsDetail.Operation.FileCompressResult.Object).to.equal('out/flat.tgz');
    expect(detail.Operation.FileCompressResult.CompressFileCount).to.equal('3');
    const archive = await api.service.storage.get(BUCKET, 'out/flat.tgz');
    expect([...archive.subarray(0, 2)]).to.deep.equal([0x1f, 0x8b]);
    const entries = await tarEntries(archive);
    expect(new Map([...entries].sort())).to.deep.equal(new Map([
      ['a.txt', files['docs/a.txt']], ['b.bin', files['docs/sub/b.bin']], ['c.txt', files['docs/c.txt']],
    ]));
  });

  it('takes a UrlList index over Prefix and Key; with IgnoreError a missing key and another bucket\'s URL are listed in ErrorDetail, never read', async () => {
    const index = [
      `https://${BUCKET}.cos.ap-local.myqcloud.com/docs/a.txt`,
      '"pics/a.txt"',
      `https://${BUCKET}.cos.ap-local.myqcloud.com/docs/gone.txt`,
      `https://${OTHER_BUCKET}.cos.ap-local.myqcloud.com/docs/secret.txt`,
      '',
      'root.txt',
    ].join('\r\n');
    await api.service.storage.put(BUCKET, 'lists/index.csv', Buffer.from(index));
    const detail = await run(request('<Flatten>0</Flatten><Format>tar</Format><UrlList>lists/index.csv</UrlList><Prefix>pics/</Prefix><Key>docs/c.txt</Key><IgnoreError>true</IgnoreError>', 'out/listed.tar'));
    expect(detail.State, JSON.stringify(detail)).to.equal('Success');
    const result = detail.Operation.FileCompressResult;
    expect(result).to.include({ CompressFileCount: '3', ErrorCount: '2' });
    expect(result.ErrorDetail.ErrorCount).to.equal('2');
    expect(asArray(result.ErrorDetail.ErrorFile).sort()).to.deep.equal([`https://${OTHER_BUCKET}.cos.ap-local.myqcloud.com/docs/secret.txt`, 'docs/gone.txt'].sort());
    const entries = await tarEntries(await api.service.storage.get(BUCKET, 'out/listed.tar'));
    expect([...entries.keys()]).to.deep.equal(['docs/a.txt', 'pics/a.txt', 'root.txt']);
    expect(entries.get('pics/a.txt')).to.deep.equal(files['pics/a.txt']);
    expect([...entries.values()].some((data) => data.toString() === 'not yours')).to.equal(false);
  });

  it('fails without IgnoreError: a missing key is NoSuchKey, another bucket\'s URL is InvalidArgument, and no archive is stored', async () => {
    const missing = await run(request('<Flatten>0</Flatten><Format>zip</Format><Key>docs/a.txt</Key><Key>docs/gone.txt</Key>', 'out/missing.zip'));
    expect([missing.State, missing.Code]).to.deep.equal(['Failed', 'NoSuchKey']);
    expect(missing.Message).to.include('docs/gone.txt');
    expect(await api.service.storage.stat(BUCKET, 'out/missing.zip')).to.equal(undefined);

    await api.service.storage.put(BUCKET, 'lists/other.csv', Buffer.from(`docs/a.txt\nhttps://${OTHER_BUCKET}.cos.ap-local.myqcloud.com/docs/secret.txt\n`));
    const other = await run(request('<Flatten>0</Flatten><Format>zip</Format><UrlList>lists/other.csv</UrlList>', 'out/other.zip'));
    expect([other.State, other.Code]).to.deep.equal(['Failed', 'InvalidArgument']);
    expect(other.Message).to.include(`bucket ${BUCKET}`);
    expect(await api.service.storage.stat(BUCKET, 'out/other.zip')).to.equal(undefined);

    const noIndex = await run(request('<Flatten>0</Flatten><Format>zip</Format><UrlList>lists/none.csv</UrlList>', 'out/none.zip'));
    expect([noIndex.State, noIndex.Code]).to.deep.equal(['Failed', 'NoSuchKey']);
  });

  it('refuses a UrlList index too large to be 10,000 URLs (LimitExceeded) and a line no URL could be (InvalidArgument, even with IgnoreError), storing nothing', async () => {
    // One line longer than any URL: read whole, a few hundred MB of it would end the process (readline overflowing V8's longest string).
    await api.service.storage.put(BUCKET, 'lists/huge.csv', Buffer.concat([Buffer.from('docs/a.txt\n'), Buffer.alloc(MAX_URL_LIST_BYTES, 'a')]));
    const huge = await run(request('<Flatten>0</Flatten><Format>zip</Format><UrlList>lists/huge.csv</UrlList><IgnoreError>true</IgnoreError>', 'out/huge.zip'));
    expect([huge.State, huge.Code], JSON.stringify(huge).slice(0, 500)).to.deep.equal(['Failed', 'LimitExceeded']);
    expect(huge.Message).to.include('lists/huge.csv');
    await api.service.storage.put(BUCKET, 'lists/long-line.csv', Buffer.from(`docs/a.txt\n${'a'.repeat(5000)}\n`));
    const long = await run(request('<Flatten>0</Flatten><Format>zip</Format><UrlList>lists/long-line.csv</UrlList><IgnoreError>true</IgnoreError>', 'out/long.zip'));
    expect([long.State, long.Code], JSON.stringify(long).slice(0, 500)).to.deep.equal(['Failed', 'InvalidArgument']);
    expect(long.Message).to.match(/line 2 is longer than/);
    for (const key of ['out/huge.zip', 'out/long.zip']) expect(await api.service.storage.stat(BUCKET, key)).to.equal(undefined);
  });

  it('stops at MEDIAJOBS_FILE_COMPRESS_MAX_BYTES with LimitExceeded and stores nothing', async () => {
    await api.service.storage.put(BUCKET, 'big/one.bin', randomBytes(COMPRESS_MAX_BYTES - 1000));
    await api.service.storage.put(BUCKET, 'big/two.bin', randomBytes(2000));
    const detail = await run(request('<Flatten>0</Flatten><Format>zip</Format><Prefix>big/</Prefix>', 'out/big.zip'));
    expect([detail.State, detail.Code]).to.deep.equal(['Failed', 'LimitExceeded']);
    expect(detail.Message).to.include('MEDIAJOBS_FILE_COMPRESS_MAX_BYTES');
    expect(await api.service.storage.stat(BUCKET, 'out/big.zip')).to.equal(undefined);
  });

  it('refuses at submit what it cannot do or what is malformed: CompressKey, ImageParams, a missing Format or Flatten, no source, another bucket\'s UrlList, an unsafe Rename', async () => {
    expect(await refused(request('<Flatten>0</Flatten><Format>zip</Format><Key>docs/a.txt</Key><CompressKey>MTIzNDU2Nzg5MA==</CompressKey>'))).to.match(/CompressKey is not supported/);
    expect(await refused(request('<Flatten>0</Flatten><Format>zip</Format><Key>docs/a.txt</Key><KeyConfig><Key>docs/a.txt</Key><ImageParams>imageMogr2/thumbnail/100x</ImageParams></KeyConfig>'))).to.match(/ImageParams/);
    expect(await refused(request('<Flatten>0</Flatten><Format>rar</Format><Key>docs/a.txt</Key>'))).to.match(/Format must be zip, tar or tar.gz/);
    expect(await refused(request('<Format>zip</Format><Key>docs/a.txt</Key>'))).to.match(/Flatten is required/);
    expect(await refused(request('<Flatten>0</Flatten><Format>zip</Format>'))).to.match(/UrlList, Prefix or Key/);
    expect(await refused(request(`<Flatten>0</Flatten><Format>zip</Format><UrlList>https://${OTHER_BUCKET}.cos.ap-local.myqcloud.com/index.csv</UrlList>`))).to.match(/job's bucket/);
    expect(await refused(request('<Flatten>0</Flatten><Format>zip</Format><Key>docs/a.txt</Key><KeyConfig><Key>docs/a.txt</Key><Rename>../up.txt</Rename></KeyConfig>'))).to.match(/Rename/);
    expect(await refused(request('<Flatten>0</Flatten><Format>zip</Format><Type>smallest</Type><Key>docs/a.txt</Key>'))).to.match(/Type must be/);
    const tooMany = Array.from({ length: 1001 }, (_, i) => `<Key>k${i}</Key>`).join('');
    expect(await refused(request(`<Flatten>0</Flatten><Format>zip</Format>${tooMany}`))).to.match(/Key must be up to 1000 object keys/);
  });
});

import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { renameInZip, tarBuffer, zipBuffer } from '../helpers/archives.js';
import { BUCKET, waitForState } from '../helpers/jobs.js';
import { startTestService, type TestService } from '../helpers/service.js';

const MAX_BYTES = 1_000_000;
const MAX_FILES = 20;

function uncompressRequest(object: string, config: string, output = `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket></Output>`): string {
  return `<Request><Tag>FileUncompress</Tag><Input><Object>${object}</Object></Input><Operation>`
    + `<FileUncompressConfig>${config}</FileUncompressConfig>${output}</Operation></Request>`;
}

function compressRequest(format: string, object: string): string {
  return '<Request><Tag>FileCompress</Tag><Operation>'
    + `<FileCompressConfig><Flatten>0</Flatten><Format>${format}</Format><Prefix>src/</Prefix></FileCompressConfig>`
    + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output></Operation></Request>`;
}

describe('FileUncompress jobs (/file_jobs)', function () {
  this.timeout(60_000);
  let api: TestService;
  const sources: Record<string, Buffer> = {
    'src/one.txt': Buffer.from('one\n'),
    'src/deep/two.bin': randomBytes(50_000),
    'src/deep/er/three.txt': Buffer.from('three '.repeat(3000)),
  };

  before(async () => {
    api = await startTestService({
      worker: true,
      env: { MEDIAJOBS_FILE_UNCOMPRESS_MAX_BYTES: String(MAX_BYTES), MEDIAJOBS_FILE_UNCOMPRESS_MAX_FILES: String(MAX_FILES) },
    });
    for (const [key, data] of Object.entries(sources)) await api.service.storage.put(BUCKET, key, data);
  });
  after(async () => { await api.stop(); });

  async function run(body: string): Promise<Record<string, any>> {
    const created = await api.request('POST', '/file_jobs', { body });
    expect(created.status, created.text).to.equal(200);
    return waitForState(api, created.xml.Response.JobsDetail.JobId as string);
  }

  async function keysUnder(prefix: string): Promise<string[]> {
    const listing = await api.service.storage.listObjects(BUCKET, { prefix, delimiter: '', marker: '', maxKeys: 1000 });
    return listing.contents.map((object) => object.key);
  }

  /** Runs a job on `archive` stored at `key` that must fail with `code`, extracting nothing. */
  async function expectRefused(key: string, archive: Buffer, code: string, message: RegExp): Promise<void> {
    await api.service.storage.put(BUCKET, key, archive);
    const detail = await run(uncompressRequest(key, `<Prefix>x/${key}/</Prefix>`));
    expect([detail.State, detail.Code], JSON.stringify(detail)).to.deep.equal(['Failed', code]);
    expect(detail.Message).to.match(message);
    expect(await keysUnder(`x/${key}/`)).to.deep.equal([]);
    expect(await keysUnder('evil')).to.deep.equal([]);
  }

  for (const [format, archiveKey] of [['zip', 'packs/src.zip'], ['tar', 'packs/src.tar'], ['tar.gz', 'packs/nested/src.tar.gz']] as const) {
    it(`round-trips FileCompress → FileUncompress as ${format}, under Prefix (PrefixReplaced 0), the archive's name (1) and its key (2)`, async () => {
      const packed = await run(compressRequest(format, archiveKey));
      expect(packed.State, JSON.stringify(packed)).to.equal('Success');
      const expected: Array<[string, string]> = [['0', `r0-${format}/`], ['1', `r1-${format}/src/`], ['2', `r2-${format}/${archiveKey.replace(/\.(zip|tar|tar\.gz)$/, '')}/`]];
      for (const [replaced, folder] of expected) {
        const prefix = folder.split('/')[0];
        const detail = await run(uncompressRequest(archiveKey, `<Prefix>${prefix}</Prefix><PrefixReplaced>${replaced}</PrefixReplaced>`));
        expect(detail.State, JSON.stringify(detail)).to.equal('Success');
        expect(detail.Operation.FileUncompressResult).to.deep.equal({ Region: 'ap-local', Bucket: BUCKET, FileCount: '3' });
        expect(detail.Operation.FileUncompressConfig.PrefixReplaced).to.equal(replaced);
        expect((await keysUnder(`${prefix}/`)).sort()).to.deep.equal(Object.keys(sources).map((key) => folder + key).sort());
        for (const [key, data] of Object.entries(sources)) expect(await api.service.storage.get(BUCKET, folder + key), folder + key).to.deep.equal(data);
      }
    });
  }

  it('extracts only what DownloadConfig asks for, skips directories, symlinks, hard links and devices, and drops ./ segments', async () => {
    const tar = tarBuffer([
      { name: './', type: 'Directory' },
      { name: './keep/a.txt', data: Buffer.from('a') },
      { name: 'keep/link', type: 'SymbolicLink', linkpath: '/etc/passwd' },
      { name: 'keep/hard', type: 'Link', linkpath: 'keep/a.txt' },
      { name: 'keep/dev', type: 'CharacterDevice' },
      { name: 'other/b.txt', data: Buffer.from('b') },
      { name: 'other/c.txt', data: Buffer.from('c') },
    ]);
    await api.service.storage.put(BUCKET, 'packs/mixed.tar', tar);
    const all = await run(uncompressRequest('packs/mixed.tar', '<Prefix>/mixed-all</Prefix>'));
    expect(all.State, JSON.stringify(all)).to.equal('Success');
    expect((await keysUnder('mixed-all/')).sort()).to.deep.equal(['mixed-all/keep/a.txt', 'mixed-all/other/b.txt', 'mixed-all/other/c.txt']);
    const some = await run(uncompressRequest('packs/mixed.tar', '<Prefix>mixed-some/</Prefix><DownloadConfig><Prefix>keep/</Prefix><Key>other/c.txt</Key></DownloadConfig>'));
    expect(some.Operation.FileUncompressResult.FileCount).to.equal('2');
    expect((await keysUnder('mixed-some/')).sort()).to.deep.equal(['mixed-some/keep/a.txt', 'mixed-some/other/c.txt']);
    expect((await api.service.storage.get(BUCKET, 'mixed-some/other/c.txt')).toString()).to.equal('c');
  });

  it('recognises an archive without a known extension by its magic bytes', async () => {
    await api.service.storage.put(BUCKET, 'packs/noext', await zipBuffer([{ name: 'z.txt', data: Buffer.from('zipped') }]));
    const detail = await run(uncompressRequest('packs/noext', '<Prefix>magic/</Prefix>'));
    expect(detail.State, JSON.stringify(detail)).to.equal('Success');
    expect((await api.service.storage.get(BUCKET, 'magic/z.txt')).toString()).to.equal('zipped');
  });

  it('refuses zip-slip and absolute entries in a zip and a tar, extracting nothing (not even the safe entries beside them)', async () => {
    const safe = { name: 'fine.txt', data: Buffer.from('fine') };
    const slipZip = renameInZip(await zipBuffer([safe, { name: 'xx/evil.txt', data: Buffer.from('evil') }]), 'xx/evil.txt', '../evil.txt');
    await expectRefused('hostile/slip.zip', slipZip, 'InvalidMedia', /cannot be read.*\.\.\/evil\.txt|evil/);
    const absoluteZip = renameInZip(await zipBuffer([safe, { name: 'xevil/abs.txt', data: Buffer.from('evil') }]), 'xevil/abs.txt', '/evil/abs.txt');
    await expectRefused('hostile/absolute.zip', absoluteZip, 'InvalidMedia', /evil\/abs\.txt/);
    await expectRefused('hostile/slip.tar', tarBuffer([safe, { name: 'a/../../evil.txt', data: Buffer.from('evil') }]), 'InvalidMedia', /climbs out/);
    await expectRefused('hostile/absolute.tar.gz', tarBuffer([safe, { name: '/evil/abs.txt', data: Buffer.from('evil') }], true), 'InvalidMedia', /absolute path/);
    await expectRefused('hostile/control.tar', tarBuffer([{ name: 'bad\u0001name.txt', data: Buffer.from('x') }]), 'InvalidMedia', /control character/);
  });

  it('stops a bomb at MEDIAJOBS_FILE_UNCOMPRESS_MAX_BYTES while inflating (zip and tar.gz), and too many entries at MEDIAJOBS_FILE_UNCOMPRESS_MAX_FILES', async () => {
    const zeros = Buffer.alloc(MAX_BYTES + 1);
    const bombZip = await zipBuffer([{ name: 'zeros.bin', data: zeros }]);
    expect(bombZip.length).to.be.below(10_000);
    await expectRefused('hostile/bomb.zip', bombZip, 'LimitExceeded', /MEDIAJOBS_FILE_UNCOMPRESS_MAX_BYTES/);
    const bombTar = tarBuffer([{ name: 'a.bin', data: Buffer.alloc(MAX_BYTES / 2) }, { name: 'b.bin', data: Buffer.alloc(MAX_BYTES / 2) }], true);
    await expectRefused('hostile/bomb.tar.gz', bombTar, 'LimitExceeded', /MEDIAJOBS_FILE_UNCOMPRESS_MAX_BYTES/);
    const many = tarBuffer(Array.from({ length: MAX_FILES + 1 }, (_, i) => ({ name: `f${i}.txt`, data: Buffer.from(String(i)) })));
    await expectRefused('hostile/many.tar', many, 'LimitExceeded', /MEDIAJOBS_FILE_UNCOMPRESS_MAX_FILES/);
  });

  it('stores nothing when one entry cannot be stored: an entry that is also another one\'s folder, or an existing object\'s folder', async () => {
    await api.service.storage.put(BUCKET, 'taken/file/deep.txt', Buffer.from('deep'));
    const clashes: Array<[key: string, archive: Buffer, prefix: string]> = [
      ['hostile/file-and-folder.zip', await zipBuffer([{ name: 'a', data: Buffer.from('1') }, { name: 'a/b', data: Buffer.from('2') }]), 'clash/'],
      ['hostile/over-folder.tar', tarBuffer([{ name: 'first.txt', data: Buffer.from('1') }, { name: 'file', data: Buffer.from('2') }]), 'taken/'],
    ];
    for (const [key, archive, prefix] of clashes) {
      await api.service.storage.put(BUCKET, key, archive);
      const detail = await run(uncompressRequest(key, `<Prefix>${prefix}</Prefix>`));
      expect([detail.State, detail.Code], JSON.stringify(detail)).to.deep.equal(['Failed', 'InvalidArgument']);
      expect(detail.Message).to.match(/collides/);
    }
    expect(await keysUnder('clash/')).to.deep.equal([]);
    expect(await keysUnder('taken/')).to.deep.equal(['taken/file/deep.txt']);
  });

  it('fails InvalidMedia on corrupt archives: garbage, a truncated tar.gz, a zip whose data fails its CRC, a tar with a bad checksum', async () => {
    await expectRefused('hostile/garbage.zip', randomBytes(4096), 'InvalidMedia', /cannot be read/);
    await expectRefused('hostile/garbage.bin', randomBytes(4096), 'InvalidMedia', /not a zip, tar or tar.gz/);
    const tgz = tarBuffer([{ name: 'r.bin', data: randomBytes(200_000) }], true);
    await expectRefused('hostile/truncated.tgz', tgz.subarray(0, tgz.length / 2), 'InvalidMedia', /cannot be read/);
    const zip = await zipBuffer([{ name: 'r.txt', data: Buffer.from('stored text '.repeat(100)) }]);
    const damaged = Buffer.from(zip);
    damaged[60] ^= 0xff;
    await expectRefused('hostile/crc.zip', damaged, 'InvalidMedia', /cannot be read/);
    const tar = tarBuffer([{ name: 'sum.txt', data: Buffer.from('x') }]);
    tar[10] ^= 0x01;
    await expectRefused('hostile/checksum.tar', tar, 'InvalidMedia', /cannot be read/);
  });

  it('refuses at submit a password (UnCompressKey), another bucket as Output, a bad PrefixReplaced; a missing archive is NoSuchKey', async () => {
    const refused = async (body: string, message: RegExp) => {
      const res = await api.request('POST', '/file_jobs', { body });
      expect(res.status, res.text).to.equal(400);
      expect(res.xml.Error.Code).to.equal('InvalidArgument');
      expect(res.xml.Error.Message).to.match(message);
    };
    await refused(uncompressRequest('packs/src.zip', '<UnCompressKey>MTIz</UnCompressKey>'), /UnCompressKey is not supported/);
    await refused(uncompressRequest('packs/src.zip', '', '<Output><Region>ap-local</Region><Bucket>other-1250000000</Bucket></Output>'), /job's own bucket/);
    await refused(uncompressRequest('packs/src.zip', '<PrefixReplaced>3</PrefixReplaced>'), /PrefixReplaced must be 0, 1 or 2/);
    const missing = await run(uncompressRequest('packs/none.zip', ''));
    expect([missing.State, missing.Code]).to.deep.equal(['Failed', 'NoSuchKey']);
  });
});

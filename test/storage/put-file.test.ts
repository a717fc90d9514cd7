import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { CiError } from '../../src/errors.js';
import { LocalDiskStorage } from '../../src/storage/local-disk.js';

describe('LocalDiskStorage.putFile', () => {
  let dir: string;
  let storage: LocalDiskStorage;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'put-file-'));
    storage = new LocalDiskStorage(path.join(dir, 'buckets'));
  });
  afterEach(async () => { await fs.rm(dir, { recursive: true, force: true }); });

  it('moves a scratch file into place (folders made as needed) and reports its size and MD5 etag', async () => {
    const scratch = path.join(dir, 'scratch.bin');
    const data = Buffer.from('x'.repeat(100_000));
    await fs.writeFile(scratch, data);
    const stat = await storage.putFile('media-1250000000', 'deep/er/out.bin', scratch);
    expect(stat).to.deep.equal({ size: data.length, etag: `"${createHash('md5').update(data).digest('hex')}"` });
    expect(await storage.get('media-1250000000', 'deep/er/out.bin')).to.deep.equal(data);
    expect(await storage.stat('media-1250000000', 'deep/er/out.bin')).to.deep.equal(stat);
  });

  it('refuses a key that collides with a folder, leaving no partial file', async () => {
    await storage.put('media-1250000000', 'a/b', Buffer.from('1'));
    const scratch = path.join(dir, 'scratch.bin');
    await fs.writeFile(scratch, 'data');
    const err = await storage.putFile('media-1250000000', 'a', scratch).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(CiError).and.include({ code: 'InvalidArgument' });
    expect((await fs.readdir(path.join(dir, 'buckets', 'media-1250000000'))).filter((f) => f.endsWith('.partial'))).to.deep.equal([]);
  });
});

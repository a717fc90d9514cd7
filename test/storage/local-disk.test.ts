import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalDiskStorage } from '../../src/storage/local-disk.js';
import { ObjectNotFoundError } from '../../src/storage/storage.js';

describe('LocalDiskStorage.withLocalFile', () => {
  const bucket = 'disk-1250000000';
  let root: string;
  let storage: LocalDiskStorage;
  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-disk-'));
    storage = new LocalDiskStorage(root);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const failure = async (key: string, use: (file: string) => Promise<unknown>): Promise<unknown> =>
    storage.withLocalFile(bucket, key, use).then(() => { throw new Error('expected a failure'); }, (err: unknown) => err);

  it('hands the object\'s own file to its user', async () => {
    await storage.put(bucket, 'a/b.txt', Buffer.from('hello'));
    expect(await storage.withLocalFile(bucket, 'a/b.txt', async (file) => readFileSync(file, 'utf8'))).to.equal('hello');
  });

  it('reports a missing object as ObjectNotFoundError when its use fails', async () => {
    const err = await failure('missing.mp4', async (file) => readFileSync(file));
    expect(err).to.be.instanceOf(ObjectNotFoundError);
  });

  it('reports a key naming a folder as ObjectNotFoundError', async () => {
    mkdirSync(path.join(root, bucket, 'folder'), { recursive: true });
    expect(await failure('folder', async (file) => readFileSync(file))).to.be.instanceOf(ObjectNotFoundError);
  });

  it('passes on its user\'s own error when the object is there', async () => {
    await storage.put(bucket, 'there.mp4', Buffer.from('x'));
    const err = await failure('there.mp4', async () => { throw new Error('the tool failed'); });
    expect((err as Error).message).to.equal('the tool failed');
  });
});

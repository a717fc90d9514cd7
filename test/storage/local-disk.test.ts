import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CiError } from '../../src/errors.js';
import { LocalDiskStorage } from '../../src/storage/local-disk.js';
import { ObjectNotFoundError } from '../../src/storage/storage.js';

describe('LocalDiskStorage', () => {
  const bucket = 'disk-1250000000';
  let root: string;
  let storage: LocalDiskStorage;
  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-disk-'));
    storage = new LocalDiskStorage(root);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  describe('withLocalFile', () => {
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

  describe('put', () => {
    const refusal = (key: string) => storage.put(bucket, key, Buffer.from('x')).then(() => undefined, (err: unknown) => err);

    it('stores a key whose last segment has the longest allowed length (255 bytes)', async () => {
      const key = `out/${'a'.repeat(255)}`;
      await storage.put(bucket, key, Buffer.from('long'));
      expect(readFileSync(path.join(root, bucket, key), 'utf8')).to.equal('long');
    });

    it('refuses, as InvalidArgument and leaving no temporary file, a key that is a folder or lies below an object', async () => {
      await storage.put(bucket, 'a/b.jpg', Buffer.from('x'));
      for (const key of ['a', 'a/b.jpg/c.jpg']) {
        const err = await refusal(key);
        expect(err, key).to.be.instanceOf(CiError).with.property('code', 'InvalidArgument');
      }
      expect(readdirSync(path.join(root, bucket, 'a'))).to.deep.equal(['b.jpg']);
      expect(readdirSync(path.join(root, bucket))).to.deep.equal(['a']);
    });
  });
});

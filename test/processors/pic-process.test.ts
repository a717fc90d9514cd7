import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import sharp from 'sharp';
import { loadConfig, type Config } from '../../src/config.js';
import { PermanentJobError } from '../../src/engine/job-errors.js';
import { checkObjectTemplate, expandObject } from '../../src/processors/media-output.js';
import { picProcessProcessor } from '../../src/processors/pic-process.js';
import type { ProcessorContext } from '../../src/processors/processor.js';
import { LocalDiskStorage } from '../../src/storage/local-disk.js';
import type { Storage } from '../../src/storage/storage.js';
import { isXmlObject, type XmlObject, type XmlValue } from '../../src/xml/tree.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/images');
const BUCKET = 'test-1250000000';
const REGION = 'ap-chongqing';

function md5(data: Buffer): string {
  return `"${createHash('md5').update(data).digest('hex')}"`;
}

/** Follows a path of element names through a result tree. */
function at(tree: XmlObject, ...names: string[]): XmlValue {
  let node: XmlValue = tree;
  for (const name of names) {
    if (!isXmlObject(node)) throw new Error(`${names.join('/')}: ${name} has no parent object`);
    node = node[name];
  }
  return node;
}

describe('picProcessProcessor', () => {
  let root: string;
  let storage: LocalDiskStorage;
  let config: Config;

  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'pic-process-'));
    storage = new LocalDiskStorage(path.join(root, 'objects'));
    config = loadConfig({ MEDIAJOBS_DATA_DIR: root });
    for (const name of ['photo-orient6.jpg', 'bomb.png', 'truncated.jpg']) {
      await storage.put(BUCKET, `input/${name}`, await readFile(path.join(fixtures, name)));
    }
  });

  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  function context(
    input: string,
    picProcess: XmlObject,
    output: XmlObject = { Region: REGION, Bucket: BUCKET, Object: 'output/out.jpg' },
    overrides: { storage?: Storage; signal?: AbortSignal } = {},
  ): ProcessorContext & { progress: number[] } {
    const progress: number[] = [];
    return {
      job: { jobId: 'j0123456789', tag: 'PicProcess', bucket: BUCKET, region: REGION, inputObject: input, operation: { PicProcess: picProcess, Output: output } },
      storage: overrides.storage ?? storage,
      config,
      signal: overrides.signal ?? new AbortController().signal,
      setProgress: (p: number) => progress.push(p),
      withToolSlot: (work) => work(),
      progress,
    };
  }

  async function failure(ctx: ProcessorContext): Promise<PermanentJobError> {
    try {
      await picProcessProcessor.run(ctx);
    } catch (err) {
      expect(err).to.be.instanceOf(PermanentJobError);
      return err as PermanentJobError;
    }
    throw new Error('expected the job to fail');
  }

  it('is registered under the PicProcess tag', () => {
    expect(picProcessProcessor.tag).to.equal('PicProcess');
  });

  it('runs imageMogr2/rotate/90 and reports both result shapes', async () => {
    const input = await readFile(path.join(fixtures, 'photo-orient6.jpg'));
    const ctx = context('input/photo-orient6.jpg', { IsPicInfo: 'true', ProcessRule: 'imageMogr2/rotate/90' });
    const result = await picProcessProcessor.run(ctx);

    const written = await storage.get(BUCKET, 'output/out.jpg');
    const meta = await sharp(written).metadata();
    expect([meta.format, meta.width, meta.height]).to.deep.equal(['jpeg', 240, 320]);
    expect(ctx.progress.at(-1)).to.equal(100);

    expect(at(result, 'PicProcessResult', 'ObjectName')).to.equal('output/out.jpg');
    expect(at(result, 'PicProcessResult', 'OriginalInfo', 'Etag')).to.equal(md5(input));
    const info = at(result, 'PicProcessResult', 'OriginalInfo', 'ImageInfo') as XmlObject;
    expect(Object.keys(info)).to.deep.equal(['Format', 'Width', 'Height', 'Quality', 'Ave', 'Orientation']);
    expect(info).to.include({ Format: 'JPEG', Width: '320', Height: '240', Quality: '90', Orientation: '6' });
    expect(info.Ave).to.match(/^0x[0-9a-f]{6}$/);

    expect(at(result, 'PicProcessResult', 'ProcessResult')).to.deep.equal({
      Format: 'JPEG',
      Width: '240',
      Height: '320',
      Quality: '90',
      Size: String(written.length),
      Etag: md5(written),
    });

    const upload = at(result, 'PicProcessResult', 'UploadResult') as XmlObject;
    expect(at(upload, 'OriginalInfo')).to.deep.include({
      Key: 'input/photo-orient6.jpg',
      Location: `${BUCKET}.cos.${REGION}.myqcloud.com/input/photo-orient6.jpg`,
      ETag: md5(input),
    });
    expect(at(upload, 'OriginalInfo', 'ImageInfo')).to.deep.equal(info);
    expect(at(upload, 'ProcessResults', 'Object')).to.deep.equal({
      Key: 'output/out.jpg',
      Location: `${BUCKET}.cos.${REGION}.myqcloud.com/output/out.jpg`,
      Format: 'JPEG',
      Width: '240',
      Height: '320',
      Size: String(written.length),
      Quality: '90',
      Etag: md5(written),
    });
  });

  it('runs a piped rule and expands ${InputName}.${ext}', async () => {
    const ctx = context(
      'input/photo-orient6.jpg',
      { IsPicInfo: 'false', ProcessRule: 'imageMogr2/thumbnail/!50p|imageMogr2/format/webp' },
      { Region: REGION, Bucket: BUCKET, Object: 'thumbs/${InputName}.${ext}' },
    );
    const result = await picProcessProcessor.run(ctx);
    expect(at(result, 'PicProcessResult', 'ObjectName')).to.equal('thumbs/photo-orient6.webp');
    expect(at(result, 'PicProcessResult', 'OriginalInfo')).to.equal(undefined);
    expect(at(result, 'PicProcessResult', 'UploadResult', 'OriginalInfo')).to.equal(undefined);
    expect(at(result, 'PicProcessResult', 'ProcessResult')).to.include({ Format: 'WEBP', Width: '160', Height: '120' });
    const meta = await sharp(await storage.get(BUCKET, 'thumbs/photo-orient6.webp')).metadata();
    expect([meta.format, meta.width, meta.height]).to.deep.equal(['webp', 160, 120]);
  });

  it('fails a bomb with ImageTooLarge and a truncated JPEG with InvalidMedia, then runs a good job', async () => {
    const bomb = await failure(context('input/bomb.png', { ProcessRule: 'imageMogr2/thumbnail/100x' }));
    expect(bomb.code).to.equal('ImageTooLarge');
    expect(bomb.message).to.include('100000x100000');

    const truncated = await failure(context('input/truncated.jpg', { ProcessRule: 'imageMogr2/thumbnail/100x' }));
    expect(truncated.code).to.equal('InvalidMedia');
    expect(await storage.stat(BUCKET, 'output/out.jpg')).to.equal(undefined);

    const result = await picProcessProcessor.run(context('input/photo-orient6.jpg', { ProcessRule: 'imageMogr2/thumbnail/100x' }));
    expect(at(result, 'PicProcessResult', 'ProcessResult', 'Width')).to.equal('100');
    expect(await storage.stat(BUCKET, 'output/out.jpg')).to.not.equal(undefined);
  });

  it('fails a missing input with NoSuchKey', async () => {
    const err = await failure(context('input/nope.jpg', { ProcessRule: 'imageMogr2/rotate/90' }));
    expect(err.code).to.equal('NoSuchKey');
  });

  it('fails bad parameters with InvalidArgument before reading the input', async () => {
    const cases: [XmlObject, XmlObject | undefined, string][] = [
      [{ ProcessRule: 'imageMogr2/rotate/999' }, undefined, 'rotate/999'],
      [{ ProcessRule: '' }, undefined, 'ProcessRule is required'],
      [{ IsPicInfo: 'maybe', ProcessRule: 'imageMogr2/rotate/90' }, undefined, 'IsPicInfo'],
      [{ ProcessRule: 'imageMogr2/rotate/90' }, { Region: REGION, Bucket: BUCKET, Object: '../escape.jpg' }, 'Output/Object'],
      [{ ProcessRule: 'imageMogr2/rotate/90' }, { Region: REGION, Bucket: BUCKET, Object: 'out/${Nope}.jpg' }, '${Nope}'],
      [{ ProcessRule: 'imageMogr2/rotate/90' }, { Region: REGION, Bucket: BUCKET, Object: 'out/${Number}.jpg' }, '${Number}'],
      [{ ProcessRule: 'imageMogr2/rotate/90' }, { Region: REGION, Bucket: 'Bad_Bucket', Object: 'x.jpg' }, 'Output/Bucket'],
      [{ ProcessRule: 'imageMogr2/rotate/90' }, { Region: REGION, Bucket: BUCKET, Object: '' }, 'Output/Object is required'],
    ];
    for (const [pic, output, fragment] of cases) {
      // The input does not exist: InvalidArgument rather than NoSuchKey proves validation came first.
      const err = await failure(context('input/nope.jpg', pic, output));
      expect(err.code, fragment).to.equal('InvalidArgument');
      expect(err.message).to.include(fragment);
    }
  });

  it('removes the output when the job is cancelled while writing', async () => {
    const controller = new AbortController();
    const cancelling: Storage = {
      get: (b, k) => storage.get(b, k),
      withLocalFile: (b, k, use) => storage.withLocalFile(b, k, use),
      stat: (b, k) => storage.stat(b, k),
      delete: (b, k) => storage.delete(b, k),
      put: async (b, k, data) => {
        const stat = await storage.put(b, k, data);
        controller.abort(new Error('cancelled'));
        return stat;
      },
    };
    const ctx = context('input/photo-orient6.jpg', { ProcessRule: 'imageMogr2/rotate/90' }, undefined, { storage: cancelling, signal: controller.signal });
    let caught: unknown;
    try {
      await picProcessProcessor.run(ctx);
    } catch (err) {
      caught = err;
    }
    expect((caught as Error | undefined)?.message).to.equal('cancelled');
    expect(await storage.stat(BUCKET, 'output/out.jpg')).to.equal(undefined);
  });

  it('processes an object replaced under the same key as the new image (libvips does not serve a cached load)', async () => {
    const rule = { ProcessRule: 'imageMogr2/thumbnail/!50p' };
    const first = await picProcessProcessor.run(context('input/photo-orient6.jpg', rule));
    expect(at(first, 'PicProcessResult', 'ProcessResult')).to.include({ Width: '160', Height: '120' });
    await storage.put(BUCKET, 'input/photo-orient6.jpg', await sharp({ create: { width: 90, height: 40, channels: 3, background: '#08f' } }).jpeg().toBuffer());
    const second = await picProcessProcessor.run(context('input/photo-orient6.jpg', rule));
    expect(at(second, 'PicProcessResult', 'ProcessResult')).to.include({ Width: '45', Height: '20' });
  });

  it('reads the quality of a JPEG whose tables sit behind 150 KB of metadata, and its Etag from every byte', async () => {
    const jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#c84' } }).jpeg({ quality: 37 }).toBuffer();
    // Three APP15 segments of 50 KB between SOI and the rest: the tables start past the first read.
    const app15 = Buffer.alloc(4 + 50_000, 0x20);
    app15.writeUInt16BE(0xffef, 0);
    app15.writeUInt16BE(2 + 50_000, 2);
    const padded = Buffer.concat([jpeg.subarray(0, 2), app15, app15, app15, jpeg.subarray(2)]);
    await storage.put(BUCKET, 'input/padded.jpg', padded);
    const result = await picProcessProcessor.run(context('input/padded.jpg', { IsPicInfo: 'true', ProcessRule: 'imageMogr2/format/png' }));
    expect(at(result, 'PicProcessResult', 'OriginalInfo', 'ImageInfo', 'Quality')).to.equal('37');
    expect(at(result, 'PicProcessResult', 'OriginalInfo', 'Etag')).to.equal(md5(padded));
  });

  it('stores the original with ignore-error/1 when limits are exceeded', async () => {
    const result = await picProcessProcessor.run(context('input/bomb.png', { ProcessRule: 'imageMogr2/thumbnail/100x/ignore-error/1' }, { Object: 'out/${InputName}.${ext}' }));
    expect(at(result, 'PicProcessResult', 'ObjectName')).to.equal('out/bomb.png');
    expect(at(result, 'PicProcessResult', 'ProcessResult')).to.include({ Format: 'PNG', Width: '100000', Height: '100000' });
  });
});

describe('Output/Object placeholders (media-output.ts, for every Tag)', () => {
  const values = { inputObject: 'photos/2024/deer.large.jpg', extension: 'webp', jobId: 'j1' };
  const cases: [string, string][] = [
    ['out/${InputName}.${ext}', 'out/deer.large.webp'],
    ['${InputPath}/small/${InputNameAndExt}', 'photos/2024/small/deer.large.jpg'],
    ['${JobId}/${InputName}', 'j1/deer.large'],
    ['${Jobid}/${InputName}.${Ext}', 'j1/deer.large.webp'],
    ['plain.jpg', 'plain.jpg'],
  ];
  for (const [template, expected] of cases) {
    it(`expands ${template}`, () => {
      checkObjectTemplate(template, 'Output/Object', false);
      expect(expandObject(template, values)).to.equal(expected);
    });
  }

  it('drops ${InputPath}/ for inputs at the bucket root', () => {
    expect(expandObject('${InputPath}/${InputName}_s.${ext}', { ...values, inputObject: 'deer.jpg' })).to.equal('deer_s.webp');
  });

  it('refuses unknown placeholders, and ${Number} where one object is written', () => {
    expect(() => checkObjectTemplate('${Time}.jpg', 'Output/Object', true)).to.throw(PermanentJobError).with.property('code', 'InvalidArgument');
    expect(() => checkObjectTemplate('${Number}.jpg', 'Output/Object', false)).to.throw(PermanentJobError).with.property('code', 'InvalidArgument');
  });
});

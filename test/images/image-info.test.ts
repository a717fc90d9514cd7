import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import sharp, { type Sharp } from 'sharp';
import { decodeBmp, encodeBmp } from '../../src/images/bmp.js';
import { probeImage, sniffImageFormat } from '../../src/images/image-info.js';
import { ImageSource } from '../../src/images/image-source.js';
import { estimateJpegQuality, estimateWebpQuality } from '../../src/images/quality-estimate.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/images');

/** A photo-like 160×120 picture: the benchmark fixture scaled down (gradients, discs, mild noise). */
async function picture(): Promise<Sharp> {
  const { data, info } = await sharp(path.join(fixtures, 'large-2725x2225.jpg')).resize(160, 120, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
  return sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } });
}

describe('sniffImageFormat', () => {
  it('recognises the formats we decode and refuses the rest', async () => {
    const p = await picture();
    expect(sniffImageFormat(await p.clone().jpeg().toBuffer())).to.equal('jpeg');
    expect(sniffImageFormat(await p.clone().png().toBuffer())).to.equal('png');
    expect(sniffImageFormat(await p.clone().gif().toBuffer())).to.equal('gif');
    expect(sniffImageFormat(await p.clone().webp().toBuffer())).to.equal('webp');
    expect(sniffImageFormat(await p.clone().tiff().toBuffer())).to.equal('tiff');
    expect(sniffImageFormat(await p.clone().avif().toBuffer())).to.equal('avif');
    expect(sniffImageFormat(encodeBmp(Buffer.alloc(12), 2, 2, 3))).to.equal('bmp');
    expect(sniffImageFormat(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'))).to.equal(undefined);
    expect(sniffImageFormat(Buffer.from('%PDF-1.4'))).to.equal(undefined);
  });

  it('tells AVIF from HEIC by the ftyp brands', () => {
    const ftyp = (major: string, ...compatible: string[]) => {
      const box = Buffer.alloc(16 + 4 * compatible.length);
      box.writeUInt32BE(box.length, 0);
      box.write('ftyp', 4, 'latin1');
      box.write(major, 8, 'latin1');
      compatible.forEach((b, i) => box.write(b, 16 + 4 * i, 'latin1'));
      return box;
    };
    expect(sniffImageFormat(ftyp('avif', 'mif1'))).to.equal('avif');
    expect(sniffImageFormat(ftyp('mif1', 'miaf', 'avif'))).to.equal('avif');
    expect(sniffImageFormat(ftyp('heic', 'mif1'))).to.equal('heic');
  });
});

describe('probeImage', () => {
  it('refuses HEIC and unknown bytes with InvalidMedia', async () => {
    for (const data of [Buffer.from('hello world, not an image'), Buffer.concat([Buffer.from([0, 0, 0, 16]), Buffer.from('ftypheic\0\0\0\0')])]) {
      try {
        await probeImage(ImageSource.fromBuffer(data));
        expect.fail('should have thrown');
      } catch (err) {
        expect(err).to.have.property('code', 'InvalidMedia');
      }
    }
  });
});

describe('quality estimates', () => {
  for (const q of [10, 35, 50, 75, 90, 100]) {
    it(`reads JPEG quality ${q} back exactly from the DQT tables`, async () => {
      expect(estimateJpegQuality(await (await picture()).jpeg({ quality: q }).toBuffer())).to.equal(q);
    });
    it(`reads WebP quality ${q} back within 2`, async () => {
      const estimate = estimateWebpQuality(await (await picture()).webp({ quality: q }).toBuffer());
      expect(estimate).to.be.a('number');
      expect(Math.abs((estimate ?? 0) - q)).to.be.at.most(2);
    });
  }

  it('has no estimate for lossless WebP or non-JPEG input', async () => {
    expect(estimateWebpQuality(await (await picture()).webp({ lossless: true }).toBuffer())).to.equal(undefined);
    expect(estimateJpegQuality(await (await picture()).png().toBuffer())).to.equal(undefined);
  });
});

describe('BMP codec', () => {
  it('round-trips 24-bit pixels', () => {
    const rgb = Buffer.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    const bmp = decodeBmp(encodeBmp(rgb, 3, 2, 3));
    expect([bmp.width, bmp.height, bmp.channels]).to.deep.equal([3, 2, 3]);
    expect(bmp.data.equals(rgb)).to.equal(true);
  });

  it('reads an 8-bit palette image stored top-down', () => {
    const width = 2;
    const height = 2;
    const header = Buffer.alloc(54);
    const palette = Buffer.from([0, 0, 255, 0, 0, 255, 0, 0]); // index 0 red, 1 green (BGRX)
    const rows = Buffer.from([0, 1, 0, 0, 1, 0, 0, 0]); // rows padded to 4 bytes
    header.write('BM', 0, 'latin1');
    header.writeUInt32LE(54 + palette.length + rows.length, 2);
    header.writeUInt32LE(54 + palette.length, 10);
    header.writeUInt32LE(40, 14);
    header.writeInt32LE(width, 18);
    header.writeInt32LE(-height, 22);
    header.writeUInt16LE(1, 26);
    header.writeUInt16LE(8, 28);
    header.writeUInt32LE(2, 46);
    const bmp = decodeBmp(Buffer.concat([header, palette, rows]));
    expect([...bmp.data]).to.deep.equal([255, 0, 0, 0, 255, 0, 0, 255, 0, 255, 0, 0]);
  });

  it('refuses truncated pixel data', () => {
    const bmp = encodeBmp(Buffer.alloc(300), 10, 10, 3);
    expect(() => decodeBmp(bmp.subarray(0, 100))).to.throw(/truncated/);
  });
});

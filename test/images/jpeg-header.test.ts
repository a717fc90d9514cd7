import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import sharp from 'sharp';
import { readJpegFrameInfo } from '../../src/images/jpeg-header.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/images');

/** A 48×32 JPEG (wider than tall, so a swapped width and height shows). */
function plainJpeg(options: { progressive?: boolean; cmyk?: boolean } = {}): Promise<Buffer> {
  const image = sharp({ create: { width: 48, height: 32, channels: 3, background: { r: 200, g: 40, b: 90 } } });
  return (options.cmyk ? image.toColourspace('cmyk') : image).jpeg({ progressive: options.progressive ?? false }).toBuffer();
}

/** An APP1 EXIF segment whose IFD0 holds `entries` ([tag, type, value] with SHORT/LONG values), in either byte order. */
function exifSegment(order: 'II' | 'MM', entries: readonly (readonly [number, number, number])[]): Buffer {
  const tiff = Buffer.alloc(8 + 2 + 12 * entries.length + 4);
  const le = order === 'II';
  const u16 = (v: number, at: number) => (le ? tiff.writeUInt16LE(v, at) : tiff.writeUInt16BE(v, at));
  const u32 = (v: number, at: number) => (le ? tiff.writeUInt32LE(v, at) : tiff.writeUInt32BE(v, at));
  tiff.write(order, 0, 'latin1');
  u16(42, 2);
  u32(8, 4);
  u16(entries.length, 8);
  entries.forEach(([tag, type, value], i) => {
    const at = 10 + 12 * i;
    u16(tag, at);
    u16(type, at + 2);
    u32(1, at + 4);
    if (type === 3) u16(value, at + 8);
    else u32(value, at + 8);
  });
  const payload = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]);
  const head = Buffer.alloc(4);
  head.writeUInt16BE(0xffe1, 0);
  head.writeUInt16BE(payload.length + 2, 2);
  return Buffer.concat([head, payload]);
}

/** `jpeg` with `segments` inserted right after its SOI marker. */
function withSegments(jpeg: Buffer, ...segments: Buffer[]): Buffer {
  return Buffer.concat([jpeg.subarray(0, 2), ...segments, jpeg.subarray(2)]);
}

/** What libvips reports, in readJpegFrameInfo's terms. */
async function libvipsSays(jpeg: Buffer): Promise<{ width: number; height: number; orientation: number }> {
  const meta = await sharp(jpeg).metadata();
  return { width: meta.width, height: meta.height, orientation: meta.orientation ?? 0 };
}

describe('readJpegFrameInfo', () => {
  it('reads the committed JPEG fixtures as libvips does', async () => {
    for (const name of ['large-2725x2225.jpg', 'photo-orient6.jpg', 'truncated.jpg']) {
      const jpeg = readFileSync(path.join(fixtures, name));
      const info = readJpegFrameInfo(jpeg);
      expect(info, name).to.not.equal(undefined);
      expect(info, name).to.deep.equal(await libvipsSays(jpeg));
    }
    expect(readJpegFrameInfo(readFileSync(path.join(fixtures, 'photo-orient6.jpg')))?.orientation).to.equal(6);
  });

  it('reads baseline, progressive and CMYK frames', async () => {
    for (const jpeg of [await plainJpeg(), await plainJpeg({ progressive: true }), await plainJpeg({ cmyk: true })]) {
      expect(readJpegFrameInfo(jpeg)).to.deep.equal({ width: 48, height: 32, orientation: 0 });
    }
  });

  it('reads every orientation in both byte orders, and a value out of range as 1, as libvips does', async () => {
    const jpeg = await plainJpeg();
    for (const order of ['II', 'MM'] as const) {
      for (const [type, value] of [[3, 1], [3, 3], [3, 5], [3, 6], [3, 8], [4, 7], [3, 0], [3, 9]] as const) {
        const tagged = withSegments(jpeg, exifSegment(order, [[0x010f, 3, 1], [0x0112, type, value]]));
        const info = readJpegFrameInfo(tagged);
        expect(info, `${order} type ${type} value ${value}`).to.deep.equal(await libvipsSays(tagged));
        expect(info?.orientation).to.equal(value >= 1 && value <= 8 ? value : 1);
      }
    }
  });

  it('reports no orientation for EXIF without the tag', async () => {
    const tagged = withSegments(await plainJpeg(), exifSegment('MM', [[0x010f, 3, 1]]));
    expect(readJpegFrameInfo(tagged)).to.deep.equal({ width: 48, height: 32, orientation: 0 });
    expect(await libvipsSays(tagged)).to.deep.equal({ width: 48, height: 32, orientation: 0 });
  });

  it('leaves unusual headers to libvips', async () => {
    const jpeg = await plainJpeg();
    const exif = exifSegment('II', [[0x0112, 3, 6]]);
    expect(readJpegFrameInfo(withSegments(jpeg, exif, exif)), 'two EXIF blocks').to.equal(undefined);
    expect(readJpegFrameInfo(withSegments(jpeg, exifSegment('II', [[0x0112, 5, 6]]))), 'a RATIONAL orientation').to.equal(undefined);
    const brokenTiff = exifSegment('II', [[0x0112, 3, 6]]);
    brokenTiff.write('XX', 10, 'latin1');
    expect(readJpegFrameInfo(withSegments(jpeg, brokenTiff)), 'no byte-order mark').to.equal(undefined);
    expect(readJpegFrameInfo(jpeg.subarray(0, 40)), 'header cut short').to.equal(undefined);
    const noHeight = Buffer.from(jpeg);
    const sof = noHeight.indexOf(Buffer.from([0xff, 0xc0]));
    noHeight.writeUInt16BE(0, sof + 5);
    expect(readJpegFrameInfo(noHeight), 'height left to a DNL marker').to.equal(undefined);
    expect(readJpegFrameInfo(Buffer.from('not a jpeg at all')), 'not a JPEG').to.equal(undefined);
  });
});

import { expect } from 'chai';
import sharp from 'sharp';
import { readExif } from '../../src/images/exif.js';

/* The EXIF reader behind `GET <key>?exif`: CI's `{"Tag":{"val":"…"}}` from sharp's metadata().exif. */

describe('images: EXIF reader (?exif)', () => {
  it('reads IFD0 and the Exif IFD as CI prints them (text, rationals, UNDEFINED bytes, ColorSpace)', async () => {
    const jpeg = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#f00' } })
      .jpeg()
      .withExif({ IFD0: { Make: 'Cam', Model: 'X1' }, IFD2: { DateTimeOriginal: '2018:09:03 17:37:06', ExposureTime: '1/200', ColorSpace: '1' } })
      .toBuffer();
    const exif = readExif((await sharp(jpeg).metadata()).exif);
    expect(exif).to.deep.include({
      Make: { val: 'Cam' }, Model: { val: 'X1' }, DateTimeOriginal: { val: '2018:09:03 17:37:06' }, ExposureTime: { val: '1/200' }, ColorSpace: { val: 'sRGB' },
    });
    expect(exif?.ExifVersion?.val).to.match(/^48 50 \d\d \d\d$/);
  });

  it('reads the fixture\'s orientation, and a big-endian block', async () => {
    const exif = readExif((await sharp('fixtures/images/photo-orient6.jpg').metadata()).exif);
    expect(exif?.Orientation).to.deep.equal({ val: '6' });
    // MM, one IFD0 entry: Orientation (SHORT) = 3.
    const mm = Buffer.from('4d4d002a00000008000101120003000000010003000000000000', 'hex');
    expect(readExif(mm)).to.deep.equal({ Orientation: { val: '3' } });
  });

  it('answers undefined for no block or no known tag, and never throws on a damaged block', async () => {
    expect(readExif(undefined)).to.equal(undefined);
    expect(readExif(Buffer.from('Exif\0\0garbage'))).to.equal(undefined);
    const block = (await sharp('fixtures/images/photo-orient6.jpg').metadata()).exif!;
    let seed = 1;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let n = 0; n < 3000; n++) {
      const copy = Buffer.from(block.subarray(0, Math.floor(random() * (block.length + 1))));
      for (let k = 0; k < 6 && copy.length > 0; k++) copy[Math.floor(random() * copy.length)] = Math.floor(random() * 256);
      expect(() => readExif(copy)).not.to.throw();
    }
  });
});

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import sharp from 'sharp';
import { loadConfig, type PicLimits } from '../../src/config.js';
import { PermanentJobError } from '../../src/engine/job-errors.js';
import { decodeBmp } from '../../src/images/bmp.js';
import { ImageSource } from '../../src/images/image-source.js';
import { applyMogrRule, type MogrResult } from '../../src/images/mogr-apply.js';
import { estimateJpegQuality } from '../../src/images/quality-estimate.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/images');
const fixture = (name: string) => readFileSync(path.join(fixtures, name));
const limits: PicLimits = loadConfig({}).picLimits;

type RGBA = [number, number, number, number];
const RED: RGBA = [255, 0, 0, 255];
const GREEN: RGBA = [0, 255, 0, 255];
const BLUE: RGBA = [0, 0, 255, 255];
const YELLOW: RGBA = [255, 255, 0, 255];
const WHITE: RGBA = [255, 255, 255, 255];

/** 120×80 PNG in four solid quadrants: red top-left, green top-right, blue bottom-left, yellow bottom-right. */
async function quadrants(): Promise<Buffer> {
  const q = (c: RGBA, left: number, top: number) => ({
    input: { create: { width: 60, height: 40, channels: 4 as const, background: { r: c[0], g: c[1], b: c[2], alpha: 1 } } },
    left,
    top,
  });
  return sharp({ create: { width: 120, height: 80, channels: 4, background: '#000' } })
    .composite([q(RED, 0, 0), q(GREEN, 60, 0), q(BLUE, 0, 40), q(YELLOW, 60, 40)])
    .png()
    .toBuffer();
}

/** Decoded RGBA pixels of an encoded image (all frames stacked for animations). */
async function pixels(data: Buffer, animated = false) {
  const { data: raw, info } = await sharp(data, { animated }).toColourspace('srgb').ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return {
    width: info.width,
    height: info.height,
    at(x: number, y: number): RGBA {
      const i = (y * info.width + x) * 4;
      return [raw[i], raw[i + 1], raw[i + 2], raw[i + 3]];
    },
  };
}

function expectColour(actual: RGBA, expected: RGBA, tolerance = 40, what = ''): void {
  const close = actual.every((v, i) => Math.abs(v - expected[i]) <= tolerance);
  expect(close, `${what} pixel ${JSON.stringify(actual)} should be close to ${JSON.stringify(expected)}`).to.equal(true);
}

async function apply(input: Buffer, rule: string, options: { limits?: PicLimits; averageColour?: boolean } = {}): Promise<MogrResult> {
  return applyMogrRule(ImageSource.fromBuffer(input), rule, { limits: options.limits ?? limits, averageColour: options.averageColour });
}

async function failure(input: Buffer, rule: string, options: { limits?: PicLimits } = {}): Promise<PermanentJobError> {
  try {
    await apply(input, rule, options);
  } catch (err) {
    expect(err).to.be.instanceOf(PermanentJobError);
    return err as PermanentJobError;
  }
  throw new Error(`expected ${rule} to fail`);
}

async function stdev(data: Buffer): Promise<number> {
  const stats = await sharp(data).stats();
  return stats.channels[0].stdev;
}

describe('applyMogrRule', () => {
  let quad: Buffer;
  before(async () => {
    quad = await quadrants();
  });

  describe('thumbnail', () => {
    const sizes: [string, number, number][] = [
      ['!50p', 60, 40],
      ['!50px', 60, 80],
      ['!x50p', 120, 40],
      ['60x', 60, 40],
      ['x40', 60, 40],
      ['60x60', 60, 40],
      ['240x240', 240, 160],
      ['240x240>', 120, 80],
      ['60x60>', 60, 40],
      ['60x60<', 120, 80],
      ['240x240<', 240, 160],
      ['!60x60r', 90, 60],
      ['50x50!', 50, 50],
      ['2400@', 60, 40],
    ];
    for (const [geometry, width, height] of sizes) {
      it(`thumbnail/${geometry} makes ${width}x${height}`, async () => {
        const { output } = await apply(quad, `imageMogr2/thumbnail/${geometry}`);
        const meta = await sharp(output.data).metadata();
        expect([output.width, output.height]).to.deep.equal([width, height]);
        expect([meta.width, meta.height, meta.format]).to.deep.equal([width, height, 'png']);
      });
    }

    it('pads into the box with the given colour', async () => {
      const { output } = await apply(quad, 'imageMogr2/thumbnail/100x100/pad/1/color/I0ZGMDBGRg'); // #FF00FF
      const px = await pixels(output.data);
      expect([px.width, px.height]).to.deep.equal([100, 100]);
      expectColour(px.at(50, 2), [255, 0, 255, 255], 10, 'pad');
      expectColour(px.at(10, 30), RED, 10, 'picture');
    });

    it('pads with white by default', async () => {
      const { output } = await apply(quad, 'imageMogr2/thumbnail/100x100/pad/1/format/jpg');
      expectColour((await pixels(output.data)).at(50, 2), WHITE, 10);
    });

    it('never enlarges an animation and keeps its frames', async () => {
      const { output } = await apply(fixture('animated.gif'), 'imageMogr2/thumbnail/!200p');
      const meta = await sharp(output.data, { animated: true }).metadata();
      expect([output.width, output.height, output.frames]).to.deep.equal([80, 60, 4]);
      expect([meta.pages, meta.pageHeight]).to.deep.equal([4, 60]);
    });

    it('shrinks an animation frame by frame', async () => {
      const { output } = await apply(fixture('animated.gif'), 'imageMogr2/thumbnail/40x');
      const meta = await sharp(output.data, { animated: true }).metadata();
      expect([meta.width, meta.pageHeight, meta.pages, meta.delay]).to.deep.equal([40, 30, 4, [100, 100, 100, 100]]);
      const px = await pixels(output.data, true);
      expectColour(px.at(30, 20), RED, 30, 'frame 0');
      expectColour(px.at(30, 30 + 20), GREEN, 30, 'frame 1');
      expectColour(px.at(30, 90 + 20), YELLOW, 30, 'frame 3');
    });
  });

  describe('cut and crop', () => {
    it('cut takes W×H at (dx, dy)', async () => {
      const { output } = await apply(quad, 'imageMogr2/cut/40x40x40x20');
      const px = await pixels(output.data);
      expect([px.width, px.height]).to.deep.equal([40, 40]);
      expectColour(px.at(0, 0), RED);
      expectColour(px.at(39, 0), GREEN);
      expectColour(px.at(0, 39), BLUE);
      expectColour(px.at(39, 39), YELLOW);
    });

    it('cut clips a region reaching past the image', async () => {
      const { output } = await apply(quad, 'imageMogr2/cut/100x100x100x60');
      expect([output.width, output.height]).to.deep.equal([20, 20]);
      expectColour((await pixels(output.data)).at(10, 10), YELLOW);
    });

    it('cut refuses an offset outside the image', async () => {
      const err = await failure(quad, 'imageMogr2/cut/10x10x120x0');
      expect(err.code).to.equal('InvalidArgument');
      expect(err.message).to.include('cut offset 120x0');
    });

    const crops: [string, number, number, RGBA[]][] = [
      // rule, width, height, colours at top-left / top-right / bottom-left / bottom-right
      ['crop/60x40', 60, 40, [RED, RED, RED, RED]],
      ['crop/60x40/gravity/southeast', 60, 40, [YELLOW, YELLOW, YELLOW, YELLOW]],
      ['crop/60x/gravity/east', 60, 80, [GREEN, GREEN, YELLOW, YELLOW]],
      ['crop/x40/gravity/south', 120, 40, [BLUE, YELLOW, BLUE, YELLOW]],
      ['crop/60x40/gravity/center', 60, 40, [RED, GREEN, BLUE, YELLOW]],
      ['gravity/northeast/crop/60x40', 60, 40, [GREEN, GREEN, GREEN, GREEN]],
      ['crop/500x500', 120, 80, [RED, GREEN, BLUE, YELLOW]],
    ];
    for (const [rule, width, height, colours] of crops) {
      it(`${rule} takes the right region (no scaling)`, async () => {
        const { output } = await apply(quad, `imageMogr2/${rule}`);
        const px = await pixels(output.data);
        expect([px.width, px.height]).to.deep.equal([width, height]);
        expectColour(px.at(0, 0), colours[0], 40, 'top-left');
        expectColour(px.at(width - 1, 0), colours[1], 40, 'top-right');
        expectColour(px.at(0, height - 1), colours[2], 40, 'bottom-left');
        expectColour(px.at(width - 1, height - 1), colours[3], 40, 'bottom-right');
      });
    }

    it('runs thumbnail then crop in order', async () => {
      const { output } = await apply(quad, 'imageMogr2/thumbnail/60x/crop/30x20/gravity/southeast');
      const px = await pixels(output.data);
      expect([px.width, px.height]).to.deep.equal([30, 20]);
      expectColour(px.at(0, 0), YELLOW);
    });
  });

  describe('rotate, auto-orient, flip', () => {
    const rotations: [number, number, number, RGBA][] = [
      [90, 80, 120, BLUE],
      [180, 120, 80, YELLOW],
      [270, 80, 120, GREEN],
      [360, 120, 80, RED],
    ];
    for (const [degrees, width, height, topLeft] of rotations) {
      it(`rotate/${degrees} turns clockwise`, async () => {
        const { output } = await apply(quad, `imageMogr2/rotate/${degrees}`);
        const px = await pixels(output.data);
        expect([px.width, px.height]).to.deep.equal([width, height]);
        expectColour(px.at(0, 0), topLeft);
      });
    }

    it('rotate/90 moves the red top-left corner of a photo to the top-right', async () => {
      const { output } = await apply(fixture('photo-orient6.jpg'), 'imageMogr2/rotate/90');
      const px = await pixels(output.data);
      expect([px.width, px.height]).to.deep.equal([240, 320]);
      expectColour(px.at(220, 20), RED, 50, 'top-right');
      expectColour(px.at(20, 300), BLUE, 50, 'bottom-left');
    });

    it('rotate/45 enlarges the canvas; corners transparent for PNG, white for JPEG', async () => {
      const png = await apply(quad, 'imageMogr2/rotate/45');
      expect(png.output.width).to.be.within(140, 143);
      expect((await pixels(png.output.data)).at(0, 0)[3]).to.equal(0);
      const jpg = await apply(quad, 'imageMogr2/rotate/45/format/jpg');
      expectColour((await pixels(jpg.output.data)).at(0, 0), WHITE, 10);
    });

    it('rotates every frame of an animation', async () => {
      const { output } = await apply(fixture('animated.gif'), 'imageMogr2/rotate/90');
      const meta = await sharp(output.data, { animated: true }).metadata();
      expect([meta.width, meta.pageHeight, meta.pages]).to.deep.equal([60, 80, 4]);
      const px = await pixels(output.data, true);
      // The white top-left marker of each frame ends up top-right; frame order is kept.
      expectColour(px.at(55, 5), WHITE, 30, 'frame 0 marker');
      expectColour(px.at(5, 5), RED, 30, 'frame 0');
      expectColour(px.at(5, 80 + 5), GREEN, 30, 'frame 1');
      expectColour(px.at(55, 160 + 5), WHITE, 30, 'frame 2 marker');
    });

    it('auto-orient applies EXIF orientation 6 and removes the tag', async () => {
      const { output } = await apply(fixture('photo-orient6.jpg'), 'imageMogr2/auto-orient');
      const px = await pixels(output.data);
      expect([px.width, px.height]).to.deep.equal([240, 320]);
      expectColour(px.at(220, 20), RED, 50, 'top-right');
      expect((await sharp(output.data).metadata()).orientation ?? 1).to.equal(1);
    });

    it('auto-orient before a thumbnail sizes the upright picture', async () => {
      const { output } = await apply(fixture('photo-orient6.jpg'), 'imageMogr2/auto-orient/thumbnail/120x');
      expect([output.width, output.height]).to.deep.equal([120, 160]);
    });

    it('auto-orient after another operation orients the processed pixels', async () => {
      const { output } = await apply(fixture('photo-orient6.jpg'), 'imageMogr2/thumbnail/160x/auto-orient');
      const px = await pixels(output.data);
      expect([px.width, px.height]).to.deep.equal([120, 160]);
      expectColour(px.at(112, 8), RED, 60, 'top-right');
    });

    it('keeps an unapplied EXIF orientation as the only metadata, and strip removes it', async () => {
      const kept = await sharp((await apply(fixture('photo-orient6.jpg'), 'imageMogr2/thumbnail/!50p')).output.data).metadata();
      expect(kept.orientation).to.equal(6);
      expect(kept.exif?.toString('latin1')).to.not.include('mediajobs');
      const stripped = await sharp((await apply(fixture('photo-orient6.jpg'), 'imageMogr2/thumbnail/!50p/strip')).output.data).metadata();
      expect(stripped.exif).to.equal(undefined);
      expect(stripped.orientation).to.equal(undefined);
    });

    it('flip/vertical mirrors top and bottom', async () => {
      const px = await pixels((await apply(quad, 'imageMogr2/flip/vertical')).output.data);
      expectColour(px.at(0, 0), BLUE);
      expectColour(px.at(119, 79), GREEN);
    });

    it('flip/horizontal mirrors left and right', async () => {
      const px = await pixels((await apply(quad, 'imageMogr2/flip/horizontal')).output.data);
      expectColour(px.at(0, 0), GREEN);
      expectColour(px.at(119, 79), BLUE);
    });

    it('flip/vertical keeps the frame order of an animation', async () => {
      const { output } = await apply(fixture('animated.gif'), 'imageMogr2/flip/vertical/format/webp');
      const meta = await sharp(output.data, { animated: true }).metadata();
      expect([meta.format, meta.pages]).to.deep.equal(['webp', 4]);
      const px = await pixels(output.data, true);
      expectColour(px.at(40, 30), RED, 40, 'frame 0');
      expectColour(px.at(4, 55), WHITE, 40, 'frame 0 marker moved to bottom-left');
      expectColour(px.at(40, 60 + 30), GREEN, 40, 'frame 1');
    });
  });

  describe('iradius and rradius', () => {
    it('iradius keeps a 2r circle, transparent outside for PNG', async () => {
      const { output } = await apply(quad, 'imageMogr2/iradius/30');
      const px = await pixels(output.data);
      expect([px.width, px.height]).to.deep.equal([60, 60]);
      expect(px.at(0, 0)[3]).to.equal(0);
      expect(px.at(59, 59)[3]).to.equal(0);
      expect(px.at(30, 30)[3]).to.equal(255);
      expectColour(px.at(20, 20), RED, 10, 'inside');
    });

    it('iradius fills outside the circle with white for JPEG', async () => {
      const { output } = await apply(fixture('photo-orient6.jpg'), 'imageMogr2/iradius/50');
      const px = await pixels(output.data);
      expect([px.width, px.height, output.format]).to.deep.equal([100, 100, 'JPEG']);
      expectColour(px.at(1, 1), WHITE, 8, 'corner');
      expect(px.at(50, 50).slice(0, 3).some((v) => v < 200), 'centre is picture').to.equal(true);
    });

    it('iradius refuses a radius over half the shorter side', async () => {
      const err = await failure(quad, 'imageMogr2/iradius/41');
      expect(err.code).to.equal('InvalidArgument');
      expect(err.message).to.include('iradius/41');
    });

    it('rradius rounds the corners and keeps the size', async () => {
      const { output } = await apply(quad, 'imageMogr2/rradius/20');
      const px = await pixels(output.data);
      expect([px.width, px.height]).to.deep.equal([120, 80]);
      expect(px.at(0, 0)[3]).to.equal(0);
      expect(px.at(119, 79)[3]).to.equal(0);
      expect(px.at(0, 40)[3]).to.equal(255);
      expect(px.at(60, 0)[3]).to.equal(255);
    });

    it('masks every frame of an animation', async () => {
      const { output } = await apply(fixture('animated.gif'), 'imageMogr2/iradius/25');
      const meta = await sharp(output.data, { animated: true }).metadata();
      expect([meta.width, meta.pageHeight, meta.pages]).to.deep.equal([50, 50, 4]);
      const px = await pixels(output.data, true);
      expect(px.at(0, 50)[3], 'frame 1 corner').to.equal(0);
      expectColour(px.at(25, 75), GREEN, 30, 'frame 1 centre');
    });
  });

  describe('colour operations', () => {
    it('grayscale/1 makes equal channels', async () => {
      const { output } = await apply(fixture('photo-orient6.jpg'), 'imageMogr2/grayscale/1');
      expect((await sharp(output.data).metadata()).channels).to.equal(1);
      const px = await pixels(output.data);
      for (const [x, y] of [[10, 10], [200, 100], [300, 200]]) {
        const [r, g, b] = px.at(x, y);
        expect(r === g && g === b, `pixel ${x},${y}`).to.equal(true);
      }
    });

    it('grayscale keeps transparency and also covers a pad colour', async () => {
      const alpha = await apply(fixture('alpha.png'), 'imageMogr2/grayscale/1');
      expect((await sharp(alpha.output.data).metadata()).channels).to.equal(2);
      const padded = await apply(quad, 'imageMogr2/thumbnail/100x100/pad/1/color/I0ZGMDAwMA/grayscale/1');
      const [r, g, b] = (await pixels(padded.output.data)).at(50, 2);
      expect(r === g && g === b).to.equal(true);
    });

    it('grayscale/0 leaves colour', async () => {
      const { output } = await apply(quad, 'imageMogr2/grayscale/0');
      expectColour((await pixels(output.data)).at(0, 0), RED, 0);
    });

    it('blur lowers the contrast of detail, sharpen raises it', async () => {
      const input = fixture('photo-orient6.jpg');
      const base = await stdev((await apply(input, 'imageMogr2/format/png')).output.data);
      const blurred = await stdev((await apply(input, 'imageMogr2/blur/20x8/format/png')).output.data);
      expect(blurred).to.be.lessThan(base);
      const noisy = await apply(input, 'imageMogr2/format/png');
      const sharpened = await apply(input, 'imageMogr2/sharpen/300/format/png');
      expect(Buffer.compare(noisy.output.data, sharpened.output.data)).to.not.equal(0);
    });

    it('bright shifts the mean, contrast stretches around mid-grey', async () => {
      const grey = await sharp({ create: { width: 20, height: 20, channels: 3, background: { r: 100, g: 100, b: 100 } } }).png().toBuffer();
      const bright = (await pixels((await apply(grey, 'imageMogr2/bright/20')).output.data)).at(5, 5);
      expectColour(bright, [151, 151, 151, 255], 2, 'bright/20');
      const more = (await pixels((await apply(grey, 'imageMogr2/contrast/50')).output.data)).at(5, 5);
      expect(more[0]).to.be.lessThan(100);
      const less = (await pixels((await apply(grey, 'imageMogr2/contrast/-50')).output.data)).at(5, 5);
      expect(less[0]).to.be.within(101, 127);
      const both = (await pixels((await apply(grey, 'imageMogr2/bright/20/contrast/-50')).output.data)).at(5, 5);
      expect(both[0]).to.be.within(128, 150);
    });
  });

  describe('formats', () => {
    const formats: [string, string, string][] = [
      ['jpg', 'jpeg', 'JPEG'],
      ['yjpeg', 'jpeg', 'JPEG'],
      ['png', 'png', 'PNG'],
      ['webp', 'webp', 'WEBP'],
      ['gif', 'gif', 'GIF'],
      ['tiff', 'tiff', 'TIFF'],
      ['avif', 'heif', 'AVIF'],
    ];
    for (const [name, sharpFormat, ciName] of formats) {
      it(`format/${name} writes ${ciName}`, async () => {
        const { output } = await apply(quad, `imageMogr2/format/${name}`);
        const meta = await sharp(output.data).metadata();
        expect([meta.format, meta.width, meta.height]).to.deep.equal([sharpFormat, 120, 80]);
        expect(output.format).to.equal(ciName);
        expectColour((await pixels(output.data)).at(10, 10), RED, 40);
      });
    }

    it('format/bmp writes a 24-bit BMP that reads back', async () => {
      const { output } = await apply(quad, 'imageMogr2/format/bmp');
      expect([output.format, output.extension]).to.deep.equal(['BMP', 'bmp']);
      const bmp = decodeBmp(output.data);
      expect([bmp.width, bmp.height, bmp.channels]).to.deep.equal([120, 80, 3]);
      expect([...bmp.data.subarray(0, 3)]).to.deep.equal([255, 0, 0]);
      const last = (79 * 120 + 119) * 3;
      expect([...bmp.data.subarray(last, last + 3)]).to.deep.equal([255, 255, 0]);
    });

    it('reads BMP input', async () => {
      const bmp = (await apply(quad, 'imageMogr2/format/bmp')).output.data;
      const { original, output } = await apply(bmp, 'imageMogr2/rotate/90/format/png');
      expect([original.format, output.width, output.height]).to.deep.equal(['BMP', 80, 120]);
      expectColour((await pixels(output.data)).at(0, 0), BLUE, 0);
    });

    it('flattens transparency onto white for JPEG', async () => {
      const { output } = await apply(fixture('alpha.png'), 'imageMogr2/format/jpg');
      const px = await pixels(output.data);
      expectColour(px.at(10, 10), WHITE, 5, 'transparent area');
      expectColour(px.at(110, 10), RED, 40, 'opaque area');
    });

    it('writes a still first frame of an animation for PNG', async () => {
      const { output } = await apply(fixture('animated.gif'), 'imageMogr2/format/png');
      expect([output.frames, output.height]).to.deep.equal([1, 60]);
      expectColour((await pixels(output.data)).at(40, 30), RED, 10);
    });

    it('interlace/1 writes a progressive JPEG', async () => {
      const { output } = await apply(fixture('photo-orient6.jpg'), 'imageMogr2/interlace/1');
      expect((await sharp(output.data).metadata()).isProgressive).to.equal(true);
    });

    it('applies "|" parts in order', async () => {
      const { output } = await apply(fixture('photo-orient6.jpg'), 'imageMogr2/thumbnail/!50p|imageMogr2/format/webp');
      const meta = await sharp(output.data).metadata();
      expect([meta.format, meta.width, meta.height, output.extension]).to.deep.equal(['webp', 160, 120, 'webp']);
    });
  });

  describe('quality', () => {
    // photo-orient6.jpg was written at quality 90.
    const cases: [string, number][] = [
      ['', 90],
      ['quality/80', 80],
      ['quality/95', 90],
      ['quality/95!', 95],
      ['rquality/50', 45],
      ['lquality/95', 95],
      ['lquality/50', 90],
      ['quality/80|imageMogr2/rquality/50', 40],
    ];
    for (const [rule, expected] of cases) {
      it(`${rule || 'no quality step'} on a quality-90 JPEG gives ${expected}`, async () => {
        const { output } = await apply(fixture('photo-orient6.jpg'), `imageMogr2${rule ? '/' + rule : ''}`);
        expect(output.quality).to.equal(expected);
        expect(estimateJpegQuality(output.data)).to.equal(expected);
      });
    }

    it('treats a lossless source as 100 and defaults to 90', async () => {
      expect((await apply(quad, 'imageMogr2/format/jpg')).output.quality).to.equal(90);
      expect((await apply(quad, 'imageMogr2/format/jpg/quality/70')).output.quality).to.equal(70);
      expect((await apply(quad, 'imageMogr2/format/webp/rquality/50')).output.quality).to.equal(50);
    });

    it('reports 100 for lossless output', async () => {
      expect((await apply(fixture('photo-orient6.jpg'), 'imageMogr2/format/png/quality/50')).output.quality).to.equal(100);
    });

    it('size-limit searches down to a quality that fits', async () => {
      const { output } = await apply(fixture('large-2725x2225.jpg'), 'imageMogr2/thumbnail/1000x/size-limit/60k');
      expect(output.data.length).to.be.at.most(60 * 1024);
      expect(output.quality).to.be.lessThan(85);
      expect(estimateJpegQuality(output.data)).to.equal(output.quality);
    });

    it('size-limit with ! returns the original when the result is not smaller', async () => {
      const input = fixture('photo-orient6.jpg');
      const { output } = await apply(input, 'imageMogr2/quality/100!/size-limit/900k!');
      expect(output.isOriginal).to.equal(true);
      expect(output.data.equals(input)).to.equal(true);
      expect([output.format, output.width, output.height, output.quality]).to.deep.equal(['JPEG', 320, 240, 90]);
    });

    it('size-limit refuses lossless output', async () => {
      const err = await failure(quad, 'imageMogr2/size-limit/10k');
      expect(err.code).to.equal('InvalidArgument');
      expect(err.message).to.include('size-limit');
    });
  });

  describe('original image info (IsPicInfo)', () => {
    it('reports format, size, quality, orientation and average colour of a JPEG', async () => {
      const input = fixture('photo-orient6.jpg');
      const { original } = await apply(input, 'imageMogr2/rotate/90', { averageColour: true });
      expect(original).to.include({ format: 'JPEG', width: 320, height: 240, quality: 90, orientation: 6, frames: 1 });
      expect(original.ave).to.match(/^0x[0-9a-f]{6}$/);
      const { channels } = await sharp(input).stats();
      const ave = original.ave ?? '';
      const actual = [2, 4, 6].map((i) => parseInt(ave.slice(i, i + 2), 16));
      channels.slice(0, 3).forEach((c, i) => expect(Math.abs(actual[i] - c.mean), `channel ${i}`).to.be.below(3));
    });

    it('reports GIF frames, WebP quality and PNG defaults', async () => {
      const gif = await apply(fixture('animated.gif'), 'imageMogr2', { averageColour: true });
      expect(gif.original).to.include({ format: 'GIF', width: 80, height: 60, frames: 4, quality: 100, orientation: 0 });
      const webp = await apply(fixture('sample.webp'), 'imageMogr2');
      expect(webp.original.format).to.equal('WEBP');
      expect(webp.original.quality).to.be.within(70, 80);
      const png = await apply(fixture('alpha.png'), 'imageMogr2');
      expect(png.original).to.include({ format: 'PNG', width: 200, height: 150, quality: 100, orientation: 0 });
    });

    it('skips the average colour unless asked', async () => {
      expect((await apply(quad, 'imageMogr2')).original.ave).to.equal(undefined);
    });
  });

  describe('limits and bad input', () => {
    it('refuses a decompression bomb from its header, fast', async () => {
      const started = Date.now();
      const err = await failure(fixture('bomb.png'), 'imageMogr2/thumbnail/100x');
      expect(err.code).to.equal('ImageTooLarge');
      expect(err.message).to.include('100000x100000');
      expect(Date.now() - started).to.be.below(500);
    });

    it('refuses a truncated JPEG with InvalidMedia', async () => {
      const err = await failure(fixture('truncated.jpg'), 'imageMogr2/rotate/90');
      expect(err.code).to.equal('InvalidMedia');
    });

    it('refuses bytes that are no image with InvalidMedia', async () => {
      const err = await failure(Buffer.from('definitely not a picture'), 'imageMogr2/rotate/90');
      expect(err.code).to.equal('InvalidMedia');
    });

    it('refuses inputs over maxInputBytes and maxInputPixels', async () => {
      const small = { ...limits, maxInputBytes: 1000 };
      expect((await failure(fixture('photo-orient6.jpg'), 'imageMogr2', { limits: small })).code).to.equal('ImageTooLarge');
      const fewPixels = { ...limits, maxInputPixels: 80 * 60 * 3 };
      const err = await failure(fixture('animated.gif'), 'imageMogr2', { limits: fewPixels });
      expect(err.message).to.include('4 frames');
    });

    it('refuses a result over maxOutputSide', async () => {
      const err = await failure(quad, 'imageMogr2/thumbnail/!1000p', { limits: { ...limits, maxOutputSide: 1000 } });
      expect(err.code).to.equal('ImageTooLarge');
      expect(err.message).to.include('1200x800');
    });

    it('refuses a step that would grow the image over maxOutputPixels, before its pixel work, but not one that shrinks it', async () => {
      const few = { ...limits, maxOutputPixels: 120 * 80 * 2 };
      const started = Date.now();
      const err = await failure(quad, 'imageMogr2/thumbnail/!200p/blur/50x50', { limits: few });
      expect(err.code).to.equal('ImageTooLarge');
      expect(err.message).to.include('240x160').and.include(`at most ${120 * 80 * 2} pixels`);
      expect(Date.now() - started).to.be.below(500);
      // A rotation by 1 degree grows the canvas a little: refused once over the limit.
      expect((await failure(quad, 'imageMogr2/thumbnail/!140p/rotate/1', { limits: few })).message).to.include('rotate/1');
      // Already over the limit (the input may be), shrinking and same-size steps still run.
      const { output } = await apply(quad, 'imageMogr2/rotate/90/thumbnail/!50p', { limits: { ...limits, maxOutputPixels: 100 } });
      expect([output.width, output.height]).to.deep.equal([40, 60]);
    });

    it('ignore-error/1 returns the original instead of a limit error', async () => {
      const bomb = fixture('bomb.png');
      const { output } = await apply(bomb, 'imageMogr2/thumbnail/100x/ignore-error/1');
      expect(output.isOriginal).to.equal(true);
      expect(output.data.equals(bomb)).to.equal(true);
      expect([output.format, output.width, output.height]).to.deep.equal(['PNG', 100000, 100000]);
      const big = await apply(quad, 'imageMogr2/thumbnail/!1000p/ignore-error/1', { limits: { ...limits, maxOutputSide: 1000 } });
      expect(big.output.isOriginal).to.equal(true);
    });

    it('ignore-error does not hide corrupt input', async () => {
      expect((await failure(fixture('truncated.jpg'), 'imageMogr2/ignore-error/1')).code).to.equal('InvalidMedia');
    });
  });
});

import { expect } from 'chai';
import { PermanentJobError } from '../../src/engine/job-errors.js';
import {
  MAX_RULE_FILTER_OPERATIONS,
  MAX_RULE_IMAGE_OPERATIONS,
  assertRuleWithinLimits,
  parseMogrRule,
  parseMogrRuleWithinLimits,
  parseThumbnailGeometry,
  type MogrStep,
} from '../../src/images/mogr-rule.js';

function parseError(rule: string): PermanentJobError {
  try {
    parseMogrRule(rule);
  } catch (err) {
    expect(err).to.be.instanceOf(PermanentJobError);
    return err as PermanentJobError;
  }
  throw new Error(`expected ${JSON.stringify(rule)} to be rejected`);
}

describe('parseMogrRule', () => {
  describe('thumbnail geometries', () => {
    const cases: [string, unknown][] = [
      ['!50p', { kind: 'scale', percent: 50 }],
      ['!12.5p', { kind: 'scale', percent: 12.5 }],
      ['!50px', { kind: 'scaleWidth', percent: 50 }],
      ['!x50p', { kind: 'scaleHeight', percent: 50 }],
      ['300x', { kind: 'fit', width: 300 }],
      ['x200', { kind: 'fit', height: 200 }],
      ['300x200', { kind: 'fit', width: 300, height: 200 }],
      ['300x200>', { kind: 'fit', width: 300, height: 200, only: 'shrink' }],
      ['300x200<', { kind: 'fit', width: 300, height: 200, only: 'enlarge' }],
      ['!300x200r', { kind: 'cover', width: 300, height: 200 }],
      ['300x200!', { kind: 'force', width: 300, height: 200 }],
      ['40000@', { kind: 'area', pixels: 40000 }],
    ];
    for (const [geometry, expected] of cases) {
      it(`parses thumbnail/${geometry}`, () => {
        expect(parseMogrRule(`imageMogr2/thumbnail/${geometry}`)).to.deep.equal([{ op: 'thumbnail', geometry: expected }]);
        expect(parseThumbnailGeometry(geometry)).to.deep.equal(expected);
      });
    }
    for (const bad of ['abc', '!0p', '!1001p', '0x100', '300y200', '!300x200', '300x200r', 'x', '!p', '-5x', '300x200>>', '@']) {
      it(`rejects thumbnail/${bad} naming the segment`, () => {
        const err = parseError(`imageMogr2/thumbnail/${bad}`);
        expect(err.code).to.equal('InvalidArgument');
        expect(err.message).to.include(`thumbnail/${bad}`);
      });
    }
  });

  it('attaches pad and a base64 colour to the thumbnail', () => {
    // "#FF0000" in URL-safe base64
    expect(parseMogrRule('imageMogr2/thumbnail/300x200/pad/1/color/I0ZGMDAwMA')).to.deep.equal([
      { op: 'thumbnail', geometry: { kind: 'fit', width: 300, height: 200 }, pad: { color: '#ff0000' } },
    ]);
    expect(parseMogrRule('imageMogr2/thumbnail/300x200>/pad/1')).to.deep.equal([
      { op: 'thumbnail', geometry: { kind: 'fit', width: 300, height: 200, only: 'shrink' }, pad: { color: '#ffffff' } },
    ]);
  });

  it('parses every other operation', () => {
    const rule =
      'imageMogr2/cut/100x80x10x5/crop/300x/crop/x200/crop/300x400/gravity/center/iradius/50/rradius/20/rotate/90/auto-orient' +
      '/flip/vertical/flip/horizontal/format/jpg/interlace/1/quality/80/quality/70!/rquality/60/lquality/50/size-limit/15k!' +
      '/size-limit/2m/blur/8x5/sharpen/70/bright/-20/contrast/30/grayscale/1/strip/ignore-error/1';
    const expected: MogrStep[] = [
      { op: 'cut', width: 100, height: 80, x: 10, y: 5 },
      { op: 'crop', width: 300, gravity: 'northwest' },
      { op: 'crop', height: 200, gravity: 'northwest' },
      { op: 'crop', width: 300, height: 400, gravity: 'center' },
      { op: 'iradius', radius: 50 },
      { op: 'rradius', radius: 20 },
      { op: 'rotate', degrees: 90 },
      { op: 'auto-orient' },
      { op: 'flip', direction: 'vertical' },
      { op: 'flip', direction: 'horizontal' },
      { op: 'format', format: 'jpeg', optimized: false },
      { op: 'interlace', enabled: true },
      { op: 'quality', quality: 80, force: false },
      { op: 'quality', quality: 70, force: true },
      { op: 'rquality', quality: 60 },
      { op: 'lquality', quality: 50 },
      { op: 'size-limit', bytes: 15 * 1024, keepOriginalIfLarger: true },
      { op: 'size-limit', bytes: 2 * 1024 * 1024, keepOriginalIfLarger: false },
      { op: 'blur', radius: 8, sigma: 5 },
      { op: 'sharpen', amount: 70 },
      { op: 'bright', value: -20 },
      { op: 'contrast', value: 30 },
      { op: 'grayscale', enabled: true },
      { op: 'strip' },
      { op: 'ignore-error', enabled: true },
    ];
    expect(parseMogrRule(rule)).to.deep.equal(expected);
  });

  it('accepts a gravity written before its crop (Qiniu order)', () => {
    expect(parseMogrRule('imageMogr2/gravity/south/crop/100x100')).to.deep.equal([{ op: 'crop', width: 100, height: 100, gravity: 'south' }]);
  });

  it('maps every supported format name', () => {
    const formats: [string, string, boolean][] = [
      ['jpg', 'jpeg', false], ['jpeg', 'jpeg', false], ['yjpeg', 'jpeg', true], ['png', 'png', false], ['webp', 'webp', false],
      ['gif', 'gif', false], ['bmp', 'bmp', false], ['tiff', 'tiff', false], ['avif', 'avif', false],
    ];
    for (const [name, format, optimized] of formats) {
      expect(parseMogrRule(`imageMogr2/format/${name}`), name).to.deep.equal([{ op: 'format', format, optimized }]);
    }
  });

  it('applies "|"-joined parts in order as one list', () => {
    expect(parseMogrRule('imageMogr2/thumbnail/!50p|imageMogr2/format/webp')).to.deep.equal([
      { op: 'thumbnail', geometry: { kind: 'scale', percent: 50 } },
      { op: 'format', format: 'webp', optimized: false },
    ]);
  });

  it('accepts a bare imageMogr2 (re-encode only)', () => {
    expect(parseMogrRule('imageMogr2')).to.deep.equal([]);
  });

  const rejected: [string, string][] = [
    ['imageMogr2/rotate/361', 'rotate/361'],
    ['imageMogr2/rotate/-1', 'rotate/-1'],
    ['imageMogr2/rotate/9.5', 'rotate/9.5'],
    ['imageMogr2/rotate', '"rotate" needs a value'],
    ['imageMogr2/quality/101', 'quality/101'],
    ['imageMogr2/quality/80!!', 'quality/80!!'],
    ['imageMogr2/rquality/101', 'rquality/101'],
    ['imageMogr2/lquality/abc', 'lquality/abc'],
    ['imageMogr2/blur/0x5', 'blur/0x5'],
    ['imageMogr2/blur/51x5', 'blur/51x5'],
    ['imageMogr2/blur/5x0', 'blur/5x0'],
    ['imageMogr2/blur/5', 'blur/5'],
    ['imageMogr2/sharpen/5', 'sharpen/5'],
    ['imageMogr2/sharpen/301', 'sharpen/301'],
    ['imageMogr2/bright/101', 'bright/101'],
    ['imageMogr2/contrast/-101', 'contrast/-101'],
    ['imageMogr2/grayscale/2', 'grayscale/2'],
    ['imageMogr2/interlace/yes', 'interlace/yes'],
    ['imageMogr2/ignore-error/2', 'ignore-error/2'],
    ['imageMogr2/size-limit/15', 'size-limit/15'],
    ['imageMogr2/size-limit/0k', 'size-limit/0k'],
    ['imageMogr2/cut/100x100x10', 'cut/100x100x10'],
    ['imageMogr2/cut/0x100x0x0', 'cut/0x100x0x0'],
    ['imageMogr2/crop/x', 'crop/x'],
    ['imageMogr2/crop/100x100/gravity/middle', 'gravity/middle'],
    ['imageMogr2/gravity/center/rotate/90', 'gravity/center'],
    ['imageMogr2/crop/10x10/gravity/center/gravity/north', 'gravity/north'],
    ['imageMogr2/iradius/0', 'iradius/0'],
    ['imageMogr2/rradius/x', 'rradius/x'],
    ['imageMogr2/flip/diagonal', 'flip/diagonal'],
    ['imageMogr2/format/xyz', 'format/xyz'],
    ['imageMogr2/format/heif', 'format "heif"'],
    ['imageMogr2/format/tpg', 'format "tpg"'],
    ['imageMogr2/pad/1', 'pad/1'],
    ['imageMogr2/thumbnail/!50p/pad/1', 'pad/1'],
    ['imageMogr2/thumbnail/300x200/color/I0ZGMDAwMA', 'color/I0ZGMDAwMA'],
    ['imageMogr2/thumbnail/300x200/pad/1/color/bm90IGEgY29sb3I', 'color/bm90IGEgY29sb3I'],
    ['imageMogr2/scrop/100x100', '"scrop"'],
    ['imageMogr2/bgcolor/I0ZGMDAwMA', '"bgcolor"'],
    ['imageMogr2/frobnicate/1', '"frobnicate"'],
    ['imageMogr2//rotate/90', 'empty segment'],
    ['imageMogr2/rotate/90/', 'empty segment at position 3 of "imageMogr2/rotate/90/"'],
    ['imageMogr2/thumbnail/!50p|watermark/2/text/aGk', '"watermark"'],
    ['imageView2/1/w/100', '"imageView2"'],
    ['imageMogr2/rotate/90|', 'empty processor'],
    ['', 'empty'],
  ];
  for (const [rule, fragment] of rejected) {
    it(`rejects ${JSON.stringify(rule)} with InvalidArgument naming ${fragment}`, () => {
      const err = parseError(rule);
      expect(err.code).to.equal('InvalidArgument');
      expect(err.message).to.include(fragment);
    });
  }
});

describe('rule limits (bounded work per job)', () => {
  const limits = { maxOutputSide: 9999, maxOutputPixels: 50_000_000 };

  function refusal(rule: string): PermanentJobError {
    try {
      parseMogrRuleWithinLimits(rule, limits);
    } catch (err) {
      expect(err).to.be.instanceOf(PermanentJobError);
      expect((err as PermanentJobError).code).to.equal('InvalidArgument');
      return err as PermanentJobError;
    }
    throw new Error(`expected ${JSON.stringify(rule)} to be refused`);
  }

  it('refuses the blur rule of issue 20 (a 9999x9999 thumbnail and 91 blurs), naming the operation limit', () => {
    const rule = 'imageMogr2/thumbnail/9999x9999' + '|imageMogr2/blur/50x50'.repeat(91);
    expect(refusal(rule).message).to.equal('ProcessRule: the rule has 92 image operations; at most 20 are allowed in one rule');
  });

  it('refuses 100 x rotate/1, naming the operation limit', () => {
    expect(refusal('imageMogr2' + '/rotate/1'.repeat(100)).message).to.include('100 image operations; at most 20');
  });

  it(`allows ${MAX_RULE_IMAGE_OPERATIONS} image operations over several parts, not one more; encoding options do not count`, () => {
    const flips = (n: number) => Array.from({ length: n }, (_, i) => `imageMogr2/flip/${i % 2 ? 'vertical' : 'horizontal'}`).join('|');
    expect(parseMogrRule(flips(MAX_RULE_IMAGE_OPERATIONS))).to.have.length(MAX_RULE_IMAGE_OPERATIONS);
    expect(refusal(flips(MAX_RULE_IMAGE_OPERATIONS + 1)).message).to.include(`${MAX_RULE_IMAGE_OPERATIONS + 1} image operations; at most ${MAX_RULE_IMAGE_OPERATIONS}`);
    const encoding = '/format/png/quality/80/rquality/90/lquality/10/interlace/1/grayscale/1/strip/ignore-error/1/size-limit/10k';
    expect(parseMogrRule(`${flips(MAX_RULE_IMAGE_OPERATIONS)}${encoding}${encoding}`)).to.have.length(MAX_RULE_IMAGE_OPERATIONS + 18);
  });

  it(`allows ${MAX_RULE_FILTER_OPERATIONS} filters (blur, sharpen, iradius, rradius, a rotation off the right angles), not one more`, () => {
    expect(parseMogrRule('imageMogr2/blur/50x50/sharpen/300/iradius/10/rradius/5/rotate/45/rotate/90/rotate/180')).to.have.length(7);
    for (const sixth of ['blur/1x1', 'sharpen/10', 'iradius/1', 'rradius/1', 'rotate/1']) {
      const err = refusal(`imageMogr2/blur/50x50/sharpen/300/iradius/10/rradius/5/rotate/45|imageMogr2/${sixth}`);
      expect(err.message, sixth).to.include(`the rule has 6 filters`).and.include(`at most ${MAX_RULE_FILTER_OPERATIONS} are allowed`);
    }
    expect(refusal('imageMogr2' + '/blur/50x50'.repeat(6)).message).to.include('6 filters');
  });

  it('refuses blur radius and sigma, and sharpen, outside their ranges, naming the range', () => {
    expect(refusal('imageMogr2/blur/51x5').message).to.include('the radius must be from 1 to 50');
    expect(refusal('imageMogr2/blur/5x50.5').message).to.include('sigma must be greater than 0 and at most 50');
    expect(refusal('imageMogr2/sharpen/301').message).to.include('sharpen must be from 10 to 300');
  });

  const sizeCases: [string, string][] = [
    ['imageMogr2/thumbnail/9999x9999', 'thumbnail/9999x9999 asks for up to 99980001 pixels; the output limit is 50000000 pixels'],
    ['imageMogr2/thumbnail/8000x8000!', 'thumbnail/8000x8000! asks for up to 64000000 pixels'],
    ['imageMogr2/thumbnail/!8000x8000r', 'thumbnail/!8000x8000r asks for up to 64000000 pixels'],
    ['imageMogr2/thumbnail/60000000@', 'thumbnail/60000000@ asks for up to 60000000 pixels'],
    ['imageMogr2/thumbnail/10000x', 'thumbnail/10000x asks for a side of 10000 pixels; the output limit is 9999 pixels per side'],
    ['imageMogr2/thumbnail/x10000<', 'thumbnail/x10000< asks for a side of 10000 pixels'],
    ['imageMogr2/thumbnail/9000x9000>/pad/1', 'thumbnail/9000x9000>/pad/1 asks for up to 81000000 pixels'],
  ];
  for (const [rule, message] of sizeCases) {
    it(`refuses ${rule} naming the output limit`, () => {
      expect(refusal(rule).message).to.include(`ProcessRule: ${message}`);
    });
  }

  it('lets through sizes that never grow the picture over the limits, and any size with ignore-error/1', () => {
    for (const rule of ['imageMogr2/thumbnail/9999x9999>', 'imageMogr2/thumbnail/8000x6000', 'imageMogr2/thumbnail/!1000p', 'imageMogr2/thumbnail/9999x', 'imageMogr2/thumbnail/50000000@', 'imageMogr2/thumbnail/9999x9999/ignore-error/1']) {
      expect(() => assertRuleWithinLimits(parseMogrRule(rule), limits), rule).not.to.throw();
    }
    expect(() => assertRuleWithinLimits(parseMogrRule('imageMogr2/thumbnail/300x200'), { maxOutputSide: 9999, maxOutputPixels: 50_000 })).to.throw(PermanentJobError, '60000 pixels');
  });
});

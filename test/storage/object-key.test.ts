import { expect } from 'chai';
import { assertSafeObjectKey } from '../../src/storage/object-key.js';
import { CiError } from '../../src/errors.js';

describe('assertSafeObjectKey', () => {
  for (const key of ['../etc/passwd', 'a/../../b', '/abs', 'a//b', 'a/', 'a\\b', 'a\u0000b', './a', '', `a/${'x'.repeat(256)}`, `${'中'.repeat(86)}/a`]) {
    it(`refuses ${JSON.stringify(key)} with InvalidArgument`, () => {
      expect(() => assertSafeObjectKey(key)).to.throw(CiError).with.property('code', 'InvalidArgument');
    });
  }
  for (const key of ['input/demo.mp4', 'a', '中文/视频 1.mp4', 'a..b/c.d', '.hidden', `a/${'x'.repeat(255)}`, `${'中'.repeat(85)}/a`]) {
    it(`accepts ${JSON.stringify(key)}`, () => {
      expect(assertSafeObjectKey(key)).to.equal(key);
    });
  }
});

import { expect } from 'chai';
import { routeRequest } from '../../src/http/host-routing.js';
import { parseRange } from '../../src/http/objects.handlers.js';
import { groupListing, multipartEtag, type ObjectInfo } from '../../src/storage/object-storage.js';
import { createHash } from 'node:crypto';

describe('objects: routing, ranges and listing (pure functions)', () => {
  describe('routeRequest', () => {
    const cases: Array<[string | undefined, string, ReturnType<typeof routeRequest>]> = [
      ['pics-1250000000.cos.ap-guangzhou.myqcloud.com', '/a/b.jpg', { api: 'object', bucket: 'pics-1250000000', region: 'ap-guangzhou', key: 'a/b.jpg', style: 'virtual-host' }],
      ['pics-1250000000.cos.ap-guangzhou.myqcloud.com', '/jobs', { api: 'object', bucket: 'pics-1250000000', region: 'ap-guangzhou', key: 'jobs', style: 'virtual-host' }],
      ['pics-1250000000.cos.ap-local.example.com:8080', '/', { api: 'object', bucket: 'pics-1250000000', region: 'ap-local', key: '', style: 'virtual-host' }],
      ['pics-1250000000.ci.ap-guangzhou.myqcloud.com', '/a/b.jpg', { api: 'ci' }],
      ['pics-1250000000.pic.ap-guangzhou.myqcloud.com', '/pic_jobs', { api: 'ci' }],
      ['127.0.0.1:8080', '/jobs', { api: 'ci' }],
      ['127.0.0.1:8080', '/jobs/j0123', { api: 'ci' }],
      ['127.0.0.1:8080', '/queue', { api: 'ci' }],
      ['127.0.0.1:8080', '/template/t1', { api: 'ci' }],
      ['127.0.0.1:8080', '/api.php', { api: 'ci' }],
      ['127.0.0.1:8080', '/admin/apps', { api: 'ci' }],
      ['127.0.0.1:8080', '/console/', { api: 'ci' }],
      ['127.0.0.1:8080', '/metrics', { api: 'ci' }],
      ['127.0.0.1:8080', '/pics-1250000000/a%20b.jpg', { api: 'object', bucket: 'pics-1250000000', region: undefined, key: 'a b.jpg', style: 'path' }],
      ['127.0.0.1:8080', '/pics-1250000000', { api: 'object', bucket: 'pics-1250000000', region: undefined, key: '', style: 'path' }],
      ['127.0.0.1:8080', '/input/demo.mp4', { api: 'object', bucket: undefined, region: undefined, key: 'input/demo.mp4', style: 'default-bucket' }],
      ['127.0.0.1:8080', '/jobsx/a', { api: 'object', bucket: undefined, region: undefined, key: 'jobsx/a', style: 'default-bucket' }],
      [undefined, '/x', { api: 'object', bucket: undefined, region: undefined, key: 'x', style: 'default-bucket' }],
    ];
    for (const [host, path, expected] of cases) {
      it(`${host ?? '(no host)'} ${path} → ${expected.api}${expected.api === 'object' ? ` ${expected.style}` : ''}`, () => {
        expect(routeRequest(host, path)).to.deep.equal(expected);
      });
    }

    it('gives a bare host\'s browser GET / to the console, any other / to GetBucket', () => {
      expect(routeRequest('127.0.0.1:8080', '/', true)).to.deep.equal({ api: 'ci' });
      expect(routeRequest('127.0.0.1:8080', '/', false)).to.include({ api: 'object', key: '' });
      expect(routeRequest('b-1250000000.cos.r.example.com', '/', true)).to.include({ api: 'object', bucket: 'b-1250000000' });
    });

    it('refuses a path that is not percent-encoded UTF-8 (InvalidURI)', () => {
      expect(() => routeRequest('127.0.0.1', '/a%ff.txt')).to.throw().with.property('code', 'InvalidURI');
    });
  });

  describe('parseRange', () => {
    it('reads a-b, a- and -n, clamps the end, and ignores what it cannot read', () => {
      expect(parseRange('bytes=0-9', 100)).to.deep.equal({ start: 0, end: 9 });
      expect(parseRange('bytes=90-', 100)).to.deep.equal({ start: 90, end: 99 });
      expect(parseRange('bytes=-10', 100)).to.deep.equal({ start: 90, end: 99 });
      expect(parseRange('bytes=-500', 100)).to.deep.equal({ start: 0, end: 99 });
      expect(parseRange('bytes=50-5000', 100)).to.deep.equal({ start: 50, end: 99 });
      expect(parseRange('bytes=0-1,5-6', 100)).to.equal(undefined);
      expect(parseRange('items=0-1', 100)).to.equal(undefined);
      expect(parseRange('bytes=9-1', 100)).to.equal(undefined);
    });

    it('refuses a range starting past the end (InvalidRange)', () => {
      expect(() => parseRange('bytes=100-', 100)).to.throw().with.property('code', 'InvalidRange');
      expect(() => parseRange('bytes=-0', 100)).to.throw().with.property('code', 'InvalidRange');
    });
  });

  describe('groupListing', () => {
    const info = async (key: string): Promise<ObjectInfo> => ({ key, size: 1, etag: '"x"', lastModified: new Date(0), metadata: { meta: {} } });
    const keys = ['a', 'b/1', 'b/2', 'b/c/3', 'c', 'é', 'z/1'];

    it('groups by the delimiter after the prefix and pages with a marker', async () => {
      const all = await groupListing(keys, { prefix: '', delimiter: '/', marker: '', maxKeys: 1000 }, info);
      expect(all.contents.map((c) => c.key)).to.deep.equal(['a', 'c', 'é']);
      expect(all.commonPrefixes).to.deep.equal(['b/', 'z/']);
      const page = await groupListing(keys, { prefix: '', delimiter: '/', marker: '', maxKeys: 2 }, info);
      expect(page).to.include({ isTruncated: true, nextMarker: 'b/' });
      const next = await groupListing(keys, { prefix: '', delimiter: '/', marker: 'b/', maxKeys: 2 }, info);
      expect(next.contents.map((c) => c.key)).to.deep.equal(['c', 'é']);
      const under = await groupListing(keys, { prefix: 'b/', delimiter: '/', marker: '', maxKeys: 10 }, info);
      expect(under.contents.map((c) => c.key)).to.deep.equal(['b/1', 'b/2']);
      expect(under.commonPrefixes).to.deep.equal(['b/c/']);
    });
  });

  it('computes the multipart etag as the md5 of the parts\' binary md5s and their count', () => {
    const parts = [Buffer.from('a'), Buffer.from('b')].map((b) => `"${createHash('md5').update(b).digest('hex')}"`);
    const joined = Buffer.concat(parts.map((p) => Buffer.from(p.slice(1, -1), 'hex')));
    expect(multipartEtag(parts, (d) => createHash('md5').update(d).digest('hex'))).to.equal(`"${createHash('md5').update(joined).digest('hex')}-2"`);
  });
});

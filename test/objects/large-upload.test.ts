import { expect } from 'chai';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { startTestService, type TestService } from '../helpers/service.js';

/*
 * A 2 GiB PutObject is streamed to storage, never buffered: the process's
 * RSS (service and client together, both streaming) grows by less than
 * 100 MB. The body is zeros from one reused 1 MiB buffer, so the client
 * holds nothing either; the object is then read back as a stream (size and
 * ETag checked) and deleted.
 */

const SIZE = 2 * 1024 ** 3;
const CHUNK = Buffer.alloc(1024 * 1024);

describe('objects: a 2 GiB upload streams with bounded memory', function () {
  this.timeout(600_000);
  let api: TestService;

  before(async () => { api = await startTestService(); });
  after(() => api?.stop());

  it('stores 2 GiB with RSS growth under 100 MB, and reads it back as a stream', async () => {
    const port = api.service.port!;
    global.gc?.();
    const baseline = process.memoryUsage.rss();
    let peak = baseline;
    const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()); }, 50);
    const expected = createHash('md5');
    try {
      const etag = await new Promise<string>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, method: 'PUT', path: '/big/zeros.bin', headers: { 'content-length': String(SIZE) }, agent: false }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve(String(res.headers.etag)) : reject(new Error(`PUT: ${res.statusCode}`))));
        });
        req.on('error', reject);
        let sent = 0;
        const write = () => {
          while (sent < SIZE) {
            sent += CHUNK.length;
            expected.update(CHUNK);
            if (!req.write(CHUNK)) {
              req.once('drain', write);
              return;
            }
          }
          req.end();
        };
        write();
      });
      expect(etag).to.equal(`"${expected.digest('hex')}"`);
      const size = await new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: '/big/zeros.bin', agent: false }, (res) => {
          let total = 0;
          res.on('data', (c: Buffer) => { total += c.length; });
          res.on('end', () => resolve(total));
        }).on('error', reject);
      });
      expect(size).to.equal(SIZE);
    } finally {
      clearInterval(sampler);
      await api.service.storage.delete(api.service.app.bucket, 'big/zeros.bin');
    }
    const growthMb = (peak - baseline) / 1024 / 1024;
    console.log(`      RSS: baseline ${(baseline / 1024 / 1024).toFixed(1)} MB, peak ${(peak / 1024 / 1024).toFixed(1)} MB, growth ${growthMb.toFixed(1)} MB`);
    expect(growthMb).to.be.below(100);
  });
});

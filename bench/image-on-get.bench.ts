/**
 * GetObject with an imageMogr2 rule vs bare sharp on the same file, in the
 * same run (issue 17's bench/image-on-get).
 *
 *   npx tsx bench/image-on-get.bench.ts     (or node dist/bench/image-on-get.bench.js after tsc)
 *
 * The 2725×2225 JPEG fixture, rule `imageMogr2/thumbnail/720x588/quality/80`,
 * BENCH_REQUESTS (48) requests per side at concurrency 2, BENCH_ROUNDS (3)
 * rounds alternating which side goes first:
 * - uncached: each request names another copy of the object (its own cache key);
 * - cached: the same copies again (answered from the processed-image cache);
 * - bare sharp: `sharp(file).resize(720, 588, { fit: 'inside' }).jpeg({ quality: 80 })`,
 *   in this process, with the service's sharp settings (it is the same module).
 * The client is in this process too (the answers are ~100 KB). Targets:
 * uncached ≥ 0.85× bare sharp's rate, cached ≥ 20×.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { BUCKET, envInt, fmt, median, printBlock, printTable, REPO_ROOT, runBenchmark, runPool, startBenchService } from './lib.js';

const REQUESTS = envInt('BENCH_REQUESTS', 48);
const ROUNDS = envInt('BENCH_ROUNDS', 3);
const CONCURRENCY = 2;
const RULE = 'imageMogr2/thumbnail/720x588/quality/80';
const FIXTURE = path.join(REPO_ROOT, 'fixtures', 'images', 'large-2725x2225.jpg');

function get(port: number, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: `/${key}?${encodeURIComponent(RULE)}`, agent: false }, (res) => {
      let size = 0;
      res.on('data', (c: Buffer) => { size += c.length; });
      res.on('end', () => (res.statusCode === 200 ? resolve(size) : reject(new Error(`GET ${key}: ${res.statusCode}`))));
    }).on('error', reject);
  });
}

await runBenchmark('image-on-get', async (db, use) => {
  const bench = use(await startBenchService(db));
  const port = bench.service.port!;
  const data = readFileSync(FIXTURE);
  const rates = { uncached: [] as number[], cached: [] as number[], sharp: [] as number[] };
  const rate = async (run: (i: number) => Promise<unknown>) => {
    const start = performance.now();
    await runPool(REQUESTS, CONCURRENCY, async (i) => { await run(i); });
    return REQUESTS / ((performance.now() - start) / 1000);
  };
  for (let round = 0; round < ROUNDS; round += 1) {
    const keys = Array.from({ length: REQUESTS }, (_, i) => `bench/r${round}/${i}.jpg`);
    for (const key of keys) await bench.service.storage.put(BUCKET, key, data);
    const sides: Array<[keyof typeof rates, (i: number) => Promise<unknown>]> = [
      ['uncached', (i) => get(port, keys[i]!)],
      ['sharp', () => sharp(FIXTURE).resize(720, 588, { fit: 'inside' }).jpeg({ quality: 80 }).toBuffer()],
    ];
    for (const [name, run] of round % 2 === 0 ? sides : [...sides].reverse()) rates[name].push(await rate(run));
    rates.cached.push(await rate((i) => get(port, keys[i]!)));
  }
  const m = { uncached: median(rates.uncached), cached: median(rates.cached), sharp: median(rates.sharp) };
  printBlock('image-on-get: GetObject ?imageMogr2/thumbnail/720x588/quality/80 on the 2725×2225 JPEG, concurrency 2', [
    ['requests per side and round', String(REQUESTS)],
    ['rounds', String(ROUNDS)],
  ]);
  printTable(['side', 'images/s (median)', 'vs bare sharp', 'target'], [
    ['bare sharp', fmt(m.sharp, 1), '1.00', ''],
    ['GetObject, uncached', fmt(m.uncached, 1), fmt(m.uncached / m.sharp), '≥ 0.85'],
    ['GetObject, cached', fmt(m.cached, 1), fmt(m.cached / m.sharp, 1), '≥ 20'],
  ]);
});

/**
 * PutObject and GetObject throughput over loopback against a plain file copy
 * of the same bytes, in the same run (issue 17's bench/objects).
 *
 *   npx tsx bench/objects.bench.ts          (or node dist/bench/objects.bench.js after tsc)
 *
 * For each size (1 MB and 64 MB; BENCH_OBJECT_SIZES_MB to change) and
 * BENCH_ROUNDS rounds (default 8 for 1 MB ×16 objects, 8 for 64 MB), in
 * alternating order:
 * - upload: curl streams a source file in a PUT (unsigned, the local
 *   backend: temporary file, MD5 on the way, fsync, sidecar, rename) vs
 *   copying the source file to a new file through streams and fsyncing it —
 *   the same bytes made durable, without HTTP;
 * - download: curl GETs the object into a new file vs copying the
 *   object's file to a new file (no fsync on either side).
 * A batch's curl process start (~5 ms) is counted against the object API.
 * The ratio is object-API MB/s ÷ copy MB/s of the medians; targets: upload
 * ≥ 0.7, download ≥ 0.8. Both run on the machine's one disk and share its
 * cores with the service.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { BUCKET, envInt, fmt, median, printBlock, printTable, runBenchmark, startBenchService } from './lib.js';

const SIZES_MB = (process.env.BENCH_OBJECT_SIZES_MB ?? '1,64').split(',').map(Number);
const ROUNDS = envInt('BENCH_ROUNDS', 8);

async function fsyncFile(file: string): Promise<void> {
  const handle = await fs.open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The client is curl, in its own process (one per batch, keep-alive across
 * the batch): an in-process client would share the service's one JavaScript
 * thread and halve what it can do, which is not what a real client costs.
 */
function curl(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-sS', '--fail', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`curl exited ${code}: ${stderr}`))));
  });
}

const putAll = (port: number, keys: readonly string[], source: string) =>
  curl(keys.flatMap((key) => ['-T', source, `http://127.0.0.1:${port}/${key}`]));

const getAll = (port: number, keys: readonly string[], target: (key: string) => string) =>
  curl(keys.flatMap((key) => ['-o', target(key), `http://127.0.0.1:${port}/${key}`]));

await runBenchmark('objects', async (db, use) => {
  const bench = use(await startBenchService(db));
  const port = bench.service.port!;
  const work = path.join(db.dataDir, 'bench-files');
  await fs.mkdir(work, { recursive: true });
  const rows: string[][] = [];
  for (const mb of SIZES_MB) {
    const size = mb * 1024 * 1024;
    // Small objects are timed in batches, so that one round is not a few milliseconds.
    const batch = mb < 8 ? 16 : 1;
    const source = path.join(work, `source-${mb}`);
    await fs.writeFile(source, randomBytes(size));
    const rates = { put: [] as number[], copyUp: [] as number[], get: [] as number[], copyDown: [] as number[] };
    const timed = async (run: () => Promise<void>) => {
      const start = performance.now();
      await run();
      return (size * batch) / 1024 / 1024 / ((performance.now() - start) / 1000);
    };
    for (let round = 0; round < ROUNDS; round += 1) {
      const keys = Array.from({ length: batch }, (_, i) => `bench/${mb}mb-${round}-${i}`);
      const steps: Array<[keyof typeof rates, () => Promise<void>]> = [
        ['put', () => putAll(port, keys, source)],
        ['copyUp', async () => {
          for (const key of keys) {
            const target = path.join(work, `up-${key.replaceAll('/', '_')}`);
            await pipeline(createReadStream(source), createWriteStream(target));
            await fsyncFile(target);
          }
        }],
        ['get', () => getAll(port, keys, (key) => path.join(work, `down-${key.replaceAll('/', '_')}`))],
        ['copyDown', async () => {
          for (const key of keys) {
            const file = await bench.localPath(key);
            await pipeline(createReadStream(file), createWriteStream(path.join(work, `copy-${key.replaceAll('/', '_')}`)));
          }
        }],
      ];
      // Alternate which side goes first, so neither always meets a cold or a warm page cache.
      const ordered = round % 2 === 0 ? steps : [steps[1]!, steps[0]!, steps[3]!, steps[2]!];
      for (const [name, run] of ordered) rates[name].push(await timed(run));
      for (const file of await fs.readdir(work)) if (!file.startsWith('source-')) await fs.rm(path.join(work, file));
      for (const key of keys) await bench.service.storage.delete(BUCKET, key);
    }
    const m = { put: median(rates.put), copyUp: median(rates.copyUp), get: median(rates.get), copyDown: median(rates.copyDown) };
    rows.push([`${mb} MB`, 'upload', fmt(m.put, 0), fmt(m.copyUp, 0), fmt(m.put / m.copyUp), '≥ 0.70']);
    rows.push([`${mb} MB`, 'download', fmt(m.get, 0), fmt(m.copyDown, 0), fmt(m.get / m.copyDown), '≥ 0.80']);
  }
  printBlock('objects: PutObject / GetObject over loopback vs a plain file copy (local backend)', [
    ['rounds', String(ROUNDS)],
    ['objects per round', '16 below 8 MB, else 1'],
  ]);
  printTable(['size', 'direction', 'object API MB/s', 'file copy MB/s', 'ratio', 'target'], rows);
});

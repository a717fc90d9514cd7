/**
 * Run by memory.test.ts in a process of its own (`node --import tsx
 * --expose-gc`): a service with a worker on the database and data dir given
 * by DATABASE_URL and MEDIAJOBS_DATA_DIR, fed a hostile PicProcess corpus
 * through its API, two jobs at a time. Prints one JSON line: RSS idle, peak
 * and once idle again, in MB, and each answer or job outcome.
 */
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { startService } from '../../src/main.js';
import { MALLOC_TUNING } from '../../src/images/image-source.js';

const BUCKET = 'local-1250000000';
const mb = (bytes: number) => Math.round(bytes / 1048576);
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const settle = async () => {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
};

const config = loadConfig({ ...process.env, MEDIAJOBS_PORT: '0', MEDIAJOBS_LOG_LEVEL: 'silent', MEDIAJOBS_CONCURRENCY: '2', MEDIAJOBS_REQUIRE_AUTH: 'false' });
const service = await startService(config, { api: true, worker: true, logger: pino({ level: 'silent' }) });
const base = `http://127.0.0.1:${service.port}`;
await service.storage.put(BUCKET, 'in/small.jpg', readFileSync('fixtures/images/photo-orient6.jpg'));
await service.storage.put(BUCKET, 'in/large.jpg', readFileSync('fixtures/images/large-2725x2225.jpg'));

async function job(input: string, rule: string): Promise<string> {
  const body = `<Request><Tag>PicProcess</Tag><Input><Object>${input}</Object></Input><Operation><PicProcess><ProcessRule>${rule}</ProcessRule></PicProcess>`
    + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>out/\${JobId}.\${ext}</Object></Output></Operation></Request>`;
  const submitted = await fetch(`${base}/jobs`, { method: 'POST', body });
  const text = await submitted.text();
  if (submitted.status !== 200) return `${submitted.status} ${/<Code>([^<]*)/.exec(text)?.[1]}`;
  const jobId = /<JobId>([^<]*)/.exec(text)![1];
  for (;;) {
    const detail = await (await fetch(`${base}/jobs/${jobId}`)).text();
    const state = /<State>([^<]*)/.exec(detail)![1];
    if (state === 'Success' || state === 'Failed') return state === 'Success' ? 'Success' : `Failed ${/<Code>([^<]*)/.exec(detail)?.[1]}`;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

await job('in/small.jpg', 'imageMogr2/thumbnail/100x');
await settle();
const idle = process.memoryUsage.rss();
let peak = idle;
const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()); }, 20);

const blurs = (n: number) => '|imageMogr2/blur/50x50'.repeat(n);
const corpus: Array<[string, string]> = [
  // The rules: refused at submit now.
  ['in/small.jpg', `imageMogr2/thumbnail/9999x9999${blurs(91)}`],
  ['in/small.jpg', `imageMogr2${'/rotate/1'.repeat(100)}`],
  ['in/large.jpg', 'imageMogr2/thumbnail/9999x9999/blur/50x50'],
  // The heaviest the limits admit.
  ['in/small.jpg', `imageMogr2/thumbnail/8000x6000${blurs(5)}`],
  ['in/large.jpg', 'imageMogr2/blur/50x50/sharpen/300/rotate/7/iradius/900/blur/20x30/format/png'],
  ['in/large.jpg', 'imageMogr2/thumbnail/!250p/sharpen/300/blur/50x50/rradius/500/format/png'],
  ['in/small.jpg', 'imageMogr2/thumbnail/8000x6000/pad/1/rotate/90/rotate/180/cut/7000x5000x10x10/crop/6000x4000/bright/50/contrast/50/format/tiff'],
];
const outcomes: string[] = [];
for (let i = 0; i < corpus.length; i += 2) outcomes.push(...(await Promise.all(corpus.slice(i, i + 2).map(([input, rule]) => job(input, rule)))));
clearInterval(sampler);
await settle();
const after = process.memoryUsage.rss();
await service.stop();
console.log(JSON.stringify({ tuning: MALLOC_TUNING, idleMB: mb(idle), peakMB: mb(peak), afterMB: mb(after), outcomes }));

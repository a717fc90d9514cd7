/*
 * What the changes feed's triggers (sql/0012) cost the queue: N no-op jobs
 * drained by one worker at concurrency C, in rounds alternating triggers on
 * and off (ALTER TABLE … DISABLE TRIGGER) on the same database, a console
 * feed listening (as `serve` does when a browser is open) in the "on" rounds.
 *   DATABASE_URL=… npx tsx test/console/feed-cost.measure.ts
 */
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { CHANNELS } from '../../src/engine/channels.js';
import { startService, type Service } from '../../src/main.js';
import type { Processor } from '../../src/processors/processor.js';
import { insertJobs } from '../../src/store/jobs.repository.js';
import { ensureDefaultQueue } from '../../src/store/queues.repository.js';
import { cleanupDatabases, freshDatabase } from '../helpers/databases.js';
import { BUCKET, newJobRecord } from '../helpers/jobs.js';

const N = Number(process.env.JOBS ?? 4000);
const C = Number(process.env.CONCURRENCY ?? 8);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const noop: Processor = { tag: 'MediaInfo', run: async () => ({}) };
const fresh = await freshDatabase();
const env = { MEDIAJOBS_PORT: '0', MEDIAJOBS_DATA_DIR: fresh.dataDir, DATABASE_URL: fresh.databaseUrl, MEDIAJOBS_LOG_LEVEL: 'silent', MEDIAJOBS_CONCURRENCY: String(C), MEDIAJOBS_RETENTION: '0' };
const logger = pino({ level: 'silent' });
const store = await startService(loadConfig({ ...env, MEDIAJOBS_WORKERS: '0' }), { api: false, worker: false, logger });
const kysely = store.db.kysely;
const queue = await ensureDefaultQueue(kysely, BUCKET);
await sql`UPDATE queues SET max_concurrent = ${4 * C} WHERE queue_id = ${queue.queueId}`.execute(kysely);
let seen = 0;
const results: Record<string, number[]> = { on: [], off: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const mode of round % 2 === 0 ? ['on', 'off'] : ['off', 'on']) {
    const verb = mode === 'on' ? 'ENABLE' : 'DISABLE';
    await sql.raw(`ALTER TABLE jobs ${verb} TRIGGER jobs_changes_insert; ALTER TABLE jobs ${verb} TRIGGER jobs_changes_update`).execute(kysely);
    const unlisten = mode === 'on' ? await store.db.listen(CHANNELS.changes, () => { seen++; }) : undefined;
    for (let done = 0; done < N; done += 1000) {
      await insertJobs(kysely, { bucket: BUCKET }, Array.from({ length: Math.min(1000, N - done) }, () => newJobRecord(BUCKET)), CHANNELS.jobsAvailable);
    }
    await sql`VACUUM ANALYZE jobs`.execute(kysely);
    const t0 = performance.now();
    const worker: Service = await startService(loadConfig(env), { api: false, worker: true, processors: new Map([[noop.tag, noop]]), logger });
    for (;;) {
      const { rows: [{ n }] } = await sql<{ n: number }>`SELECT ((SELECT count(*) FROM jobs WHERE state = 'Submitted') + (SELECT count(*) FROM jobs WHERE state = 'Running'))::int AS n`.execute(kysely);
      if (n === 0) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    const ms = performance.now() - t0;
    await worker.stop();
    await unlisten?.();
    results[mode].push(N / (ms / 1000));
    console.log(`round ${round + 1} triggers ${mode}: ${(N / (ms / 1000)).toFixed(0)} jobs/s`);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`median: on ${median(results.on).toFixed(0)} jobs/s, off ${median(results.off).toFixed(0)} jobs/s (${((median(results.on) / median(results.off) - 1) * 100).toFixed(1)} %); notifications read: ${seen}`);
await store.stop();
await cleanupDatabases();
process.exit(0);

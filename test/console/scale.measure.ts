/*
 * The console's queries with 1 M jobs in the table (issue 19, "Must show"):
 * `npx tsx test/console/scale.measure.ts` (DATABASE_URL as for the tests).
 * Loads ROWS finished jobs (90 % Success, 8 % Failed, 2 % Cancel; MediaInfo
 * and PicProcess; one input object per 20; a second APPID's bucket for 1 in
 * 10; tasks for 1 in 50) with a delivered callback for 1 in 10 and 1,000
 * given up, VACUUM ANALYZE, then times each console request over HTTP (p50
 * and max of RUNS after a warm-up) and prints the plan's indexes.
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { startService } from '../../src/main.js';
import { cleanupDatabases, freshDatabase } from '../helpers/databases.js';

const ROWS = Number(process.env.ROWS ?? 1_000_000);
const RUNS = Number(process.env.RUNS ?? 30);

const fresh = await freshDatabase();
const config = loadConfig({ MEDIAJOBS_PORT: '0', MEDIAJOBS_DATA_DIR: fresh.dataDir, DATABASE_URL: fresh.databaseUrl, MEDIAJOBS_LOG_LEVEL: 'silent', MEDIAJOBS_RETENTION: '0', MEDIAJOBS_REQUIRE_AUTH: 'false' });
const service = await startService(config, { api: true, worker: false, logger: pino({ level: 'silent' }) });
const base = `http://127.0.0.1:${service.port}`;
const created = await fetch(`${base}/jobs`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<Request><Tag>MediaInfo</Tag><Input><Object>input/a.mp4</Object></Input><Operation><JobLevel>0</JobLevel></Operation></Request>' });
if (created.status !== 200) throw new Error(await created.text());
const client = new pg.Client({ connectionString: fresh.databaseUrl });
await client.connect();
const { rows: [{ queue_id: queueId }] } = await client.query<{ queue_id: string }>('SELECT queue_id FROM queues LIMIT 1');
await client.query(`INSERT INTO queues (queue_id, bucket, name) VALUES ('p' || md5('other'), 'other-1250000001', 'other')`);
let t0 = performance.now();
// The bulk load skips the changes feed's triggers: a million notifications nobody listens to.
await client.query('ALTER TABLE jobs DISABLE TRIGGER jobs_changes_insert; ALTER TABLE callback_deliveries DISABLE TRIGGER callback_deliveries_changes_insert');
await client.query(`
  INSERT INTO jobs (job_id, bucket, region, queue_id, tag, state, priority, input_object, operation, result, code, message,
                    progress, attempts, max_attempts, run_after, expires_at, created_at, started_at, ended_at, updated_at, external)
  SELECT 'j' || md5('h' || i::text),
         CASE WHEN i % 10 = 5 THEN 'other-1250000001' ELSE 'local-1250000000' END, 'ap-local',
         CASE WHEN i % 10 = 5 THEN 'p' || md5('other') ELSE $1 END,
         CASE WHEN i % 50 = 1 THEN 'video_extract' WHEN i % 2 = 0 THEN 'MediaInfo' ELSE 'PicProcess' END,
         CASE WHEN i % 50 = 7 THEN 'Cancel' WHEN i % 25 IN (3, 11) THEN 'Failed' ELSE 'Success' END,
         0, 'input/h' || (i / 20)::text || '.mp4', '{"JobLevel":"0"}'::json, NULL,
         CASE WHEN i % 50 = 7 THEN 'Cancel' WHEN i % 25 IN (3, 11) THEN 'InvalidMedia' ELSE 'Success' END,
         '', 100, 1, 3, t, t + interval '1 day', t, t + interval '1 second', t + interval '2 seconds', t + interval '2 seconds', i % 50 = 1
  FROM generate_series(1, $2::int) AS i,
       LATERAL (SELECT now() - interval '30 days' + (i::float8 / $2) * interval '30 days' AS t) AS at`, [queueId, ROWS]);
await client.query(`
  INSERT INTO callback_deliveries (delivery_id, job_id, url, format, body, content_type, state, attempts, next_attempt_at, window_started_at, created_at, delivered_at)
  SELECT 'd' || md5(job_id), job_id, 'http://127.0.0.1:9/cb', 'XML', '<x/>', 'application/xml',
         CASE WHEN seq % 1000 = 0 THEN 'GivenUp' ELSE 'Delivered' END, 1, ended_at, ended_at, ended_at, ended_at
  FROM jobs WHERE seq % 10 = 0`);
await client.query('ALTER TABLE jobs ENABLE TRIGGER jobs_changes_insert; ALTER TABLE callback_deliveries ENABLE TRIGGER callback_deliveries_changes_insert');
await client.query('VACUUM ANALYZE jobs');
await client.query('VACUUM ANALYZE callback_deliveries');
console.log(`loaded ${ROWS} jobs in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

const login = await fetch(`${base}/console/api/login`, { method: 'POST', body: JSON.stringify({ token: service.adminToken }), headers: { 'content-type': 'application/json' } });
const cookie = login.headers.getSetCookie()[0].split(';')[0];
const { rows: [mid] } = await client.query<{ seq: string; job_id: string }>('SELECT seq, job_id FROM jobs WHERE seq = (SELECT (max(seq) / 2) FROM jobs)');
const { rows: [withCallback] } = await client.query<{ job_id: string }>('SELECT job_id FROM callback_deliveries LIMIT 1 OFFSET 5000');
const day = new Date(Date.now() - 10 * 86_400_000);
const paths: Array<[string, string]> = [
  ['list, first page (50)', '/console/api/jobs'],
  ['list, page at the middle (before=)', `/console/api/jobs?before=${mid.seq}`],
  ['list, state=Failed', '/console/api/jobs?state=Failed'],
  ['list, state=Running (none)', '/console/api/jobs?state=Running'],
  ['list, tag=PicProcess', '/console/api/jobs?tag=PicProcess'],
  ['list, kind=task', '/console/api/jobs?kind=task'],
  ['list, app=1250000001', '/console/api/jobs?app=1250000001'],
  ['list, queue', `/console/api/jobs?queue=${queueId}`],
  ['list, input object', '/console/api/jobs?input=input/h12345.mp4'],
  ['list, one-hour window 10 days ago', `/console/api/jobs?from=${day.toISOString()}&to=${new Date(day.getTime() + 3_600_000).toISOString()}`],
  ['detail (JobsDetail, deliveries)', `/console/api/jobs/${withCallback.job_id}`],
  ['detail, middle job', `/console/api/jobs/${mid.job_id}`],
  ['overview', '/console/api/overview'],
  ['queues', '/console/api/queues'],
  ['callbacks GivenUp', '/console/api/callbacks?state=GivenUp'],
  ['callbacks Pending', '/console/api/callbacks?state=Pending'],
  ['metrics scrape', '/metrics'],
];
console.log(`| request | p50 ms | max ms | rows |`);
console.log(`|---|---|---|---|`);
for (const [name, path] of paths) {
  const times: number[] = [];
  let rows = 0;
  for (let i = 0; i < RUNS + 5; i++) {
    t0 = performance.now();
    const res = await fetch(base + path, { headers: { cookie } });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${text}`);
    if (i >= 5) times.push(performance.now() - t0);
    if (path.startsWith('/console/api/jobs') && !path.includes('/jobs/')) rows = (JSON.parse(text) as { jobs: unknown[] }).jobs.length;
    // /metrics caches its gauges for a second: measure the read, not the cache.
    if (path === '/metrics') await new Promise((r) => setTimeout(r, 1010));
  }
  times.sort((a, b) => a - b);
  console.log(`| ${name} | ${times[Math.floor(times.length / 2)].toFixed(1)} | ${times.at(-1)!.toFixed(1)} | ${rows || ''} |`);
}
await client.end();
await service.stop();
// The 1 M rows are dropped with the database (about 400 MB).
await cleanupDatabases();
process.exit(0);

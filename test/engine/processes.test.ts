import { expect } from 'chai';
import { sql } from 'kysely';
import pg from 'pg';
import { freshDatabase, DB_KIND, type FreshDatabase } from '../helpers/databases.js';
import { defaultQueueId, mediaInfoRequest, putFixture, setQueue, submit, waitForState } from '../helpers/jobs.js';
import { slowFfprobe, spawnWorker, type WorkerProcess } from '../helpers/processes.js';
import { startTestService, waitFor, type TestService } from '../helpers/service.js';

/*
 * Several worker processes on one PostgreSQL, as in production: these need a
 * server that many processes can connect to, so they run on PostgreSQL only.
 */
const describePostgres = DB_KIND === 'postgres' ? describe : describe.skip;

describePostgres('worker processes sharing PostgreSQL', function () {
  this.timeout(90_000);
  let database: FreshDatabase;
  let api: TestService;
  let workers: WorkerProcess[] = [];

  function workerEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      DATABASE_URL: database.databaseUrl!,
      MEDIAJOBS_DATA_DIR: database.dataDir,
      MEDIAJOBS_LEASE: '2s',
      MEDIAJOBS_POLL_INTERVAL: '200ms',
      ...extra,
    };
  }

  async function startWorker(extra: Record<string, string> = {}): Promise<WorkerProcess> {
    const worker = spawnWorker(workerEnv(extra));
    workers.push(worker);
    await worker.ready;
    return worker;
  }

  beforeEach(async () => {
    database = await freshDatabase();
    api = await startTestService({ database, env: { MEDIAJOBS_LEASE: '2s' } });
    await putFixture(api, 'fixtures/media/h264-aac.mp4', 'input/demo.mp4');
  });

  afterEach(async () => {
    for (const worker of workers) await worker.kill();
    workers = [];
    await api.stop();
  });

  it('finishes a job whose worker was killed with SIGKILL mid-run, on another worker', async () => {
    const ffprobe = slowFfprobe(3);
    const first = await startWorker({ MEDIAJOBS_FFPROBE_PATH: ffprobe, MEDIAJOBS_CONCURRENCY: '1' });
    const id = await submit(api, mediaInfoRequest('input/demo.mp4'));
    await waitForState(api, id, 'Running');
    await first.kill('SIGKILL');
    await startWorker({ MEDIAJOBS_CONCURRENCY: '1' });
    const detail = await waitForState(api, id, ['Success', 'Failed'], 30_000);
    expect(detail.State).to.equal('Success');
    expect(detail.Operation.MediaInfo.Stream.Video.CodecName).to.equal('h264');
    const row = await api.service.db.kysely.selectFrom('jobs').select(['attempts']).where('job_id', '=', id).executeTakeFirstOrThrow();
    expect(row.attempts).to.equal(2);
  });

  it('holds a queue\'s MaxConcurrent across two worker processes', async () => {
    const queueId = await defaultQueueId(api);
    // Each worker can run 2 at once, so reaching 3 needs both, and more than 3 would break the limit.
    await setQueue(api, queueId, 'Active', '<MaxConcurrent>3</MaxConcurrent>');
    const ffprobe = slowFfprobe(0.7);
    await Promise.all([startWorker({ MEDIAJOBS_FFPROBE_PATH: ffprobe, MEDIAJOBS_CONCURRENCY: '2' }), startWorker({ MEDIAJOBS_FFPROBE_PATH: ffprobe, MEDIAJOBS_CONCURRENCY: '2' })]);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await submit(api, mediaInfoRequest('input/demo.mp4')));
    let maxRunning = 0;
    const owners = new Set<string>();
    await waitFor(async () => {
      const rows = await api.service.db.kysely.selectFrom('jobs').select(['state', 'lease_owner']).execute();
      const running = rows.filter((r) => r.state === 'Running');
      maxRunning = Math.max(maxRunning, running.length);
      for (const r of running) owners.add(r.lease_owner!);
      return rows.every((r) => r.state === 'Success') ? true : undefined;
    }, 60_000, 'every job to succeed');
    expect(maxRunning).to.equal(3);
    expect(owners.size, 'both workers took part').to.equal(2);
  });

  it('finishes every job although all database connections are cut several times mid-run', async () => {
    const ffprobe = slowFfprobe(0.5);
    await startWorker({ MEDIAJOBS_FFPROBE_PATH: ffprobe, MEDIAJOBS_CONCURRENCY: '2' });
    await startWorker({ MEDIAJOBS_FFPROBE_PATH: ffprobe, MEDIAJOBS_CONCURRENCY: '2' });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(await submit(api, mediaInfoRequest('input/demo.mp4')));
    const admin = new pg.Client({ connectionString: database.databaseUrl });
    await admin.connect();
    const dbName = new URL(database.databaseUrl!).pathname.slice(1);
    const terminated: number[] = [];
    try {
      for (let cut = 0; cut < 3; cut++) {
        await new Promise((resolve) => setTimeout(resolve, 400));
        const { rowCount } = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [dbName]);
        terminated.push(rowCount ?? 0);
      }
    } finally {
      await admin.end();
    }
    // The first cut always finds the workers' and the API's connections; a later one may come before they reconnected.
    expect(terminated[0]).to.be.greaterThan(0);
    // The API's own pool lost its connections too; it must answer again by itself.
    const states = await waitFor(async () => {
      const rows = await sql<{ state: string }>`SELECT state FROM jobs`.execute(api.service.db.kysely).catch(() => undefined);
      if (!rows) return undefined;
      return rows.rows.every((r) => ['Success', 'Failed', 'Cancel'].includes(r.state)) ? rows.rows.map((r) => r.state) : undefined;
    }, 60_000, 'every job to reach a final state');
    expect(states).to.have.length(12);
    expect(states.filter((s) => s === 'Success').length).to.equal(12);
    const listed = await api.request('GET', '/jobs?size=100');
    expect(listed.status).to.equal(200);
  });
});

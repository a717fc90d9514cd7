import { expect } from 'chai';
import { sql } from 'kysely';
import pg from 'pg';
import { freshDatabase, migratedDatabaseAt, type FreshDatabase } from '../helpers/databases.js';
import { defaultQueueId, describeJob, mediaInfoRequest, putFixture, setQueue, submit, waitForState } from '../helpers/jobs.js';
import { slowFfprobe, spawnWorker, type WorkerProcess } from '../helpers/processes.js';
import { startTestService, waitFor, type TestService } from '../helpers/service.js';
import { POSTGRES_BIN_DIR, startThrowawayCluster, type ThrowawayCluster } from '../helpers/throwaway-cluster.js';

/*
 * Several worker processes on one PostgreSQL server, as in production.
 */

interface JobRow { job_id: string; state: string; attempts: number; lease_owner: string | null; lease_expires_at: Date | null; code: string }

/**
 * Waits until every job is Success, Failed or Cancel, read through the API's
 * own pool (which must reconnect by itself); on timeout the error lists the
 * jobs still unfinished.
 */
async function waitForEveryJobToEnd(api: TestService, timeoutMs = 60_000): Promise<JobRow[]> {
  let unfinished: JobRow[] = [];
  try {
    return await waitFor(async () => {
      const rows = await sql<JobRow>`SELECT job_id, state, attempts, lease_owner, lease_expires_at, code FROM jobs`.execute(api.service.db.kysely).catch(() => undefined);
      if (!rows) return undefined;
      unfinished = rows.rows.filter((r) => !['Success', 'Failed', 'Cancel'].includes(r.state));
      return unfinished.length === 0 ? rows.rows : undefined;
    }, timeoutMs, 'every job to reach a final state');
  } catch (err) {
    throw new Error(`${(err as Error).message}; unfinished at ${new Date().toISOString()}: ${JSON.stringify(unfinished)}`);
  }
}

/** Cuts every connection to the test's database (the API's, the workers', their listeners'). */
async function terminateBackends(database: FreshDatabase): Promise<{ rowCount: number }> {
  const admin = new pg.Client({ connectionString: database.databaseUrl });
  await admin.connect();
  try {
    const dbName = new URL(database.databaseUrl!).pathname.slice(1);
    const { rowCount } = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [dbName]);
    return { rowCount: rowCount ?? 0 };
  } finally {
    await admin.end();
  }
}

describe('worker processes sharing PostgreSQL', function () {
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

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      for (const worker of workers) process.stderr.write(`--- worker pid ${worker.child.pid}, exit ${worker.child.exitCode ?? worker.child.signalCode ?? 'none'}:\n${worker.output().slice(-6000)}\n`);
    }
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

  it('on SIGTERM, lets a running job finish within the grace period and exits 0', async () => {
    const worker = await startWorker({ MEDIAJOBS_FFPROBE_PATH: slowFfprobe(1.5), MEDIAJOBS_CONCURRENCY: '1', MEDIAJOBS_SHUTDOWN_GRACE: '20s' });
    const running = await submit(api, mediaInfoRequest('input/demo.mp4'));
    await waitForState(api, running, 'Running');
    const waiting = await submit(api, mediaInfoRequest('input/demo.mp4'));
    const exited = new Promise<number | null>((resolve) => worker.child.once('exit', (code) => resolve(code)));
    worker.child.kill('SIGTERM');
    expect(await exited, worker.output()).to.equal(0);
    expect((await describeJob(api, running)).State).to.equal('Success');
    // It stopped claiming: the job submitted after the signal was left for another worker.
    expect((await describeJob(api, waiting)).State).to.equal('Submitted');
  });

  it('on SIGTERM, hands a job still running after the grace period back to the queue, uncounted, for another worker', async () => {
    const worker = await startWorker({ MEDIAJOBS_FFPROBE_PATH: slowFfprobe(30), MEDIAJOBS_CONCURRENCY: '1', MEDIAJOBS_SHUTDOWN_GRACE: '300ms' });
    const id = await submit(api, mediaInfoRequest('input/demo.mp4'));
    await waitForState(api, id, 'Running');
    const exited = new Promise<number | null>((resolve) => worker.child.once('exit', (code) => resolve(code)));
    const signalled = Date.now();
    worker.child.kill('SIGTERM');
    expect(await exited, worker.output()).to.equal(0);
    expect(Date.now() - signalled, 'exit within the grace period and the hand-back').to.be.lessThan(10_000);
    const row = await api.service.db.kysely.selectFrom('jobs').select(['state', 'attempts', 'lease_owner']).where('job_id', '=', id).executeTakeFirstOrThrow();
    expect(row).to.deep.equal({ state: 'Submitted', attempts: 0, lease_owner: null });
    await startWorker({ MEDIAJOBS_CONCURRENCY: '1' });
    expect((await waitForState(api, id, ['Success', 'Failed'], 20_000)).State).to.equal('Success');
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

  it('keeps an idle worker process running when every database connection is cut, and it runs the next job', async () => {
    const worker = await startWorker({ MEDIAJOBS_CONCURRENCY: '1' });
    const { rowCount } = await terminateBackends(database);
    expect(rowCount).to.be.greaterThan(0);
    // Past the reconnect timers (1 s): the process must not have run out of work and exited.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(worker.child.exitCode, `worker exited:\n${worker.output()}`).to.equal(null);
    const id = await submit(api, mediaInfoRequest('input/demo.mp4'));
    const detail = await waitForState(api, id, ['Success', 'Failed'], 10_000);
    expect(detail.State).to.equal('Success');
  });

  it('finishes every job although all database connections are cut several times mid-run', async () => {
    const ffprobe = slowFfprobe(0.5);
    await startWorker({ MEDIAJOBS_FFPROBE_PATH: ffprobe, MEDIAJOBS_CONCURRENCY: '2' });
    await startWorker({ MEDIAJOBS_FFPROBE_PATH: ffprobe, MEDIAJOBS_CONCURRENCY: '2' });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(await submit(api, mediaInfoRequest('input/demo.mp4')));
    const terminated: number[] = [];
    for (let cut = 0; cut < 3; cut++) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      terminated.push((await terminateBackends(database)).rowCount);
    }
    // The first cut always finds the workers' and the API's connections; a later one may come before they reconnected.
    expect(terminated[0]).to.be.greaterThan(0);
    // The API's own pool lost its connections too; it must answer again by itself.
    const states = (await waitForEveryJobToEnd(api)).map((r) => r.state);
    expect(states).to.have.length(12);
    expect(states.filter((s) => s === 'Success').length).to.equal(12);
    const listed = await api.request('GET', '/jobs?size=100');
    expect(listed.status).to.equal(200);
  });
});

/*
 * A real outage: the server goes down (connections cut, new ones refused)
 * for longer than a job's lease, then comes back. It is a cluster this test
 * made with the machine's initdb, never the server the suite runs on.
 */
const describeRestart = POSTGRES_BIN_DIR !== undefined ? describe : describe.skip;

describeRestart('a PostgreSQL server restart', function () {
  this.timeout(120_000);
  let cluster: ThrowawayCluster;
  let database: FreshDatabase;
  let api: TestService;
  let worker: WorkerProcess | undefined;

  before(async () => {
    cluster = await startThrowawayCluster(POSTGRES_BIN_DIR!);
  });

  beforeEach(async () => {
    database = await migratedDatabaseAt(await cluster.createDatabase());
    api = await startTestService({ database, env: { MEDIAJOBS_LEASE: '2s' } });
    await putFixture(api, 'fixtures/media/h264-aac.mp4', 'input/demo.mp4');
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && worker) process.stderr.write(`--- worker output:\n${worker.output().slice(-6000)}\n`);
    await worker?.kill();
    await api.stop();
    worker = undefined;
    await cluster.start().catch(() => undefined);
  });

  after(async () => {
    await cluster.destroy();
  });

  function startWorker(extra: Record<string, string> = {}): WorkerProcess {
    worker = spawnWorker({
      DATABASE_URL: database.databaseUrl!,
      MEDIAJOBS_DATA_DIR: database.dataDir,
      MEDIAJOBS_LEASE: '2s',
      MEDIAJOBS_POLL_INTERVAL: '200ms',
      MEDIAJOBS_CONCURRENCY: '2',
      ...extra,
    });
    return worker;
  }

  it('answers ServiceUnavailable while the server is down, and every job accepted before ends Success after it is back', async () => {
    const running = startWorker({ MEDIAJOBS_FFPROBE_PATH: slowFfprobe(1) });
    await running.ready;
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(await submit(api, mediaInfoRequest('input/demo.mp4')));
    await waitForState(api, ids[0], 'Running');

    await cluster.stop();
    // Down for longer than the lease: the running probes finish while their outcome cannot be written.
    const submitted = await api.request('POST', '/jobs', { body: mediaInfoRequest('input/demo.mp4') });
    const described = await api.request('GET', `/jobs/${ids[0]}`);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    await cluster.start();

    for (const answer of [submitted, described]) {
      expect(answer.status).to.equal(503);
      expect(answer.xml.Error.Code).to.equal('ServiceUnavailable');
      expect(answer.headers.get('retry-after')).to.equal('1');
    }
    const states = await waitForEveryJobToEnd(api);
    // The submission refused during the outage stored nothing; every accepted job succeeded.
    expect(states.map((r) => r.job_id).sort()).to.deep.equal([...ids].sort());
    expect(states.every((r) => r.state === 'Success'), JSON.stringify(states)).to.equal(true);
    // Both the API's pool and the worker reconnected by themselves.
    const after = await submit(api, mediaInfoRequest('input/demo.mp4'));
    expect((await waitForState(api, after, ['Success', 'Failed'], 30_000)).State).to.equal('Success');
    expect(running.child.exitCode, `worker exited:\n${running.output()}`).to.equal(null);
  });

  it('a worker started while the server is down waits for it, then runs the jobs waiting', async () => {
    const id = await submit(api, mediaInfoRequest('input/demo.mp4'));
    await cluster.stop();
    const late = startWorker();
    await waitFor(async () => (late.output().includes('database not reachable yet') ? true : undefined), 20_000, 'the worker to say it waits for the database');
    expect(late.child.exitCode, `worker exited:\n${late.output()}`).to.equal(null);
    await cluster.start();
    await late.ready;
    expect((await waitForState(api, id, ['Success', 'Failed'], 30_000)).State).to.equal('Success');
  });
});

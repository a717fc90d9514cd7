import { expect } from 'chai';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import pg from 'pg';
import { bundledFfprobePath } from '../../src/media/ffprobe.js';
import { WORKER_LOCK_NAMESPACE } from '../../src/engine/liveness.js';
import { freshDatabase, type FreshDatabase } from '../helpers/databases.js';
import { mediaInfoRequest, putFixture, submit, waitForState } from '../helpers/jobs.js';
import { slowFfprobe, spawnWorker, type WorkerProcess } from '../helpers/processes.js';
import { startTestService, waitFor, type TestService } from '../helpers/service.js';

/*
 * Worker death seen at once (issue 20, item 5): each worker holds an advisory
 * lock for its life, and the others take back the jobs of a worker whose lock
 * they can take. Real worker processes on PostgreSQL, with the default 30 s
 * lease unless a test says otherwise, so that only the lock can explain a
 * recovery in seconds. The goal is 2 s; the tests fail past twice that.
 */

const RECOVERY_GOAL_MS = 2000;

interface Row { job_id: string; state: string; lease_owner: string | null; attempts: number; lock_key: number | null }

/** A real ffprobe that takes a minute on inputs whose path contains "slow", and its usual time on the rest. */
function ffprobeSlowOnSlowInputs(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-slow-inputs-'));
  const script = path.join(dir, 'ffprobe');
  writeFileSync(script, `#!/bin/sh\ncase "$*" in *slow*) sleep 60;; esac\nexec "${bundledFfprobePath()}" "$@"\n`);
  chmodSync(script, 0o755);
  return script;
}

describe('worker liveness (advisory lock)', function () {
  this.timeout(90_000);
  let database: FreshDatabase;
  let api: TestService;
  let workers: WorkerProcess[] = [];

  async function startWorker(extra: Record<string, string> = {}): Promise<WorkerProcess> {
    const worker = spawnWorker({
      DATABASE_URL: database.databaseUrl!,
      MEDIAJOBS_DATA_DIR: database.dataDir,
      MEDIAJOBS_POLL_INTERVAL: '1s',
      MEDIAJOBS_CONCURRENCY: '2',
      ...extra,
    });
    workers.push(worker);
    await worker.ready;
    return worker;
  }

  async function rows(ids: readonly string[]): Promise<Row[]> {
    const { rows: found } = await sql<Row>`SELECT job_id, state, lease_owner, attempts, lock_key FROM jobs WHERE job_id = ANY(${ids}::text[]) ORDER BY job_id`.execute(api.service.db.kysely);
    return found;
  }

  /** The worker id a process logged at start ("workerId" in its first lines). */
  function workerIdOf(worker: WorkerProcess): string {
    const match = /"workerId":"([^"]+)"/.exec(worker.output());
    if (!match) throw new Error(`no workerId in ${worker.output()}`);
    return match[1];
  }

  beforeEach(async () => {
    database = await freshDatabase();
    api = await startTestService({ database });
    await putFixture(api, 'fixtures/media/h264-aac.mp4', 'input/demo.mp4');
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      for (const worker of workers) process.stderr.write(`--- worker pid ${worker.child.pid}:\n${worker.output().slice(-6000)}\n`);
    }
    for (const worker of workers) await worker.kill();
    workers = [];
    await api.stop();
  });

  it(`runs a killed worker's jobs on another worker within ${2 * RECOVERY_GOAL_MS} ms, though the lease is 30 s`, async () => {
    const doomed = await startWorker({ MEDIAJOBS_FFPROBE_PATH: slowFfprobe(60) });
    const ids = [await submit(api, mediaInfoRequest('input/demo.mp4')), await submit(api, mediaInfoRequest('input/demo.mp4'))];
    for (const id of ids) await waitForState(api, id, 'Running');
    const doomedId = workerIdOf(doomed);
    expect((await rows(ids)).map((r) => r.lease_owner)).to.deep.equal([doomedId, doomedId]);
    await startWorker();

    const killed = Date.now();
    await doomed.kill('SIGKILL');
    await waitFor(async () => {
      const now = await rows(ids);
      return now.every((r) => (r.state === 'Running' && r.lease_owner !== doomedId) || r.state === 'Success') ? true : undefined;
    }, 30_000, 'the jobs to run on the other worker');
    const recoveryMs = Date.now() - killed;
    process.stdout.write(`      kill -9 → jobs running elsewhere after ${recoveryMs} ms (goal ${RECOVERY_GOAL_MS} ms)\n`);
    expect(recoveryMs, 'kill -9 recovery').to.be.lessThan(2 * RECOVERY_GOAL_MS);

    for (const id of ids) expect((await waitForState(api, id, ['Success', 'Failed'], 30_000)).State).to.equal('Success');
    // The killed run counted: one attempt there, one here.
    expect((await rows(ids)).map((r) => r.attempts)).to.deep.equal([2, 2]);
  });

  it('gives a killed worker\'s job ahead (claimed, its tool not started) back uncounted, and counts the one it ran', async () => {
    await putFixture(api, 'fixtures/media/h264-aac.mp4', 'input/slow.mp4');
    const doomed = await startWorker({ MEDIAJOBS_FFPROBE_PATH: ffprobeSlowOnSlowInputs(), MEDIAJOBS_CONCURRENCY: '1' });
    // A short job first: while jobs are short the worker holds one job ahead per slot.
    await waitForState(api, await submit(api, mediaInfoRequest('input/demo.mp4')), 'Success');
    const running = await submit(api, mediaInfoRequest('input/slow.mp4'));
    await waitForState(api, running, 'Running');
    const ahead = await submit(api, mediaInfoRequest('input/slow.mp4'));
    await waitForState(api, ahead, 'Running');
    const before = await rows([running, ahead]);
    const byId = new Map(before.map((r) => [r.job_id, r]));
    expect(byId.get(running)!.lock_key, 'the running job\'s key').to.be.greaterThan(0);
    expect(byId.get(ahead)!.lock_key, 'the job ahead\'s key').to.be.lessThan(0);
    await startWorker();

    await doomed.kill('SIGKILL');
    for (const id of [running, ahead]) expect((await waitForState(api, id, ['Success', 'Failed'], 30_000)).State).to.equal('Success');
    const after = new Map((await rows([running, ahead])).map((r) => [r.job_id, r.attempts]));
    expect({ running: after.get(running), ahead: after.get(ahead) }).to.deep.equal({ running: 2, ahead: 1 });
  });

  it('leaves the jobs of a hung worker (its lock still held) to the lease', async () => {
    const hung = await startWorker({ MEDIAJOBS_FFPROBE_PATH: slowFfprobe(60), MEDIAJOBS_LEASE: '3s' });
    const id = await submit(api, mediaInfoRequest('input/demo.mp4'));
    await waitForState(api, id, 'Running');
    await startWorker({ MEDIAJOBS_LEASE: '3s' });
    // Stopped, not dead: its connections, and so its lock, stay open.
    const stopped = Date.now();
    hung.child.kill('SIGSTOP');
    try {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect((await rows([id]))[0].lease_owner, 'still the hung worker\'s before its lease ran out').to.equal(workerIdOf(hung));
      expect((await waitForState(api, id, ['Success', 'Failed'], 20_000)).State).to.equal('Success');
      expect(Date.now() - stopped).to.be.greaterThan(3000);
    } finally {
      hung.child.kill('SIGCONT');
    }
  });

  /** The advisory locks of workers on the test's database: backend pid and key. */
  async function lockHolders(admin: pg.Client): Promise<Array<{ pid: number; objid: string }>> {
    return (await admin.query<{ pid: number; objid: string }>(
      `SELECT pid, objid::text FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::oid AND objsubid = 2 AND granted
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [WORKER_LOCK_NAMESPACE],
    )).rows;
  }

  /** Ends the backend holding the lock under which `workerId` claimed its jobs; returns that key. */
  async function cutLockConnection(admin: pg.Client, workerId: string): Promise<string> {
    const { rows: [{ key }] } = await admin.query<{ key: string }>('SELECT DISTINCT lock_key::text AS key FROM jobs WHERE lease_owner = $1', [workerId]);
    const holder = (await lockHolders(admin)).find((l) => l.objid === key)!;
    await admin.query('SELECT pg_terminate_backend($1)', [holder.pid]);
    return key;
  }

  it('keeps the jobs of a live worker whose lock connection broke: it takes a new lock and re-adopts them, uncounted', async () => {
    const cut = await startWorker({ MEDIAJOBS_FFPROBE_PATH: slowFfprobe(8) });
    const ids = [await submit(api, mediaInfoRequest('input/demo.mp4')), await submit(api, mediaInfoRequest('input/demo.mp4'))];
    for (const id of ids) await waitForState(api, id, 'Running');
    const cutId = workerIdOf(cut);
    await startWorker();
    const admin = new pg.Client({ connectionString: database.databaseUrl });
    await admin.connect();
    try {
      const key = await cutLockConnection(admin, cutId);
      await waitFor(async () => {
        const { rows: now } = await admin.query<{ key: string }>('SELECT DISTINCT lock_key::text AS key FROM jobs WHERE lease_owner = $1', [cutId]);
        return now.length === 1 && now[0].key !== key ? true : undefined;
      }, 5000, 'the jobs to be recorded under a new key');
      // Past the other worker's grace: it must not have taken them.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect((await rows(ids)).map((r) => [r.state, r.lease_owner, r.attempts])).to.deep.equal([['Running', cutId, 1], ['Running', cutId, 1]]);
    } finally {
      await admin.end();
    }
    for (const id of ids) expect((await waitForState(api, id, ['Success', 'Failed'], 30_000)).State).to.equal('Success');
    expect((await rows(ids)).map((r) => r.attempts)).to.deep.equal([1, 1]);
  });

  it('a worker that lost its lock for longer than the grace stops the runs taken back meanwhile, then claims again', async () => {
    const cut = await startWorker({ MEDIAJOBS_FFPROBE_PATH: slowFfprobe(60) });
    const ids = [await submit(api, mediaInfoRequest('input/demo.mp4')), await submit(api, mediaInfoRequest('input/demo.mp4'))];
    for (const id of ids) await waitForState(api, id, 'Running');
    const cutId = workerIdOf(cut);
    const other = await startWorker();
    const admin = new pg.Client({ connectionString: database.databaseUrl });
    await admin.connect();
    try {
      // Frozen while its lock connection is cut, so that it cannot take a new lock in time.
      cut.child.kill('SIGSTOP');
      try {
        await cutLockConnection(admin, cutId);
        await waitFor(async () => ((await rows(ids)).every((r) => r.lease_owner !== cutId) ? true : undefined), 2 * RECOVERY_GOAL_MS, 'the jobs to be taken back');
      } finally {
        cut.child.kill('SIGCONT');
      }
      const resumed = Date.now();
      await waitFor(async () => ((cut.output().match(/"reason":"lease-lost"/g) ?? []).length >= 2 ? true : undefined), 2 * RECOVERY_GOAL_MS, 'the cut worker to stop both runs');
      process.stdout.write(`      runs taken back stopped ${Date.now() - resumed} ms after the worker resumed\n`);
      await waitFor(async () => ((await lockHolders(admin)).length === 2 ? true : undefined), 10_000, 'the cut worker to hold a new lock');
      expect(cut.child.exitCode).to.equal(null);
    } finally {
      await admin.end();
    }
    for (const id of ids) expect((await waitForState(api, id, ['Success', 'Failed'], 30_000)).State).to.equal('Success');
    // It claims again, under its new key.
    await other.kill('SIGKILL');
    const next = await submit(api, mediaInfoRequest('input/demo.mp4'));
    await waitFor(async () => ((await rows([next]))[0].lease_owner === cutId ? true : undefined), 10_000, 'the cut worker to claim again');
  });
});

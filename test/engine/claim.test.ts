import { expect } from 'chai';
import { sql } from 'kysely';
import { CHANNELS } from '../../src/engine/channels.js';
import { endJob } from '../../src/engine/outcomes.js';
import { claimJobs, claimStatement, endJobsAndClaimNext } from '../../src/engine/queue.sql.js';
import type { Processor } from '../../src/processors/processor.js';
import { insertJobs } from '../../src/store/jobs.repository.js';
import { ensureDefaultQueue } from '../../src/store/queues.repository.js';
import { BUCKET, defaultQueueId, mediaInfoRequest, newJobRecord, setQueue, submit, waitForState } from '../helpers/jobs.js';
import { startTestService, waitFor, type TestService } from '../helpers/service.js';

class RolledBack extends Error {
  constructor(readonly value: unknown) { super('rolled back'); }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('claiming', () => {
  describe('from the queue heads', () => {
    let api: TestService;
    before(async () => { api = await startTestService(); });
    after(async () => { await api.stop(); });

    it('takes the best job across queues: highest JobLevel, then oldest', async () => {
      const db = api.service.db.kysely;
      const other = 'other-1250000000';
      await ensureDefaultQueue(db, BUCKET);
      await ensureDefaultQueue(db, other);
      const insert = async (bucket: string, priority: number) => (await insertJobs(db, { bucket }, [newJobRecord(bucket, priority)], CHANNELS.jobsAvailable))[0];
      const oldLow = await insert(BUCKET, 0);
      const high = await insert(other, 2);
      const laterHigh = await insert(BUCKET, 2);
      const claimed = [];
      for (let i = 0; i < 3; i++) claimed.push(...(await claimJobs(db, 'test-worker', 60_000, 1)).map((c) => c.job.jobId));
      expect(claimed).to.deep.equal([high.jobId, laterHigh.jobId, oldLow.jobId]);
      expect(await claimJobs(db, 'test-worker', 60_000, 1)).to.deep.equal([]);
    });

    it('claims several jobs in one statement, in the order single claims would take them, and no more from a queue than its free slots', async () => {
      const db = api.service.db.kysely;
      const mine = 'several-1250000000';
      const theirs = 'several2-1250000000';
      const queue = await ensureDefaultQueue(db, mine);
      await ensureDefaultQueue(db, theirs);
      await sql`UPDATE queues SET max_concurrent = 2 WHERE queue_id = ${queue.queueId}`.execute(db);
      const insert = async (bucket: string, priority: number) => (await insertJobs(db, { bucket }, [newJobRecord(bucket, priority)], CHANNELS.jobsAvailable))[0].jobId;
      const low = await insert(mine, 0);
      const high = await insert(mine, 2);
      const third = await insert(mine, 1);
      const other = await insert(theirs, 1);
      const claimed = await claimJobs(db, 'test-worker', 60_000, 10);
      // The queue of `mine` has two slots: its two best jobs, and the other queue's, by JobLevel then age.
      expect(claimed.map((c) => c.job.jobId)).to.deep.equal([high, third, other]);
      expect(claimed.every((c) => c.job.state === 'Running' && c.job.attempts === 1)).to.equal(true);
      const { rows } = await sql<{ running: number; low_state: string }>`
        SELECT running, (SELECT state FROM jobs WHERE job_id = ${low}) AS low_state FROM queues WHERE queue_id = ${queue.queueId}`.execute(db);
      expect(rows[0]).to.deep.equal({ running: 2, low_state: 'Submitted' });
      expect(await claimJobs(db, 'test-worker', 60_000, 10)).to.deep.equal([]);
    });

    it('with a video cap, claims at most `room` jobs of the capped Tags and passes over the rest for the jobs behind them', async () => {
      const db = api.service.db.kysely;
      const bucket = 'capped-1250000000';
      await ensureDefaultQueue(db, bucket);
      const insert = async (tag: string) => (await insertJobs(db, { bucket }, [{ ...newJobRecord(bucket), tag }], CHANNELS.jobsAvailable))[0].jobId;
      const [t1, t2, m1, t3, m2] = [await insert('Transcode'), await insert('Transcode'), await insert('MediaInfo'), await insert('Snapshot'), await insert('MediaInfo')];
      const video = (room: number) => ({ video: { tags: ['Transcode', 'Snapshot'], room } });
      // The queue offers its first three: the second Transcode is passed over, the claim is short by one (the worker claims again).
      expect((await claimJobs(db, 'test-worker', 60_000, 3, video(1))).map((c) => c.job.jobId)).to.deep.equal([t1, m1]);
      // No room: the queue's heads are its jobs of other Tags.
      expect((await claimJobs(db, 'test-worker', 60_000, 3, video(0))).map((c) => c.job.jobId)).to.deep.equal([m2]);
      expect(await claimJobs(db, 'test-worker', 60_000, 3, video(0))).to.deep.equal([]);
      expect((await claimJobs(db, 'test-worker', 60_000, 3, video(5))).map((c) => c.job.jobId)).to.deep.equal([t2, t3]);
    });

    it('costs a few index probes however many jobs wait (20,000 here)', async function () {
      this.timeout(60_000);
      const db = api.service.db.kysely;
      const queue = await ensureDefaultQueue(db, BUCKET);
      await sql`
        INSERT INTO jobs (job_id, bucket, region, queue_id, tag, priority, input_object, operation, max_attempts, expires_at)
        SELECT 'j' || md5(g::text), ${BUCKET}, 'ap-local', ${queue.queueId}, 'MediaInfo', g % 3, 'in.mp4', '{}', 3, now() + interval '1 hour'
        FROM generate_series(1, 20000) g`.execute(db);
      await sql`ANALYZE jobs`.execute(db);
      // EXPLAIN ANALYZE runs the claim; throwing rolls it back.
      const plan = await db.transaction().execute(async (tx) => {
        const { rows } = await sql<{ 'QUERY PLAN': unknown }>`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${claimStatement('test-worker', 60_000, 1)}`.execute(tx);
        throw new RolledBack(rows[0]['QUERY PLAN']);
      }).catch((err: unknown) => {
        if (err instanceof RolledBack) return err.value;
        throw err;
      });
      const top = (Array.isArray(plan) ? plan[0] : JSON.parse(String(plan))[0]) as { Plan: Record<string, number> };
      const blocks = top.Plan['Shared Hit Blocks'] + top.Plan['Shared Read Blocks'];
      // About 40 here; the previous claim, which joined every waiting job to its
      // queue and sorted them, read 600 with fresh statistics and two per waiting job without.
      expect(blocks).to.be.below(150);
    });
  });

  describe('when a job ends', () => {
    it('writes the same row whether it ends alone (endJob) or with the next claim', async () => {
      const api = await startTestService();
      try {
        const db = api.service.db.kysely;
        const bucket = 'ends-1250000000';
        await ensureDefaultQueue(db, bucket);
        const [alone, together, failedAlone, failedTogether] = await insertJobs(db, { bucket }, [0, 0, 0, 0].map(() => newJobRecord(bucket)), CHANNELS.jobsAvailable);
        expect(await claimJobs(db, 'test-worker', 60_000, 4)).to.have.length(4);
        const success = { code: 'Success', message: '', result: { MediaInfo: { Format: { Duration: '2.000000' } } } };
        const failure = { code: 'InvalidMedia', message: 'not media' };
        await endJob(db, alone.jobId, ['Running'], 'Success', success, 'test-worker');
        await endJob(db, failedAlone.jobId, ['Running'], 'Failed', failure, 'test-worker');
        await endJobsAndClaimNext(db, [
          { jobId: together.jobId, to: 'Success', outcome: success },
          { jobId: failedTogether.jobId, to: 'Failed', outcome: failure },
        ], 'test-worker', 60_000, 0);
        const { rows } = await sql<Record<string, unknown>>`
          SELECT job_id, state, code, message, result::text, progress, lease_owner, lease_expires_at, ended_at IS NOT NULL AS ended,
                 updated_at >= started_at AS updated, attempts
          FROM jobs WHERE bucket = ${bucket}`.execute(db);
        const row = (id: string) => { const { job_id: _, ...rest } = rows.find((r) => r.job_id === id)!; return rest; };
        expect(row(together.jobId)).to.deep.equal(row(alone.jobId));
        expect(row(failedTogether.jobId)).to.deep.equal(row(failedAlone.jobId));
        expect(row(alone.jobId)).to.include({ state: 'Success', progress: 100, lease_owner: null, ended: true });
        expect(row(failedAlone.jobId)).to.include({ state: 'Failed', code: 'InvalidMedia', lease_owner: null, ended: true });
      } finally {
        await api.stop();
      }
    });

    it('claims the next job in the statement that ends it, counting the freed slot', async () => {
      const quick: Processor = { tag: 'MediaInfo', async run() { await sleep(20); return {}; } };
      // A one-minute poll: only the end-and-claim statement can start the next jobs in time.
      const api = await startTestService({ worker: true, env: { MEDIAJOBS_CONCURRENCY: '1', MEDIAJOBS_POLL_INTERVAL: '60s' }, processors: new Map([['MediaInfo', quick]]) });
      try {
        const queueId = await defaultQueueId(api);
        await setQueue(api, queueId, 'Paused', '<MaxConcurrent>1</MaxConcurrent>');
        const ids: string[] = [];
        for (let i = 0; i < 4; i++) ids.push(await submit(api, mediaInfoRequest('in.mp4')));
        await setQueue(api, queueId, 'Active', '<MaxConcurrent>1</MaxConcurrent>');
        for (const id of ids) expect((await waitForState(api, id, 'Success', 10_000)).State).to.equal('Success');
        const { rows } = await sql<{ job_id: string; started: string; ended: string }>`
          SELECT job_id, started_at::text AS started, ended_at::text AS ended FROM jobs ORDER BY seq`.execute(api.service.db.kysely);
        expect(rows.map((r) => r.job_id)).to.deep.equal(ids);
        // now() is the transaction's start: equal times mean one statement ended a job and claimed the next.
        for (let i = 1; i < rows.length; i++) expect(rows[i].started, `job ${i + 1}`).to.equal(rows[i - 1].ended);
      } finally {
        await api.stop();
      }
    });

    it('ends the jobs that finish while its statement is out together, in the next statement', async () => {
      let open!: () => void;
      const gate = new Promise<void>((resolve) => { open = resolve; });
      const gated: Processor = { tag: 'MediaInfo', async run() { await gate; return {}; } };
      const api = await startTestService({ worker: true, env: { MEDIAJOBS_CONCURRENCY: '4', MEDIAJOBS_POLL_INTERVAL: '100ms' }, processors: new Map([['MediaInfo', gated]]) });
      try {
        const ids: string[] = [];
        for (let i = 0; i < 4; i++) ids.push(await submit(api, mediaInfoRequest('in.mp4')));
        for (const id of ids) await waitForState(api, id, 'Running');
        // All four return at once: the first end goes out alone, the other three wait for it and go out together.
        open();
        for (const id of ids) expect((await waitForState(api, id, 'Success', 10_000)).State).to.equal('Success');
        const { rows } = await sql<{ ended: string }>`SELECT ended_at::text AS ended FROM jobs WHERE job_id IN (${sql.join(ids)})`.execute(api.service.db.kysely);
        // now() is the transaction's start: one value per statement that ended jobs (four if each went alone).
        expect(new Set(rows.map((r) => r.ended)).size).to.be.at.most(2);
      } finally {
        open();
        await api.stop();
      }
    });

    it('lets a very short job\'s end wait for the next one while claimed jobs wait for its slot', async function () {
      this.timeout(30_000);
      const short: Processor = { tag: 'MediaInfo', async run() { await sleep(10); return {}; } };
      const api = await startTestService({ worker: true, env: { MEDIAJOBS_CONCURRENCY: '2', MEDIAJOBS_POLL_INTERVAL: '100ms' }, processors: new Map([['MediaInfo', short]]) });
      try {
        const queueId = await defaultQueueId(api);
        await setQueue(api, queueId, 'Paused');
        const ids: string[] = [];
        for (let i = 0; i < 40; i++) ids.push(await submit(api, mediaInfoRequest('in.mp4')));
        await setQueue(api, queueId, 'Active');
        for (const id of ids) expect((await waitForState(api, id, 'Success', 10_000)).State).to.equal('Success');
        const { rows } = await sql<{ ended: string }>`SELECT ended_at::text AS ended FROM jobs WHERE job_id IN (${sql.join(ids)})`.execute(api.service.db.kysely);
        // One ended_at per statement: 22–23 when ends go out in pairs, 36 when each goes alone
        // unless a statement is out (10 ms jobs on two slots end every 5 ms, longer than a round trip).
        expect(new Set(rows.map((r) => r.ended)).size).to.be.at.most(28);
      } finally {
        await api.stop();
      }
    });

    it('wakes the workers when a job leaves a full queue, and only then', async () => {
      const api = await startTestService();
      try {
        const db = api.service.db.kysely;
        const queueId = await defaultQueueId(api);
        let wakeUps = 0;
        const unsubscribe = await api.service.db.listen(CHANNELS.jobsAvailable, () => { wakeUps++; });
        const cancelRunning = async () => {
          const id = await submit(api, mediaInfoRequest('in.mp4'));
          expect((await claimJobs(db, 'test-worker', 60_000, 1)).map((c) => c.job.jobId)).to.deep.equal([id]);
          await sleep(200); // the submit's own notification
          wakeUps = 0;
          const res = await api.request('PUT', `/jobs/${id}?cancel`);
          expect(res.status, res.text).to.equal(200);
        };
        try {
          await setQueue(api, queueId, 'Active', '<MaxConcurrent>2</MaxConcurrent>');
          await cancelRunning();
          await sleep(300);
          expect(wakeUps, 'a queue with slots to spare').to.equal(0);

          await setQueue(api, queueId, 'Active', '<MaxConcurrent>1</MaxConcurrent>');
          await cancelRunning();
          await waitFor(async () => (wakeUps > 0 ? true : undefined), 5_000, 'a wake-up for the freed slot');
        } finally {
          await unsubscribe();
        }
      } finally {
        await api.stop();
      }
    });
  });
});

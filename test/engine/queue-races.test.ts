import { expect } from 'chai';
import { sql } from 'kysely';
import pg from 'pg';
import { cancelJobs } from '../../src/engine/cancel.js';
import { CHANNELS } from '../../src/engine/channels.js';
import { claimJobs } from '../../src/engine/queue.sql.js';
import type { Processor } from '../../src/processors/processor.js';
import { insertJobs } from '../../src/store/jobs.repository.js';
import { BUCKET, defaultQueueId, describeJob, newJobRecord, setQueue, waitForState } from '../helpers/jobs.js';
import { startTestService, type TestService } from '../helpers/service.js';

/** A transaction held open at a chosen point: `reached` resolves there, `release()` lets it commit. */
function gate(): { reached: Promise<void>; arrive(): void; wait: Promise<void>; release(): void } {
  let arrive!: () => void;
  let release!: () => void;
  return {
    reached: new Promise<void>((resolve) => { arrive = resolve; }),
    arrive: () => arrive(),
    wait: new Promise<void>((resolve) => { release = resolve; }),
    release: () => release(),
  };
}

/*
 * Statements that race on the same rows from two transactions. Each test
 * holds one transaction open at the moment that matters, so the interleaving
 * is the same every run.
 */
describe('queue races', () => {
  const noop: Processor = { tag: 'MediaInfo', async run() { return {}; } };

  describe('a submission that read its queue as Paused and commits after the resume', () => {
    let api: TestService;
    afterEach(async () => { await api.stop(); });

    async function strandedJob(): Promise<string> {
      const queueId = await defaultQueueId(api);
      await setQueue(api, queueId, 'Paused');
      const held = gate();
      const submission = api.service.db.kysely.transaction().execute(async (tx) => {
        const [job] = await insertJobs(tx, { bucket: BUCKET }, [newJobRecord(BUCKET)], CHANNELS.jobsAvailable);
        held.arrive();
        await held.wait;
        return job.jobId;
      });
      await held.reached;
      await setQueue(api, queueId, 'Active');
      held.release();
      const id = await submission;
      expect((await describeJob(api, id)).State, 'the race happened').to.equal('Pause');
      return id;
    }

    it('is resumed by the workers\' maintenance and runs', async () => {
      api = await startTestService({ worker: true, env: { MEDIAJOBS_LEASE: '1s' }, processors: new Map([['MediaInfo', noop]]) });
      const id = await strandedJob();
      expect((await waitForState(api, id, ['Success', 'Failed'], 5000)).State).to.equal('Success');
    });

    it('is made Submitted by setting the queue Active again', async () => {
      api = await startTestService();
      const id = await strandedJob();
      await setQueue(api, await defaultQueueId(api), 'Active');
      expect((await describeJob(api, id)).State).to.equal('Submitted');
    });
  });

  it('a cancel that waited for a claim to commit tells the worker, which now runs the job', async () => {
    const api = await startTestService();
    const listener = new pg.Client({ connectionString: api.config.databaseUrl });
    try {
      const cancelled: string[] = [];
      await listener.connect();
      listener.on('notification', (message) => { if (message.channel === CHANNELS.jobCancelled) cancelled.push(message.payload ?? ''); });
      await listener.query(`LISTEN ${CHANNELS.jobCancelled}`);
      await defaultQueueId(api);
      const [job] = await insertJobs(api.service.db.kysely, { bucket: BUCKET }, [newJobRecord(BUCKET)], CHANNELS.jobsAvailable);
      const held = gate();
      const claim = api.service.db.kysely.transaction().execute(async (tx) => {
        const claimed = await claimJobs(tx, 'worker-a', 30_000, 1);
        held.arrive();
        await held.wait;
        return claimed;
      });
      await held.reached;
      // The cancel reads the job as Submitted, then its UPDATE waits for the claim's row lock.
      const cancelling = cancelJobs(api.service.db, BUCKET, [job.jobId]);
      await new Promise((resolve) => setTimeout(resolve, 200));
      held.release();
      expect((await claim).map((c) => c.job.jobId)).to.deep.equal([job.jobId]);
      await cancelling;
      await sql`SELECT 1`.execute(api.service.db.kysely);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect((await describeJob(api, job.jobId)).State).to.equal('Cancel');
      expect(cancelled).to.deep.equal([job.jobId]);
    } finally {
      await listener.end();
      await api.stop();
    }
  });
});

import { expect } from 'chai';
import { sql, type Kysely } from 'kysely';
import { CHANNELS } from '../../src/engine/channels.js';
import { pruneHistory, RETENTION_LOCK_KEY } from '../../src/engine/retention.js';
import { insertJobs } from '../../src/store/jobs.repository.js';
import { ensureDefaultQueue } from '../../src/store/queues.repository.js';
import type { Database } from '../../src/store/schema.js';
import { BUCKET, newJobRecord } from '../helpers/jobs.js';
import { startTestService, waitFor, type TestService } from '../helpers/service.js';

const DAY = 86_400_000;

/** Stores a job and puts it in `state`, ended (or created, if unfinished) `ageDays` ago. */
async function jobAged(db: Kysely<Database>, state: string, ageDays: number): Promise<string> {
  const [job] = await insertJobs(db, { bucket: BUCKET }, [newJobRecord(BUCKET)], CHANNELS.jobsAvailable);
  const at = sql`now() - ${ageDays} * interval '1 day'`;
  const finished = ['Success', 'Failed', 'Cancel'].includes(state);
  await sql`UPDATE jobs SET state = ${state}, created_at = ${at}, ended_at = ${finished ? at : null},
    lease_owner = ${state === 'Running' ? 'someone' : null}, lease_expires_at = ${state === 'Running' ? sql`now() + interval '1 hour'` : null}
    WHERE job_id = ${job.jobId}`.execute(db);
  return job.jobId;
}

/** A callback delivery of `jobId` in `state`, with one attempt recorded. */
async function delivery(db: Kysely<Database>, jobId: string, state: 'Pending' | 'Delivered' | 'GivenUp'): Promise<string> {
  const deliveryId = `d${jobId.slice(1)}${state.length}`;
  await sql`INSERT INTO callback_deliveries (delivery_id, job_id, url, format, body, content_type, state)
    VALUES (${deliveryId}, ${jobId}, 'http://127.0.0.1:9/cb', 'XML', '<Response/>', 'application/xml', ${state})`.execute(db);
  await sql`INSERT INTO callback_attempts (delivery_id, attempt, http_status, latency_ms) VALUES (${deliveryId}, 1, 500, 3)`.execute(db);
  return deliveryId;
}

async function jobIds(db: Kysely<Database>): Promise<string[]> {
  const { rows } = await sql<{ job_id: string }>`SELECT job_id FROM jobs ORDER BY job_id`.execute(db);
  return rows.map((r) => r.job_id);
}

async function count(db: Kysely<Database>, table: 'callback_deliveries' | 'callback_attempts'): Promise<number> {
  const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql.table(table)}`.execute(db);
  return rows[0].n;
}

describe('history retention', () => {
  let api: TestService;
  let db: Kysely<Database>;
  beforeEach(async () => {
    api = await startTestService();
    db = api.service.db.kysely;
    await ensureDefaultQueue(db, BUCKET);
  });
  afterEach(async () => { await api.stop(); });

  it('deletes finished jobs older than the retention with their deliveries and attempts, in batches, and keeps the rest', async () => {
    const old = [
      await jobAged(db, 'Success', 40),
      await jobAged(db, 'Failed', 35),
      await jobAged(db, 'Cancel', 31),
      await jobAged(db, 'Success', 60),
      await jobAged(db, 'Success', 45),
    ];
    await delivery(db, old[0], 'Delivered');
    await delivery(db, old[1], 'GivenUp');
    const kept = [
      await jobAged(db, 'Success', 29),
      await jobAged(db, 'Failed', 1),
      await jobAged(db, 'Submitted', 40),
      await jobAged(db, 'Pause', 40),
      await jobAged(db, 'Running', 40),
    ];
    const recentDelivery = await delivery(db, kept[0], 'Delivered');
    // Attempts (sql/0014) go with their job (ON DELETE CASCADE).
    await sql`INSERT INTO job_attempts (job_id, attempt, worker, started_at, ended_at, state)
      VALUES (${old[0]}, 1, 'w', now(), now(), 'Retry'), (${old[0]}, 2, 'w', now(), now(), 'Success'), (${kept[0]}, 1, 'w', now(), now(), 'Success')`.execute(db);
    // An old job whose callback is still being retried is kept until it is not.
    const pendingJob = await jobAged(db, 'Success', 50);
    await delivery(db, pendingJob, 'Pending');

    const result = await pruneHistory(db, 30 * DAY, { batchSize: 2 });

    expect(result).to.deep.equal({ jobs: 5, deliveries: 2, batches: 3, skipped: false });
    expect(await jobIds(db)).to.deep.equal([...kept, pendingJob].sort());
    expect(await count(db, 'callback_deliveries')).to.equal(2);
    expect(await count(db, 'callback_attempts')).to.equal(2);
    const { rows } = await sql<{ delivery_id: string }>`SELECT delivery_id FROM callback_deliveries WHERE job_id = ${kept[0]}`.execute(db);
    expect(rows.map((r) => r.delivery_id)).to.deep.equal([recentDelivery]);
    const attempts = await sql<{ job_id: string }>`SELECT DISTINCT job_id FROM job_attempts`.execute(db);
    expect(attempts.rows.map((r) => r.job_id)).to.include(kept[0]);
    expect(attempts.rows.filter((r) => old.includes(r.job_id))).to.deep.equal([]);
  });

  it('keeps everything when the retention is 0', async () => {
    const ids = [await jobAged(db, 'Success', 4000), await jobAged(db, 'Failed', 400)];
    await delivery(db, ids[0], 'Delivered');
    expect(await pruneHistory(db, 0)).to.deep.equal({ jobs: 0, deliveries: 0, batches: 0, skipped: false });
    expect(await jobIds(db)).to.deep.equal([...ids].sort());
    expect(await count(db, 'callback_attempts')).to.equal(1);
  });

  it('stops after its time budget and leaves the rest to the next pass', async () => {
    for (let i = 0; i < 6; i++) await jobAged(db, 'Success', 40);
    const first = await pruneHistory(db, 30 * DAY, { batchSize: 2, budgetMs: 0 });
    expect(first).to.deep.equal({ jobs: 2, deliveries: 0, batches: 1, skipped: false });
    expect((await jobIds(db)).length).to.equal(4);
  });

  it('does nothing while another worker prunes (holds the lock)', async () => {
    await jobAged(db, 'Success', 40);
    await db.transaction().execute(async (tx) => {
      await sql`SELECT pg_advisory_xact_lock(${RETENTION_LOCK_KEY}::bigint)`.execute(tx);
      expect(await pruneHistory(db, 30 * DAY)).to.deep.equal({ jobs: 0, deliveries: 0, batches: 0, skipped: true });
    });
    expect((await pruneHistory(db, 30 * DAY)).jobs).to.equal(1);
  });

  it('is run by the workers\' maintenance with MEDIAJOBS_RETENTION', async () => {
    await api.stop();
    api = await startTestService({ worker: true, env: { MEDIAJOBS_RETENTION: '7d', MEDIAJOBS_LEASE: '1s' } });
    db = api.service.db.kysely;
    await ensureDefaultQueue(db, BUCKET);
    const gone = await jobAged(db, 'Success', 8);
    const stays = await jobAged(db, 'Success', 6);
    await waitFor(async () => ((await jobIds(db)).includes(gone) ? undefined : true), 10_000, 'the old job to be deleted');
    expect(await jobIds(db)).to.deep.equal([stays]);
  });
});

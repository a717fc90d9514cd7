import { expect } from 'chai';
import type { Kysely, KyselyPlugin } from 'kysely';
import { JobInserter } from '../../src/engine/job-inserter.js';
import type { NewJob } from '../../src/store/jobs.repository.js';
import { ensureDefaultQueue } from '../../src/store/queues.repository.js';
import type { Database } from '../../src/store/schema.js';
import { newJobRecord } from '../helpers/jobs.js';
import { startTestService, type TestService } from '../helpers/service.js';

function newJobs(bucket: string, count: number, priority = 0): NewJob[] {
  return Array.from({ length: count }, () => newJobRecord(bucket, priority));
}

/** The same database, counting the statements sent through it. */
function counting(db: Kysely<Database>): { db: Kysely<Database>; statements: () => number } {
  let statements = 0;
  const plugin: KyselyPlugin = {
    transformQuery: (args) => { statements++; return args.node; },
    transformResult: async (args) => args.result,
  };
  return { db: db.withPlugin(plugin), statements: () => statements };
}

describe('JobInserter', () => {
  let api: TestService;
  let bucket: string;
  let n = 0;
  before(async () => { api = await startTestService(); });
  after(async () => { await api.stop(); });
  beforeEach(async () => {
    bucket = `inserter${++n}-1250000000`;
    await ensureDefaultQueue(api.service.db.kysely, bucket);
  });

  const storedIds = async (): Promise<string[]> =>
    (await api.service.db.kysely.selectFrom('jobs').select('job_id').where('bucket', '=', bucket).orderBy('seq').execute()).map((r) => r.job_id);

  it('stores submissions that arrive together in one statement, each answered with its own jobs in its order', async () => {
    const { db, statements } = counting(api.service.db.kysely);
    const inserter = new JobInserter(db);
    const submissions = Array.from({ length: 12 }, (_, i) => newJobs(bucket, 1 + (i % 3)));
    const answers = await Promise.all(submissions.map((jobs) => inserter.insert({ bucket }, jobs)));

    answers.forEach((stored, i) => {
      expect(stored.map((job) => job.jobId)).to.deep.equal(submissions[i].map((job) => job.jobId));
      expect(stored.every((job) => job.state === 'Submitted' && job.bucket === bucket)).to.equal(true);
    });
    // The first goes alone at once; the eleven that arrived while it was out go together.
    expect(statements()).to.equal(2);
    expect(await storedIds()).to.deep.equal(submissions.flat().map((job) => job.jobId));
  });

  it('sends a lone submission at once, by itself', async () => {
    const { db, statements } = counting(api.service.db.kysely);
    const inserter = new JobInserter(db);
    const jobs = newJobs(bucket, 2);
    expect((await inserter.insert({ bucket }, jobs)).map((job) => job.jobId)).to.deep.equal(jobs.map((job) => job.jobId));
    expect(statements()).to.equal(1);
  });

  it('fails only the submission that cannot be stored; the others of its statement are stored', async () => {
    const inserter = new JobInserter(api.service.db.kysely);
    const first = newJobs(bucket, 1);
    const good = newJobs(bucket, 2);
    const bad = [...newJobs(bucket, 1), ...newJobs(bucket, 1, 11)]; // priority 11 breaks the table's CHECK (0–10: JobLevel 0–2, task priorities 1–10)
    const later = newJobs(bucket, 1);
    const answers = await Promise.allSettled([first, good, bad, later].map((jobs) => inserter.insert({ bucket }, jobs)));

    expect(answers.map((a) => a.status)).to.deep.equal(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(await storedIds()).to.have.members([...first, ...good, ...later].map((job) => job.jobId));
  });

  it('keeps queues apart: a submission to a queue that does not exist gets nothing, the default queue\'s are stored', async () => {
    const inserter = new JobInserter(api.service.db.kysely);
    const missingQueue = `p${'0'.repeat(32)}`;
    const [toDefault, toMissing] = await Promise.all([
      inserter.insert({ bucket }, newJobs(bucket, 2)),
      inserter.insert({ bucket, queueId: missingQueue }, newJobs(bucket, 1)),
    ]);
    expect(toDefault).to.have.length(2);
    expect(toMissing).to.deep.equal([]);
  });

  it('puts at most 100 jobs in a statement', async () => {
    const { db, statements } = counting(api.service.db.kysely);
    const inserter = new JobInserter(db);
    const submissions = Array.from({ length: 7 }, () => newJobs(bucket, 40));
    const answers = await Promise.all(submissions.map((jobs) => inserter.insert({ bucket }, jobs)));
    expect(answers.map((stored) => stored.length)).to.deep.equal(submissions.map(() => 40));
    // 40 alone, then 80, 80, 80 (a third 40 would make 120).
    expect(statements()).to.equal(4);
  });
});

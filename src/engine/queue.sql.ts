import { sql, type OperationNodeSource, type RawBuilder } from 'kysely';
import { transitionJob, transitionJobQuery, jobRowToJob, type Executor, type Job, type JobRow } from '../store/jobs.repository.js';
import type { NotifyConfig } from '../store/schema.js';
import { JOB_FAILURE_CODES } from './job-errors.js';
import { canTransition } from './job-state.js';
import { endJob, endPatch, type Outcome } from './outcomes.js';

/*
 * The hot queue SQL, one named function per step of a job's life in a worker.
 * Every state change here goes through `transitionJob`/`endJob` or, for the
 * claim, through an UPDATE whose transition is checked below.
 */

if (!canTransition('Submitted', 'Running')) throw new Error('claim() needs Submitted → Running');

/**
 * Claims the most urgent runnable jobs, at most `limit`: highest JobLevel,
 * then oldest, in that order.
 *
 * One statement, in three steps:
 * 1. `candidate`: the best Submitted jobs in Active queues that have free
 *    slots (`running < max_concurrent`), no more from a queue than it has
 *    slots free, locked with SKIP LOCKED so claimers never wait on each
 *    other's candidates (nor on a job being cancelled). Each such queue offers
 *    its head from the `jobs_queue_head` index and the best heads win, so a
 *    claim costs the same with ten jobs waiting or a million (sql/0006);
 * 2. `slot`: takes those slots, in one UPDATE per queue row. It waits for the
 *    row if another claimer holds it, then re-checks the slots and
 *    `state = 'Active'` against the newest version, so MaxConcurrent and
 *    pauses hold across every worker (sql/0004 explains why a count in the
 *    same statement would not);
 * 3. the jobs become Running only if their queue's slots were taken. Each
 *    lease starts now and `attempts` counts this run. A trigger gives a slot
 *    back when its job leaves Running.
 * The queue's NotifyConfig comes back with each job, so that ending it needs
 * no second read.
 */
export async function claimJobs(db: Executor, workerId: string, leaseMs: number, limit: number): Promise<ClaimedJob[]> {
  const { rows } = await claimStatement(workerId, leaseMs, limit).execute(db);
  return rows.map(toClaimed);
}

/** A job the worker has finished, to be ended without a callback to record. */
export interface JobEnd {
  readonly jobId: string;
  readonly to: 'Success' | 'Failed';
  readonly outcome: Outcome;
}

/**
 * Ends jobs the worker has finished and claims up to `limit` next ones, in
 * one statement, and returns those: a worker running short jobs saves round
 * trips and commits. Only for ends that record no callback
 * (`callbackExpected`); ending with one needs a transaction (`endJob`).
 * A job no longer Running under this worker (cancelled, taken back) is left
 * as it is.
 *
 * The ended jobs' slots are counted as free for the claim: the trigger that
 * gives them back runs at the end of this same statement.
 */
export async function endJobsAndClaimNext(db: Executor, ends: readonly JobEnd[], workerId: string, leaseMs: number, limit: number): Promise<ClaimedJob[]> {
  if (ends.length === 0) throw new Error('endJobsAndClaimNext needs a job to end');
  const ended = ends.map((end) => transitionJobQuery(db, end.jobId, ['Running'], end.to, endPatch(end.to, end.outcome), { leaseOwner: workerId }));
  const { rows } = await claimStatement(workerId, leaseMs, limit, ended).execute(db);
  return rows.map(toClaimed);
}

type ClaimRow = JobRow & { queue_notify_config: NotifyConfig | null };

/**
 * The claim statement of `claimJobs`, with the `ended` UPDATEs (each an
 * UPDATE … RETURNING * of one job) run as part of it: PostgreSQL runs a
 * data-modifying CTE to completion whether or not the main query reads its
 * rows. One UPDATE per job, each by primary key, so every plan stays an index
 * lookup; a worker ends a few jobs at a time, so few statement texts arise.
 */
export function claimStatement(workerId: string, leaseMs: number, limit: number, ended: readonly OperationNodeSource[] = []) {
  // Slots that `ended` frees in a queue; its trigger gives them back after this statement's own claim.
  const freed = (queueId: RawBuilder<unknown>) => (ended.length ? sql`(SELECT count(*) FROM ended WHERE ended.queue_id = ${queueId})` : sql`0`);
  const endedCtes = ended.length === 0 ? sql`` : sql`${sql.join(ended.map((update, i) => sql`${sql.raw(`ended_${i}`)} AS (${update})`), sql`, `)},
    ended AS (${sql.join(ended.map((_, i) => sql`SELECT * FROM ${sql.raw(`ended_${i}`)}`), sql` UNION ALL `)}),`;
  return sql<ClaimRow>`
    WITH ${endedCtes}
    candidate AS (
      SELECT head.job_id, head.queue_id FROM queues q
      CROSS JOIN LATERAL (
        SELECT j.job_id, j.queue_id, j.priority, j.seq FROM jobs j
        WHERE j.queue_id = q.queue_id AND j.state = 'Submitted' AND j.run_after <= now() AND j.expires_at > now()
        ORDER BY j.priority DESC, j.seq
        LIMIT least(${limit}::int, q.max_concurrent - q.running + ${freed(sql`q.queue_id`)})
        FOR UPDATE OF j SKIP LOCKED
      ) head
      WHERE q.state = 'Active' AND q.running - ${freed(sql`q.queue_id`)} < q.max_concurrent
      ORDER BY head.priority DESC, head.seq
      LIMIT ${limit}::int
    ), wanted AS (
      SELECT queue_id, count(*)::int AS slots FROM candidate GROUP BY queue_id
    ), slot AS (
      UPDATE queues SET running = running + wanted.slots
      FROM wanted
      WHERE queues.queue_id = wanted.queue_id AND queues.state = 'Active'
        AND queues.running - ${freed(sql`queues.queue_id`)} + wanted.slots <= queues.max_concurrent
      RETURNING queues.queue_id, queues.notify_config
    ), claimed AS (
      UPDATE jobs SET
        state = 'Running',
        lease_owner = ${workerId},
        lease_expires_at = now() + ${leaseMs} * interval '1 millisecond',
        attempts = attempts + 1,
        started_at = coalesce(started_at, now()),
        progress = 0,
        updated_at = now()
      FROM candidate, slot
      WHERE jobs.job_id = candidate.job_id AND slot.queue_id = candidate.queue_id
      RETURNING jobs.*, slot.notify_config AS queue_notify_config
    )
    SELECT * FROM claimed ORDER BY priority DESC, seq`;
}

function toClaimed(row: ClaimRow): ClaimedJob {
  return { job: jobRowToJob(row), queueNotify: row.queue_notify_config };
}

/** A claimed job, with its queue's NotifyConfig as it was at the claim (it decides the job's callback). */
export interface ClaimedJob {
  readonly job: Job;
  readonly queueNotify: NotifyConfig | null;
}

/**
 * Extends the leases of the jobs this worker runs. Returns the ids it still
 * holds; a job missing from the answer was cancelled or taken back by the
 * reaper, and its worker must stop it.
 */
export async function renewLeases(db: Executor, workerId: string, jobIds: readonly string[], leaseMs: number): Promise<Set<string>> {
  if (jobIds.length === 0) return new Set();
  const rows = await db
    .updateTable('jobs')
    .set({ lease_expires_at: sql<Date>`now() + ${leaseMs} * interval '1 millisecond'` as unknown as Date })
    .where('job_id', 'in', jobIds)
    .where('lease_owner', '=', workerId)
    .where('state', '=', 'Running')
    .returning('job_id')
    .execute();
  return new Set(rows.map((r) => r.job_id));
}

export async function saveProgress(db: Executor, workerId: string, jobId: string, percent: number): Promise<void> {
  await db.updateTable('jobs').set({ progress: percent }).where('job_id', '=', jobId).where('lease_owner', '=', workerId).execute();
}

/**
 * Puts a job whose run failed transiently back in the queue after `delayMs`,
 * or ends it Failed when it has used all its attempts.
 */
export async function retryOrFail(db: Executor, job: Job, workerId: string | undefined, delayMs: number, reason: string): Promise<Job | undefined> {
  const owner = workerId ? { leaseOwner: workerId } : undefined;
  if (job.attempts >= job.maxAttempts) {
    return endJob(db, job.jobId, ['Running'], 'Failed', {
      code: JOB_FAILURE_CODES.MaxAttemptsExceeded,
      message: `The job failed ${job.attempts} times; last error: ${reason}`.slice(0, 1000),
    }, workerId);
  }
  return transitionJob(db, job.jobId, ['Running'], 'Submitted', {
    lease_owner: null,
    lease_expires_at: null,
    run_after: sql<Date>`now() + ${Math.round(delayMs)} * interval '1 millisecond'` as unknown as Date,
    message: `Attempt ${job.attempts} failed: ${reason}`.slice(0, 1000),
  }, owner);
}

/**
 * Takes back jobs whose worker stopped renewing its lease (killed, machine
 * lost, cut off from the database). Each counts as an attempt used.
 */
export async function reapExpiredLeases(db: Executor, limit = 100): Promise<Job[]> {
  return db.transaction().execute(async (tx) => {
    const rows = await sql<JobRow>`
      SELECT * FROM jobs WHERE state = 'Running' AND lease_expires_at < now()
      ORDER BY lease_expires_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`.execute(tx);
    const reaped: Job[] = [];
    for (const row of rows.rows) {
      const job = jobRowToJob(row);
      const next = await retryOrFail(tx, job, undefined, 0, 'the worker running it stopped renewing its lease');
      if (next) reaped.push(next);
    }
    return reaped;
  });
}

/** Ends jobs that were not started before their deadline (MEDIAJOBS_JOB_TTL). */
export async function expireWaitingJobs(db: Executor, limit = 100): Promise<Job[]> {
  return db.transaction().execute(async (tx) => {
    const rows = await sql<{ job_id: string }>`
      SELECT job_id FROM jobs WHERE state IN ('Submitted', 'Pause') AND expires_at <= now()
      ORDER BY expires_at LIMIT ${limit} FOR UPDATE SKIP LOCKED`.execute(tx);
    const expired: Job[] = [];
    for (const { job_id } of rows.rows) {
      const job = await endJob(tx, job_id, ['Submitted', 'Pause'], 'Failed', {
        code: JOB_FAILURE_CODES.JobExpired,
        message: 'The job expired before a worker started it.',
      });
      if (job) expired.push(job);
    }
    return expired;
  });
}

/** Hands a job back to the queue without counting the attempt (graceful shutdown). */
export async function releaseJob(db: Executor, job: Job, workerId: string): Promise<void> {
  await transitionJob(db, job.jobId, ['Running'], 'Submitted', {
    lease_owner: null,
    lease_expires_at: null,
    attempts: Math.max(0, job.attempts - 1),
    progress: 0,
  }, { leaseOwner: workerId });
}

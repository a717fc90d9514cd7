import { sql } from 'kysely';
import { transitionJob, jobRowToJob, type Executor, type Job, type JobRow } from '../store/jobs.repository.js';
import type { NotifyConfig } from '../store/schema.js';
import { CHANNELS } from './channels.js';
import { JOB_FAILURE_CODES } from './job-errors.js';
import { canTransition } from './job-state.js';
import { WORKER_LOCK_NAMESPACE } from './liveness.js';
import { endJob, type Outcome } from './outcomes.js';

/*
 * The hot queue SQL, one named function per step of a job's life in a worker.
 * Every state change here goes through `transitionJob`/`endJob` or, for the
 * claim and the ends that travel with it, through the one statement whose
 * transitions are checked below.
 */

for (const [from, to] of [['Submitted', 'Running'], ['Running', 'Success'], ['Running', 'Failed'], ['Pause', 'Submitted']] as const) {
  if (!canTransition(from, to)) throw new Error(`the queue statements need ${from} → ${to}`);
}

/** What a claim records besides the worker's id (see `claimStatement`). */
export interface ClaimLiveness {
  /**
   * The key of the advisory lock the worker holds (`WorkerLiveness`), recorded
   * with each job so that its death is seen at once; null where there is none.
   */
  readonly lockKey?: number | null;
  /**
   * How many of the claimed jobs (in claim order) start at once: the worker's
   * free tool slots. The others wait here for a slot (jobs ahead): until their
   * tool starts their key is recorded negated, so that if the worker dies
   * first they go back with their attempt uncounted. All, by default.
   */
  readonly startNow?: number;
  /** Jobs ahead whose tool has started since the last statement: their key becomes positive, their attempt counts. */
  readonly started?: readonly string[];
  /**
   * The worker's cap on jobs of its ffmpeg Tags (MEDIAJOBS_VIDEO_CONCURRENCY):
   * at most `room` of the claimed jobs have a Tag in `tags`; the others are
   * passed over for the jobs behind them, so that the worker's other slots
   * still take MediaInfo or PicProcess jobs. No cap by default.
   */
  readonly video?: { readonly tags: readonly string[]; readonly room: number };
}

/**
 * Claims the most urgent runnable jobs, at most `limit`: highest JobLevel,
 * then oldest, in that order. See `claimStatement`.
 */
export async function claimJobs(db: Executor, workerId: string, leaseMs: number, limit: number, liveness: ClaimLiveness = {}): Promise<ClaimedJob[]> {
  const { rows } = await claimStatement(workerId, leaseMs, limit, [], liveness).execute(db);
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
 */
export async function endJobsAndClaimNext(db: Executor, ends: readonly JobEnd[], workerId: string, leaseMs: number, limit: number, liveness: ClaimLiveness = {}): Promise<ClaimedJob[]> {
  if (ends.length === 0) throw new Error('endJobsAndClaimNext needs a job to end');
  const { rows } = await claimStatement(workerId, leaseMs, limit, ends, liveness).execute(db);
  return rows.map(toClaimed);
}

type ClaimRow = JobRow & { queue_notify_config: NotifyConfig | null };

/**
 * The statement of `claimJobs` and `endJobsAndClaimNext`: one text whatever
 * it ends, so it is parsed and planned once per connection (and built without
 * Kysely's query builder, which cost more per job than running it).
 *
 * 1. `ended`: the finished jobs (a JSON list) become Success or Failed, as
 *    `endPatch` describes, if they are still Running under this worker: the
 *    same transitions `transitionJob` would make, checked above. PostgreSQL
 *    runs a data-modifying CTE to completion whether or not the rest reads
 *    it; their slots count as free below, since the trigger that gives them
 *    back runs only at the end of the statement;
 * 2. `candidate`: the best Submitted jobs in Active queues that have free
 *    slots (`running < max_concurrent`), no more from a queue than it has
 *    slots free, locked with SKIP LOCKED so claimers never wait on each
 *    other's candidates (nor on a job being cancelled). Each such queue offers
 *    its head from the `jobs_queue_head_internal` index and the best heads win, so a
 *    claim costs the same with ten jobs waiting or a million (sql/0006);
 *    external rows (the task API's, sql/0010) are never ours to claim;
 *    with `video`, the capped Tags' heads beyond its `room` are passed over
 *    (`picked`); with no room left, each queue's head is its first job of
 *    another Tag, found by walking past the capped ones (rows the index
 *    does not cover: a claim then costs more the longer such a backlog is);
 * 3. `slot`: takes those slots, in one UPDATE per queue row. It waits for the
 *    row if another claimer holds it, then re-checks the slots and
 *    `state = 'Active'` against the newest version, so MaxConcurrent and
 *    pauses hold across every worker (sql/0004 explains why a count in the
 *    same statement would not);
 * 4. the jobs become Running only if their queue's slots were taken. Each
 *    lease starts now and `attempts` counts this run. A trigger gives a slot
 *    back when its job leaves Running.
 * The queue's NotifyConfig comes back with each job, so that ending it needs
 * no second read. Liveness (`ClaimLiveness`): each claimed job records the
 * worker's lock key, negated for the jobs beyond `startNow` (jobs ahead, whose
 * tool has not started); `started` makes such keys positive again. Both ride
 * on a statement the worker sends anyway.
 */
export function claimStatement(workerId: string, leaseMs: number, limit: number, ends: readonly JobEnd[] = [], { lockKey = null, startNow = limit, started = [], video = { tags: [], room: limit } }: ClaimLiveness = {}) {
  const endsJson = JSON.stringify(ends.map(({ jobId, to, outcome }) => ({
    job_id: jobId,
    state: to,
    code: outcome.code,
    message: outcome.message,
    result: outcome.result ?? null,
  })));
  // A job ahead that started and ended before this statement: its end says enough (one statement must not update a row twice).
  const startedIds = started.filter((id) => !ends.some((end) => end.jobId === id));
  return sql<ClaimRow>`
    WITH started AS (
      UPDATE jobs SET lock_key = -lock_key
      WHERE job_id = ANY(${startedIds}::text[]) AND state = 'Running' AND lease_owner = ${workerId} AND lock_key < 0
    ), ended AS (
      UPDATE jobs SET
        state = e.state,
        code = e.code,
        message = e.message,
        result = coalesce(e.result, jobs.result),
        progress = CASE WHEN e.state = 'Success' THEN 100 ELSE jobs.progress END,
        lease_owner = NULL,
        lease_expires_at = NULL,
        ended_at = now(),
        updated_at = now()
      FROM json_to_recordset(${endsJson}::json) AS e(job_id text, state text, code text, message text, result json)
      WHERE jobs.job_id = e.job_id AND jobs.state = 'Running' AND jobs.lease_owner = ${workerId}
        AND e.state IN ('Success', 'Failed')
      RETURNING jobs.queue_id
    ), freed AS (
      SELECT queue_id, count(*)::int AS slots FROM ended GROUP BY queue_id
    ), picked AS (
      SELECT head.job_id, head.queue_id, head.priority, head.seq,
        head.video AND row_number() OVER (PARTITION BY head.video ORDER BY head.priority DESC, head.seq) > ${video.room}::int AS over_cap
      FROM queues q
      LEFT JOIN freed ON freed.queue_id = q.queue_id
      CROSS JOIN LATERAL (
        SELECT j.job_id, j.queue_id, j.priority, j.seq, j.tag = ANY(${video.tags}::text[]) AS video FROM jobs j
        WHERE j.queue_id = q.queue_id AND j.state = 'Submitted' AND NOT j.external AND j.run_after <= now() AND j.expires_at > now()
          AND (${video.room}::int > 0 OR j.tag <> ALL(${video.tags}::text[]))
        ORDER BY j.priority DESC, j.seq
        LIMIT least(${limit}::int, q.max_concurrent - q.running + coalesce(freed.slots, 0))
        FOR UPDATE OF j SKIP LOCKED
      ) head
      WHERE q.state = 'Active' AND q.running - coalesce(freed.slots, 0) < q.max_concurrent
    ), candidate AS (
      SELECT job_id, queue_id, row_number() OVER (ORDER BY priority DESC, seq) AS rank FROM picked
      WHERE NOT over_cap
      ORDER BY priority DESC, seq
      LIMIT ${limit}::int
    ), wanted AS (
      SELECT queue_id, count(*)::int AS slots FROM candidate GROUP BY queue_id
    ), slot AS (
      UPDATE queues SET running = running + wanted.slots
      FROM wanted LEFT JOIN freed ON freed.queue_id = wanted.queue_id
      WHERE queues.queue_id = wanted.queue_id AND queues.state = 'Active'
        AND queues.running - coalesce(freed.slots, 0) + wanted.slots <= queues.max_concurrent
      RETURNING queues.queue_id, queues.notify_config
    ), claimed AS (
      UPDATE jobs SET
        state = 'Running',
        lease_owner = ${workerId},
        lock_key = CASE WHEN candidate.rank > ${startNow}::int THEN -${lockKey}::int ELSE ${lockKey}::int END,
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
  return { job: jobRowToJob(row), queueNotify: row.queue_notify_config, ahead: (row as unknown as LockedRow).lock_key! < 0 };
}

/** A job row with its worker's lock key (sql/0008; not in the shared row type, which the API does not need it in). */
type LockedRow = JobRow & { lock_key: number | null };

/** A claimed job, with its queue's NotifyConfig as it was at the claim (it decides the job's callback). */
export interface ClaimedJob {
  readonly job: Job;
  readonly queueNotify: NotifyConfig | null;
  /** Claimed beyond the worker's free slots (`ClaimLiveness.startNow`): its start must be reported. */
  readonly ahead: boolean;
}

/** Reports that jobs ahead have started their tool, when no claim statement carries it soon enough (see `ClaimLiveness.started`). */
export async function markJobsStarted(db: Executor, workerId: string, jobIds: readonly string[]): Promise<void> {
  await sql`UPDATE jobs SET lock_key = -lock_key
    WHERE job_id = ANY(${[...jobIds]}::text[]) AND state = 'Running' AND lease_owner = ${workerId} AND lock_key < 0`.execute(db);
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
 * Finds the workers that are gone: the lock keys named by Running jobs whose
 * advisory lock (sql/0008, `WorkerLiveness`) can be taken now. The server
 * released such a lock when its worker's lock connection ended: the process
 * was killed, its machine lost, or that connection broke. In the last case
 * the worker is alive, and within a heartbeat it takes a new lock and records
 * the new key on its jobs (`readoptJobs`); so a key's jobs are taken back only
 * once the key has stayed free for a while (`reapDeadWorkersJobs`, its
 * `ripe`), or a connection blip would cost every running job an attempt.
 * `pg_try_advisory_xact_lock` rather than lock-then-unlock: it never waits,
 * and the server drops it with the statement's transaction whatever happens.
 * Keys come from a sequence, so no live worker is mistaken for a dead one.
 * One short statement; MATERIALIZED so that each key is tried once.
 */
export async function freeWorkerLockKeys(db: Executor): Promise<number[]> {
  const { rows } = await sql<{ lock_key: number }>`
    WITH owner AS MATERIALIZED (
      SELECT DISTINCT abs(lock_key) AS lock_key FROM jobs WHERE state = 'Running' AND lock_key IS NOT NULL
    )
    SELECT lock_key FROM owner WHERE pg_try_advisory_xact_lock(${WORKER_LOCK_NAMESPACE}, lock_key)`.execute(db);
  return rows.map((r) => r.lock_key);
}

/**
 * Takes back the jobs recorded under `keys`, lock keys of workers found gone
 * by `freeWorkerLockKeys` some time ago, whose locks this transaction can
 * still take: their workers are dead. Each job goes back as `retryOrFail`
 * puts it (the attempt stays counted, so a job that kills its worker every
 * time still ends Failed MaxAttemptsExceeded, with its callback), and waiting
 * workers are woken by NOTIFY.
 */
export async function reapDeadWorkersJobs(db: Executor, keys: readonly number[], limit = 100): Promise<Job[]> {
  if (keys.length === 0) return [];
  return db.transaction().execute(async (tx) => {
    const rows = await sql<JobRow>`
      WITH gone AS MATERIALIZED (
        SELECT k AS lock_key FROM unnest(${[...keys]}::int[]) k WHERE pg_try_advisory_xact_lock(${WORKER_LOCK_NAMESPACE}, k)
      )
      SELECT jobs.* FROM jobs JOIN gone ON gone.lock_key = abs(jobs.lock_key)
      WHERE jobs.state = 'Running'
      ORDER BY jobs.seq LIMIT ${limit} FOR UPDATE OF jobs SKIP LOCKED`.execute(tx);
    const reaped: Job[] = [];
    for (const row of rows.rows) {
      const job = jobRowToJob(row);
      // A negative key: claimed ahead, and its tool never started there. Its attempt is given back.
      const next = (row as LockedRow).lock_key! < 0
        ? await transitionJob(tx, job.jobId, ['Running'], 'Submitted', {
          lease_owner: null,
          lease_expires_at: null,
          attempts: Math.max(0, job.attempts - 1),
          progress: 0,
          message: 'Its worker died before the job started; not counted as an attempt.',
        })
        : await retryOrFail(tx, job, undefined, 0, 'the worker running it died');
      if (next) reaped.push(next);
    }
    if (reaped.some((job) => job.state === 'Submitted')) await sql`SELECT pg_notify(${CHANNELS.jobsAvailable}, '')`.execute(tx);
    return reaped;
  });
}

/**
 * After its lock connection was lost and a new lock taken with `lockKey`, a
 * worker records the new key on the jobs still its own and learns which those
 * are: any other job it was running has been taken back (or ended) meanwhile,
 * and its run must stop. Waits for a reaper that is taking one of them back.
 */
export async function readoptJobs(db: Executor, workerId: string, lockKey: number): Promise<Set<string>> {
  const { rows } = await sql<{ job_id: string }>`
    UPDATE jobs SET lock_key = sign(lock_key)::int * ${lockKey}::int
    WHERE state = 'Running' AND lease_owner = ${workerId}
    RETURNING job_id`.execute(db);
  return new Set(rows.map((r) => r.job_id));
}

/**
 * Takes back jobs whose worker stopped renewing its lease (hung, cut off from
 * the database, or dead where its lock says nothing: a job claimed by an
 * older version). Each counts as an attempt used.
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
    if (reaped.some((job) => job.state === 'Submitted')) await sql`SELECT pg_notify(${CHANNELS.jobsAvailable}, '')`.execute(tx);
    return reaped;
  });
}

/**
 * Makes jobs left in `Pause` in an Active queue `Submitted` again, in their
 * original order (their seq is untouched). A submission reads its queue's
 * state without a lock, so one that read Paused can commit after a resume
 * moved the queue's paused jobs; without this its jobs would wait for their
 * expiry. Returns their ids.
 */
export async function resumeStrandedJobs(db: Executor): Promise<string[]> {
  const { rows } = await sql<{ job_id: string }>`
    UPDATE jobs j SET state = 'Submitted', updated_at = now()
    FROM queues q
    WHERE j.state = 'Pause' AND q.queue_id = j.queue_id AND q.state = 'Active'
    RETURNING j.job_id, pg_notify(${CHANNELS.jobsAvailable}, '') AS notified`.execute(db);
  return rows.map((r) => r.job_id);
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

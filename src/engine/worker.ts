import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { nextRetryDelayMs } from '../callbacks/backoff.js';
import { jobTimeoutMs, type Config } from '../config.js';
import type { Processor, ProcessorContext } from '../processors/processor.js';
import { hasTemplateRefs, resolveTemplateRefs } from '../processors/template-refs.js';
import type { Db } from '../store/database.js';
import type { Executor, Job } from '../store/jobs.repository.js';
import type { NotifyConfig } from '../store/schema.js';
import { findTemplateOrPreset } from '../templates/official-presets.js';
import type { Storage } from '../storage/storage.js';
import { mapXmlText, type XmlObject } from '../xml/tree.js';
import { CHANNELS } from './channels.js';
import { PermanentJobError, RetryLaterError } from './job-errors.js';
import { runWithinTimeout } from './job-timeout.js';
import { callbackExpected, endJob, type Outcome } from './outcomes.js';
import { claimJobs, type ClaimedJob, endJobsAndClaimNext, type JobEnd, expireWaitingJobs, freeWorkerLockKeys, markJobsStarted, readoptJobs, reapDeadWorkersJobs, reapExpiredLeases, releaseJob, renewLeases, resumeStrandedJobs, retryOrFail, saveProgress } from './queue.sql.js';
import { WorkerLiveness } from './liveness.js';
import { withDbRetry } from './db-retry.js';
import { pruneHistory } from './retention.js';
import { ToolSlots } from './tool-slots.js';

export interface WorkerDeps {
  readonly db: Db;
  readonly config: Config;
  readonly storage: Storage;
  readonly logger: Logger;
  readonly processors: ReadonlyMap<string, Processor>;
}

/** Why a running job's AbortSignal fired. */
type StopReason = 'cancelled' | 'lease-lost' | 'shutdown';

interface RunningJob {
  readonly job: Job;
  readonly queueNotify: NotifyConfig | null;
  readonly controller: AbortController;
  stopReason?: StopReason;
  /** Set when its processor has returned: the job gives up its slot while its outcome is written. */
  finished: boolean;
  done: Promise<void>;
  /** Claimed as a job ahead (its lock key recorded negated) and its tool not started yet: see `reportStarted`. */
  ahead: boolean;
}

/** A finished job waiting for the worker's next statement to end it. */
interface EndWaiting {
  readonly run: RunningJob;
  readonly end: JobEnd;
  /** performance.now() when the job finished. */
  readonly since: number;
  resolve(): void;
  reject(err: unknown): void;
}

const PROGRESS_WRITE_INTERVAL_MS = 500;

/**
 * How often a worker looks for workers that died (their advisory lock free,
 * `freeWorkerLockKeys`), and how long a key must stay free before its jobs are
 * taken back: a live worker whose lock connection broke takes a new lock and
 * re-adopts its jobs well within that (RELOCK_BACKOFF_MS in liveness.ts). A
 * killed worker's jobs run again elsewhere 0.75–1 s after its death (the goal
 * is 2 s). One short statement per pass.
 */
const DEAD_WORKER_CHECK_MS = 250;
const DEAD_WORKER_GRACE_MS = 750;

/** PostgreSQL's text and JSON refuse NUL, which a hostile file's metadata or a tool's message may hold. */
function storable(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
}

/** The longest a finished job's end waits for others to go with it (see `holdEnds`). */
const END_HOLD_MS = 20;

/**
 * A worker: claims jobs from the shared Postgres queue and runs them, at most
 * `config.concurrency` tools (an ffprobe, a libvips pipeline) at once: each
 * job's heavy work takes one of the worker's `ToolSlots`. Woken by NOTIFY
 * when jobs arrive, and by a poll every `pollIntervalMs` in case a
 * notification was lost (the listener reconnecting after a database restart,
 * say). Any number of workers in any number of processes can share one
 * database.
 *
 * Lookahead: while its jobs are short (the last one ran for less than
 * `config.lookaheadMs`, not counting its wait for a slot), a worker holds up
 * to one waiting job per slot, two while they are very short (see
 * `holdEnds`). A
 * waiting job reads its input while the others' tools run and takes the
 * first slot that frees, so no core waits while a job reads its input,
 * parses its tool's output, writes its result or records its outcome, nor
 * while the next claim is on its way: with 5 ms MediaInfo probes and one
 * waiting job in all, a slot still stood empty 28 % of the time, waiting for
 * a claim that had to queue behind another. The waiting jobs are Running in
 * the database (each took a queue slot when claimed); a cancel, a lost lease
 * or a shutdown stops them like any other, and long jobs get none, so
 * another worker is not kept from a job that would wait long here.
 *
 * Statements: one claim at a time, each for as many jobs as are wanted, so
 * jobs start in the order they were claimed. Jobs that end without a callback
 * to record are ended by the statement that claims their successors, several
 * at once when they finish while the previous statement is out or, while
 * jobs are very short, when a finished job waits briefly for others
 * (`holdEnds`); a separate claim is sent only when a slot would otherwise go
 * idle.
 */
export class Worker {
  readonly workerId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private readonly running = new Map<string, RunningJob>();
  private readonly toolSlots: ToolSlots;
  /** MEDIAJOBS_VIDEO_CONCURRENCY: taken before a tool slot by the Tags whose tool is ffmpeg (`Processor.runsFfmpeg`). */
  private readonly videoSlots: ToolSlots;
  private readonly videoTags: string[];
  /** A statement that claims (alone or with ends) is out: the next waits for its answer, so that answers cannot overtake each other. */
  private claimOut = false;
  private readonly endsWaiting: EndWaiting[] = [];
  private endHoldTimer: NodeJS.Timeout | undefined;
  /** How long the last job's processor ran. */
  private lastRunMs: number | undefined;
  private readonly log: Logger;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly unsubscribers: Array<() => Promise<void>> = [];
  private accepting = false;
  private filling = false;
  private refillRequested = false;
  /** Holds this worker's advisory lock (from `start`). */
  private liveness: WorkerLiveness | undefined;
  /**
   * The key of the advisory lock held now, recorded with each claim; null
   * before `start`. Undefined while the lock's connection is lost: the
   * worker claims nothing until it holds a new lock and has re-adopted its jobs.
   */
  private lockKey: number | null | undefined = null;
  /** Jobs ahead whose tool started, not yet reported (`reportStarted`). */
  private readonly startedAhead: string[] = [];
  private startedTimer: NodeJS.Timeout | undefined;
  /** Other workers' lock keys found free, and when first (see DEAD_WORKER_GRACE_MS). */
  private readonly freeKeysSince = new Map<number, number>();

  constructor(private readonly deps: WorkerDeps) {
    this.log = deps.logger.child({ workerId: this.workerId });
    this.toolSlots = new ToolSlots(deps.config.concurrency);
    this.videoSlots = new ToolSlots(deps.config.videoConcurrency);
    this.videoTags = [...deps.processors.values()].filter((p) => p.runsFfmpeg).map((p) => p.tag);
  }

  /** Jobs this worker is running now. */
  get activeJobIds(): string[] {
    return [...this.running.keys()];
  }

  async start(): Promise<void> {
    const { db, config } = this.deps;
    // Held before the first claim, so that no job of this worker is ever recorded under a key nobody holds.
    this.liveness = new WorkerLiveness(db, this.log, {
      lost: () => { this.lockKey = undefined; },
      relocked: (key) => this.readopt(key),
    });
    this.lockKey = await this.liveness.start();
    this.every(DEAD_WORKER_CHECK_MS, () => this.reapDeadWorkers());
    this.accepting = true;
    this.unsubscribers.push(await db.listen(CHANNELS.jobsAvailable, () => this.wake()));
    this.unsubscribers.push(await db.listen(CHANNELS.jobCancelled, (jobId) => this.stopJob(jobId, 'cancelled')));
    this.every(config.pollIntervalMs, () => this.wake());
    this.every(Math.max(100, Math.floor(config.leaseMs / 3)), () => this.renew());
    this.every(Math.max(200, Math.min(config.leaseMs / 2, 5000)), () => this.maintain());
    this.log.info({ concurrency: config.concurrency, videoConcurrency: config.videoConcurrency }, 'worker started');
    this.wake();
  }

  /**
   * Stops claiming, gives running jobs `graceMs` to finish, then aborts the
   * rest and hands them back to the queue so another worker runs them.
   */
  async stop(graceMs = this.deps.config.shutdownGraceMs): Promise<void> {
    this.accepting = false;
    this.flushEnds();
    for (const unsubscribe of this.unsubscribers.splice(0)) await unsubscribe().catch(() => undefined);
    const all = () => Promise.all([...this.running.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs); });
    await Promise.race([all(), graceOver]);
    clearTimeout(timer);
    for (const run of this.running.values()) {
      run.stopReason = 'shutdown';
      run.controller.abort(new Error('worker shutting down'));
    }
    await all();
    for (const t of this.timers.splice(0)) clearInterval(t);
    clearTimeout(this.startedTimer);
    await this.liveness?.stop();
  }

  /**
   * The timers stay referenced until `stop`: they keep a worker-only process
   * alive while it holds no socket, as when every database connection was
   * just cut and the reconnects wait for their timers (unreferenced, such a
   * process exited with status 0 and its jobs' leases ran out unnoticed).
   */
  private every(ms: number, task: () => unknown): void {
    this.timers.push(setInterval(task, ms));
  }

  /** Claims jobs until the worker is full or the queue has nothing runnable. */
  private wake(): void {
    if (!this.accepting) return;
    if (this.filling) {
      this.refillRequested = true;
      return;
    }
    this.filling = true;
    void this.fill().finally(() => {
      this.filling = false;
      if (this.refillRequested) {
        this.refillRequested = false;
        this.wake();
      }
    });
  }

  private async fill(): Promise<void> {
    const { db, config } = this.deps;
    for (let wanted = this.jobsToClaimNow(); wanted > 0; wanted = this.jobsToClaimNow()) {
      let claimed: ClaimedJob[] = [];
      this.claimOut = true;
      const lockKey = this.lockKey ?? null;
      const started = this.takeStarted();
      const video = this.videoRoom();
      try {
        claimed = await claimJobs(db.kysely, this.workerId, config.leaseMs, wanted, { lockKey, startNow: this.freeSlots(), started, video });
        this.checkClaimKey(lockKey, claimed);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'claim failed; will retry on the next poll');
        this.returnStarted(started);
      } finally {
        this.claimOut = false;
      }
      this.place(claimed);
      this.flushEnds();
      if (claimed.length < wanted && !this.cutByVideoCap(claimed, video)) return;
    }
  }

  /**
   * A claim that took its whole room of ffmpeg jobs may have passed over the
   * queue heads behind them (`ClaimLiveness.video`): fewer jobs than wanted
   * then does not mean that the queue has no more; the next claim, with no
   * room, looks among the other Tags.
   */
  private cutByVideoCap(claimed: readonly ClaimedJob[], video: { tags: readonly string[]; room: number }): boolean {
    return video.room > 0 && claimed.filter((c) => video.tags.includes(c.job.tag)).length >= video.room;
  }

  /** Tool slots no claimed job is waiting for: the jobs a claim sent now starts at once (`ClaimLiveness.startNow`). */
  private freeSlots(): number {
    return Math.max(0, this.deps.config.concurrency - this.busyJobs());
  }

  /**
   * A job ahead has taken its first tool slot: its attempt now counts if the
   * worker dies (its lock key becomes positive). The report rides on the
   * worker's next claim statement, or goes alone after END_HOLD_MS: a job
   * that kills its worker within that time goes back uncounted, so a job
   * that kills every worker it runs on still uses up its attempts whenever
   * it is claimed into a free slot, as the first claim of a restarted worker is.
   */
  private reportStarted(run: RunningJob): void {
    if (!run.ahead) return;
    run.ahead = false;
    this.startedAhead.push(run.job.jobId);
    this.startedTimer ??= setTimeout(() => {
      this.startedTimer = undefined;
      const ids = this.takeStarted();
      if (ids.length === 0) return;
      withDbRetry(() => markJobsStarted(this.deps.db.kysely, this.workerId, ids), 10_000).catch((err: Error) => {
        this.log.warn({ err: err.message, jobIds: ids }, 'could not record that jobs ahead started; if this worker dies they go back uncounted');
      });
    }, END_HOLD_MS);
  }

  /** The started jobs ahead not yet reported, for the statement about to be sent. */
  private takeStarted(): string[] {
    clearTimeout(this.startedTimer);
    this.startedTimer = undefined;
    return this.startedAhead.splice(0);
  }

  /** A statement carrying `ids` failed: they are reported with the next. */
  private returnStarted(ids: readonly string[]): void {
    if (ids.length === 0) return;
    this.startedAhead.push(...ids);
    this.startedTimer ??= setTimeout(() => {
      this.startedTimer = undefined;
      const again = this.takeStarted();
      if (again.length) void markJobsStarted(this.deps.db.kysely, this.workerId, again).catch(() => undefined);
    }, END_HOLD_MS);
  }

  /** Jobs whose processor has not returned yet (of the ffmpeg Tags only, with `video`). */
  private busyJobs(video = false): number {
    let busy = 0;
    for (const run of this.running.values()) if (!run.finished && (!video || this.videoTags.includes(run.job.tag))) busy++;
    return busy;
  }

  /** How many jobs per slot the worker holds: one running, and while jobs are short one or two waiting (see Lookahead above). */
  private claimDepth(): number {
    const { concurrency, lookaheadMs } = this.deps.config;
    const last = this.lastRunMs;
    // Very short jobs get two waiting jobs per slot where ends can wait for company (`holdEnds`, two slots or more):
    // the claim sent with them still leaves jobs to run meanwhile.
    return last === undefined || last >= lookaheadMs ? 1 : last < END_HOLD_MS && concurrency > 1 ? 3 : 2;
  }

  /** Jobs a claim sent now should ask for: one per free slot and, while jobs are short, one or two waiting jobs per slot. */
  private jobsToClaim(): number {
    if (!this.accepting || this.claimOut || this.lockKey === undefined) return 0;
    return Math.max(0, this.claimDepth() * this.deps.config.concurrency - this.busyJobs());
  }

  /** The ffmpeg Tags' share of a claim: as deep as the others', over MEDIAJOBS_VIDEO_CONCURRENCY's slots. */
  private videoRoom(): { tags: readonly string[]; room: number } {
    return { tags: this.videoTags, room: Math.max(0, this.claimDepth() * this.deps.config.videoConcurrency - this.busyJobs(true)) };
  }

  /** `jobsToClaim`, but only when a slot would otherwise go idle: a slot is free, or no job waits for one. Otherwise the next end claims. */
  private jobsToClaimNow(): number {
    const wanted = this.jobsToClaim();
    return wanted > 0 && this.busyJobs() <= this.deps.config.concurrency ? wanted : 0;
  }

  private place(claimed: readonly ClaimedJob[]): void {
    for (const one of claimed) {
      if (this.accepting) {
        this.launch(one);
        continue;
      }
      // Claimed while shutting down: give it straight back, nothing ran.
      void withDbRetry(() => releaseJob(this.deps.db.kysely, one.job, this.workerId)).catch((err: Error) => {
        // Left Running with a lease nobody renews: the reaper hands it out again.
        this.log.warn({ jobId: one.job.jobId, err: err.message }, 'could not hand a job back');
      });
    }
  }

  private launch({ job, queueNotify, ahead }: ClaimedJob): void {
    const controller = new AbortController();
    const run: RunningJob = { job, queueNotify, controller, finished: false, done: Promise.resolve(), ahead };
    // Claimed again while an earlier run of it here has not ended (its lease ran out in an outage
    // and was taken back): that run has lost the job.
    this.stopJob(job.jobId, 'lease-lost');
    this.running.set(job.jobId, run);
    run.done = this.execute(run)
      .catch((err: unknown) => {
        // Its outcome could not be written (the database away for longer than the retries, or a
        // value it refuses). Once this run is gone nobody renews the job's lease, so the reaper
        // hands it out again; the process goes on with its other jobs.
        this.log.error({ jobId: job.jobId, err: (err as Error).message }, 'could not record a job\'s outcome; it runs again once its lease runs out');
      })
      .finally(() => {
        if (this.running.get(job.jobId) === run) this.running.delete(job.jobId);
        this.wake();
      });
  }

  /**
   * The processor has returned: the job no longer counts against the worker
   * while its outcome is written. How long it ran leaves out its wait for a
   * tool slot, which is the lookahead's doing, not the job's length.
   */
  private finish(run: RunningJob, startedAt: number, slotWaitMs: number): void {
    run.finished = true;
    this.lastRunMs = performance.now() - startedAt - slotWaitMs;
  }

  private async execute(run: RunningJob): Promise<void> {
    const { job, controller } = run;
    const { db, config, storage } = this.deps;
    // Made when first used: most jobs log nothing, and a child logger costs a few microseconds.
    let jobLog: Logger | undefined;
    const log = () => (jobLog ??= this.log.child({ jobId: job.jobId, tag: job.tag, attempt: job.attempts }));
    // The claim has just set Progress to 0; the first write can wait like the others.
    let lastProgressWrite = Date.now();
    const startedAt = performance.now();
    let slotWaitMs = 0;
    let outcome: Outcome | undefined;
    let failure: unknown;
    try {
      const processor = this.deps.processors.get(job.tag);
      if (!processor) throw new PermanentJobError('InvalidArgument', `No processor runs Tag ${job.tag} on this worker.`);
      const operation = await this.resolveOperation(job);
      const withToolSlot = <T>(work: () => Promise<T>) => {
        const asked = performance.now();
        const inToolSlot = () => this.toolSlots.run(controller.signal, () => {
          slotWaitMs += performance.now() - asked;
          this.reportStarted(run);
          return work();
        });
        // The video slot first: a job waiting for one holds no tool slot that a MediaInfo job could use.
        return processor.runsFfmpeg ? this.videoSlots.run(controller.signal, inToolSlot) : inToolSlot();
      };
      const ctx: ProcessorContext = {
        job: { jobId: job.jobId, tag: job.tag, bucket: job.bucket, region: job.region, inputObject: job.inputObject, operation },
        storage,
        config,
        signal: controller.signal,
        setProgress: (percent) => {
          const now = Date.now();
          if (now - lastProgressWrite < PROGRESS_WRITE_INTERVAL_MS) return;
          lastProgressWrite = now;
          saveProgress(db.kysely, this.workerId, job.jobId, Math.max(0, Math.min(100, Math.round(percent)))).catch(() => undefined);
        },
        withToolSlot,
      };
      const result = await runWithinTimeout(() => (processor.slotsItsTool ? processor.run(ctx) : withToolSlot(() => processor.run(ctx))), { timeoutMs: jobTimeoutMs(config, job.tag), controller, tag: job.tag });
      if (run.stopReason) return this.afterStop(run, log());
      this.finish(run, startedAt, slotWaitMs);
      outcome = { code: 'Success', message: '', result };
    } catch (err) {
      if (run.stopReason) return this.afterStop(run, log());
      if (!run.finished) this.finish(run, startedAt, slotWaitMs);
      failure = err;
    }
    // Outside the try: a failure to write the outcome is not the processor's failure (see `launch`).
    if (outcome) return this.end(run, 'Success', outcome);
    if (failure instanceof PermanentJobError) {
      log().info({ code: failure.code, message: failure.message }, 'job failed');
      return this.end(run, 'Failed', { code: failure.code, message: failure.message });
    }
    const delay = failure instanceof RetryLaterError && failure.delayMs !== undefined ? failure.delayMs : nextRetryDelayMs(job.attempts);
    const reason = storable((failure as Error)?.message ?? String(failure));
    log().warn({ err: reason, delay }, 'job attempt failed; retrying');
    await withDbRetry(() => db.kysely.transaction().execute((tx) => retryOrFail(tx, job, this.workerId, delay, reason)));
  }

  /**
   * Records a run's outcome. With a callback, the end and its notification
   * share a transaction and the next claim comes from `fill`. Without one,
   * ending is an UPDATE that needs no transaction: it joins the worker's next
   * statement, which ends every job waiting to be ended and claims their
   * successors (`flushEnds`): a round trip and a commit saved per job, and a
   * job that finishes while another statement is out waits for that one
   * instead of sending its own.
   */
  private async end(run: RunningJob, to: 'Success' | 'Failed', { code, message, result }: Outcome): Promise<void> {
    const outcome: Outcome = { code, message: storable(message), ...(result ? { result: mapXmlText(result, storable) } : {}) };
    const end: JobEnd = { jobId: run.job.jobId, to, outcome };
    if (callbackExpected(run.job, run.queueNotify)) {
      await withDbRetry(() => this.deps.db.kysely.transaction().execute((tx) => this.endOne(tx, run, end)));
      return;
    }
    await new Promise<void>((resolve, reject) => {
      this.endsWaiting.push({ run, end, since: performance.now(), resolve, reject });
      this.flushEnds();
    });
  }

  /**
   * Sends the waiting ends with the claim the worker wants now, unless a
   * statement is out (its answer calls this again) or the ends may wait for
   * company (`holdEnds`).
   */
  private flushEnds(): void {
    if (this.claimOut || this.endsWaiting.length === 0) return;
    if (this.holdEnds()) {
      this.endHoldTimer ??= setTimeout(() => {
        this.endHoldTimer = undefined;
        this.flushEnds();
      }, END_HOLD_MS - (performance.now() - this.endsWaiting[0].since));
      return;
    }
    clearTimeout(this.endHoldTimer);
    this.endHoldTimer = undefined;
    const { db, config } = this.deps;
    const batch = this.endsWaiting.splice(0);
    const wanted = this.jobsToClaim();
    this.claimOut = true;
    const lockKey = this.lockKey ?? null;
    const started = this.takeStarted();
    const video = this.videoRoom();
    endJobsAndClaimNext(db.kysely, batch.map((waiting) => waiting.end), this.workerId, config.leaseMs, wanted, { lockKey, startNow: this.freeSlots(), started, video }).then(
      (claimed) => {
        this.claimOut = false;
        this.checkClaimKey(lockKey, claimed);
        this.place(claimed);
        for (const waiting of batch) waiting.resolve();
        if (claimed.length < wanted && this.cutByVideoCap(claimed, video)) this.wake();
      },
      (err: Error) => {
        this.claimOut = false;
        // Not retried as a whole: a claim whose answer was lost is left to the reaper. Each end alone is safe to repeat.
        this.log.warn({ err: err.message, jobs: batch.length }, 'ending jobs with the next claim failed; ending them one by one');
        this.returnStarted(started);
        for (const { run, end, resolve, reject } of batch) withDbRetry(() => this.endOne(db.kysely, run, end)).then(() => resolve(), reject);
      },
    ).finally(() => this.flushEnds());
  }

  /**
   * Whether finished jobs may wait for more to end with: only while jobs are
   * very short and a claimed job still waits here for every slot that frees,
   * so no slot idles for it, and never longer than END_HOLD_MS. With 5 ms
   * MediaInfo probes on two slots this halves the worker's statements; a
   * job's EndTime is then late by about one job's length.
   */
  private holdEnds(): boolean {
    const { concurrency } = this.deps.config;
    return this.accepting && this.lastRunMs !== undefined && this.lastRunMs < END_HOLD_MS
      && this.endsWaiting.length < concurrency && this.busyJobs() > concurrency
      && performance.now() - this.endsWaiting[0].since < END_HOLD_MS;
  }

  /** Ends one job by itself (with its callback, if it has one). */
  private async endOne(executor: Executor, run: RunningJob, end: JobEnd): Promise<void> {
    await endJob(executor, end.jobId, ['Running'], end.to, end.outcome, this.workerId, run.queueNotify);
  }

  /**
   * A job with a TemplateId runs the template's current parameters (TemplateId wins over inline);
   * WatermarkTemplateId and TranscodeTemplateId become the elements they stand for (template-refs.ts).
   */
  private async resolveOperation(job: Job): Promise<XmlObject> {
    let operation = job.operation;
    const templateId = operation.TemplateId;
    if (typeof templateId === 'string') {
      const template = await findTemplateOrPreset(this.deps.db.kysely, job.bucket, templateId);
      if (!template) throw new PermanentJobError('InvalidArgument', `The template ${templateId} no longer exists.`);
      operation = { ...operation, [template.tag]: template.body };
    }
    if (!hasTemplateRefs(operation)) return operation;
    return resolveTemplateRefs(operation, (id) => findTemplateOrPreset(this.deps.db.kysely, job.bucket, id));
  }

  private async afterStop(run: RunningJob, log: Logger): Promise<void> {
    if (run.stopReason === 'shutdown') {
      log.info('handing the job back to the queue');
      await withDbRetry(() => releaseJob(this.deps.db.kysely, run.job, this.workerId)).catch(() => undefined);
    } else {
      log.info({ reason: run.stopReason }, 'job stopped');
    }
  }

  private stopJob(jobId: string, reason: StopReason): void {
    const run = this.running.get(jobId);
    if (!run || run.stopReason) return;
    run.stopReason = reason;
    run.controller.abort(new Error(`job ${reason}`));
  }

  /** Renews the leases of running jobs; stops any this worker no longer holds. */
  private async renew(): Promise<void> {
    const ids = this.activeJobIds;
    if (ids.length === 0) return;
    try {
      const leased = await renewLeases(this.deps.db.kysely, this.workerId, ids, this.deps.config.leaseMs);
      for (const id of ids) {
        if (!leased.has(id)) this.stopJob(id, 'lease-lost');
      }
    } catch (err) {
      // The database is unreachable: keep working; if the outage outlasts the
      // lease, the reaper gives the job to someone else and our finish is refused.
      this.log.warn({ err: (err as Error).message }, 'lease renewal failed');
    }
  }

  /** Takes back the jobs of workers whose lock is free (see `reapDeadWorkersJobs`); the NOTIFY it sends wakes the others. */
  private async reapDeadWorkers(): Promise<void> {
    try {
      const free = await freeWorkerLockKeys(this.deps.db.kysely);
      const now = performance.now();
      for (const key of this.freeKeysSince.keys()) if (!free.includes(key)) this.freeKeysSince.delete(key);
      for (const key of free) if (!this.freeKeysSince.has(key)) this.freeKeysSince.set(key, now);
      const ripe = free.filter((key) => now - this.freeKeysSince.get(key)! >= DEAD_WORKER_GRACE_MS);
      const reaped = await reapDeadWorkersJobs(this.deps.db.kysely, ripe);
      if (reaped.length === 0) return;
      this.log.warn({ jobIds: reaped.map((j) => j.jobId) }, 'took back the jobs of a worker that died');
      // Ours, if our own lock's connection broke and `readopt` has not run yet: those runs have lost their jobs.
      for (const job of reaped) this.stopJob(job.jobId, 'lease-lost');
      this.wake();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'looking for dead workers failed');
    }
  }

  /**
   * A claim sent under a lock key that was lost while it was out: if a new
   * lock is held already, its re-adoption may have run before this claim
   * committed, so the claimed jobs are re-adopted too (a job taken back
   * meanwhile is stopped like any other).
   */
  private checkClaimKey(sentKey: number | null, claimed: readonly ClaimedJob[]): void {
    if (claimed.length === 0 || sentKey === null || this.lockKey === sentKey || this.lockKey === undefined) return;
    const key = this.lockKey;
    if (key !== null) {
      void this.readopt(key).catch((err: Error) => this.log.warn({ err: err.message }, 'could not re-adopt jobs claimed under a lost lock; their lease decides'));
    }
  }

  /**
   * A new lock after the old one's connection was lost: records its key on the
   * jobs still ours, stops the runs of those taken back meanwhile, and lets
   * claims go on.
   */
  private async readopt(key: number): Promise<void> {
    const kept = await readoptJobs(this.deps.db.kysely, this.workerId, key);
    for (const id of this.activeJobIds) {
      if (!kept.has(id)) this.stopJob(id, 'lease-lost');
    }
    this.lockKey = key;
    this.log.info({ kept: kept.size }, 'worker lock taken again');
    this.wake();
  }

  private async maintain(): Promise<void> {
    try {
      const reaped = await reapExpiredLeases(this.deps.db.kysely);
      if (reaped.length) this.log.warn({ jobIds: reaped.map((j) => j.jobId) }, 'took back jobs whose worker stopped renewing its lease');
      // This worker's own, when an outage kept it from renewing: those runs have lost their jobs.
      for (const job of reaped) this.stopJob(job.jobId, 'lease-lost');
      await expireWaitingJobs(this.deps.db.kysely);
      const resumed = await resumeStrandedJobs(this.deps.db.kysely);
      if (resumed.length) this.log.warn({ jobIds: resumed }, 'resumed jobs left in Pause in an Active queue');
      if (reaped.length || resumed.length) this.wake();
      await pruneHistory(this.deps.db.kysely, this.deps.config.retentionMs);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'maintenance failed');
    }
  }
}

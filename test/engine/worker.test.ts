import { spawn, type ChildProcess } from 'node:child_process';
import { expect } from 'chai';
import { sql } from 'kysely';
import { PermanentJobError, RetryLaterError } from '../../src/engine/job-errors.js';
import { reapExpiredLeases } from '../../src/engine/queue.sql.js';
import { createSpawner, type RunRequest, type Spawner } from '../../src/media/spawner.js';
import { createProcessorRegistry } from '../../src/processors/index.js';
import type { Processor } from '../../src/processors/processor.js';
import type { XmlObject } from '../../src/xml/tree.js';
import { defaultQueueId, describeJob, mediaInfoRequest, putFixture, setQueue, submit, waitForState } from '../helpers/jobs.js';
import { freshDatabase } from '../helpers/databases.js';
import { startTestService, waitFor, type TestService } from '../helpers/service.js';

const CI_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}$/;

describe('worker', () => {
  describe('with the real MediaInfo processor', () => {
    let api: TestService;
    before(async () => {
      api = await startTestService({ worker: true, env: { MEDIAJOBS_CONCURRENCY: '2' } });
      await putFixture(api, 'fixtures/media/h264-aac.mp4', 'input/demo.mp4');
      await putFixture(api, 'fixtures/media/truncated.mp4', 'input/truncated.mp4');
    });
    after(async () => { await api.stop(); });

    it('runs a MediaInfo job to Success with its MediaInfo, times and Progress', async () => {
      const id = await submit(api, mediaInfoRequest('input/demo.mp4', { userData: 'hello' }));
      const detail = await waitForState(api, id);
      expect(detail.State).to.equal('Success');
      expect(detail.Code).to.equal('Success');
      expect(detail.Progress).to.equal('100');
      expect(detail.StartTime).to.match(CI_TIME);
      expect(detail.EndTime).to.match(CI_TIME);
      const info = detail.Operation.MediaInfo;
      expect(info.Format.FormatName).to.equal('mov,mp4,m4a,3gp,3g2,mj2');
      expect(info.Format.NumStream).to.equal('2');
      expect(info.Stream.Video.CodecName).to.equal('h264');
      expect(info.Stream.Audio.CodecName).to.equal('aac');
      expect(detail.Operation.UserData).to.equal('hello');
      expect(detail.Operation.JobLevel).to.equal('0');
      expect(Object.keys(detail.Operation)).to.deep.equal(['MediaInfo', 'UserData', 'JobLevel']);
    });

    it('fails a job whose input is missing with NoSuchKey, at once', async () => {
      const detail = await waitForState(api, await submit(api, mediaInfoRequest('input/nothing-here.mp4')));
      expect(detail.State).to.equal('Failed');
      expect(detail.Code).to.equal('NoSuchKey');
      expect(detail.Message).to.include('input/nothing-here.mp4');
    });

    it('fails a truncated file with InvalidMedia and a clear message', async () => {
      const detail = await waitForState(api, await submit(api, mediaInfoRequest('input/truncated.mp4')));
      expect(detail.State).to.equal('Failed');
      expect(detail.Code).to.equal('InvalidMedia');
      expect(detail.Message).to.match(/not a readable media file/);
    });
  });

  describe('scheduling', () => {
    let api: TestService;
    const order: string[] = [];
    const recorder: Processor = {
      tag: 'MediaInfo',
      async run(ctx) {
        order.push(ctx.job.jobId);
        await new Promise((resolve) => setTimeout(resolve, 20));
        return {};
      },
    };
    before(async () => {
      api = await startTestService({ worker: true, env: { MEDIAJOBS_CONCURRENCY: '1', MEDIAJOBS_POLL_INTERVAL: '200ms' }, processors: new Map([['MediaInfo', recorder]]) });
    });
    after(async () => { await api.stop(); });

    it('runs the highest JobLevel first, then the oldest', async () => {
      const queueId = await defaultQueueId(api);
      await setQueue(api, queueId, 'Paused');
      const levels = [0, 2, 1, 2, 0, 1];
      const ids: string[] = [];
      for (const level of levels) ids.push(await submit(api, mediaInfoRequest('in.mp4', { jobLevel: level })));
      order.length = 0;
      await setQueue(api, queueId, 'Active');
      for (const id of ids) await waitForState(api, id);
      expect(order).to.deep.equal([ids[1], ids[3], ids[2], ids[5], ids[0], ids[4]]);
    });

    it('never claims from a paused queue, and resumes in the original order', async () => {
      const queueId = await defaultQueueId(api);
      await setQueue(api, queueId, 'Paused');
      const ids = [await submit(api, mediaInfoRequest('a.mp4')), await submit(api, mediaInfoRequest('b.mp4'))];
      order.length = 0;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(order).to.deep.equal([]);
      for (const id of ids) expect((await describeJob(api, id)).State).to.equal('Pause');
      await setQueue(api, queueId, 'Active');
      for (const id of ids) expect((await waitForState(api, id)).State).to.equal('Success');
      expect(order).to.deep.equal(ids);
    });

    it('ends a job not started before MEDIAJOBS_JOB_TTL as Failed JobExpired', async () => {
      const short = await startTestService({ worker: true, env: { MEDIAJOBS_JOB_TTL: '300ms', MEDIAJOBS_LEASE: '600ms' }, processors: new Map([['MediaInfo', recorder]]) });
      try {
        const queueId = await defaultQueueId(short);
        await setQueue(short, queueId, 'Paused');
        const id = await submit(short, mediaInfoRequest('a.mp4'));
        const detail = await waitForState(short, id, 'Failed', 10_000);
        expect(detail.Code).to.equal('JobExpired');
        expect(detail.StartTime).to.equal('-');
      } finally {
        await short.stop();
      }
    });
  });

  describe('outcomes', () => {
    let api: TestService;
    const attemptsSeen = new Map<string, number>();
    const flaky: Processor = {
      tag: 'MediaInfo',
      async run(ctx): Promise<XmlObject> {
        const n = (attemptsSeen.get(ctx.job.jobId) ?? 0) + 1;
        attemptsSeen.set(ctx.job.jobId, n);
        if (ctx.job.inputObject === 'always-fails.mp4') throw new RetryLaterError('storage is down', 50);
        if (ctx.job.inputObject === 'bad.mp4') throw new PermanentJobError('InvalidMedia', 'not media');
        if (ctx.job.inputObject === 'nul-message.mp4') throw new PermanentJobError('InvalidMedia', 'a tag held \u0000 here');
        if (ctx.job.inputObject === 'nul-retry.mp4' && n === 1) throw new RetryLaterError('hiccup \u0000', 50);
        if (ctx.job.inputObject === 'nul-result.mp4') return { MediaInfo: { Format: { FormatLongName: 'evil\u0000name', Duration: '1.000000' } } };
        if (n === 1) throw new RetryLaterError('first attempt hiccup', 50);
        return { MediaInfo: { Format: { Duration: '1.000000' } } };
      },
    };
    before(async () => {
      api = await startTestService({ worker: true, env: { MEDIAJOBS_MAX_ATTEMPTS: '3', MEDIAJOBS_POLL_INTERVAL: '100ms' }, processors: new Map([['MediaInfo', flaky]]) });
    });
    after(async () => { await api.stop(); });

    it('retries a transient failure and then succeeds', async () => {
      const id = await submit(api, mediaInfoRequest('flaky.mp4'));
      const detail = await waitForState(api, id);
      expect(detail.State).to.equal('Success');
      expect(attemptsSeen.get(id)).to.equal(2);
      expect(detail.Operation.MediaInfo.Format.Duration).to.equal('1.000000');
    });

    it('fails at once on a permanent error, without retrying', async () => {
      const id = await submit(api, mediaInfoRequest('bad.mp4'));
      const detail = await waitForState(api, id);
      expect(detail).to.include({ State: 'Failed', Code: 'InvalidMedia', Message: 'not media' });
      expect(attemptsSeen.get(id)).to.equal(1);
    });

    it('stores NUL, which PostgreSQL refuses, as U+FFFD in a message, a retry reason or a result', async () => {
      const failed = await waitForState(api, await submit(api, mediaInfoRequest('nul-message.mp4')));
      expect(failed).to.include({ State: 'Failed', Code: 'InvalidMedia', Message: 'a tag held \uFFFD here' });
      expect((await waitForState(api, await submit(api, mediaInfoRequest('nul-retry.mp4')))).State).to.equal('Success');
      const succeeded = await waitForState(api, await submit(api, mediaInfoRequest('nul-result.mp4')));
      expect(succeeded.State).to.equal('Success');
      expect(succeeded.Operation.MediaInfo.Format.FormatLongName).to.equal('evil\uFFFDname');
    });

    it('ends Failed MaxAttemptsExceeded after the last attempt', async () => {
      const id = await submit(api, mediaInfoRequest('always-fails.mp4'));
      const detail = await waitForState(api, id);
      expect(detail).to.include({ State: 'Failed', Code: 'MaxAttemptsExceeded' });
      expect(detail.Message).to.include('storage is down');
      expect(attemptsSeen.get(id)).to.equal(3);
    });
  });

  it('stops its own earlier run of a job that was taken back and claimed again by it (a lease lost in an outage)', async () => {
    const runs: string[] = [];
    let started = 0;
    const slow: Processor = {
      tag: 'MediaInfo',
      async run(ctx) {
        const run = ++started;
        runs.push(`start ${run}`);
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(resolve, run === 1 ? 1500 : 300);
          ctx.signal.addEventListener('abort', () => { clearTimeout(timer); runs.push(`abort ${run}`); reject(ctx.signal.reason); });
        });
        return { MediaInfo: { Format: { Duration: String(run) } } };
      },
    };
    // Renewals every 10 s: the job comes back to this worker before a renewal could notice.
    const api = await startTestService({ worker: true, env: { MEDIAJOBS_LEASE: '30s', MEDIAJOBS_POLL_INTERVAL: '100ms' }, processors: new Map([['MediaInfo', slow]]) });
    try {
      const id = await submit(api, mediaInfoRequest('in.mp4'));
      await waitFor(async () => (runs.includes('start 1') ? true : undefined));
      const db = api.service.db.kysely;
      await sql`UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE job_id = ${id}`.execute(db);
      expect((await reapExpiredLeases(db)).map((j) => j.jobId)).to.deep.equal([id]);
      const detail = await waitForState(api, id, ['Success', 'Failed'], 10_000);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(runs).to.deep.equal(['start 1', 'abort 1', 'start 2']);
      expect(detail.State).to.equal('Success');
      expect(detail.Operation.MediaInfo.Format.Duration, 'the result of the run that held the job').to.equal('2');
      expect(api.service.worker!.activeJobIds).to.deep.equal([]);
    } finally {
      await api.stop();
    }
  });

  describe('cancel and shutdown', () => {
    let children: ChildProcess[] = [];
    const sleeper: Processor = {
      tag: 'MediaInfo',
      run(ctx) {
        return new Promise((resolve, reject) => {
          const child = spawn('sleep', ['30'], { stdio: 'ignore' });
          children.push(child);
          const onAbort = () => child.kill('SIGKILL');
          ctx.signal.addEventListener('abort', onAbort, { once: true });
          child.on('exit', (code) => {
            ctx.signal.removeEventListener('abort', onAbort);
            if (code === 0) resolve({});
            else reject(ctx.signal.reason ?? new Error(`sleep exited ${code}`));
          });
        });
      },
    };
    afterEach(() => {
      for (const child of children) child.kill('SIGKILL');
      children = [];
    });

    it('cancels a Running job: its child process is killed and it ends Cancel', async () => {
      const api = await startTestService({ worker: true, processors: new Map([['MediaInfo', sleeper]]) });
      try {
        const id = await submit(api, mediaInfoRequest('long.mp4'));
        await waitForState(api, id, 'Running');
        await waitFor(async () => (children.length ? true : undefined));
        const res = await api.request('PUT', `/jobs/${id}?cancel`);
        expect(res.status, res.text).to.equal(200);
        expect((await describeJob(api, id)).State).to.equal('Cancel');
        await waitFor(async () => (children[0].exitCode !== null || children[0].signalCode !== null ? true : undefined), 5000, 'the child to die');
        expect(children[0].signalCode).to.equal('SIGKILL');
        expect((await describeJob(api, id)).State).to.equal('Cancel');
      } finally {
        await api.stop();
      }
    });

    it('on shutdown, hands a running job back to the queue after the grace period', async () => {
      const api = await startTestService({ worker: true, env: { MEDIAJOBS_SHUTDOWN_GRACE: '200ms' }, processors: new Map([['MediaInfo', sleeper]]) });
      const id = await submit(api, mediaInfoRequest('long.mp4'));
      await waitForState(api, id, 'Running');
      await api.service.worker!.stop(200);
      const detail = await describeJob(api, id);
      await api.stop();
      expect(detail.State).to.equal('Submitted');
      expect(children[0].signalCode).to.equal('SIGKILL');
    });
  });

  describe('lookahead', () => {
    /**
     * A processor whose jobs end at once, except those whose UserData is
     * "block": they wait for `release()`. Records every job it starts and
     * the most jobs it ever ran at the same time.
     */
    function gatedProcessor() {
      const started: string[] = [];
      let running = 0;
      let mostAtOnce = 0;
      let open!: () => void;
      const gate = new Promise<void>((resolve) => { open = resolve; });
      const processor: Processor = {
        tag: 'MediaInfo',
        async run(ctx) {
          started.push(ctx.job.jobId);
          running++;
          mostAtOnce = Math.max(mostAtOnce, running);
          try {
            // 40 ms: short enough for lookahead (MEDIAJOBS_LOOKAHEAD, 1 s), too long to count as very short (20 ms).
            if (ctx.job.operation.UserData === 'short') await new Promise((resolve) => setTimeout(resolve, 40));
            if (ctx.job.operation.UserData === 'block') await Promise.race([gate, new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)))]);
            return {};
          } finally {
            running--;
          }
        },
      };
      return { processor, started, release: () => open(), mostAtOnce: () => mostAtOnce };
    }

    async function statesOf(api: TestService, ids: readonly string[]): Promise<string[]> {
      return Promise.all(ids.map(async (id) => (await describeJob(api, id)).State as string));
    }

    /** A short job first (so the worker has seen one), then a blocking one, then `waiting` more. */
    async function submitBehindABlocker(api: TestService, waiting: number): Promise<{ blocker: string; rest: string[] }> {
      await waitForState(api, await submit(api, mediaInfoRequest('in.mp4')));
      const blocker = await submit(api, mediaInfoRequest('in.mp4', { userData: 'block' }));
      await waitForState(api, blocker, 'Running');
      const rest: string[] = [];
      for (let i = 0; i < waiting; i++) rest.push(await submit(api, mediaInfoRequest('in.mp4')));
      return { blocker, rest };
    }

    it('starts one more job while jobs are short: it reads its input during the others\' tool runs, and its tool waits for a slot', async () => {
      let open!: () => void;
      const gate = new Promise<void>((resolve) => { open = resolve; });
      const prepared: string[] = [];
      const tools: string[] = [];
      let toolsAtOnce = 0;
      let mostTools = 0;
      const processor: Processor = {
        tag: 'MediaInfo',
        slotsItsTool: true,
        async run(ctx) {
          prepared.push(ctx.job.jobId);
          return ctx.withToolSlot(async () => {
            tools.push(ctx.job.jobId);
            mostTools = Math.max(mostTools, ++toolsAtOnce);
            try {
              if (ctx.job.operation.UserData === 'block') await gate;
              return {};
            } finally {
              toolsAtOnce--;
            }
          });
        },
      };
      const api = await startTestService({ worker: true, env: { MEDIAJOBS_CONCURRENCY: '1', MEDIAJOBS_POLL_INTERVAL: '100ms' }, processors: new Map([['MediaInfo', processor]]) });
      try {
        const { blocker, rest } = await submitBehindABlocker(api, 2);
        await waitFor(async () => (prepared.includes(rest[0]) ? true : undefined), 5000, 'the extra job started');
        expect(tools).to.not.include(rest[0]);
        expect(await statesOf(api, rest)).to.deep.equal(['Running', 'Submitted']);
        open();
        for (const id of rest) expect((await waitForState(api, id)).State).to.equal('Success');
        expect(tools.slice(-3)).to.deep.equal([blocker, ...rest]);
        expect(mostTools).to.equal(1);
      } finally {
        open();
        await api.stop();
      }
    });

    it('a processor that does not slot its tool: the extra job is claimed but waits for a slot before it runs, never more than MEDIAJOBS_CONCURRENCY at once', async () => {
      const gated = gatedProcessor();
      const api = await startTestService({ worker: true, env: { MEDIAJOBS_CONCURRENCY: '1', MEDIAJOBS_POLL_INTERVAL: '100ms' }, processors: new Map([['MediaInfo', gated.processor]]) });
      try {
        const { blocker, rest } = await submitBehindABlocker(api, 3);
        // The first waiting job is claimed (Running, its queue slot taken) but its processor has not run; the others wait.
        await waitFor(async () => ((await statesOf(api, rest)).join() === 'Running,Submitted,Submitted' ? true : undefined), 5000, 'one job claimed ahead');
        expect(gated.started).to.not.include(rest[0]);
        gated.release();
        for (const id of rest) expect((await waitForState(api, id)).State).to.equal('Success');
        expect((await describeJob(api, blocker)).State).to.equal('Success');
        expect(gated.mostAtOnce()).to.equal(1);
        expect(gated.started.slice(-3)).to.deep.equal(rest);
      } finally {
        gated.release();
        await api.stop();
      }
    });

    /**
     * With MEDIAJOBS_CONCURRENCY=2: a first job that sets how long jobs run,
     * then two blockers that take both slots, then `rest`. Returns the states
     * of `rest` once the worker has claimed all it will ahead, and checks that
     * the jobs ahead start only after the blockers, in order.
     */
    async function claimedBehindTwoBlockers(firstJob: 'instant' | 'short', rest: number): Promise<string[]> {
      const gated = gatedProcessor();
      const api = await startTestService({ worker: true, env: { MEDIAJOBS_CONCURRENCY: '2', MEDIAJOBS_POLL_INTERVAL: '100ms' }, processors: new Map([['MediaInfo', gated.processor]]) });
      try {
        await waitForState(api, await submit(api, mediaInfoRequest('in.mp4', firstJob === 'short' ? { userData: 'short' } : {})));
        const queueId = await defaultQueueId(api);
        await setQueue(api, queueId, 'Paused');
        const blockers = [await submit(api, mediaInfoRequest('in.mp4', { userData: 'block' })), await submit(api, mediaInfoRequest('in.mp4', { userData: 'block' }))];
        const waiting: string[] = [];
        for (let i = 0; i < rest; i++) waiting.push(await submit(api, mediaInfoRequest('in.mp4')));
        await setQueue(api, queueId, 'Active');
        await waitFor(async () => ((await statesOf(api, blockers)).join() === 'Running,Running' ? true : undefined), 5000, 'both blockers running');
        // Several poll intervals: every job the worker will claim ahead is claimed by then.
        await new Promise((resolve) => setTimeout(resolve, 500));
        const states = await statesOf(api, waiting);
        expect(gated.started).to.include.members(blockers);
        expect(gated.started.filter((id) => waiting.includes(id)), 'no job ahead starts while the blockers hold both slots').to.deep.equal([]);
        gated.release();
        for (const id of [...blockers, ...waiting]) expect((await waitForState(api, id)).State).to.equal('Success');
        expect(gated.mostAtOnce()).to.equal(2);
        expect(gated.started.slice(-rest)).to.deep.equal(waiting);
        return states;
      } finally {
        gated.release();
        await api.stop();
      }
    }

    it('holds one waiting job per slot while jobs are short: with MEDIAJOBS_CONCURRENCY=2, two jobs wait behind two busy slots and the rest stay Submitted', async () => {
      expect(await claimedBehindTwoBlockers('short', 4)).to.deep.equal(['Running', 'Running', 'Submitted', 'Submitted']);
    });

    it('holds two waiting jobs per slot while jobs are very short (under 20 ms), so that ends can wait for company', async () => {
      expect(await claimedBehindTwoBlockers('instant', 6)).to.deep.equal(['Running', 'Running', 'Running', 'Running', 'Submitted', 'Submitted']);
    });

    it('claims no extra job while jobs run longer than MEDIAJOBS_LOOKAHEAD: the next job stays free for other workers', async () => {
      const gated = gatedProcessor();
      const slow: Processor = { tag: 'MediaInfo', run: async (ctx) => { await new Promise((resolve) => setTimeout(resolve, 60)); return gated.processor.run(ctx); } };
      const api = await startTestService({ worker: true, env: { MEDIAJOBS_CONCURRENCY: '1', MEDIAJOBS_POLL_INTERVAL: '100ms', MEDIAJOBS_LOOKAHEAD: '20ms' }, processors: new Map([['MediaInfo', slow]]) });
      try {
        const { rest } = await submitBehindABlocker(api, 2);
        await new Promise((resolve) => setTimeout(resolve, 400));
        expect(await statesOf(api, rest)).to.deep.equal(['Submitted', 'Submitted']);
      } finally {
        gated.release();
        await api.stop();
      }
    });

    it('an extra job cancelled while it waits for a slot ends Cancel and never runs', async () => {
      const gated = gatedProcessor();
      const api = await startTestService({ worker: true, env: { MEDIAJOBS_CONCURRENCY: '1', MEDIAJOBS_POLL_INTERVAL: '100ms' }, processors: new Map([['MediaInfo', gated.processor]]) });
      try {
        const { rest } = await submitBehindABlocker(api, 2);
        await waitForState(api, rest[0], 'Running');
        const res = await api.request('PUT', `/jobs/${rest[0]}?cancel`);
        expect(res.status, res.text).to.equal(200);
        // The worker hears of the cancel by NOTIFY, a moment after the 200: the slot is freed only once it has.
        await waitFor(async () => (api.service.worker!.activeJobIds.includes(rest[0]) ? undefined : true), 5000, 'the worker dropped the cancelled job');
        gated.release();
        expect((await waitForState(api, rest[1])).State).to.equal('Success');
        expect((await describeJob(api, rest[0])).State).to.equal('Cancel');
        expect(gated.started).to.not.include(rest[0]);
      } finally {
        gated.release();
        await api.stop();
      }
    });

    it('hands an extra job still waiting for a slot back to the queue on shutdown, with its attempt uncounted', async () => {
      const gated = gatedProcessor();
      const database = await freshDatabase();
      const env = { MEDIAJOBS_CONCURRENCY: '1', MEDIAJOBS_POLL_INTERVAL: '100ms', MEDIAJOBS_SHUTDOWN_GRACE: '100ms' };
      const worker = await startTestService({ worker: true, env, database, processors: new Map([['MediaInfo', gated.processor]]) });
      let rest: string[];
      try {
        ({ rest } = await submitBehindABlocker(worker, 1));
        await waitForState(worker, rest[0], 'Running');
      } finally {
        await worker.stop();
      }
      const api = await startTestService({ database });
      try {
        expect((await describeJob(api, rest[0])).State).to.equal('Submitted');
        const row = await api.service.db.kysely.selectFrom('jobs').select('attempts').where('job_id', '=', rest[0]).executeTakeFirstOrThrow();
        expect(row.attempts).to.equal(0);
        expect(gated.started).to.not.include(rest[0]);
      } finally {
        await api.stop();
      }
    });
  });

  describe('MEDIAJOBS_VIDEO_CONCURRENCY', () => {
    /** Every tool run the real processors make, each held in flight `holdMs` longer, so that runs the worker lets overlap do overlap. */
    function recordingSpawner(holdMs: number) {
      const inner = createSpawner();
      const events: Array<{ tool: 'ffmpeg' | 'ffprobe'; args: readonly string[]; ffmpegInFlight: number; ffmpegStarted: number }> = [];
      let ffmpegInFlight = 0;
      let ffmpegStarted = 0;
      let mostFfmpeg = 0;
      const spawner: Spawner = {
        kind: inner.kind,
        close: () => inner.close(),
        async run(request: RunRequest, signal?: AbortSignal) {
          const tool = /ffprobe[^/]*$/.test(request.binary) ? 'ffprobe' : 'ffmpeg';
          events.push({ tool, args: request.args, ffmpegInFlight, ffmpegStarted });
          if (tool === 'ffprobe') return inner.run(request, signal);
          ffmpegStarted++;
          mostFfmpeg = Math.max(mostFfmpeg, ++ffmpegInFlight);
          try {
            await new Promise((resolve) => setTimeout(resolve, holdMs));
            return await inner.run(request, signal);
          } finally {
            ffmpegInFlight--;
          }
        },
      };
      return { spawner, events, mostFfmpeg: () => mostFfmpeg };
    }

    it('with MEDIAJOBS_CONCURRENCY=4 and MEDIAJOBS_VIDEO_CONCURRENCY=1, runs one ffmpeg at a time while MediaInfo jobs queued behind the Transcodes take the other slots', async () => {
      const recording = recordingSpawner(800);
      const api = await startTestService({
        worker: true,
        env: { MEDIAJOBS_CONCURRENCY: '4', MEDIAJOBS_VIDEO_CONCURRENCY: '1', MEDIAJOBS_POLL_INTERVAL: '100ms' },
        processors: createProcessorRegistry({ spawner: recording.spawner }),
      });
      try {
        await putFixture(api, 'fixtures/media/h264-aac.mp4', 'in/clip.mp4');
        await putFixture(api, 'fixtures/media/h264-aac.mp4', 'in/probe-me.mp4');
        const transcodes: string[] = [];
        for (let i = 0; i < 5; i++) {
          transcodes.push(await submit(api, '<Request><Tag>Transcode</Tag><Input><Object>in/clip.mp4</Object></Input><Operation>'
            + '<Transcode><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Width>128</Width></Video><Audio><Codec>aac</Codec></Audio></Transcode>'
            + `<Output><Bucket>local-1250000000</Bucket><Region>ap-local</Region><Object>out/${i}.mp4</Object></Output></Operation></Request>`));
        }
        const probes: string[] = [];
        for (let i = 0; i < 3; i++) probes.push(await submit(api, mediaInfoRequest('in/probe-me.mp4')));
        for (const id of [...transcodes, ...probes]) expect((await waitForState(api, id, ['Success', 'Failed', 'Cancel'], 60_000)).State).to.equal('Success');
        expect(recording.mostFfmpeg()).to.equal(1);
        expect(recording.events.filter((e) => e.tool === 'ffmpeg')).to.have.length(5);
        // Each MediaInfo probe ran while the first Transcode's ffmpeg did: the claims passed over the four Transcodes waiting.
        const mediaInfoProbes = recording.events.filter((e) => e.tool === 'ffprobe' && e.args.some((a) => a.endsWith('probe-me.mp4')));
        expect(mediaInfoProbes).to.have.length(3);
        for (const probe of mediaInfoProbes) expect({ inFlight: probe.ffmpegInFlight, started: probe.ffmpegStarted }).to.deep.equal({ inFlight: 1, started: 1 });
      } finally {
        await api.stop();
        recording.spawner.close();
      }
    });
  });
});

import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { jobTimeoutMs, loadConfig } from '../../src/config.js';
import { BUCKET, mediaInfoRequest, putFixture, submit, waitForState } from '../helpers/jobs.js';
import { startTestService, waitFor, type TestService } from '../helpers/service.js';

function picRequest(input: string, rule: string, output: string): string {
  return `<Request><Tag>PicProcess</Tag><Input><Object>${input}</Object></Input><Operation><PicProcess><ProcessRule>${rule}</ProcessRule></PicProcess>`
    + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${output}</Object></Output></Operation></Request>`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('MEDIAJOBS_JOB_TIMEOUT', () => {
  it('bounds MediaInfo and PicProcess, gives the ffmpeg Tags MEDIAJOBS_FFMPEG_TIMEOUT plus 10 min, and MEDIAJOBS_JOB_TIMEOUT_<TAG> sets one Tag\'s', () => {
    const defaults = loadConfig({});
    expect(jobTimeoutMs(defaults, 'MediaInfo')).to.equal(600_000);
    expect(jobTimeoutMs(defaults, 'PicProcess')).to.equal(600_000);
    for (const tag of ['Transcode', 'Snapshot', 'VideoProcess', 'SmartCover', 'AnyFutureFfmpegTag']) {
      expect(jobTimeoutMs(defaults, tag), tag).to.equal(2 * 3_600_000 + 600_000);
    }
    const set = loadConfig({ MEDIAJOBS_JOB_TIMEOUT: '5m', MEDIAJOBS_JOB_TIMEOUT_PICPROCESS: '30s', MEDIAJOBS_JOB_TIMEOUT_TRANSCODE: '6h', MEDIAJOBS_FFMPEG_TIMEOUT: '3h' });
    expect(jobTimeoutMs(set, 'MediaInfo')).to.equal(300_000);
    expect(jobTimeoutMs(set, 'PicProcess')).to.equal(30_000);
    expect(jobTimeoutMs(set, 'Transcode')).to.equal(6 * 3_600_000);
    expect(jobTimeoutMs(set, 'Snapshot')).to.equal(3 * 3_600_000 + 600_000);
    expect(jobTimeoutMs(loadConfig({ MEDIAJOBS_JOB_TIMEOUT: '4h' }), 'Snapshot')).to.equal(4 * 3_600_000);
    expect(() => loadConfig({ MEDIAJOBS_JOB_TIMEOUT: '0' })).to.throw(/MEDIAJOBS_JOB_TIMEOUT/);
    expect(() => loadConfig({ MEDIAJOBS_JOB_TIMEOUT_PICPROCESS: 'soon' })).to.throw(/MEDIAJOBS_JOB_TIMEOUT_PICPROCESS/);
  });

  describe('a job that runs longer', () => {
    let api: TestService;
    let dir: string;
    let pidFile: string;

    before(async () => {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'job-timeout-'));
      pidFile = path.join(dir, 'pid');
      const hangingProbe = path.join(dir, 'hanging-ffprobe.sh');
      await fs.writeFile(hangingProbe, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 60\n`, { mode: 0o755 });
      api = await startTestService({
        worker: true,
        env: { MEDIAJOBS_FFPROBE_PATH: hangingProbe, MEDIAJOBS_JOB_TIMEOUT: '1s', MEDIAJOBS_JOB_TIMEOUT_PICPROCESS: '150ms', MEDIAJOBS_CONCURRENCY: '1' },
      });
      await putFixture(api, 'fixtures/media/h264-aac.mp4', 'input/demo.mp4');
      await putFixture(api, 'fixtures/images/large-2725x2225.jpg', 'input/large.jpg');
    });

    after(async () => {
      await api.stop();
      await fs.rm(dir, { recursive: true, force: true });
    });

    it('ends Failed with JobTimeout on its first attempt, its tool killed', async () => {
      const started = Date.now();
      const jobId = await submit(api, mediaInfoRequest('input/demo.mp4'));
      const detail = await waitForState(api, jobId, ['Success', 'Failed', 'Cancel'], 10_000);
      expect(detail.State).to.equal('Failed');
      expect(detail.Code).to.equal('JobTimeout');
      expect(detail.Message).to.equal('The MediaInfo job ran longer than its limit of 1 s and was stopped.');
      expect(Date.now() - started).to.be.below(5000);
      const pid = Number((await fs.readFile(pidFile, 'utf8')).trim());
      expect(pid).to.be.above(0);
      expect(alive(pid), 'the stand-in ffprobe was killed').to.equal(false);
      const row = await api.service.db.kysely.selectFrom('jobs').select(['attempts', 'state']).where('job_id', '=', jobId).executeTakeFirstOrThrow();
      expect([Number(row.attempts), row.state]).to.deep.equal([1, 'Failed']);
    });

    it('ends a PicProcess job whose sharp work cannot be stopped, and drops that work\'s output', async () => {
      // About two seconds of libvips work on one core; its limit is 150 ms.
      const rule = 'imageMogr2/thumbnail/7000x/blur/50x50/sharpen/300/blur/40x40';
      const started = Date.now();
      const jobId = await submit(api, picRequest('input/large.jpg', rule, 'output/slow.jpg'));
      const detail = await waitForState(api, jobId, ['Success', 'Failed', 'Cancel'], 10_000);
      const endedAfter = Date.now() - started;
      expect(detail.State).to.equal('Failed');
      expect(detail.Code).to.equal('JobTimeout');
      expect(detail.Message).to.equal('The PicProcess job ran longer than its limit of 0.15 s and was stopped.');
      expect(endedAfter).to.be.below(1500 + 1000);
      // The abandoned pipeline keeps its tool slot until it is done; then the slot serves the next job.
      const next = await submit(api, picRequest('input/large.jpg', 'imageMogr2/thumbnail/10x', 'output/next.jpg'));
      await waitForState(api, next, ['Success', 'Failed'], 20_000);
      await waitFor(async () => (await api.service.storage.stat(BUCKET, 'output/slow.jpg')) === undefined || undefined, 1000, 'no output');
      expect(await api.service.storage.stat(BUCKET, 'output/slow.jpg')).to.equal(undefined);
    });
  });
});

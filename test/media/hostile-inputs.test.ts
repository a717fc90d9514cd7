import { execFile, execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { bundledFfprobePath } from '../../src/media/ffprobe.js';
import {
  DREF_FIXTURE, REFUSED_FIXTURES, hostileTargets, placeRealTargets, placeTraps, putHostileFixtures, removeAbsoluteTargets, watchTraps, type OpenTrap,
} from '../helpers/hostile-media.js';
import { BUCKET, mediaInfoRequest, putFixture, submit, waitForState } from '../helpers/jobs.js';
import { startTestService, type TestService } from '../helpers/service.js';

/*
 * Issue 20, item 1: a MediaInfo job reads its input object and nothing else.
 * Each fixture in fixtures/hostile/ (see its README) refers to real, valid
 * media outside the job's bucket (test/helpers/hostile-media.ts says where);
 * before the input policy ffprobe followed the reference and the job ended
 * Success, describing that other file.
 */

const execFileAsync = promisify(execFile);

/**
 * The bundled ffprobe, and another one (Debian's 5.1, say) when
 * MEDIAJOBS_TEST_OTHER_FFPROBE names it: `MEDIAJOBS_FFPROBE_PATH` may point at
 * a newer ffprobe, and the policy must hold there too.
 */
const FFPROBES: ReadonlyArray<readonly [string, string]> = [
  ['ffprobe-static', ''],
  ...(process.env.MEDIAJOBS_TEST_OTHER_FFPROBE ? [[process.env.MEDIAJOBS_TEST_OTHER_FFPROBE, process.env.MEDIAJOBS_TEST_OTHER_FFPROBE] as const] : []),
];

for (const [ffprobeName, ffprobePath] of FFPROBES) describe(`hostile inputs: a MediaInfo job reads only its own object (${ffprobeName})`, () => {
  const ffprobe = ffprobePath || bundledFfprobePath();
  let api: TestService;
  let dataDir: string;

  async function runJob(name: string): Promise<Record<string, any>> {
    return waitForState(api, await submit(api, mediaInfoRequest(`in/${name}`)));
  }

  before(async () => {
    api = await startTestService({ worker: true, env: { MEDIAJOBS_CONCURRENCY: '2', ...(ffprobePath ? { MEDIAJOBS_FFPROBE_PATH: ffprobePath } : {}) } });
    dataDir = api.config.dataDir;
    await putHostileFixtures(api);
  });
  after(async () => {
    await api.stop();
    await removeAbsoluteTargets();
  });

  describe('with real media at every target', () => {
    before(() => placeRealTargets(dataDir));

    it('the targets are real media that ffprobe describes', () => {
      const { mp4, mov } = hostileTargets(dataDir);
      for (const target of [...mp4, mov]) {
        const out = execFileSync(ffprobe, ['-v', 'error', '-show_entries', 'stream=codec_name', '-of', 'csv=p=0', target], { encoding: 'utf8' });
        expect(out, target).to.contain('h264');
      }
    });

    for (const name of REFUSED_FIXTURES) {
      it(`${name} ends Failed with InvalidMedia, saying nothing of the server`, async () => {
        const detail = await runJob(name);
        expect(detail.State, JSON.stringify(detail)).to.equal('Failed');
        expect(detail.Code).to.equal('InvalidMedia');
        expect(detail.Message).to.contain(`in/${name}`);
        expect(detail.Message).to.contain('format not read here');
        expect(detail.Message).not.to.contain(dataDir);
        expect(detail.Message).not.to.match(/mediajobs-input-|whitelist|\/tmp\//);
      });
    }

    it(`${DREF_FIXTURE} is described from its own header, its samples (only in the target) unread`, async () => {
      const detail = await runJob(DREF_FIXTURE);
      expect(detail.State, JSON.stringify(detail)).to.equal('Success');
      const video = detail.Operation.MediaInfo.Stream.Video;
      expect(video).to.include({ CodecName: 'h264', Width: '64', Height: '48' });
      // Decoding one sample from the target would have told ffprobe the pixel format (yuv420p).
      expect(video).not.to.have.property('PixFormat');
    });

    it('an object whose key is an image-sequence pattern is read as itself, not as its neighbour', async () => {
      // image2 reads `%d` as a frame number: the key in/frame%d.jpg made ffprobe read in/frame1.jpg.
      await putFixture(api, 'fixtures/images/photo-orient6.jpg', 'in/frame%d.jpg');
      await putFixture(api, 'fixtures/images/large-2725x2225.jpg', 'in/frame1.jpg');
      const detail = await runJob('frame%d.jpg');
      expect(detail.State, JSON.stringify(detail)).to.equal('Success');
      const info = detail.Operation.MediaInfo;
      expect(info.Format.Size).to.equal(String(statSync('fixtures/images/photo-orient6.jpg').size));
      expect(info.Stream.Video).to.include({ Width: '320', Height: '240' });
    });
  });

  describe('with a trap at every target (a FIFO that records being opened)', () => {
    let traps: OpenTrap[];
    before(async () => { traps = await placeTraps(dataDir); });
    after(() => placeRealTargets(dataDir));

    it('the trap notices a tool that opens its target (ffprobe with external references switched on)', async () => {
      const movie = path.join(dataDir, 'buckets', BUCKET, 'in', DREF_FIXTURE);
      const { opened } = await watchTraps(traps, () => execFileAsync(ffprobe, ['-v', 'quiet', '-enable_drefs', '1', '-show_streams', movie], { timeout: 10_000 }));
      expect(opened).to.deep.equal([hostileTargets(dataDir).mov]);
    });

    for (const name of [...REFUSED_FIXTURES, DREF_FIXTURE]) {
      it(`${name}: no target is ever opened`, async () => {
        const { result: detail, opened } = await watchTraps(traps, () => runJob(name));
        expect(opened, JSON.stringify(detail)).to.deep.equal([]);
        expect(detail.State).to.be.oneOf(['Success', 'Failed']);
      });
    }
  });
});

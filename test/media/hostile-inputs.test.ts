import { execFile, execFileSync } from 'node:child_process';
import { constants, promises as fs, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { bundledFfprobePath } from '../../src/media/ffprobe.js';
import { BUCKET, mediaInfoRequest, putFixture, submit, waitForState } from '../helpers/jobs.js';
import { startTestService, type TestService } from '../helpers/service.js';

/*
 * Issue 20, item 1: a MediaInfo job reads its input object and nothing else.
 * Each fixture in fixtures/hostile/ (see its README) refers to real, valid
 * media outside the job's bucket; before the input policy ffprobe followed the
 * reference and the job ended Success, describing that other file.
 *
 * Where the targets are (the job's input is <data>/buckets/local-1250000000/in/<name>):
 * - /tmp/mediajobs-hostile/target.mp4, named by the absolute-path fixtures;
 * - <data>/outside/target.mp4 and target.mov, three folders up from the input;
 * - <data>/buckets/other-1250000000/secret.mp4, another bucket's object.
 */

const execFileAsync = promisify(execFile);
const HOSTILE = 'fixtures/hostile';
const ABSOLUTE_DIR = '/tmp/mediajobs-hostile';
const OTHER_BUCKET = 'other-1250000000';

/** Fixtures that must end Failed with InvalidMedia. */
const REFUSED = [
  'hls-absolute-path.m3u8',
  'hls-parent-path.m3u8',
  'hls-file-url.m3u8',
  'hls-other-bucket.m3u8',
  'hls-concat-protocol.m3u8',
  'hls-subfile-protocol.m3u8',
  'dash-file-baseurl.mpd',
  'chain.ffconcat',
];

/**
 * A FIFO standing where a target would be: a tool that opens it blocks there,
 * and while it does, a non-blocking open for writing succeeds (ENXIO while no
 * reader has it open). `watch` polls that, notes the opening and closes its end
 * at once, so the tool reads an empty file instead of hanging.
 */
class OpenTrap {
  opened = false;
  private polling = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(readonly file: string) {}

  static async place(file: string): Promise<OpenTrap> {
    await fs.rm(file, { force: true });
    execFileSync('mkfifo', [file]);
    return new OpenTrap(file);
  }

  watch(): void {
    this.opened = false;
    this.polling = true;
    this.loop = (async () => {
      while (this.polling) {
        const handle = await fs.open(this.file, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => undefined);
        if (handle) {
          this.opened = true;
          await handle.close();
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
  }

  async stop(): Promise<boolean> {
    this.polling = false;
    await this.loop;
    return this.opened;
  }
}

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
  const targets = (): string[] => [
    path.join(ABSOLUTE_DIR, 'target.mp4'),
    path.join(dataDir, 'outside', 'target.mp4'),
    path.join(dataDir, 'buckets', OTHER_BUCKET, 'secret.mp4'),
  ];

  async function placeRealTargets(): Promise<void> {
    const media = readFileSync('fixtures/media/h264-aac.mp4');
    for (const target of targets()) {
      await fs.rm(target, { force: true });
      await fs.mkdir(path.dirname(target), { recursive: true });
      await fs.writeFile(target, media);
    }
    await fs.rm(path.join(dataDir, 'outside', 'target.mov'), { force: true });
    await fs.copyFile(path.join(HOSTILE, 'mov-dref-target.mov'), path.join(dataDir, 'outside', 'target.mov'));
  }

  async function runJob(name: string): Promise<Record<string, any>> {
    return waitForState(api, await submit(api, mediaInfoRequest(`in/${name}`)));
  }

  before(async () => {
    api = await startTestService({ worker: true, env: { MEDIAJOBS_CONCURRENCY: '2', ...(ffprobePath ? { MEDIAJOBS_FFPROBE_PATH: ffprobePath } : {}) } });
    dataDir = api.config.dataDir;
    for (const name of [...REFUSED, 'mov-external-dref.mov']) await putFixture(api, path.join(HOSTILE, name), `in/${name}`);
    await placeRealTargets();
  });
  after(async () => {
    await api.stop();
    await fs.rm(ABSOLUTE_DIR, { recursive: true, force: true });
  });

  describe('with real media at every target', () => {
    before(placeRealTargets);

    it('the targets are real media that ffprobe describes', () => {
      for (const target of [...targets(), path.join(dataDir, 'outside', 'target.mov')]) {
        const out = execFileSync(ffprobe, ['-v', 'error', '-show_entries', 'stream=codec_name', '-of', 'csv=p=0', target], { encoding: 'utf8' });
        expect(out, target).to.contain('h264');
      }
    });

    for (const name of REFUSED) {
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

    it('mov-external-dref.mov is described from its own header, its samples (only in the target) unread', async () => {
      const detail = await runJob('mov-external-dref.mov');
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
    before(async () => {
      traps = [];
      for (const target of [...targets(), path.join(dataDir, 'outside', 'target.mov')]) traps.push(await OpenTrap.place(target));
    });
    after(placeRealTargets);

    it('the trap notices a tool that opens its target (ffprobe with external references switched on)', async () => {
      const trap = traps[3]!;
      trap.watch();
      const movie = path.join(dataDir, 'buckets', BUCKET, 'in', 'mov-external-dref.mov');
      await execFileAsync(ffprobe, ['-v', 'quiet', '-enable_drefs', '1', '-show_streams', movie], { timeout: 10_000 });
      expect(await trap.stop()).to.equal(true);
    });

    for (const name of [...REFUSED, 'mov-external-dref.mov']) {
      it(`${name}: no target is ever opened`, async () => {
        for (const trap of traps) trap.watch();
        const detail = await runJob(name);
        const opened = [];
        for (const trap of traps) if (await trap.stop()) opened.push(trap.file);
        expect(opened, JSON.stringify(detail)).to.deep.equal([]);
        expect(detail.State).to.be.oneOf(['Success', 'Failed']);
      });
    }
  });
});

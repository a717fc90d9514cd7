import { expect } from 'chai';
import {
  DREF_FIXTURE, REFUSED_FIXTURES, placeRealTargets, placeTraps, putHostileFixtures, removeAbsoluteTargets, watchTraps, type OpenTrap,
} from '../helpers/hostile-media.js';
import { BUCKET, putFixture, submit, waitForState } from '../helpers/jobs.js';
import { startTestService, type TestService } from '../helpers/service.js';

/*
 * Issue 20, item 1, for the ffmpeg Tags: a job's ffmpeg reads its input object
 * and nothing else, as MediaInfo's ffprobe does (test/media/hostile-inputs.test.ts).
 * The same hostile fixtures and targets (test/helpers/hostile-media.ts); each
 * Tag's request is first shown to succeed on ordinary media, so a failure
 * below is the input's doing, not the request's.
 */

/** One small request per ffmpeg Tag; `n` keeps the outputs apart. */
const TAGS: ReadonlyArray<readonly [string, (input: string, n: number) => string]> = [
  ['Transcode', (input, n) => request('Transcode', input,
    '<Transcode><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset></Video></Transcode>', `out/transcode-${n}.mp4`)],
  ['Snapshot', (input, n) => request('Snapshot', input,
    '<Snapshot><Mode>Interval</Mode><Start>0</Start><TimeInterval>1</TimeInterval><Count>1</Count></Snapshot>', `out/snapshot-${n}-\${Number}.jpg`)],
  ['Animation', (input, n) => request('Animation', input,
    '<Animation><Container><Format>gif</Format></Container><Video><Codec>gif</Codec><AnimateFramesPerSecond>2</AnimateFramesPerSecond></Video>'
      + '<TimeInterval><Start>0</Start><Duration>1</Duration></TimeInterval></Animation>', `out/animation-${n}.gif`)],
  ['Segment', (input, n) => request('Segment', input, '<Segment><Format>mp4</Format><Duration>4</Duration></Segment>', `out/segment-${n}-\${Number}.mp4`)],
];

function request(tag: string, input: string, operation: string, output: string): string {
  return `<Request><Tag>${tag}</Tag><Input><Object>${input}</Object></Input><Operation>${operation}`
    + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${output}</Object></Output></Operation></Request>`;
}

describe('hostile inputs: an ffmpeg job reads only its own object', function () {
  this.timeout(60_000);
  let api: TestService;
  let dataDir: string;
  let n = 0;

  async function runJob(tag: (input: string, n: number) => string, input: string): Promise<Record<string, any>> {
    return waitForState(api, await submit(api, tag(input, ++n)), undefined, 40_000);
  }

  before(async () => {
    api = await startTestService({ worker: true, env: { MEDIAJOBS_CONCURRENCY: '2' } });
    dataDir = api.config.dataDir;
    await putHostileFixtures(api);
    await putFixture(api, 'fixtures/media/h264-aac.mp4', 'in/ordinary.mp4');
  });
  after(async () => {
    await api.stop();
    await removeAbsoluteTargets();
  });

  for (const [tag, build] of TAGS) {
    describe(tag, () => {
      describe('with real media at every target', () => {
        before(() => placeRealTargets(dataDir));

        it('succeeds on an ordinary input (the request is valid)', async () => {
          const detail = await runJob(build, 'in/ordinary.mp4');
          expect(detail.State, detail.Message).to.equal('Success');
        });

        it('ends Failed with InvalidMedia for every input whose format refers to other files, writing nothing', async () => {
          for (const name of REFUSED_FIXTURES) {
            const detail = await runJob(build, `in/${name}`);
            expect([detail.State, detail.Code], `${name}: ${detail.Message}`).to.deep.equal(['Failed', 'InvalidMedia']);
            expect(detail.Message, name).not.to.contain(dataDir);
            expect(detail.Message, name).not.to.match(/mediajobs-input-|whitelist|\/tmp\//);
          }
        });
      });

      describe('with a trap at every target (a FIFO that records being opened)', () => {
        let traps: OpenTrap[];
        before(async () => { traps = await placeTraps(dataDir); });
        after(() => placeRealTargets(dataDir));

        it('never opens a target, whatever the input', async () => {
          for (const name of [...REFUSED_FIXTURES, DREF_FIXTURE]) {
            const { result: detail, opened } = await watchTraps(traps, () => runJob(build, `in/${name}`));
            expect(opened, `${name}: ${JSON.stringify(detail)}`).to.deep.equal([]);
            expect(detail.State, name).to.be.oneOf(['Success', 'Failed']);
          }
        });
      });
    });
  }
});

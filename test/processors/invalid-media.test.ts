import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { BUCKET, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import type { TestService } from '../helpers/service.js';

/*
 * Every ffmpeg Tag on an input that is not media: a truncated upload (the moov
 * box missing) and a text file. Each must end Failed with InvalidMedia and the
 * tool's reason, naming the input by its key (never a local path), promptly,
 * and write nothing. (Transcode's own case is in transcode.test.ts.)
 */

const OUT = (tag: string, input: string) => `out/${tag}-${path.posix.basename(input, '.mp4')}`;

const TAGS: ReadonlyArray<readonly [string, (input: string) => string]> = [
  ['Snapshot', (input) => request('Snapshot', input, '<Snapshot><Count>2</Count></Snapshot>', `${OUT('Snapshot', input)}/\${Number}.jpg`)],
  ['Animation', (input) => request('Animation', input,
    '<Animation><Container><Format>gif</Format></Container><Video><Codec>gif</Codec><AnimateFramesPerSecond>2</AnimateFramesPerSecond></Video></Animation>', `${OUT('Animation', input)}/a.gif`)],
  ['Segment', (input) => request('Segment', input, '<Segment><Format>mp4</Format><Duration>4</Duration></Segment>', `${OUT('Segment', input)}/\${Number}.mp4`)],
  ['Concat', (input) => request('Concat', input,
    '<ConcatTemplate><ConcatFragment><Url>in/good.mp4</Url><Mode>Start</Mode></ConcatFragment><Container><Format>mp4</Format></Container>'
      + '<Video><Codec>H.264</Codec><Preset>ultrafast</Preset></Video><Audio><Codec>aac</Codec></Audio></ConcatTemplate>', `${OUT('Concat', input)}/c.mp4`)],
  ['DirectConcat', (input) => request('Concat', input,
    '<ConcatTemplate><DirectConcat>true</DirectConcat><ConcatFragment><Url>in/good.mp4</Url><Mode>Start</Mode></ConcatFragment><Container><Format>mp4</Format></Container></ConcatTemplate>',
    `${OUT('DirectConcat', input)}/c.mp4`)],
  ['SmartCover', (input) => request('SmartCover', input, '<SmartCover><Count>2</Count></SmartCover>', `${OUT('SmartCover', input)}/\${Number}.jpg`)],
  ['VideoMontage', (input) => request('VideoMontage', input,
    '<VideoMontage><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec></Video><Duration>2</Duration></VideoMontage>', `${OUT('VideoMontage', input)}/m.mp4`)],
  ['StreamExtract', (input) => request('StreamExtract', input, '', `${OUT('StreamExtract', input)}/v.mp4`)
    .replace(/<Object>(out\/[^<]*)<\/Object><\/Output>/, '<StreamExtract><Index>0</Index><Object>$1</Object></StreamExtract></Output>')],
  ['VideoProcess', (input) => request('VideoProcess', input,
    '<VideoProcess><ColorEnhance><Enable>true</Enable></ColorEnhance></VideoProcess><Transcode><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec></Video></Transcode>',
    `${OUT('VideoProcess', input)}/p.mp4`)],
  ['NoiseReduction', (input) => request('NoiseReduction', input, '<NoiseReduction><Format>mp3</Format></NoiseReduction>', `${OUT('NoiseReduction', input)}/n.mp3`)],
];

function request(tag: string, input: string, operation: string, output: string): string {
  return `<Request><Tag>${tag}</Tag><Input><Object>${input}</Object></Input><Operation>${operation}`
    + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${output}</Object></Output></Operation></Request>`;
}

describe('ffmpeg Tags on inputs that are not media', function () {
  this.timeout(90_000);
  let api: TestService;
  before(async () => {
    api = await startWorkerService({
      'in/good.mp4': 'fixtures/media/h264-aac.mp4',
      'in/truncated.mp4': 'fixtures/media/truncated.mp4',
      'in/not-media.mp4': 'fixtures/media/not-media.mp4',
    });
  });
  after(async () => { await api.stop(); });

  for (const [tag, build] of TAGS) {
    it(`${tag} ends Failed InvalidMedia with the tool's reason and writes nothing`, async () => {
      const good = await waitForState(api, await submit(api, build('in/good.mp4')), undefined, 40_000);
      expect(good.State, `the request is valid: ${good.Message as string}`).to.equal('Success');
      for (const input of ['in/truncated.mp4', 'in/not-media.mp4']) {
        const started = Date.now();
        const detail = await waitForState(api, await submit(api, build(input)), undefined, 40_000);
        expect([detail.State, detail.Code], `${input}: ${detail.Message as string}`).to.deep.equal(['Failed', 'InvalidMedia']);
        expect(detail.Message).to.include(input).and.match(/moov atom not found|Invalid data/).and.not.include(api.config.dataDir);
        expect(Date.now() - started).to.be.below(15_000);
        const written = await fs.readdir(path.join(api.config.dataDir, 'buckets', BUCKET, OUT(tag, input))).catch(() => []);
        expect(written, input).to.deep.equal([]);
      }
    });
  }
});

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import { bundledFfmpegPath } from '../../src/media/ffmpeg-capabilities.js';
import { clipFilters, pickClips } from '../../src/processors/video-montage.js';
import { BUCKET, putFixture, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import type { TestService } from '../helpers/service.js';

describe('VideoMontage', function () {
  this.timeout(60_000);

  it('cuts the reel into clips starting at the scene changes nearest to evenly spaced marks', () => {
    expect(pickClips(12, 6, [])).to.deep.equal([[1.5, 4.5], [7.5, 10.5]]);
    expect(pickClips(12, 6, [2, 7.9])).to.deep.equal([[2, 5], [7.9, 10.9]]);
    expect(pickClips(4, 10, [])).to.deep.equal([[0, 4]]);
    expect(clipFilters([[1, 2], [5, 6]]).video[0]).to.equal("select='between(t,1,2)+between(t,5,6)'");
  });

  describe('jobs with the real ffmpeg', () => {
    let api: TestService;
    before(async () => {
      api = await startWorkerService({ 'in/test.mp4': 'fixtures/media/clip-12s.mp4' });
    });
    after(async () => { await api.stop(); });

    it('writes a reel of Duration seconds, with audio, as Go sends the request (empty Video elements)', async () => {
      const detail = await waitForState(api, await submit(api, '<Request><Tag>VideoMontage</Tag><Input><Object>in/test.mp4</Object></Input><Operation>'
        + '<VideoMontage><Duration>6</Duration><Scene>Video</Scene><Container><Format>mp4</Format></Container>'
        + '<Video><Codec>H.264</Codec><Width></Width><Height></Height><Fps></Fps><Bitrate></Bitrate><Crf></Crf></Video><Audio><Codec>aac</Codec></Audio></VideoMontage>'
        + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>out/reel.mp4</Object></Output></Operation></Request>`));
      expect(detail.State, detail.Message).to.equal('Success');
      expect(Number(detail.Operation.MediaInfo.Format.Duration)).to.be.closeTo(6, 0.3);
      expect(detail.Operation.MediaInfo.Stream.Audio.CodecName).to.equal('aac');
      expect(detail.Operation.MediaResult.OutputFile.ObjectName).to.equal('out/reel.mp4');
    });

    it('mixes AudioMix over the reel: a looped 2 s tone replaces its audio to the reel\'s end, which stays Duration long', async () => {
      await putFixture(api, 'fixtures/media/audio-only.mp3', 'in/tone.mp3');
      const detail = await waitForState(api, await submit(api, '<Request><Tag>VideoMontage</Tag><Input><Object>in/test.mp4</Object></Input><Operation>'
        + '<VideoMontage><Duration>6</Duration><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset></Video><Audio><Codec>aac</Codec></Audio>'
        + '<AudioMix><AudioSource>in/tone.mp3</AudioSource><MixMode>Repeat</MixMode><Replace>true</Replace>'
        + '<EffectConfig><EnableEndFadeout>true</EnableEndFadeout><EndFadeoutTime>1</EndFadeoutTime></EffectConfig></AudioMix></VideoMontage>'
        + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>out/scored-reel.mp4</Object></Output></Operation></Request>`));
      expect(detail.State, detail.Message).to.equal('Success');
      expect(Number(detail.Operation.MediaInfo.Format.Duration)).to.be.closeTo(6, 0.3);
      const volume = (from: number, length: number) => {
        const run = spawnSync(bundledFfmpegPath(), ['-hide_banner', '-ss', String(from), '-t', String(length), '-i', path.join(api.config.dataDir, 'buckets', BUCKET, 'out/scored-reel.mp4'), '-af', 'volumedetect', '-f', 'null', '-'], { encoding: 'utf8' });
        return Number(/mean_volume: (-?[\d.]+) dB/.exec(run.stderr)?.[1]);
      };
      // The tone at full level in the reel's fifth second (it loops), fading out in its last half second.
      expect(volume(4, 0.5)).to.be.above(-30);
      expect(volume(5.6, 0.4)).to.be.below(volume(4, 0.5) - 6);
    });
  });
});

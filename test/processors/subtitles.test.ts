import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import sharp from 'sharp';
import { FfmpegError } from '../../src/media/ffmpeg.js';
import { bundledFfmpegPath } from '../../src/media/ffmpeg-capabilities.js';
import { filterGraphPath, parseSubtitles, subtitleFilter } from '../../src/processors/subtitles.js';
import { BUCKET, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import type { TestService } from '../helpers/service.js';

const SRT = '1\n00:00:00,000 --> 00:00:05,000\nHELLO WORLD\n\n';

function request(subtitles: string, object: string): string {
  return '<Request><Tag>Transcode</Tag><Input><Object>in/test.mp4</Object></Input><Operation>'
    + '<Transcode><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Preset>ultrafast</Preset><Crf>18</Crf></Video><TimeInterval><Duration>1</Duration></TimeInterval></Transcode>'
    + `${subtitles}<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>${object}</Object></Output></Operation></Request>`;
}

describe('Transcode burned-in Subtitles', function () {
  this.timeout(60_000);

  it('turn a Subtitle into a subtitles filter on our own ASS file, with the style overrides, escaped for the filter graph', () => {
    const [sub] = parseSubtitles({ Subtitle: { Url: `https://${BUCKET}.cos.ap-local.myqcloud.com/subs/a.srt`, FontSize: '24', FontType: 'DejaVu Sans', FontColor: '#FF8000', OutlineColor: '0x000000', VMargin: '10', Embed: 'true' } }, BUCKET);
    expect(sub.key).to.equal('subs/a.srt');
    expect(subtitleFilter(sub, '/w/sub-0.ass')).to.equal("subtitles=filename=/w/sub-0.ass:force_style='FontName=DejaVu Sans,FontSize=24,PrimaryColour=&H000080FF,OutlineColour=&H00000000,MarginV=10'");
    // Checked against ffmpeg's graph parser with a real folder of that name: the file is found.
    expect(filterGraphPath("/d:a/it's,[x];y")).to.equal(String.raw`/d\\:a/it\\\'s\,\[x\]\;y`);
    expect(() => parseSubtitles({ Subtitle: { FontSize: '20' } }, BUCKET)).to.throw(/Url is required/);
    expect(() => parseSubtitles({ Subtitle: { Url: 'a.srt', FontType: "x',y" } }, BUCKET)).to.throw(/FontType/);
    expect(() => parseSubtitles({ Subtitle: { Url: 'a.srt', FontColor: 'red' } }, BUCKET)).to.throw(/FontColor/);
  });

  it('leave fontconfig\'s complaints about the host\'s files out of a failed run\'s reason', () => {
    const stderr = 'Fontconfig warning: line 5: unknown element "description"\nFontconfig error: Cannot load default config file\n[Parsed_subtitles_0 @ 0x1] Unable to open /w/sub-0.ass\nError initializing filter\n';
    expect(new FfmpegError('exit', 'x', stderr).stderrSummary).to.equal('[Parsed_subtitles_0 @ 0x1] Unable to open /w/sub-0.ass; Error initializing filter');
  });

  describe('jobs with the real ffmpeg', () => {
    let api: TestService;
    before(async () => {
      api = await startWorkerService({ 'in/test.mp4': 'fixtures/media/clip-12s.mp4' });
      await api.service.storage.put(BUCKET, 'subs/hello.srt', Buffer.from(SRT));
      await api.service.storage.put(BUCKET, 'subs/list.m3u8', Buffer.from('#EXTM3U\n#EXTINF:1,\nin/test.mp4\n'));
    });
    after(async () => { await api.stop(); });

    /** The first frame's RGB pixels. */
    async function firstFrame(key: string): Promise<Buffer> {
      const png = execFileSync(bundledFfmpegPath(), ['-v', 'error', '-i', path.join(api.config.dataDir, 'buckets', BUCKET, key), '-frames:v', '1', '-f', 'image2', '-c:v', 'png', 'pipe:1']);
      return sharp(png).removeAlpha().raw().toBuffer();
    }

    it('burns a SubRip object into the picture (the first frame changes where the text sits), echoing Subtitles', async () => {
      const plain = await waitForState(api, await submit(api, request('', 'out/plain.mp4')));
      expect(plain.State, plain.Message).to.equal('Success');
      const subtitles = '<Subtitles><Subtitle><Url>subs/hello.srt</Url><FontSize>40</FontSize><FontColor>0xFFFFFF</FontColor></Subtitle></Subtitles>';
      const detail = await waitForState(api, await submit(api, request(subtitles, 'out/subtitled.mp4')));
      expect(detail.State, detail.Message).to.equal('Success');
      expect(detail.Operation.Subtitles).to.deep.equal({ Subtitle: { Url: 'subs/hello.srt', FontSize: '40', FontColor: '0xFFFFFF' } });
      const [a, b] = [await firstFrame('out/plain.mp4'), await firstFrame('out/subtitled.mp4')];
      expect(a.length).to.equal(160 * 120 * 3);
      // The text is at the bottom, centred: compare the lower half, row by row.
      let changed = 0;
      for (let at = 60 * 160 * 3; at < a.length; at += 3) if (Math.abs(a[at] - b[at]) + Math.abs(a[at + 1] - b[at + 1]) + Math.abs(a[at + 2] - b[at + 2]) > 120) changed++;
      expect(changed, 'pixels of the lower half changed by the subtitle').to.be.above(100);
      let above = 0;
      for (let at = 0; at < 30 * 160 * 3; at += 3) if (Math.abs(a[at] - b[at]) + Math.abs(a[at + 1] - b[at + 1]) + Math.abs(a[at + 2] - b[at + 2]) > 120) above++;
      expect(above, 'pixels of the top quarter changed').to.be.below(20);
    });

    it('fails InvalidMedia, naming the object, for a subtitle object the input policy refuses (an HLS playlist), and refuses a missing Url at submit', async () => {
      const bad = await waitForState(api, await submit(api, request('<Subtitles><Subtitle><Url>subs/list.m3u8</Url></Subtitle></Subtitles>', 'out/bad.mp4')));
      expect([bad.State, bad.Code]).to.deep.equal(['Failed', 'InvalidMedia']);
      expect(bad.Message).to.include('subs/list.m3u8');
      const res = await api.request('POST', '/jobs', { body: request('<Subtitles><Subtitle><FontSize>20</FontSize></Subtitle></Subtitles>', 'out/x.mp4') });
      expect(res.status).to.equal(400);
      expect(res.xml.Error.Message).to.match(/Subtitles\/Subtitle\/Url is required/);
    });
  });
});

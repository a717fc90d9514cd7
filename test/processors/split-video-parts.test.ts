import { execFileSync } from 'node:child_process';
import { mkdtempSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { bundledFfmpegPath } from '../../src/media/ffmpeg-capabilities.js';
import { splitParts } from '../../src/processors/split-video-parts.js';
import { BUCKET, putFixture, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import { asArray, type TestService } from '../helpers/service.js';

function request(input: string, mode = 'SHOTDETECT'): string {
  return `<Request><Tag>SplitVideoParts</Tag><Input><Object>${input}</Object></Input><Operation><SplitVideoParts><Mode>${mode}</Mode></SplitVideoParts>`
    + '<UserData>shots</UserData><JobLevel>0</JobLevel></Operation></Request>';
}

describe('Tag=SplitVideoParts', function () {
  this.timeout(60_000);

  it('cuts at the scene changes, from 0 to the end, leaving out parts shorter than half a second', () => {
    expect(splitParts(6, [4, 2])).to.deep.equal([[0, 2], [2, 4], [4, 6]]);
    expect(splitParts(6, [2, 2.1, 5.8])).to.deep.equal([[0, 2], [2, 6]]);
    expect(splitParts(6, [])).to.deep.equal([[0, 6]]);
  });

  describe('jobs with the real ffmpeg', () => {
    let api: TestService;
    let dir: string;
    before(async () => {
      // Three 2 s shots of different pictures, 10 fps: cuts at 2 s and 4 s.
      dir = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-shots-'));
      const shots = path.join(dir, 'shots.mp4');
      execFileSync(bundledFfmpegPath(), ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=10:duration=2', '-f', 'lavfi', '-i', 'smptebars=size=160x120:rate=10:duration=2',
        '-f', 'lavfi', '-i', 'color=c=red:size=160x120:rate=10:duration=2', '-filter_complex', '[0:v][1:v][2:v]concat=n=3:v=1:a=0', '-c:v', 'libx264', '-preset', 'ultrafast', shots]);
      api = await startWorkerService({ 'in/truncated.mp4': 'fixtures/media/truncated.mp4', 'in/not-media.mp4': 'fixtures/media/not-media.mp4', 'in/audio.mp3': 'fixtures/media/audio-only.mp3' });
      await putFixture(api, shots, 'in/shots.mp4');
      // The same shots as a raw H.264 stream: no container, so no length ffprobe can read.
      const raw = path.join(dir, 'shots.h264');
      execFileSync(bundledFfmpegPath(), ['-v', 'error', '-i', shots, '-c:v', 'copy', '-bsf:v', 'h264_mp4toannexb', '-f', 'h264', raw]);
      await putFixture(api, raw, 'in/shots.h264');
    });
    after(async () => {
      await api.stop();
      await fs.rm(dir, { recursive: true, force: true });
    });

    it('reports the shots\' times in SplitVideoInfoResult, as Go\'s example asks (no Output), beside another Tag in one request', async () => {
      const detail = await waitForState(api, await submit(api, request('in/shots.mp4')));
      expect(detail.State, detail.Message).to.equal('Success');
      expect(detail.Progress).to.equal('100');
      expect(detail.Operation.SplitVideoParts.Mode).to.equal('SHOTDETECT');
      const parts = asArray(detail.Operation.SplitVideoInfoResult.TimeInfo) as Array<Record<string, string>>;
      expect(parts.map((p) => p.Index)).to.deep.equal(['0', '1', '2']);
      expect(parts.map((p) => Number(p.PartBegin))).to.deep.equal([0, 2, 4]);
      expect(Number(parts[2].PartEnd)).to.be.closeTo(6, 0.05);
      expect(parts[0].PartEnd).to.equal(parts[1].PartBegin);

      const multi = await api.request('POST', '/jobs', { body: '<Request><Input><Object>in/shots.mp4</Object></Input>'
        + '<Operation><Tag>SplitVideoParts</Tag><SplitVideoParts><Mode>SHOTDETECT</Mode></SplitVideoParts></Operation><Operation><Tag>MediaInfo</Tag></Operation></Request>' });
      expect(multi.status, multi.text).to.equal(200);
      const jobs = await Promise.all((multi.xml.Response.JobsDetail as Array<Record<string, any>>).map((j) => waitForState(api, j.JobId as string)));
      expect(jobs.map((j) => j.State)).to.deep.equal(['Success', 'Success']);
      expect(asArray(jobs[0].Operation.SplitVideoInfoResult.TimeInfo)).to.have.length(3);
    });

    it('refuses at submit a Mode other than SHOTDETECT and an Output, and fails InvalidMedia or InvalidArgument on input it cannot split', async () => {
      const mode = await api.request('POST', '/jobs', { body: request('in/shots.mp4', 'SCENE') });
      expect(mode.status).to.equal(400);
      expect(mode.xml.Error.Message).to.match(/SplitVideoParts\/Mode must be SHOTDETECT/);
      const output = await api.request('POST', '/jobs', { body: request('in/shots.mp4').replace('<UserData>', `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>x.mp4</Object></Output><UserData>`) });
      expect(output.status).to.equal(400);
      expect(output.xml.Error.Code).to.equal('InvalidArgument');
      for (const input of ['in/truncated.mp4', 'in/not-media.mp4']) {
        const detail = await waitForState(api, await submit(api, request(input)));
        expect([detail.State, detail.Code]).to.deep.equal(['Failed', 'InvalidMedia']);
        expect(detail.Message).to.include(input).and.not.include(api.config.dataDir);
      }
      const audio = await waitForState(api, await submit(api, request('in/audio.mp3')));
      expect([audio.State, audio.Code]).to.deep.equal(['Failed', 'InvalidArgument']);
      expect(audio.Message).to.match(/no video to split/);
      const raw = await waitForState(api, await submit(api, request('in/shots.h264')));
      expect([raw.State, raw.Code], raw.Message).to.deep.equal(['Failed', 'InvalidArgument']);
      expect(raw.Message).to.match(/has no length ffprobe can read/);
    });
  });
});

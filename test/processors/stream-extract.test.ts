import { createHash } from 'node:crypto';
import path from 'node:path';
import { expect } from 'chai';
import { runFfprobe } from '../../src/media/ffprobe.js';
import { createSpawner } from '../../src/media/spawner.js';
import { BUCKET, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import type { TestService } from '../helpers/service.js';

const spawner = createSpawner();
after(() => spawner.close());

describe('StreamExtract jobs with the real ffmpeg', function () {
  this.timeout(60_000);
  let api: TestService;
  before(async () => {
    api = await startWorkerService({ 'in/movie.mkv': 'fixtures/media/subtitle.mkv' });
  });
  after(async () => { await api.stop(); });

  it('copies each stream Index into its own object (an Index the input lacks is skipped) and lists them with their md5', async () => {
    const body = '<Request><Tag>StreamExtract</Tag><Input><Object>in/movie.mkv</Object></Input><Operation><Output><Region>ap-local</Region>'
      + `<Bucket>${BUCKET}</Bucket><StreamExtract><Index>0</Index><Object>streams/v.mp4</Object></StreamExtract>`
      + '<StreamExtract><Index>1</Index><Object>streams/${InputName}.srt</Object></StreamExtract>'
      + '<StreamExtract><Index>7</Index><Object>streams/none.m4a</Object></StreamExtract></Output></Operation></Request>';
    const detail = await waitForState(api, await submit(api, body));
    expect(detail.State, detail.Message).to.equal('Success');
    const file = detail.Operation.MediaResult.OutputFile;
    expect(file.ObjectName).to.deep.equal(['streams/v.mp4', 'streams/movie.srt']);
    expect(file.ObjectPrefix).to.equal('');
    for (const [i, key] of ['streams/v.mp4', 'streams/movie.srt'].entries()) {
      expect(file.Md5Info[i]).to.deep.equal({ Md5: createHash('md5').update(await api.service.storage.get(BUCKET, key)).digest('hex'), ObjectName: key });
    }
    const video = await runFfprobe(path.join(api.config.dataDir, 'buckets', BUCKET, 'streams/v.mp4'), { spawner });
    expect(video.streams?.map((s) => s.codec_name)).to.deep.equal(['h264']);
    expect((await api.service.storage.get(BUCKET, 'streams/movie.srt')).toString()).to.include('Hello');
    expect(await api.service.storage.stat(BUCKET, 'streams/none.m4a')).to.equal(undefined);
    expect(detail.Operation.Output.StreamExtract).to.have.length(3);
  });
});

import { expect } from 'chai';
import sharp from 'sharp';
import { INPUT_OPTIONS } from '../../src/media/input-policy.js';
import { buildSmartCoverArgs, parseSmartCover } from '../../src/processors/smart-cover.js';
import { BUCKET, startWorkerService, submit, waitForState } from '../helpers/jobs.js';
import type { TestService } from '../helpers/service.js';

describe('SmartCover', function () {
  this.timeout(60_000);

  it('samples 20 candidates per cover and keeps the most representative of each stretch', () => {
    const spec = parseSmartCover({ Count: '3', Width: '128', DeleteDuplicates: 'true' });
    const args = buildSmartCoverArgs(spec, { input: { options: INPUT_OPTIONS, url: 'file:/i.mp4', filePath: '/i.mp4' }, dir: '/w' }, 12);
    expect(args[args.indexOf('-vf') + 1]).to.equal('mpdecimate,fps=5,thumbnail=n=20,scale=128:-2');
    expect(parseSmartCover({})).to.deep.include({ format: 'jpg', count: 3, deleteDuplicates: false });
    expect(() => parseSmartCover({ Count: '11' })).to.throw(/Count/);
  });

  describe('jobs with the real ffmpeg', () => {
    let api: TestService;
    before(async () => {
      api = await startWorkerService({ 'in/test.mp4': 'fixtures/media/clip-12s.mp4' });
    });
    after(async () => { await api.stop(); });

    it('writes Count covers named from ${Number}, listed as Snapshot lists its frames', async () => {
      const detail = await waitForState(api, await submit(api, '<Request><Tag>SmartCover</Tag><Input><Object>in/test.mp4</Object></Input><Operation>'
        + '<SmartCover><Format>png</Format><Width>128</Width><Count>3</Count><DeleteDuplicates>true</DeleteDuplicates></SmartCover>'
        + `<Output><Region>ap-local</Region><Bucket>${BUCKET}</Bucket><Object>covers/c-\${Number}.png</Object></Output></Operation></Request>`));
      expect(detail.State, detail.Message).to.equal('Success');
      expect(detail.Operation.MediaResult.OutputFile).to.include({ ObjectPrefix: 'covers/c-', Md5Info: '' });
      expect(detail.Operation.MediaResult.OutputFile.ObjectName).to.deep.equal(['0.png', '1.png', '2.png']);
      expect(await sharp(await api.service.storage.get(BUCKET, 'covers/c-2.png')).metadata()).to.include({ format: 'png', width: 128, height: 96 });
    });
  });
});

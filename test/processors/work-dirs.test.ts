import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../../src/config.js';
import { withWorkDir } from '../../src/processors/media-output.js';
import type { ProcessorContext } from '../../src/processors/processor.js';
import { waitFor } from '../helpers/service.js';

describe('ffmpeg work folders', () => {
  it('are removed after use, and folders a killed process left behind (older than the ffmpeg timeout + 1 h) are swept on first use', async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'work-dirs-'));
    try {
      const root = path.join(dataDir, 'tmp');
      const stale = path.join(root, 'jstale-00000000');
      const fresh = path.join(root, 'jfresh-00000000');
      await fs.mkdir(stale, { recursive: true });
      await fs.mkdir(fresh, { recursive: true });
      const old = new Date(Date.now() - 4 * 3_600_000);
      await fs.utimes(stale, old, old);
      const ctx = { job: { jobId: 'jnow' }, config: loadConfig({ MEDIAJOBS_DATA_DIR: dataDir, MEDIAJOBS_FFMPEG_TIMEOUT: '2h' }) } as unknown as ProcessorContext;
      let used = '';
      await withWorkDir(ctx, async (dir) => {
        used = dir;
        await fs.writeFile(path.join(dir, 'out.mp4'), 'x');
      });
      await waitFor(async () => ((await fs.readdir(root)).includes('jstale-00000000') ? undefined : true), 5_000, 'the stale folder to go');
      expect(await fs.readdir(root)).to.deep.equal(['jfresh-00000000']);
      expect(used.startsWith(path.join(root, 'jnow-'))).to.equal(true);
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});

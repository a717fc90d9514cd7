import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { loadConfig, type Config } from '../../src/config.js';
import { PermanentJobError } from '../../src/engine/job-errors.js';
import { createSpawner } from '../../src/media/spawner.js';
import { createMediaInfoProcessor } from '../../src/processors/media-info.js';
import type { ProcessorContext } from '../../src/processors/processor.js';
import { LocalDiskStorage } from '../../src/storage/local-disk.js';
import type { XmlObject } from '../../src/xml/tree.js';
import { rejection } from '../helpers/assertions.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/media');
const BUCKET = 'media-1250000000';

describe('the MediaInfo processor', () => {
  const spawner = createSpawner();
  const mediaInfoProcessor = createMediaInfoProcessor(spawner);
  let dir: string;
  let storage: LocalDiskStorage;
  let config: Config;

  /** A context for a MediaInfo job on `key`; `progress` collects what the processor reports. */
  function context(key: string, overrides: { config?: Config; signal?: AbortSignal } = {}) {
    const progress: number[] = [];
    const ctx: ProcessorContext = {
      job: { jobId: 'j0123456789abcdef0123456789abcdef', tag: 'MediaInfo', bucket: BUCKET, region: 'ap-local', inputObject: key, operation: {} },
      storage,
      config: overrides.config ?? config,
      signal: overrides.signal ?? new AbortController().signal,
      setProgress: (percent) => progress.push(percent),
      withToolSlot: (work) => work(),
    };
    return { ctx, progress };
  }

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mediajobs-mediainfo-'));
    storage = new LocalDiskStorage(path.join(dir, 'objects'));
    config = loadConfig({ MEDIAJOBS_DATA_DIR: dir });
    for (const name of ['h264-aac.mp4', 'audio-only.mp3', 'truncated.mp4', 'not-media.mp4']) {
      await storage.put(BUCKET, `input/${name}`, await fs.readFile(path.join(FIXTURES, name)));
    }
    await storage.put(BUCKET, 'input/notes.txt', Buffer.from('Just some text.\nNothing to see.\n'));
  });
  after(async () => {
    spawner.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('has the MediaInfo tag', () => {
    expect(mediaInfoProcessor.tag).to.equal('MediaInfo');
  });

  it('returns { MediaInfo } for the input object and reports progress up to 100', async () => {
    const { ctx, progress } = context('input/h264-aac.mp4');
    const result = await mediaInfoProcessor.run(ctx);
    expect(Object.keys(result)).to.deep.equal(['MediaInfo']);
    const info = result.MediaInfo as XmlObject;
    expect(info.Format as XmlObject).to.include({ NumStream: '2', Size: '53195', Duration: '2.000000' });
    const stream = info.Stream as XmlObject;
    expect((stream.Video as XmlObject[])[0]).to.include({ CodecName: 'h264', Width: '320', Height: '240' });
    expect((stream.Audio as XmlObject[])[0]).to.include({ CodecName: 'aac', Language: 'eng' });
    expect(stream.Subtitle).to.equal('');
    expect(progress.at(-1)).to.equal(100);
    expect(progress).to.deep.equal([...progress].sort((a, b) => a - b));
  });

  it('describes an audio-only file with an empty <Video/>', async () => {
    const result = await mediaInfoProcessor.run(context('input/audio-only.mp3').ctx);
    const stream = (result.MediaInfo as XmlObject).Stream as XmlObject;
    expect(stream.Video).to.equal('');
    expect((stream.Audio as XmlObject[])[0]).to.include({ CodecName: 'mp3', Channel: '1' });
  });

  it('fails with NoSuchKey when the input object does not exist', async () => {
    const err = await rejection(mediaInfoProcessor.run(context('input/missing.mp4').ctx));
    expect(err).to.be.instanceOf(PermanentJobError).with.property('code', 'NoSuchKey');
    expect((err as Error).message).to.contain('input/missing.mp4');
  });

  for (const name of ['truncated.mp4', 'not-media.mp4']) {
    it(`fails with InvalidMedia and ffprobe's reason for ${name}, without server paths`, async () => {
      const err = await rejection(mediaInfoProcessor.run(context(`input/${name}`).ctx));
      expect(err).to.be.instanceOf(PermanentJobError).with.property('code', 'InvalidMedia');
      const message = (err as Error).message;
      expect(message).to.contain(`input/${name}`);
      expect(message).to.contain('[mov,mp4,m4a,3gp,3g2,mj2] moov atom not found');
      expect(message).not.to.contain(dir);
      expect(message).not.to.match(/0x[0-9a-f]{4,}/);
    });
  }

  it('fails with InvalidMedia for a text file ffprobe would read as teletype art', async () => {
    const err = await rejection(mediaInfoProcessor.run(context('input/notes.txt').ctx));
    expect(err).to.be.instanceOf(PermanentJobError).with.property('code', 'InvalidMedia');
  });

  it('kills ffprobe promptly on abort and rethrows the abort reason', async () => {
    const pidFile = path.join(dir, 'pid');
    const hangingProbe = path.join(dir, 'hanging-ffprobe.sh');
    await fs.writeFile(hangingProbe, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 30\n`, { mode: 0o755 });
    const controller = new AbortController();
    const { ctx } = context('input/h264-aac.mp4', {
      config: loadConfig({ MEDIAJOBS_DATA_DIR: dir, MEDIAJOBS_FFPROBE_PATH: hangingProbe }),
      signal: controller.signal,
    });
    const run = rejection(mediaInfoProcessor.run(ctx));
    let pid = '';
    for (let waited = 0; pid === '' && waited < 5000; waited += 10) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      pid = (await fs.readFile(pidFile, 'utf8').catch(() => '')).trim();
    }
    expect(pid, 'the stand-in ffprobe started').not.to.equal('');
    const reason = new Error('job cancelled');
    const abortedAt = Date.now();
    controller.abort(reason);
    expect(await run).to.equal(reason);
    expect(Date.now() - abortedAt).to.be.below(500);
    expect(() => process.kill(Number(pid), 0)).to.throw().with.property('code', 'ESRCH');
  });

  it('fails with InvalidMedia at once when ffprobe crashes on a fault signal, and leaves other kills to the retries', async () => {
    const probe = async (signal: string) => {
      const stand = path.join(dir, `ffprobe-${signal}.sh`);
      await fs.writeFile(stand, `#!/bin/sh\nkill -${signal} $$\n`, { mode: 0o755 });
      const { ctx } = context('input/h264-aac.mp4', { config: loadConfig({ MEDIAJOBS_DATA_DIR: dir, MEDIAJOBS_FFPROBE_PATH: stand }) });
      return rejection(mediaInfoProcessor.run(ctx));
    };
    for (const signal of ['SEGV', 'BUS', 'FPE', 'ILL', 'ABRT']) {
      const err = await probe(signal);
      expect(err, signal).to.be.instanceOf(PermanentJobError).with.property('code', 'InvalidMedia');
      expect((err as Error).message).to.match(signal === 'ABRT' ? /ffprobe crashed on it: SIG(ABRT|IOT)\)/ : new RegExp(`ffprobe crashed on it: SIG${signal}\\)`));
      expect((err as Error).message).to.include('input/h264-aac.mp4').and.not.include(dir);
    }
    const killed = await probe('KILL');
    expect(killed).not.to.be.instanceOf(PermanentJobError);
  });

  it('does not start when already aborted', async () => {
    const reason = new Error('cancelled before start');
    const err = await rejection(mediaInfoProcessor.run(context('input/h264-aac.mp4', { signal: AbortSignal.abort(reason) }).ctx));
    expect(err).to.equal(reason);
  });
});

import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { promises as fs, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { bundledFfprobePath, FfprobeError, runFfprobe, type FfprobeReport } from '../../src/media/ffprobe.js';
import { INPUT_OPTIONS, SELF_CONTAINED_DEMUXERS, shortRefusal, withToolInputs } from '../../src/media/input-policy.js';
import { createSpawner } from '../../src/media/spawner.js';
import { rejection } from '../helpers/assertions.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ffmpegPath = (createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg') as { path: string }).path;

/** Names in SELF_CONTAINED_DEMUXERS that ffprobe-static 4.0.2 predates (checked by hand in Debian's ffprobe 5.1.9 `-demuxers`). */
const ADDED_AFTER_4_0 = new Set(['obu', 'gif_pipe', 'jpegxl_pipe', 'qoi_pipe']);

/**
 * Demuxers that open other files or URLs (or devices): none may ever be allowed.
 * `image2` is not here: it is allowed because the tool sees a name without `%`.
 */
const REFERENCING_DEMUXERS = [
  'hls', 'applehttp', 'dash', 'concat', 'webm_dash_manifest', 'vobsub', 'sdp', 'rtsp', 'rtp', 'sap', 'imf', 'avisynth',
  'vapoursynth', 'image2pipe', 'lavfi', 'x11grab', 'video4linux2', 'v4l2', 'alsa', 'oss', 'fbdev', 'data', 'ffmetadata',
];

/** The demuxer names a binary lists under `-demuxers` (`hls,applehttp` gives both). */
function demuxersOf(binary: string): Set<string> {
  const text = execFileSync(binary, ['-hide_banner', '-demuxers'], { encoding: 'utf8' });
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const match = /^ D. (\S+)/.exec(line);
    if (match) for (const name of match[1]!.split(',')) names.add(name);
  }
  return names;
}

/**
 * The bundled ffprobe, and another one (Debian's 5.1, say) when
 * MEDIAJOBS_TEST_OTHER_FFPROBE names it: `MEDIAJOBS_FFPROBE_PATH` may point at
 * a newer ffprobe, and ordinary media must read the same there too.
 */
const FFPROBES: readonly string[] = [bundledFfprobePath(), ...(process.env.MEDIAJOBS_TEST_OTHER_FFPROBE ? [process.env.MEDIAJOBS_TEST_OTHER_FFPROBE] : [])];

/** What `binary` printed for a file before the input policy existed: the reference "as before". */
function reportAsBefore(binary: string, file: string): FfprobeReport | { error: string } {
  try {
    const json = execFileSync(
      binary,
      ['-v', 'error', '-protocol_whitelist', 'file', '-print_format', 'json', '-show_format', '-show_streams', `file:${file}`],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    return JSON.parse(json) as FfprobeReport;
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? '');
    return { error: firstLine(stderr) };
  }
}

const firstLine = (text: string): string => (text.split('\n').find((line) => line.trim() !== '') ?? '').trim().replace(/ @ 0x[0-9a-f]+\]/, ']');

/** The report without `format.filename`, the one value that names the file the tool was given. */
function withoutFilename(report: FfprobeReport): FfprobeReport {
  const { filename: _ignored, ...format } = report.format ?? {};
  return { ...report, format };
}

describe('the input policy (media/input-policy.ts)', () => {
  const spawner = createSpawner();
  after(() => spawner.close());

  describe('the demuxer whitelist', () => {
    it('names only demuxers the bundled ffprobe has (or that newer versions added), so a typo cannot hide', () => {
      const known = demuxersOf(bundledFfprobePath());
      const unknown = SELF_CONTAINED_DEMUXERS.filter((name) => !known.has(name) && !ADDED_AFTER_4_0.has(name));
      expect(unknown).to.deep.equal([]);
      expect([...ADDED_AFTER_4_0].filter((name) => known.has(name)), 'newer-only names the binary has after all').to.deep.equal([]);
    });

    it('allows no demuxer that opens other files, URLs or devices', () => {
      expect(SELF_CONTAINED_DEMUXERS.filter((name) => REFERENCING_DEMUXERS.includes(name))).to.deep.equal([]);
      // Every referencing demuxer the binaries really have stays out, whatever it is called there.
      for (const binary of [bundledFfprobePath(), ffmpegPath]) {
        const known = demuxersOf(binary);
        for (const name of ['hls', 'dash', 'concat', 'webm_dash_manifest', 'vobsub', 'sdp', 'rtsp', 'image2pipe', 'lavfi']) {
          expect(known.has(name), `${binary} has ${name}`).to.equal(true);
        }
      }
    });

    it('puts the protocol and format whitelists before the input', () => {
      expect(INPUT_OPTIONS).to.deep.equal(['-protocol_whitelist', 'file', '-format_whitelist', SELF_CONTAINED_DEMUXERS.join(',')]);
    });

    for (const [name, binary] of [['ffprobe-static', bundledFfprobePath()], ['@ffmpeg-installer/ffmpeg', ffmpegPath]] as const) {
      it(`relies on ${name}'s mov demuxer leaving external data references closed by default`, () => {
        // The policy cannot pass -enable_drefs 0 itself (a demuxer-private option
        // makes ffprobe and ffmpeg fail on every other format), so it depends on this default.
        const help = execFileSync(binary, ['-hide_banner', '-h', 'demuxer=mov'], { encoding: 'utf8' });
        expect(help).to.match(/-enable_drefs\s+<boolean>.*\(default false\)/);
        expect(help).to.match(/-use_absolute_path\s+<boolean>.*\(default false\)/);
      });
    }

    it('is accepted by the bundled ffmpeg as input options (for the ffmpeg Tags)', () => {
      const out = execFileSync(ffmpegPath, ['-v', 'error', ...INPUT_OPTIONS, '-i', `file:${path.join(ROOT, 'fixtures/media/h264-aac.mp4')}`, '-f', 'null', '-'], { encoding: 'utf8' });
      expect(out).to.equal('');
    });
  });

  describe('ordinary media', () => {
    const files = ['fixtures/media', 'fixtures/images'].flatMap((dir) => readdirSync(path.join(ROOT, dir))
      .filter((name) => !/\.(md|ts)$/.test(name))
      .map((name) => path.join(ROOT, dir, name)));

    for (const binary of FFPROBES) for (const file of files) {
      it(`${path.relative(ROOT, file)} gives exactly the report it gave before the policy (${path.basename(path.dirname(binary))}/${path.basename(binary)})`, async () => {
        const before = reportAsBefore(binary, file);
        const after = await runFfprobe(file, { spawner, ffprobePath: binary }).catch((err: unknown) => {
          if (!(err instanceof FfprobeError)) throw err;
          return { error: firstLine(err.stderr) };
        });
        if ('error' in before) expect(after).to.deep.equal(before);
        else expect(withoutFilename(after as FfprobeReport)).to.deep.equal(withoutFilename(before));
      });
    }
  });

  describe('names', () => {
    let dir: string;
    beforeEach(async () => { dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mediajobs-policy-')); });
    afterEach(async () => { await fs.rm(dir, { recursive: true, force: true }); });

    // Before the policy, image2 read frame1.jpg (2725x2225) for frame%d.jpg (a
    // sequence) and for frame%*.jpg (a glob, ffprobe 4.x's default pattern type).
    // Glob characters without a `%` are plain characters to it: those paths are
    // passed as they are, and this guards that reasoning.
    for (const name of ['frame%d.jpg', 'frame%*.jpg', 'frame*.jpg', 'frame?.jpg', 'frame[1].jpg', 'frame{1,2}.jpg']) {
      it(`reads an object whose key is an image-sequence pattern (${name}) as that one file, not its neighbours`, async () => {
        await fs.copyFile(path.join(ROOT, 'fixtures/images/photo-orient6.jpg'), path.join(dir, name));
        await fs.copyFile(path.join(ROOT, 'fixtures/images/large-2725x2225.jpg'), path.join(dir, 'frame1.jpg'));
        for (const binary of FFPROBES) {
          const report = await runFfprobe(path.join(dir, name), { spawner, ffprobePath: binary });
          expect(report.format?.format_name, binary).to.equal('image2');
          expect(report.streams?.[0], binary).to.include({ width: 320, height: 240 });
        }
      });
    }

    it('gives the tool a fresh private name with the key\'s extension, and removes it afterwards', async () => {
      const object = path.join(dir, 'in', 'a%d {x}.MP4');
      await fs.mkdir(path.dirname(object));
      await fs.writeFile(object, 'x');
      let seen: { url: string; link: string; target: string; siblings: string[] } | undefined;
      await withToolInputs([object], async ([input]) => {
        const link = input!.url.slice('file:'.length);
        seen = { url: input!.url, link, target: await fs.readlink(link), siblings: await fs.readdir(path.dirname(link)) };
      });
      expect(seen!.url).to.match(/^file:\/.+\/input\.MP4$/);
      expect(seen!.url).not.to.contain('%');
      expect(seen!.target).to.equal(object);
      expect(seen!.siblings).to.deep.equal(['input.MP4']);
      expect(await fs.stat(path.dirname(seen!.link)).catch(() => 'gone')).to.equal('gone');
    });

    it('passes a path without % as file:<absolute path>, with no private name', async () => {
      const relative = path.relative(process.cwd(), path.join(dir, 'a b.mp4'));
      await withToolInputs([relative], async ([input]) => {
        expect(input).to.deep.equal({ options: INPUT_OPTIONS, url: `file:${path.join(dir, 'a b.mp4')}`, filePath: path.join(dir, 'a b.mp4') });
      });
    });

    it('numbers the inputs of one job that need a private name and drops an extension no demuxer could match', async () => {
      const urls: string[] = [];
      await withToolInputs([path.join(dir, 'a%1.mp4'), path.join(dir, 'plain.mp4'), path.join(dir, 'b%2.weird ext'), path.join(dir, '%c')], async (inputs) => {
        urls.push(...inputs.map((input) => path.basename(input.url)));
      });
      expect(urls).to.deep.equal(['input-0.mp4', 'plain.mp4', 'input-2', 'input-3']);
    });

    it('removes the private name when the tool fails too, and reports the caller\'s path in errors', async () => {
      const object = path.join(dir, 'not%media.mp4');
      await fs.copyFile(path.join(ROOT, 'fixtures/media/not-media.mp4'), object);
      const before = new Set(await fs.readdir(os.tmpdir()));
      const err = await rejection(runFfprobe(object, { spawner }));
      expect(err).to.be.instanceOf(FfprobeError);
      const after = (await fs.readdir(os.tmpdir())).filter((name) => name.startsWith('mediajobs-input-') && !before.has(name));
      expect(after).to.deep.equal([]);
      const stderr = (err as FfprobeError).stderr;
      expect(stderr).to.contain(`file:${object}`);
      expect(stderr).not.to.contain('mediajobs-input-');
    });
  });

  it('reports a refused format in one short line, without the list of allowed ones', async () => {
    const err = await rejection(runFfprobe(path.join(ROOT, 'fixtures/hostile/hls-absolute-path.m3u8'), { spawner }));
    expect(err).to.be.instanceOf(FfprobeError);
    expect((err as FfprobeError).firstStderrLine).to.match(/^\[hls,applehttp @ 0x[0-9a-f]+\] format not read here \(/);
    expect((err as FfprobeError).stderr).not.to.contain('whitelist');
  });

  it('shortens a refusal to a line without the whole list', () => {
    const line = `[hls,applehttp @ 0x2f21] Format not on whitelist '${SELF_CONTAINED_DEMUXERS.join(',')}'`;
    expect(shortRefusal(line)).to.equal('[hls,applehttp @ 0x2f21] format not read here (playlists, references to other files and rare formats are refused)');
  });
});

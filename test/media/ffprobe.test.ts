import { spawn } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { FfprobeError, runFfprobe } from '../../src/media/ffprobe.js';
import { ChildProcessSpawner } from '../../src/media/child-spawner.js';
import { NativeSpawner } from '../../src/media/native-spawner.js';
import type { Spawner } from '../../src/media/spawner.js';
import { rejection } from '../helpers/assertions.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/media');
const fixture = (name: string): string => path.join(FIXTURES, name);

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitForFile(file: string, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await fs.readFile(file, 'utf8').catch(() => '');
    if (text.trim() !== '') return text.trim();
    if (Date.now() > deadline) throw new Error(`${file} was not written`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Gone, or a zombie that only waits for its new parent to reap it. */
function isGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

describe('the vfork spawn addon', () => {
  it('is built and loads (make build), so the service does not fall back to child_process', () => {
    expect(NativeSpawner.unavailableReason()).to.equal(undefined);
  });

  it('takes its tools with it when the process that spawned them is killed outright', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mediajobs-pdeathsig-'));
    try {
      const pidFile = path.join(dir, 'pid');
      const probe = path.join(dir, 'hanging.sh');
      await fs.writeFile(probe, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 30\n`, { mode: 0o755 });
      const script = `import { NativeSpawner } from './src/media/native-spawner.ts';
        new NativeSpawner().run({ binary: ${JSON.stringify(probe)}, args: [], timeoutMs: 60000, maxStdoutBytes: 1000, maxStderrBytes: 1000 });`;
      const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: 'ignore' });
      const toolPid = Number(await waitForFile(pidFile, 20_000));
      expect(isGone(toolPid)).to.equal(false);
      parent.kill('SIGKILL');
      const deadline = Date.now() + 3000;
      while (!isGone(toolPid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(isGone(toolPid)).to.equal(true);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

const SPAWNERS: ReadonlyArray<readonly [string, () => Spawner]> = [
  ['native (vfork)', () => new NativeSpawner()],
  ['child_process (fallback)', () => new ChildProcessSpawner()],
];

for (const [spawnerName, makeSpawner] of SPAWNERS) describe(`runFfprobe, spawned by the ${spawnerName} spawner`, () => {
  const spawner = makeSpawner();
  let dir: string;
  let pidFile: string;
  /** A stand-in ffprobe that records its pid and then hangs. */
  let hangingProbe: string;
  /** One that closes its output at once, then hangs: only the timeout can end it. */
  let silentProbe: string;
  /** One that prints a little and then dies of SIGSEGV. */
  let crashingProbe: string;
  /** A wrapper script, as MEDIAJOBS_FFPROBE_PATH may name: its hanging child holds the output pipes; it records the child's pid. */
  let wrappingProbe: string;

  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mediajobs-ffprobe-'));
    pidFile = path.join(dir, 'pid');
    hangingProbe = path.join(dir, 'hanging-ffprobe.sh');
    await fs.writeFile(hangingProbe, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 30\n`, { mode: 0o755 });
    silentProbe = path.join(dir, 'silent-ffprobe.sh');
    await fs.writeFile(silentProbe, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 30 >&- 2>&-\n`, { mode: 0o755 });
    wrappingProbe = path.join(dir, 'wrapping-ffprobe.sh');
    await fs.writeFile(wrappingProbe, `#!/bin/sh\nsleep 30 &\necho $! > '${pidFile}'\nwait\n`, { mode: 0o755 });
    crashingProbe = path.join(dir, 'crashing-ffprobe.sh');
    await fs.writeFile(crashingProbe, `#!/bin/sh\necho '{}'\necho 'about to crash' >&2\nkill -SEGV $$\n`, { mode: 0o755 });
  });
  afterEach(() => fs.rm(pidFile, { force: true }));
  after(async () => {
    spawner.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('returns the parsed report of a media file', async () => {
    const report = await runFfprobe(fixture('h264-aac.mp4'), { spawner });
    expect(report.format?.format_name).to.equal('mov,mp4,m4a,3gp,3g2,mj2');
    expect(report.streams?.map((s) => s.codec_type)).to.deep.equal(['video', 'audio']);
  });

  it('reads a file whose name looks like a protocol as a plain file', async () => {
    const tricky = path.join(dir, 'concat:http:evil.mp4');
    await fs.copyFile(fixture('hevc.mp4'), tricky);
    const report = await runFfprobe(tricky, { spawner });
    expect(report.streams?.[0].codec_name).to.equal('hevc');
  });

  for (const name of ['truncated.mp4', 'not-media.mp4']) {
    it(`fails with reason 'exit' and ffprobe's stderr for ${name}`, async () => {
      const err = await rejection(runFfprobe(fixture(name), { spawner }));
      expect(err).to.be.instanceOf(FfprobeError);
      const failure = err as FfprobeError;
      expect(failure.reason).to.equal('exit');
      expect(failure.exitCode).to.equal(1);
      expect(failure.firstStderrLine).to.match(/moov atom not found/);
    });
  }

  it("fails with reason 'spawn' when the binary does not exist", async () => {
    const err = await rejection(runFfprobe(fixture('h264-aac.mp4'), { spawner, ffprobePath: path.join(dir, 'no-such-ffprobe') }));
    expect(err).to.be.instanceOf(FfprobeError).with.property('reason', 'spawn');
  });

  it("fails with reason 'crash' naming the signal when ffprobe is killed by one", async () => {
    const err = await rejection(runFfprobe(fixture('h264-aac.mp4'), { spawner, ffprobePath: crashingProbe }));
    expect(err).to.be.instanceOf(FfprobeError).with.property('reason', 'crash');
    expect((err as Error).message).to.equal('ffprobe was killed by SIGSEGV');
    expect((err as FfprobeError).firstStderrLine).to.equal('about to crash');
  });

  it("kills ffprobe and fails with reason 'timeout' when it closes its output and lingers", async () => {
    const err = await rejection(runFfprobe(fixture('h264-aac.mp4'), { spawner, ffprobePath: silentProbe, timeoutMs: 200 }));
    expect(err).to.be.instanceOf(FfprobeError).with.property('reason', 'timeout');
    expect(isAlive(Number(await waitForFile(pidFile)))).to.equal(false);
  });

  it('runs many probes at once, each with its own output', async () => {
    const names = ['h264-aac.mp4', 'hevc.mp4', 'audio-only.mp3', 'h264-aac.mp4', 'hevc.mp4', 'audio-only.mp3'];
    const reports = await Promise.all(names.map((name) => runFfprobe(fixture(name), { spawner })));
    expect(reports.map((r) => r.streams?.[0].codec_name)).to.deep.equal(['h264', 'hevc', 'mp3', 'h264', 'hevc', 'mp3']);
  });

  it("kills ffprobe and fails with reason 'output-limit' when the report is too large", async () => {
    const err = await rejection(runFfprobe(fixture('h264-aac.mp4'), { spawner, maxOutputBytes: 100 }));
    expect(err).to.be.instanceOf(FfprobeError).with.property('reason', 'output-limit');
  });

  it("kills ffprobe and fails with reason 'timeout' when it hangs", async () => {
    const started = Date.now();
    const err = await rejection(runFfprobe(fixture('h264-aac.mp4'), { spawner, ffprobePath: hangingProbe, timeoutMs: 200 }));
    expect(err).to.be.instanceOf(FfprobeError).with.property('reason', 'timeout');
    expect(Date.now() - started).to.be.below(2000);
    expect(isAlive(Number(await waitForFile(pidFile)))).to.equal(false);
  });

  it('kills ffprobe promptly on abort and rejects with the abort reason', async () => {
    const controller = new AbortController();
    const probe = rejection(runFfprobe(fixture('h264-aac.mp4'), { spawner, ffprobePath: hangingProbe, signal: controller.signal }));
    const pid = Number(await waitForFile(pidFile));
    expect(isAlive(pid)).to.equal(true);
    const reason = new Error('cancelled');
    const abortedAt = Date.now();
    controller.abort(reason);
    expect(await probe).to.equal(reason);
    expect(Date.now() - abortedAt).to.be.below(500);
    expect(isAlive(pid)).to.equal(false);
  });

  it('on abort, also kills what the tool started, which would otherwise hold its output open', async () => {
    const controller = new AbortController();
    const probe = rejection(runFfprobe(fixture('h264-aac.mp4'), { spawner, ffprobePath: wrappingProbe, signal: controller.signal }));
    const grandchild = Number(await waitForFile(pidFile));
    expect(isAlive(grandchild)).to.equal(true);
    const abortedAt = Date.now();
    controller.abort(new Error('cancelled'));
    await probe;
    expect(Date.now() - abortedAt).to.be.below(1000);
    // SIGKILL is delivered asynchronously: on a loaded machine the grandchild
    // can still be runnable for a moment after the wrapper has been reaped.
    while (!isGone(grandchild) && Date.now() - abortedAt < 2000) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(isGone(grandchild), 'the wrapper\'s child is gone').to.equal(true);
  });

  it('does not start ffprobe when the signal is already aborted', async () => {
    const reason = new Error('already cancelled');
    const err = await rejection(runFfprobe(fixture('h264-aac.mp4'), { spawner, ffprobePath: hangingProbe, signal: AbortSignal.abort(reason) }));
    expect(err).to.equal(reason);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await fs.readFile(pidFile, 'utf8').catch(() => 'not started')).to.equal('not started');
  });
});

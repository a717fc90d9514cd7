import { execFileSync } from 'node:child_process';
import { constants, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { putFixture } from './jobs.js';
import type { TestService } from './service.js';

/*
 * The hostile fixtures of fixtures/hostile/ (see its README) and the targets
 * they refer to, for the suites that run jobs on them. The job's input is
 * <data>/buckets/local-1250000000/in/<name>; the targets are:
 * - /tmp/mediajobs-hostile/target.mp4, named by the absolute-path fixtures;
 * - <data>/outside/target.mp4 and target.mov, three folders up from the input;
 * - <data>/buckets/other-1250000000/secret.mp4, another bucket's object.
 */

export const HOSTILE_DIR = 'fixtures/hostile';
export const ABSOLUTE_TARGET_DIR = '/tmp/mediajobs-hostile';
export const OTHER_BUCKET = 'other-1250000000';

/** Fixtures whose format refers to other files: every job on them must end Failed with InvalidMedia. */
export const REFUSED_FIXTURES: readonly string[] = [
  'hls-absolute-path.m3u8',
  'hls-parent-path.m3u8',
  'hls-file-url.m3u8',
  'hls-other-bucket.m3u8',
  'hls-concat-protocol.m3u8',
  'hls-subfile-protocol.m3u8',
  'dash-file-baseurl.mpd',
  'chain.ffconcat',
];

/** A MOV whose only track's data is in another file (an `alis` data reference). */
export const DREF_FIXTURE = 'mov-external-dref.mov';

/** Every target a fixture refers to, MP4s first, the dref's MOV last. */
export function hostileTargets(dataDir: string): { mp4: string[]; mov: string } {
  return {
    mp4: [
      path.join(ABSOLUTE_TARGET_DIR, 'target.mp4'),
      path.join(dataDir, 'outside', 'target.mp4'),
      path.join(dataDir, 'buckets', OTHER_BUCKET, 'secret.mp4'),
    ],
    mov: path.join(dataDir, 'outside', 'target.mov'),
  };
}

/** Stores every hostile fixture in the default bucket as `in/<name>`. */
export async function putHostileFixtures(api: TestService): Promise<void> {
  for (const name of [...REFUSED_FIXTURES, DREF_FIXTURE]) await putFixture(api, path.join(HOSTILE_DIR, name), `in/${name}`);
}

/** Puts real, valid media at every target (so a tool that follows a reference succeeds). */
export async function placeRealTargets(dataDir: string): Promise<void> {
  const { mp4, mov } = hostileTargets(dataDir);
  const media = readFileSync('fixtures/media/h264-aac.mp4');
  for (const target of mp4) {
    await fs.rm(target, { force: true });
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.writeFile(target, media);
  }
  await fs.rm(mov, { force: true });
  await fs.copyFile(path.join(HOSTILE_DIR, 'mov-dref-target.mov'), mov);
}

/** Replaces every target by an `OpenTrap`. */
export async function placeTraps(dataDir: string): Promise<OpenTrap[]> {
  const { mp4, mov } = hostileTargets(dataDir);
  const traps: OpenTrap[] = [];
  for (const target of [...mp4, mov]) traps.push(await OpenTrap.place(target));
  return traps;
}

export async function removeAbsoluteTargets(): Promise<void> {
  await fs.rm(ABSOLUTE_TARGET_DIR, { recursive: true, force: true });
}

/**
 * A FIFO standing where a target would be: a tool that opens it blocks there,
 * and while it does, a non-blocking open for writing succeeds (ENXIO while no
 * reader has it open). `watch` polls that, notes the opening and closes its end
 * at once, so the tool reads an empty file instead of hanging.
 */
export class OpenTrap {
  opened = false;
  private polling = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(readonly file: string) {}

  static async place(file: string): Promise<OpenTrap> {
    await fs.rm(file, { force: true });
    await fs.mkdir(path.dirname(file), { recursive: true });
    execFileSync('mkfifo', [file]);
    return new OpenTrap(file);
  }

  watch(): void {
    this.opened = false;
    this.polling = true;
    this.loop = (async () => {
      while (this.polling) {
        const handle = await fs.open(this.file, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => undefined);
        if (handle) {
          this.opened = true;
          await handle.close();
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
  }

  /** Stops watching; true when the target was opened while watched. */
  async stop(): Promise<boolean> {
    this.polling = false;
    await this.loop;
    return this.opened;
  }
}

/** Runs `work` with every trap watching; returns its result and the files that were opened meanwhile. */
export async function watchTraps<T>(traps: readonly OpenTrap[], work: () => Promise<T>): Promise<{ result: T; opened: string[] }> {
  for (const trap of traps) trap.watch();
  let result: T;
  try {
    result = await work();
  } finally {
    for (const trap of traps) await trap.stop();
  }
  return { result, opened: traps.filter((trap) => trap.opened).map((trap) => trap.file) };
}

/**
 * What the configured ffmpeg binary can do: its encoders and filters, read
 * once per binary (`ffmpeg -encoders`, `ffmpeg -filters`) and kept, since a
 * binary does not change under a running service.
 *
 * Submission asks these before it stores a job, so an Operation that needs
 * an encoder or filter the binary lacks (H.265 on a build without libx265)
 * is refused with `InvalidArgument` instead of failing later in the worker.
 *
 * The listing runs with `execFileSync`, not the Spawner: it happens once per
 * process at start (`main.ts` warms it), API-only nodes have no Spawner, and
 * a listing that cannot be cancelled needs none of the Spawner's process
 * groups or abort handling. A binary that cannot be run gives an empty
 * listing with `error` set, and every ffmpeg Tag is then refused at submit
 * with that reason.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';

export interface FfmpegCapabilities {
  /** The binary these were read from. */
  readonly binary: string;
  /** Encoder names as `-c:v`/`-c:a` take them: `libx264`, `aac`, `libwebp`… */
  readonly encoders: ReadonlySet<string>;
  /** Filter names: `scale`, `tile`, `palettegen`… */
  readonly filters: ReadonlySet<string>;
  /** The first line of `ffmpeg -version`. */
  readonly version: string;
  /** Why the binary could not be listed, when it could not. */
  readonly error?: string;
}

let bundledPath: string | undefined;

/** The `@ffmpeg-installer/ffmpeg` binary's path; resolved on first use so that a configured path never loads it. */
export function bundledFfmpegPath(): string {
  // CommonJS without type declarations that fit ESM; `require` keeps it out of the type checker.
  bundledPath ??= (createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg') as { path: string }).path;
  return bundledPath;
}

/** `Config.ffmpegPath`, or the bundled binary when it is empty. */
export function resolveFfmpegPath(configured: string): string {
  return configured || bundledFfmpegPath();
}

const cache = new Map<string, FfmpegCapabilities>();

/** The capabilities of `binary` (a configured path or `''` for the bundled one), listed on first call. */
export function ffmpegCapabilities(configured: string): FfmpegCapabilities {
  const binary = resolveFfmpegPath(configured);
  let found = cache.get(binary);
  if (!found) {
    found = listCapabilities(binary);
    cache.set(binary, found);
  }
  return found;
}

function listCapabilities(binary: string): FfmpegCapabilities {
  const run = (flag: string) => execFileSync(binary, ['-hide_banner', flag], { encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 8 * 1024 * 1024 });
  try {
    return {
      binary,
      encoders: parseEncoders(run('-encoders')),
      filters: parseFilters(run('-filters')),
      version: run('-version').split('\n')[0]?.trim() ?? '',
    };
  } catch (err) {
    return { binary, encoders: new Set(), filters: new Set(), version: '', error: `cannot run ffmpeg (${binary}): ${(err as Error).message.split('\n')[0]}` };
  }
}

/** ` V..... libx264   libx264 H.264 / …` lines after the `------` rule. */
export function parseEncoders(listing: string): Set<string> {
  const names = new Set<string>();
  const body = listing.slice(listing.indexOf('------') + 6);
  for (const line of body.split('\n')) {
    const match = /^ [VAS][F.][S.][X.][B.][D.] (\S+)/.exec(line);
    if (match) names.add(match[1]);
  }
  return names;
}

/** ` TSC scale   V->V   Scale the input…` lines (ffmpeg 4.x: three flag columns; 5+ adds none that matter here). */
export function parseFilters(listing: string): Set<string> {
  const names = new Set<string>();
  for (const line of listing.split('\n')) {
    const match = /^ [T.][S.][C.] (\S+)\s+\S*->\S*/.exec(line);
    if (match) names.add(match[1]);
  }
  return names;
}

/**
 * Throws an `Error` naming what `binary` lacks among `encoders` and `filters`;
 * callers turn it into their own code (400 at submit, a job failure at run).
 */
export function missingCapabilities(caps: FfmpegCapabilities, needs: { encoders?: readonly string[]; filters?: readonly string[] }): string | undefined {
  if (caps.error) return caps.error;
  const encoders = (needs.encoders ?? []).filter((e) => !caps.encoders.has(e));
  const filters = (needs.filters ?? []).filter((f) => !caps.filters.has(f));
  if (encoders.length === 0 && filters.length === 0) return undefined;
  const parts = [
    ...(encoders.length ? [`encoder${encoders.length > 1 ? 's' : ''} ${encoders.join(', ')}`] : []),
    ...(filters.length ? [`filter${filters.length > 1 ? 's' : ''} ${filters.join(', ')}`] : []),
  ];
  return `this service's ffmpeg (${caps.version || caps.binary}) has no ${parts.join(' and no ')}`;
}

/**
 * How `chromakey` and `colorkey` measure the distance their `similarity` and
 * `blend` are compared with, as multiples of the 2018 bundled binary's
 * (Euclidean distance over 255 of U,V for chromakey, of R,G,B for colorkey).
 * Later FFmpeg releases divide by √2 and √3 (Debian's 5.1.9 does), which
 * turned a key that left white opaque into one that made it a quarter
 * transparent; SegmentVideoBody scales its values by these so that both key alike.
 */
export interface KeyDistanceUnits {
  readonly chroma: number;
  readonly colour: number;
}

const execFileAsync = promisify(execFile);

const keyUnitsCache = new Map<string, Promise<KeyDistanceUnits>>();

/**
 * Measured, not read from the version (the bundled one calls itself `N-47683`):
 * grey keyed against green at similarity 0.45 and against black at 0.7 stays
 * opaque in the old units (distances ≈ 0.53 and 0.87) and turns transparent in
 * the new (≈ 0.38 and 0.50). Read once per binary, by the first job that keys,
 * off the event loop; a binary that cannot run this gets the old units (its
 * job then fails with ffmpeg's own reason).
 */
export function keyDistanceUnits(configured: string): Promise<KeyDistanceUnits> {
  const binary = resolveFfmpegPath(configured);
  let units = keyUnitsCache.get(binary);
  if (!units) {
    const graph = 'color=c=0x808080:s=8x8:d=1,format=yuva444p,split[a][b];[a]chromakey=color=0x00FF00:similarity=0.45[ca];'
      + '[b]format=rgba,colorkey=color=0x000000:similarity=0.7,format=yuva444p[cb];[ca][cb]hstack,alphaextract';
    units = execFileAsync(binary, ['-hide_banner', '-nostdin', '-loglevel', 'error', '-filter_complex', graph, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'gray', 'pipe:1'],
      { timeout: 20_000, encoding: 'buffer' })
      // Row 4 of the 16x8 picture, a pixel inside each half: the 2018 chromakey misreads some edge pixels.
      .then(({ stdout: pixels }) => ({ chroma: pixels[4 * 16 + 4] === 255 ? 1 : Math.SQRT1_2, colour: pixels[4 * 16 + 12] === 255 ? 1 : 1 / Math.sqrt(3) }))
      .catch(() => ({ chroma: 1, colour: 1 }));
    keyUnitsCache.set(binary, units);
  }
  return units;
}

import os from 'node:os';
import path from 'node:path';

/**
 * The whole runtime configuration, read once from the environment.
 *
 * This is the only module that reads `process.env`; everything else receives a
 * `Config`. Tests build one with `loadConfig({ ... })` and never touch the
 * process environment. Every variable has a default that gives the embedded
 * single-machine setup (embedded PostgreSQL under the data dir, objects on local disk).
 */
export interface Config {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  /** Unset: the embedded PostgreSQL on `<dataDir>/pg`, started or joined (src/store/embedded-postgres.ts). */
  readonly databaseUrl: string | undefined;
  readonly region: string;
  /** Bucket used when the Host header does not name one (`127.0.0.1:8080`). */
  readonly defaultBucket: string;
  /** Request bodies larger than this are refused before they are buffered. */
  readonly maxBodyBytes: number;
  /** In-process workers run by `serve`; 0 makes an API-only node. */
  readonly workers: number;
  /** Jobs one process runs at once: their tools (ffprobe, libvips) never run more at once than this. */
  readonly concurrency: number;
  /**
   * Of those, jobs of the ffmpeg Tags one process runs at once (each also
   * takes one of `concurrency`'s slots); all of them by default. Lower, a
   * long transcode (whose encoder spreads over every core by itself) runs in
   * about half the time at the same throughput, but short ffmpeg jobs
   * (Snapshot) lose throughput: bench/README.md, "How many ffmpeg at once".
   */
  readonly videoConcurrency: number;
  /**
   * A worker whose last job ran for less than this holds jobs waiting for a
   * tool slot, one per slot (two while jobs take under 20 ms); 0 turns that off.
   */
  readonly lookaheadMs: number;
  /** A running job whose lease is not renewed for this long is taken back. */
  readonly leaseMs: number;
  /** Polling fallback for lost LISTEN/NOTIFY wake-ups. */
  readonly pollIntervalMs: number;
  /**
   * A PostgreSQL statement unanswered for this long fails (retryably) and its
   * connection is dropped: a server that vanished without a reset would
   * otherwise hold it, and the worker waiting on it, forever. 0: no limit.
   */
  readonly dbQueryTimeoutMs: number;
  readonly maxAttempts: number;
  /** A job not started within this time after creation ends Failed. */
  readonly jobTtlMs: number;
  /** Finished jobs (with their callback deliveries) that ended longer ago than this are deleted; 0 keeps them all. */
  readonly retentionMs: number;
  /** Time running jobs get to finish after SIGTERM before they are handed back. */
  readonly shutdownGraceMs: number;
  /**
   * How long a job's processor may run before it is stopped and the job ends
   * Failed with `JobTimeout`: MEDIAJOBS_JOB_TIMEOUT (10 min) for MediaInfo and
   * PicProcess; the Tags that run ffmpeg over a whole file get
   * MEDIAJOBS_FFMPEG_TIMEOUT plus 10 min (2 h 10 min), or MEDIAJOBS_JOB_TIMEOUT
   * if longer; MEDIAJOBS_JOB_TIMEOUT_<TAG in capitals> (e.g.
   * MEDIAJOBS_JOB_TIMEOUT_PICPROCESS=2m) sets one Tag's. Read it through
   * `jobTimeoutMs(config, tag)`.
   */
  readonly jobTimeout: JobTimeouts;
  readonly ffprobePath: string;
  /** The ffmpeg of the video and audio Tags; `''` means the one shipped by `@ffmpeg-installer/ffmpeg`. */
  readonly ffmpegPath: string;
  /** An ffmpeg run longer than this is killed and its job fails (`MEDIAJOBS_FFMPEG_TIMEOUT`, default 2 h). */
  readonly ffmpegTimeoutMs: number;
  readonly picLimits: PicLimits;
  readonly fileJobLimits: FileJobLimits;
  readonly callbacks: CallbackConfig;
  /** When true, CI requests must carry a valid COS signature; the default with DATABASE_URL, off in the embedded mode. */
  readonly requireAuth: boolean;
  /** A signature whose q-sign-time or q-key-time spans longer than this is refused. */
  readonly maxSignatureAgeMs: number;
  /** When set, GET /metrics requires `Authorization: Bearer <this>` (MEDIAJOBS_METRICS_TOKEN). */
  readonly metricsToken: string;
  readonly apps: AppsConfig;
  readonly tasks: TasksConfig;
  /** Where objects live (MEDIAJOBS_STORAGE): `local` files under `<dataDir>/buckets`, or an S3-compatible store. */
  readonly storage: StorageConfig;
  readonly logLevel: string;
}

export type StorageConfig =
  | { readonly kind: 'local' }
  | { readonly kind: 's3'; readonly s3: S3Config };

/** The s3 backend (src/storage/s3.ts): COS bucket `<name>-<appid>` is S3 bucket `<bucketPrefix><name>-<appid>`. */
export interface S3Config {
  /** MEDIAJOBS_S3_ENDPOINT, e.g. http://127.0.0.1:9000 (MinIO); empty: AWS's own endpoints. */
  readonly endpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly bucketPrefix: string;
  /** Path-style URLs (`<endpoint>/<bucket>/<key>`), which MinIO and s3rver need. */
  readonly forcePathStyle: boolean;
}

export interface PicLimits {
  readonly maxInputBytes: number;
  readonly maxInputSide: number;
  readonly maxInputPixels: number;
  readonly maxOutputSide: number;
  /**
   * No step of a rule may make the picture larger than this many pixels (all
   * frames): it bounds the memory and time of every pass over the pixels.
   */
  readonly maxOutputPixels: number;
}

/** What one FileCompress or FileUncompress job may read and write (the file jobs of /file_jobs). */
export interface FileJobLimits {
  /** Bytes of source objects one FileCompress archive may take (CI's limit: 50 GB). */
  readonly compressMaxBytes: number;
  /** Bytes an archive may expand to, counted while extracting, not taken from its headers. */
  readonly uncompressMaxBytes: number;
  /** Entries (of any kind) one FileUncompress job reads from an archive. */
  readonly uncompressMaxFiles: number;
}

export interface JobTimeouts {
  /** MEDIAJOBS_JOB_TIMEOUT. */
  readonly defaultMs: number;
  /** Tag in capitals → its own limit, for every MEDIAJOBS_JOB_TIMEOUT_<TAG> set. */
  readonly byTag: Readonly<Record<string, number>>;
}

/**
 * The Tags whose work is bounded without ffmpeg's own limit: a probe takes
 * milliseconds, and a PicProcess rule is bounded at submit to seconds of work.
 * Every other Tag runs ffmpeg over a whole video or audio file, where an
 * hour-long transcode is normal.
 */
const BOUNDED_TAGS: ReadonlySet<string> = new Set(['MEDIAINFO', 'PICPROCESS']);

/** Time an ffmpeg Tag gets beyond its ffmpeg run, to probe, upload and clean up. */
const FFMPEG_JOB_MARGIN_MS = 10 * 60_000;

/** The run-time limit of a job of `tag` (see `Config.jobTimeout`). */
export function jobTimeoutMs(config: Pick<Config, 'jobTimeout' | 'ffmpegTimeoutMs'>, tag: string): number {
  const key = tag.toUpperCase();
  const { defaultMs, byTag } = config.jobTimeout;
  if (Object.hasOwn(byTag, key)) return byTag[key];
  return BOUNDED_TAGS.has(key) ? defaultMs : Math.max(defaultMs, config.ffmpegTimeoutMs + FFMPEG_JOB_MARGIN_MS);
}

export interface CallbackConfig {
  readonly timeoutMs: number;
  /** Deliveries are retried for this long, then given up. */
  readonly retryForMs: number;
  readonly allowPrivateAddresses: boolean;
  /** Service-wide HMAC secret used when a queue has none of its own. */
  readonly signingSecret: string;
}

export interface AppsConfig {
  /** Authorizes /admin/ (Bearer); empty: the token generated at first start and stored. */
  readonly adminToken: string;
  /** The first app's credentials, when pinned (MEDIAJOBS_SECRET_ID, MEDIAJOBS_SECRET_KEY, MEDIAJOBS_APP_KEY); empty: generated. */
  readonly pinned: { readonly secretId: string; readonly secretKey: string; readonly appKey: string };
}

export interface TasksConfig {
  /** A task handed to an external worker goes back to pending when its lease is not renewed (update_progress) for this long. */
  readonly leaseMs: number;
  /** CI Tags that POST /jobs accepts and hands to external workers through get_next_task. */
  readonly externalTags: readonly string[];
}

/** Raised for an environment variable with a value we cannot use. */
export class ConfigError extends Error {
  constructor(variable: string, value: string, expected: string) {
    super(`Invalid ${variable}=${JSON.stringify(value)}: set it to ${expected}, or unset it to use the default.`);
    this.name = 'ConfigError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^-?\d+$/.test(raw) || value < min || value > max) {
    throw new ConfigError(name, raw, `an integer from ${min} to ${max}`);
  }
  return value;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(name, raw, 'true or false');
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Durations are written `500ms`, `30s`, `10m`, `24h`, `2d`, or as plain milliseconds. */
function duration(env: Env, name: string, fallbackMs: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallbackMs;
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(raw);
  if (!match) throw new ConfigError(name, raw, 'a duration such as 500ms, 30s, 10m or 24h');
  return Number(match[1]) * DURATION_UNITS[match[2] ?? 'ms'];
}

/** A comma-separated list of CI Tag names. */
function tagList(env: Env, name: string): string[] {
  const raw = read(env, name);
  if (raw === undefined) return [];
  const tags = raw.split(',').map((t) => t.trim()).filter(Boolean);
  if (tags.some((t) => !/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(t))) throw new ConfigError(name, raw, 'Tag names separated by commas, e.g. SpeechRecognition,VideoTag');
  return tags;
}

const JOB_TIMEOUT_PREFIX = 'MEDIAJOBS_JOB_TIMEOUT_';

/** MEDIAJOBS_JOB_TIMEOUT and every MEDIAJOBS_JOB_TIMEOUT_<TAG>, keyed by the Tag in capitals. */
function jobTimeouts(env: Env): JobTimeouts {
  const positive = (name: string, fallbackMs: number) => {
    const ms = duration(env, name, fallbackMs);
    if (ms <= 0) throw new ConfigError(name, String(env[name]), 'a positive duration such as 30s or 10m');
    return ms;
  };
  const byTag: Record<string, number> = {};
  for (const name of Object.keys(env)) {
    if (name.startsWith(JOB_TIMEOUT_PREFIX) && read(env, name) !== undefined) byTag[name.slice(JOB_TIMEOUT_PREFIX.length)] = positive(name, 0);
  }
  return { defaultMs: positive('MEDIAJOBS_JOB_TIMEOUT', 10 * 60_000), byTag };
}

const BUCKET_PATTERN = /^[a-z0-9][a-z0-9-]{0,48}-\d{1,12}$/;

/** MEDIAJOBS_STORAGE and, for `s3`, its MEDIAJOBS_S3_* settings. */
function storageConfig(env: Env): StorageConfig {
  const kind = read(env, 'MEDIAJOBS_STORAGE') ?? 'local';
  if (kind === 'local') return { kind };
  if (kind !== 's3') throw new ConfigError('MEDIAJOBS_STORAGE', kind, 'local or s3');
  const endpoint = read(env, 'MEDIAJOBS_S3_ENDPOINT') ?? '';
  if (endpoint !== '' && !/^https?:\/\/[^/]+\/?$/.test(endpoint)) throw new ConfigError('MEDIAJOBS_S3_ENDPOINT', endpoint, 'an http:// or https:// URL without a path, e.g. http://127.0.0.1:9000');
  const bucketPrefix = read(env, 'MEDIAJOBS_S3_BUCKET_PREFIX') ?? '';
  if (!/^[a-z0-9.-]{0,12}$/.test(bucketPrefix)) throw new ConfigError('MEDIAJOBS_S3_BUCKET_PREFIX', bucketPrefix, 'at most 12 lower-case letters, digits, "." or "-"');
  return {
    kind,
    s3: {
      endpoint,
      region: read(env, 'MEDIAJOBS_S3_REGION') ?? 'us-east-1',
      accessKeyId: read(env, 'MEDIAJOBS_S3_ACCESS_KEY_ID') ?? '',
      secretAccessKey: read(env, 'MEDIAJOBS_S3_SECRET_ACCESS_KEY') ?? '',
      bucketPrefix,
      forcePathStyle: boolean(env, 'MEDIAJOBS_S3_FORCE_PATH_STYLE', endpoint !== ''),
    },
  };
}

export function loadConfig(env: Env = process.env): Config {
  const dataDir = path.resolve(read(env, 'MEDIAJOBS_DATA_DIR') ?? './data');
  const databaseUrl = read(env, 'DATABASE_URL');
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL', databaseUrl, 'a postgres:// connection URL');
  }
  const host = read(env, 'MEDIAJOBS_HOST') ?? '127.0.0.1';
  const region = read(env, 'MEDIAJOBS_REGION') ?? 'ap-local';
  if (!/^[a-z0-9-]{1,40}$/.test(region)) throw new ConfigError('MEDIAJOBS_REGION', region, 'a region name such as ap-local');
  const defaultBucket = read(env, 'MEDIAJOBS_DEFAULT_BUCKET') ?? 'local-1250000000';
  if (!BUCKET_PATTERN.test(defaultBucket)) {
    throw new ConfigError('MEDIAJOBS_DEFAULT_BUCKET', defaultBucket, 'a bucket name of the form <name>-<appid>, e.g. local-1250000000');
  }
  const embedded = databaseUrl === undefined;
  const maxSignatureAgeMs = duration(env, 'MEDIAJOBS_MAX_SIGNATURE_AGE', 30 * 86_400_000);
  if (maxSignatureAgeMs < 1000) throw new ConfigError('MEDIAJOBS_MAX_SIGNATURE_AGE', read(env, 'MEDIAJOBS_MAX_SIGNATURE_AGE') ?? '', 'a duration of at least 1s, such as 1h or 30d');
  const concurrency = integer(env, 'MEDIAJOBS_CONCURRENCY', os.availableParallelism(), 1, 256);
  const config: Config = {
    port: integer(env, 'MEDIAJOBS_PORT', 8080, 0, 65535),
    host,
    dataDir,
    databaseUrl,
    region,
    defaultBucket,
    maxBodyBytes: integer(env, 'MEDIAJOBS_MAX_BODY_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    metricsToken: read(env, 'MEDIAJOBS_METRICS_TOKEN') ?? '',
    workers: integer(env, 'MEDIAJOBS_WORKERS', 1, 0, 1),
    concurrency,
    videoConcurrency: integer(env, 'MEDIAJOBS_VIDEO_CONCURRENCY', concurrency, 1, 256),
    lookaheadMs: duration(env, 'MEDIAJOBS_LOOKAHEAD', 1000),
    leaseMs: duration(env, 'MEDIAJOBS_LEASE', 30_000),
    pollIntervalMs: duration(env, 'MEDIAJOBS_POLL_INTERVAL', 1000),
    dbQueryTimeoutMs: duration(env, 'MEDIAJOBS_DB_QUERY_TIMEOUT', 120_000),
    maxAttempts: integer(env, 'MEDIAJOBS_MAX_ATTEMPTS', 3, 1, 100),
    jobTtlMs: duration(env, 'MEDIAJOBS_JOB_TTL', 24 * 3_600_000),
    retentionMs: duration(env, 'MEDIAJOBS_RETENTION', 30 * 86_400_000),
    shutdownGraceMs: duration(env, 'MEDIAJOBS_SHUTDOWN_GRACE', 10_000),
    jobTimeout: jobTimeouts(env),
    ffprobePath: read(env, 'MEDIAJOBS_FFPROBE_PATH') ?? '',
    ffmpegPath: read(env, 'MEDIAJOBS_FFMPEG_PATH') ?? '',
    ffmpegTimeoutMs: duration(env, 'MEDIAJOBS_FFMPEG_TIMEOUT', 2 * 3_600_000),
    picLimits: {
      maxInputBytes: integer(env, 'MEDIAJOBS_PIC_MAX_INPUT_BYTES', 32 * 1024 * 1024, 1, 2 ** 31),
      maxInputSide: integer(env, 'MEDIAJOBS_PIC_MAX_INPUT_SIDE', 30_000, 1, 1_000_000),
      maxInputPixels: integer(env, 'MEDIAJOBS_PIC_MAX_INPUT_PIXELS', 250_000_000, 1, 2 ** 40),
      maxOutputSide: integer(env, 'MEDIAJOBS_PIC_MAX_OUTPUT_SIDE', 9999, 1, 1_000_000),
      maxOutputPixels: integer(env, 'MEDIAJOBS_PIC_MAX_OUTPUT_PIXELS', 50_000_000, 1, 2 ** 40),
    },
    fileJobLimits: {
      compressMaxBytes: integer(env, 'MEDIAJOBS_FILE_COMPRESS_MAX_BYTES', 50 * 1024 ** 3, 1, 2 ** 50),
      uncompressMaxBytes: integer(env, 'MEDIAJOBS_FILE_UNCOMPRESS_MAX_BYTES', 10 * 1024 ** 3, 1, 2 ** 50),
      uncompressMaxFiles: integer(env, 'MEDIAJOBS_FILE_UNCOMPRESS_MAX_FILES', 10_000, 1, 1_000_000),
    },
    callbacks: {
      timeoutMs: duration(env, 'MEDIAJOBS_CALLBACK_TIMEOUT', 10_000),
      retryForMs: duration(env, 'MEDIAJOBS_CALLBACK_RETRY_FOR', 24 * 3_600_000),
      allowPrivateAddresses: boolean(env, 'MEDIAJOBS_ALLOW_PRIVATE_CALLBACKS', embedded),
      signingSecret: read(env, 'MEDIAJOBS_CALLBACK_SECRET') ?? '',
    },
    // Off only in the embedded local mode: a DATABASE_URL means a shared, production-style deployment.
    requireAuth: boolean(env, 'MEDIAJOBS_REQUIRE_AUTH', !embedded),
    maxSignatureAgeMs,
    apps: {
      adminToken: read(env, 'MEDIAJOBS_ADMIN_TOKEN') ?? '',
      pinned: {
        secretId: read(env, 'MEDIAJOBS_SECRET_ID') ?? '',
        secretKey: read(env, 'MEDIAJOBS_SECRET_KEY') ?? '',
        appKey: read(env, 'MEDIAJOBS_APP_KEY') ?? '',
      },
    },
    tasks: {
      leaseMs: duration(env, 'MEDIAJOBS_TASK_LEASE', 5 * 60_000),
      externalTags: tagList(env, 'MEDIAJOBS_EXTERNAL_TAGS'),
    },
    storage: storageConfig(env),
    logLevel: read(env, 'MEDIAJOBS_LOG_LEVEL') ?? 'info',
  };
  return Object.freeze(config);
}

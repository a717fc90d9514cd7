/**
 * Shared plumbing for the benchmarks in this directory: a scratch database, a
 * service on it (API + in-process worker, real loopback HTTP), a small HTTP
 * client, statistics and the printed report.
 *
 * Every benchmark runs both from a compiled build (`node dist/bench/<x>.js`,
 * after `tsc -p tsconfig.json`) and from source (`npx tsx bench/<x>.ts`).
 *
 * Database: when DATABASE_URL is set, a fresh database is created on that
 * server (`CREATE DATABASE mediajobs_bench_…`) and dropped at the end; when it
 * is not, the service starts its embedded PostgreSQL in a temporary data dir.
 *
 * The service's Config is built from an explicit object, like the tests do:
 * port 0 on 127.0.0.1, the scratch database and data dir, logging silent
 * (BENCH_LOG_LEVEL to change it). Any other MEDIAJOBS_* variable in the
 * environment (MEDIAJOBS_CONCURRENCY, MEDIAJOBS_POLL_INTERVAL,
 * MEDIAJOBS_FFPROBE_PATH, …) is passed through, so a run can be tuned
 * without editing code.
 */
import { execFileSync, fork } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, promises as fs, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Config } from '../src/config.js';
import type { Service } from '../src/main.js';
import { bundledFfprobePath, ffprobeArgs as runFfprobeArgs } from '../src/media/ffprobe.js';
import { resolveFfmpegPath } from '../src/media/ffmpeg-capabilities.js';
import { INPUT_OPTIONS, type ToolInput } from '../src/media/input-policy.js';
import { createSpawner, type Spawner } from '../src/media/spawner.js';
import type { Processor } from '../src/processors/processor.js';

// The service, kysely, pg and pino are imported where used, so that the bare
// ffprobe loop (bench/ffprobe-loop.ts, which imports this file) runs in a
// process that has loaded nothing of the service.
const kyselySql = async () => (await import('kysely')).sql;

// ---------------------------------------------------------------------------
// Paths and settings

/** The repository root, found from this file both in `bench/` and in `dist/bench/`. */
export const REPO_ROOT: string = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'mediajobs') return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the mediajobs repository root above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
})();

/** 53 KB, 2 s H.264 + AAC (see fixtures/media/README.md). */
export const FIXTURE_MP4 = path.join(REPO_ROOT, 'fixtures', 'media', 'h264-aac.mp4');

/** Requests without a bucket Host header land in the service's default bucket. */
export const BUCKET = 'local-1250000000';

/** A positive integer from the environment, or `fallback`. */
export function envInt(name: string, fallback: number, min = 1, max = 1_000_000): number {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) throw new Error(`${name}=${raw}: expected an integer from ${min} to ${max}`);
  return value;
}

/** MEDIAJOBS_CONCURRENCY as the service reads it: default one job per CPU. */
export function benchConcurrency(): number {
  return envInt('MEDIAJOBS_CONCURRENCY', os.availableParallelism(), 1, 256);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// Scratch database

export interface ScratchDatabase {
  readonly kind: 'postgres' | 'embedded';
  /** Unset for the embedded PostgreSQL. */
  readonly databaseUrl: string | undefined;
  /** The service's data dir (objects under `buckets/`, the embedded PostgreSQL under `pg/`). */
  readonly dataDir: string;
  /** The database name on the server, or the embedded cluster's directory. */
  readonly label: string;
  dispose(): Promise<void>;
}

async function adminQuery(serverUrl: string, text: string): Promise<void> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/** A new empty database (on DATABASE_URL's server, else the embedded PostgreSQL) and data dir; the service migrates it. */
export async function scratchDatabase(): Promise<ScratchDatabase> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-bench-'));
  // As root the embedded PostgreSQL runs as the postgres user, which must be able to enter it (mkdtemp makes it 0700).
  chmodSync(dataDir, 0o755);
  const serverUrl = process.env.DATABASE_URL?.trim() || undefined;
  if (!serverUrl) {
    return {
      kind: 'embedded',
      databaseUrl: undefined,
      dataDir,
      label: path.join(dataDir, 'pg'),
      async dispose() { rmSync(dataDir, { recursive: true, force: true }); },
    };
  }
  const name = `mediajobs_bench_${process.pid}_${Date.now().toString(36)}`;
  await adminQuery(serverUrl, `CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    kind: 'postgres',
    databaseUrl: url.toString(),
    dataDir,
    label: name,
    async dispose() {
      await adminQuery(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------
// The service under test

export interface BenchService {
  readonly service: Service;
  readonly config: Config;
  readonly baseUrl: string;
  readonly client: HttpClient;
  /** The local file behind an object of the default bucket. */
  localPath(key: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * `startService` with the API and an in-process worker, listening on a free
 * loopback port, on `db`. `env` wins over MEDIAJOBS_* from the environment.
 */
export async function startBenchService(db: ScratchDatabase, options: { env?: Record<string, string>; processors?: ReadonlyMap<string, Processor> } = {}): Promise<BenchService> {
  const [{ loadConfig }, { startService }, { pino }] = await Promise.all([import('../src/config.js'), import('../src/main.js'), import('pino')]);
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith('MEDIAJOBS_')));
  const config = loadConfig({
    ...inherited,
    MEDIAJOBS_PORT: '0',
    MEDIAJOBS_HOST: '127.0.0.1',
    MEDIAJOBS_DATA_DIR: db.dataDir,
    DATABASE_URL: db.databaseUrl,
    MEDIAJOBS_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'silent',
    MEDIAJOBS_WORKERS: '1',
    // The benchmarks send unsigned CI requests (refused by default with DATABASE_URL).
    MEDIAJOBS_REQUIRE_AUTH: 'false',
    ...options.env,
  });
  const service = await startService(config, {
    api: true,
    worker: true,
    processors: options.processors,
    logger: pino({ level: config.logLevel }),
  });
  const baseUrl = `http://127.0.0.1:${service.port}`;
  const client = new HttpClient(baseUrl);
  return {
    service,
    config,
    baseUrl,
    client,
    localPath: (key) => service.storage.withLocalFile(BUCKET, key, async (file) => file),
    async stop() {
      client.close();
      await service.stop();
    },
  };
}

/** Copies the MP4 fixture into the default bucket as `key`. */
export async function putFixture(bench: BenchService, key: string, fixture = FIXTURE_MP4): Promise<void> {
  await bench.service.storage.put(BUCKET, key, readFileSync(fixture));
}

/** A CreateMediaJobs body for one MediaInfo job on `key`. */
export function mediaInfoRequest(key: string): string {
  return `<Request><Tag>MediaInfo</Tag><Input><Object>${key}</Object></Input><Operation><JobLevel>0</JobLevel></Operation></Request>`;
}

// ---------------------------------------------------------------------------
// HTTP

export interface HttpResponse {
  readonly status: number;
  readonly text: string;
}

/**
 * Plain node:http over keep-alive connections, as an SDK client would hold
 * them, so that connection setup is not counted in every request.
 */
export class HttpClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  constructor(readonly baseUrl: string) {}

  request(method: string, urlPath: string, body?: string): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(body)) };
      const req = http.request(this.baseUrl + urlPath, { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /** POST /jobs with one job; returns its JobId. */
  async submit(body: string): Promise<string> {
    const res = await this.request('POST', '/jobs', body);
    const jobId = /<JobId>(j[0-9a-f]{32})<\/JobId>/.exec(res.text)?.[1];
    if (res.status !== 200 || !jobId) throw new Error(`POST /jobs answered ${res.status}: ${res.text.slice(0, 500)}`);
    return jobId;
  }

  close(): void {
    this.agent.destroy();
  }
}

// ---------------------------------------------------------------------------
// Database probes (all times in milliseconds, computed by the database clock)

/** The database clock now, as epoch milliseconds with microsecond precision. */
export async function dbClockMs(bench: BenchService): Promise<number> {
  const sql = await kyselySql();
  const { rows } = await sql<{ t: number | string }>`SELECT extract(epoch FROM clock_timestamp())::float8 * 1000 AS t`.execute(bench.service.db.kysely);
  return Number(rows[0].t);
}

/** The highest job seq so far (0 on an empty table): a cursor that separates one batch of jobs from the next. */
export async function maxJobSeq(bench: BenchService): Promise<string> {
  const sql = await kyselySql();
  const { rows } = await sql<{ seq: string }>`SELECT coalesce(max(seq), 0)::text AS seq FROM jobs`.execute(bench.service.db.kysely);
  return rows[0].seq;
}

/**
 * Jobs not yet final. Two counts, so that each reads its small partial index
 * (jobs_queue_head, jobs_running): `state IN (…)` matches neither index's
 * predicate and made PostgreSQL scan the whole table at every poll, a cost
 * that grew with the jobs run before and was charged to the service's figure.
 */
export async function unfinishedJobs(bench: BenchService): Promise<number> {
  const sql = await kyselySql();
  const { rows } = await sql<{ n: string }>`SELECT ((SELECT count(*) FROM jobs WHERE state = 'Submitted')
    + (SELECT count(*) FROM jobs WHERE state = 'Running'))::text AS n`.execute(bench.service.db.kysely);
  return Number(rows[0].n);
}

export interface JobTiming {
  readonly jobId: string;
  readonly state: string;
  readonly code: string;
  readonly message: string;
  readonly attempts: number;
  /** created_at, started_at, ended_at as epoch ms (database clock, µs precision). */
  readonly createdMs: number;
  readonly startedMs: number | null;
  readonly endedMs: number | null;
}

/** Every job with seq > `afterSeq`, in creation order, with exact timestamps. */
export async function jobTimings(bench: BenchService, afterSeq: string): Promise<JobTiming[]> {
  const sql = await kyselySql();
  const { rows } = await sql<{ job_id: string; state: string; code: string; message: string; attempts: number; c: number | string; s: number | string | null; e: number | string | null }>`
    SELECT job_id, state, code, message, attempts,
      extract(epoch FROM created_at)::float8 * 1000 AS c,
      extract(epoch FROM started_at)::float8 * 1000 AS s,
      extract(epoch FROM ended_at)::float8 * 1000 AS e
    FROM jobs WHERE seq > ${afterSeq}::bigint ORDER BY seq`.execute(bench.service.db.kysely);
  return rows.map((r) => ({
    jobId: r.job_id,
    state: r.state,
    code: r.code,
    message: r.message,
    attempts: Number(r.attempts),
    createdMs: Number(r.c),
    startedMs: r.s === null ? null : Number(r.s),
    endedMs: r.e === null ? null : Number(r.e),
  }));
}

/** Throws unless every job ended Success at its first attempt (a benchmark of failures measures nothing). */
export function assertAllSucceeded(timings: readonly JobTiming[], expected: number): void {
  if (timings.length !== expected) throw new Error(`expected ${expected} jobs, found ${timings.length}`);
  const bad = timings.filter((t) => t.state !== 'Success' || t.attempts !== 1);
  if (bad.length) {
    const first = bad[0];
    throw new Error(`${bad.length} of ${expected} jobs did not succeed at the first attempt; first: ${first.jobId} ${first.state} (attempt ${first.attempts}) ${first.code}: ${first.message}`);
  }
}

/**
 * Waits until no job is Submitted or Running, checking every `pollMs` with one
 * light count query (so the polling costs the service next to nothing).
 */
export async function waitUntilIdle(bench: BenchService, pollMs: number, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await unfinishedJobs(bench)) > 0) {
    if (Date.now() > deadline) throw new Error(`jobs still unfinished after ${timeoutMs} ms`);
    await sleep(pollMs);
  }
}

/** User + system time of a `process.cpuUsage(previous)` difference, in ms. */
export function cpuMs(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1000;
}

/** CPU ms of this process's waited-for children (the tools it ran), from /proc; NaN where there is none. */
export function childrenCpuMs(): number {
  try {
    // Fields after "(comm) ": state is 0, cutime 13, cstime 14, in clock ticks (100 a second on Linux).
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    return (Number(fields[13]) + Number(fields[14])) * 10;
  } catch {
    return Number.NaN;
  }
}

/** A round's throughput and what a job cost in CPU. */
export interface CpuRound {
  readonly jobsPerSec: number;
  /** This process's CPU per job, ms. */
  readonly ownCpuMs: number;
  /** The tools' CPU per job (this process's waited-for children), ms. */
  readonly toolsCpuMs: number;
}

/** Runs `work` (which returns jobs per second) and adds its CPU per job: this process's and its children's (steadier than a jobs/s ratio on a busy host). */
export async function measureCpu(jobs: number, work: () => Promise<number>): Promise<CpuRound> {
  const own = process.cpuUsage();
  const children = childrenCpuMs();
  const jobsPerSec = await work();
  return { jobsPerSec, ownCpuMs: cpuMs(process.cpuUsage(own)) / jobs, toolsCpuMs: (childrenCpuMs() - children) / jobs };
}

/** Jobs per second through the API and the worker: `jobs` requests submitted 4 at a time, database clock from before the first to the last end. */
export async function serviceJobsPerSec(bench: BenchService, jobs: number, request: (index: number) => string): Promise<number> {
  const after = await maxJobSeq(bench);
  const startMs = await dbClockMs(bench);
  await runPool(jobs, 4, async (i) => { await bench.client.submit(request(i)); });
  await waitUntilIdle(bench, 50);
  const timings = await jobTimings(bench, after);
  assertAllSucceeded(timings, jobs);
  const endMs = Math.max(...timings.map((t) => t.endedMs ?? 0));
  return jobs / ((endMs - startMs) / 1000);
}

/**
 * Jobs per second for the service's ffmpeg command run straight from a spawner, `concurrency` at a time:
 * `argsFor` gives run `index`'s argv for `input` as the service hands it to ffmpeg (input-policy.ts; the key has no %).
 */
export async function bareFfmpegJobsPerSec(options: {
  readonly input: string; readonly jobs: number; readonly concurrency: number; readonly outDir: string; readonly ffmpegPath: string;
  readonly argsFor: (tool: ToolInput, index: number) => Promise<string[]>;
}): Promise<number> {
  const { input, jobs, outDir, ffmpegPath } = options;
  const spawner = createSpawner();
  const tool: ToolInput = { options: INPUT_OPTIONS, url: `file:${path.resolve(input)}`, filePath: path.resolve(input) };
  await fs.mkdir(outDir, { recursive: true });
  const start = performance.now();
  try {
    await runPool(jobs, options.concurrency, async (i) => {
      const args = await options.argsFor(tool, i);
      const run = await spawner.run({ binary: resolveFfmpegPath(ffmpegPath), args, timeoutMs: 120_000, maxStdoutBytes: 1 << 20, maxStderrBytes: 16 << 10 });
      if (run.code !== 0) throw new Error(`bare ffmpeg failed (${run.code ?? run.signal}): ${run.stderr || run.spawnError}`);
    });
  } finally {
    spawner.close();
  }
  return jobs / ((performance.now() - start) / 1000);
}

/** An 8 s 640x480 25 fps H.264 + AAC clip made by the ffmpeg under test into `dir` (the committed fixtures are 160x120 and smaller); its path. */
export async function makeTranscodeInput(dir: string, ffmpegPath: string): Promise<string> {
  const file = path.join(dir, 'bench-input.mp4');
  const spawner = createSpawner();
  try {
    const run = await spawner.run({
      binary: resolveFfmpegPath(ffmpegPath),
      args: ['-hide_banner', '-nostdin', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=640x480:rate=25:duration=8',
        '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100:duration=8', '-map', '0:v', '-map', '1:a',
        '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '23', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '96k', '-f', 'mp4', file],
      timeoutMs: 120_000, maxStdoutBytes: 1 << 20, maxStderrBytes: 16 << 10,
    });
    if (run.code !== 0) throw new Error(`making the bench input failed: ${run.stderr || run.spawnError}`);
  } finally {
    spawner.close();
  }
  return file;
}

/** Runs a round's bare and service sides, bare first in odd rounds and service first in even ones, so that neither always has the warmer host. */
export async function bareAndService<T>(round: number, bare: () => Promise<T>, service: () => Promise<T>): Promise<{ bare: T; service: T }> {
  if (round % 2 === 1) {
    const b = await bare();
    return { bare: b, service: await service() };
  }
  const s = await service();
  return { bare: await bare(), service: s };
}

/**
 * The default queue's MaxConcurrent is 10: when C is higher, raise it through
 * UpdateMediaQueue so the queue does not become the limit being measured.
 */
export async function fitQueueToConcurrency(bench: BenchService): Promise<void> {
  const concurrency = bench.config.concurrency;
  const listing = await bench.client.request('GET', '/queue');
  const queue = /<QueueId>(p[0-9a-f]{32})<\/QueueId>[\s\S]*?<MaxConcurrent>(\d+)<\/MaxConcurrent>/.exec(listing.text);
  if (listing.status !== 200 || !queue) throw new Error(`GET /queue answered ${listing.status}: ${listing.text.slice(0, 300)}`);
  if (Number(queue[2]) >= concurrency) return;
  const body = `<Request><Name>queue-default</Name><State>Active</State><MaxConcurrent>${concurrency}</MaxConcurrent></Request>`;
  const res = await bench.client.request('PUT', `/queue/${queue[1]}`, body);
  if (res.status !== 200) throw new Error(`PUT /queue/${queue[1]} answered ${res.status}: ${res.text.slice(0, 300)}`);
}

/** Runs `count` tasks with at most `concurrency` at once; task i gets its index. */
export async function runPool(count: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
}

// ---------------------------------------------------------------------------
// ffprobe, as the service runs it

/** The binary the service runs: MEDIAJOBS_FFPROBE_PATH, else the one shipped by ffprobe-static. */
export function ffprobeBinary(config: Config): string {
  return config.ffprobePath || bundledFfprobePath();
}

/**
 * The exact argument list `runFfprobe` (src/media/ffprobe.ts) passes for a
 * path without `%`: its own `ffprobeArgs`, with the input policy's options
 * (src/media/input-policy.ts) and `file:<absolute path>`.
 */
export function ffprobeArgs(filePath: string): string[] {
  const absolute = path.resolve(filePath);
  return runFfprobeArgs({ options: INPUT_OPTIONS, url: `file:${absolute}`, filePath: absolute });
}

/** Runs ffprobe once as the service does (no shell, through a Spawner, stdout and stderr drained); resolves with its stdout size. */
export async function spawnFfprobe(spawner: Spawner, binary: string, args: readonly string[]): Promise<number> {
  const run = await spawner.run({ binary, args, timeoutMs: 60_000, maxStdoutBytes: 10 * 1024 * 1024, maxStderrBytes: 4096 });
  if (run.code === 0 && run.stdout.length > 0) return run.stdout.length;
  throw new Error(`ffprobe exited ${run.code ?? run.signal ?? run.spawnError}: ${run.stderr.slice(0, 300)}`);
}

export interface BareRun {
  /** Wall time from the first spawn to the last exit. */
  readonly seconds: number;
  /** Spawn → close of each probe. */
  readonly perProbeMs: number[];
  /** Resident memory of the process that spawned the probes, MB. */
  readonly rssMb: number;
  /** CPU time (user + system) of the spawning Node process itself, ms per probe; ffprobe's own is not included. */
  readonly nodeCpuMsPerProbe: number;
}

/**
 * BENCH_SPAWNER=child: the MediaInfo benchmark spawns with Node's child_process
 * on both sides (the service's processors and the bare loop) even where the
 * vfork addon is built, which is how the two were compared (bench/README.md).
 */
export const BENCH_SPAWNER: 'child' | undefined = (() => {
  const value = process.env.BENCH_SPAWNER?.trim();
  if (!value) return undefined;
  if (value !== 'child') throw new Error(`BENCH_SPAWNER=${value}: expected child, or unset for the service's own choice`);
  return value;
})();

/** Runs ffprobe `jobs` times, `concurrency` at a time, from this process, with the spawner the service would use here (or BENCH_SPAWNER's). */
export async function bareProbes(binary: string, args: readonly string[], jobs: number, concurrency: number): Promise<BareRun> {
  const spawner = createSpawner(BENCH_SPAWNER);
  const perProbeMs: number[] = [];
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  await runPool(jobs, concurrency, async () => {
    const start = performance.now();
    await spawnFfprobe(spawner, binary, args);
    perProbeMs.push(performance.now() - start);
  });
  const seconds = (performance.now() - t0) / 1000;
  spawner.close();
  return { seconds, perProbeMs, rssMb: process.memoryUsage().rss / 1e6, nodeCpuMsPerProbe: cpuMs(process.cpuUsage(cpu)) / jobs };
}

export interface BareRequest {
  readonly binary: string;
  readonly args: readonly string[];
  readonly jobs: number;
  readonly concurrency: number;
  /** Probes run first and not counted, so that the loop is measured warm, as the service is. */
  readonly warmup: number;
}

/**
 * `bareProbes` in a fresh, small Node process (bench/ffprobe-loop): the bare
 * baseline, nothing in it but the loop and the spawner. (When the spawn addon
 * is not built, the spawner forks, and a fork's cost grows with the parent's
 * resident memory: from the service's own process it would not be "bare".)
 */
export function bareProbesInChild(request: BareRequest): Promise<BareRun> {
  const here = fileURLToPath(import.meta.url);
  // ffprobe-loop.ts under tsx (the loader is inherited through execArgv), ffprobe-loop.js when compiled.
  const entry = path.join(path.dirname(here), `ffprobe-loop${path.extname(here)}`);
  return new Promise((resolve, reject) => {
    const child = fork(entry, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: BareRun | undefined;
    child.once('message', (message) => { result = message as BareRun; });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (result) resolve(result);
      else reject(new Error(`${entry} exited ${code ?? signal} without a result`));
    });
    child.send(request);
  });
}

/** `ffprobe -version`'s first line. */
export function ffprobeVersion(binary: string): string {
  try {
    return execFileSync(binary, ['-version'], { encoding: 'utf8' }).split('\n')[0].trim();
  } catch (err) {
    return `unknown (${(err as Error).message})`;
  }
}

// ---------------------------------------------------------------------------
// Statistics

export interface Summary {
  readonly n: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/** Nearest-rank percentile of an ascending array: the smallest value with at least p% of the values at or below it. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1];
}

export function summarize(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    n: sorted.length,
    min: sorted[0] ?? NaN,
    mean: sorted.length ? sum / sorted.length : NaN,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? NaN,
  };
}

/** The middle value (the mean of the two middle values for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// ---------------------------------------------------------------------------
// Report

export const fmt = (value: number, digits = 2): string => (Number.isFinite(value) ? value.toFixed(digits) : String(value));

/** `min / mean / p50 / p90 / p99 / max` of a Summary, in ms. */
export function fmtSummary(s: Summary, digits = 2): string {
  return `p50 ${fmt(s.p50, digits)}  p90 ${fmt(s.p90, digits)}  p99 ${fmt(s.p99, digits)}  max ${fmt(s.max, digits)}  (min ${fmt(s.min, digits)}, mean ${fmt(s.mean, digits)}, n=${s.n})`;
}

/** Prints a titled block of `label: value` lines, labels aligned. */
export function printBlock(title: string, rows: ReadonlyArray<readonly [string, string]>): void {
  const width = Math.max(0, ...rows.map(([label]) => label.length));
  const lines = rows.map(([label, value]) => label === '' ? `  ${value}` : `  ${label.padEnd(width)}  ${value}`);
  const rule = '='.repeat(Math.max(title.length + 6, 72));
  console.log(`\n${rule}\n== ${title}\n${rule}\n${lines.join('\n')}`);
}

/** Prints a table; columns right-aligned except the first. */
export function printTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]) => '  ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}

/** Node, CPUs, database and ffprobe: what a reader needs to compare two runs. */
export async function environmentRows(bench: BenchService, db: ScratchDatabase): Promise<Array<[string, string]>> {
  const sql = await kyselySql();
  const cpus = os.cpus();
  const { rows } = await sql<{ v: string }>`SELECT version() AS v`.execute(bench.service.db.kysely);
  const version = rows[0].v.split(' on ')[0];
  return [
    ['node', `${process.version} (${process.platform}/${process.arch})`],
    ['CPUs', `${os.availableParallelism()} available (${cpus[0]?.model.trim() ?? 'unknown model'}); load avg ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`],
    ['database', `${db.kind === 'postgres' ? 'PostgreSQL server' : 'embedded PostgreSQL (the service\'s child process)'}: ${version}; scratch ${db.label}`],
    ['ffprobe', `${ffprobeVersion(ffprobeBinary(bench.config))} (${ffprobeBinary(bench.config)})`],
    ['service', `concurrency ${bench.config.concurrency}, poll interval ${bench.config.pollIntervalMs} ms, ${bench.baseUrl}`],
  ];
}

// ---------------------------------------------------------------------------
// Running a benchmark

/**
 * Runs `body` with a scratch database and cleans up afterwards (also on
 * Ctrl-C): the service is stopped, the database dropped, the data dir removed.
 * `body` registers its service with `use`.
 */
export async function runBenchmark(name: string, body: (db: ScratchDatabase, use: (bench: BenchService) => BenchService) => Promise<void>): Promise<void> {
  let db: ScratchDatabase | undefined;
  let bench: BenchService | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    cleaning ??= (async () => {
      if (bench) await bench.stop().catch((err: Error) => console.error(`stopping the service: ${err.message}`));
      if (db) await db.dispose().catch((err: Error) => console.error(`removing the scratch database ${db?.label}: ${err.message}`));
    })();
    return cleaning;
  };
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = true;
    console.error(`\n${name}: ${signal}, cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // Output piped into `head` and closed early must not kill the run before it drops its database.
  process.stdout.on('error', () => undefined);
  let failed = false;
  try {
    db = await scratchDatabase();
    await body(db, (started) => (bench = started));
  } catch (err) {
    failed = true;
    // After Ctrl-C, requests cut off by the shutdown fail; that is not news.
    if (!interrupted) console.error(`${name} failed:`, err);
  } finally {
    await cleanup();
  }
  // Exit explicitly: a stray keep-alive socket or timer must not leave `make bench` hanging.
  process.exit(failed ? 1 : 0);
}

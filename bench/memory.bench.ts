/**
 * Memory of the default setup: `mediajobs serve` on the embedded PostgreSQL,
 * as `make start` runs it, idle and under a MediaInfo load.
 *
 *   node dist/bench/memory.bench.js        (after tsc -p tsconfig.json)
 *   npx tsx bench/memory.bench.ts
 *
 * Starts `node dist/src/cli.js serve` (or src/cli.ts through tsx when run from
 * source) as a child process on a fresh data dir with DATABASE_URL unset, so
 * the service starts its own PostgreSQL, and sums the proportional set size
 * (PSS, from /proc/<pid>/smaps_rollup) of the service and of its PostgreSQL:
 * the postmaster and every process it forked. PSS shares each shared page
 * among the processes mapping it, so the sum counts PostgreSQL's shared
 * buffers and the binaries' pages once. The tools a job runs (ffprobe) are
 * not counted: they are the job's, and live for milliseconds.
 *
 * - start: from spawn to the API's banner, on a fresh data dir (initdb
 *   included) and again on the existing one.
 * - idle: BENCH_IDLE_MS (15 s, past the pool's 10 s idle timeout) after the
 *   start and a first job, the service doing nothing.
 * - MediaInfo load: BENCH_JOBS (3000) MediaInfo jobs of fixtures/media/h264-aac.mp4
 *   submitted over loopback HTTP by BENCH_SUBMITTERS (8) clients, as the
 *   MediaInfo benchmark does; PSS sampled every 250 ms until every job ended:
 *   the peak is printed.
 *
 * Targets (issue 15): idle ≤ 200 MB, under the MediaInfo load ≤ 400 MB.
 * Linux only (/proc).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const fromSource = import.meta.url.endsWith('.ts');
const repoRoot = path.resolve(here, fromSource ? '..' : '../..');
const cli = fromSource ? path.join(repoRoot, 'src', 'cli.ts') : path.join(repoRoot, 'dist', 'src', 'cli.js');

const env = (name: string, fallback: number) => {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  if (!/^\d+$/.test(raw)) throw new Error(`${name}=${raw}: expected a whole number`);
  return Number(raw);
};
const JOBS = env('BENCH_JOBS', 3000);
const SUBMITTERS = env('BENCH_SUBMITTERS', 8);
const IDLE_MS = env('BENCH_IDLE_MS', 15_000);
const IDLE_TARGET_MB = 200;
const LOAD_TARGET_MB = 400;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function pssKb(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** The processes whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) children.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return children;
}

interface Sample {
  readonly serviceMb: number;
  readonly postgresMb: number;
  readonly postgresProcesses: number;
  readonly totalMb: number;
}

function sample(servicePid: number, dataDir: string): Sample {
  const postmaster = Number(readFileSync(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
  const backends = childrenOf(postmaster);
  const serviceKb = pssKb(servicePid);
  const postgresKb = [postmaster, ...backends].reduce((sum, pid) => sum + pssKb(pid), 0);
  return { serviceMb: serviceKb / 1024, postgresMb: postgresKb / 1024, postgresProcesses: 1 + backends.length, totalMb: (serviceKb + postgresKb) / 1024 };
}

interface Serve {
  readonly child: ChildProcess;
  readonly base: string;
  readonly startMs: number;
  stop(): Promise<void>;
}

function startServe(dataDir: string): Promise<Serve> {
  const started = performance.now();
  const child = spawn(process.execPath, [...(fromSource ? ['--import', 'tsx'] : []), cli, 'serve'], {
    cwd: repoRoot,
    env: { ...process.env, DATABASE_URL: '', MEDIAJOBS_DATA_DIR: dataDir, MEDIAJOBS_PORT: '0', MEDIAJOBS_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const banner = /mediajobs listening on (http:\/\/\S+)/.exec(output);
      if (!banner) return;
      child.stdout!.off('data', onData);
      child.stdout!.resume();
      resolve({
        child,
        base: banner[1],
        startMs: performance.now() - started,
        async stop() {
          child.kill('SIGTERM');
          await exited;
        },
      });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    void exited.then(() => reject(new Error(`serve exited:\n${output}`)));
  });
}

async function post(base: string, body: string): Promise<string> {
  const res = await fetch(`${base}/jobs`, { method: 'POST', body });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST /jobs: ${res.status} ${text}`);
  return /<JobId>(\w+)<\/JobId>/.exec(text)![1];
}

async function state(base: string, jobId: string): Promise<string> {
  const text = await (await fetch(`${base}/jobs/${jobId}`)).text();
  return /<State>(\w+)<\/State>/.exec(text)?.[1] ?? '';
}

const fmt = (mb: number) => `${mb.toFixed(1)} MB`;
const describeSample = (s: Sample) => `${fmt(s.totalMb)}  (service ${fmt(s.serviceMb)}, PostgreSQL ${fmt(s.postgresMb)} in ${s.postgresProcesses} processes)`;

async function main(): Promise<void> {
  if (process.platform !== 'linux') throw new Error('memory.bench reads /proc: Linux only');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run make build first`);
  const root = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-memory-'));
  // As root the embedded server runs as the postgres user, which must be able to enter the data dir.
  chmodSync(root, 0o755);
  const dataDir = path.join(root, 'data');
  const rows: Array<[string, string]> = [];
  let serve: Serve | undefined;
  try {
    serve = await startServe(dataDir);
    rows.push(['start, fresh data dir (initdb included)', `${serve.startMs.toFixed(0)} ms`]);
    await serve.stop();
    serve = await startServe(dataDir);
    rows.push(['start, existing data dir', `${serve.startMs.toFixed(0)} ms`]);

    const body = '<Request><Tag>MediaInfo</Tag><Input><Object>bench/h264-aac.mp4</Object></Input></Request>';
    mkdirSync(path.join(dataDir, 'buckets', 'local-1250000000', 'bench'), { recursive: true });
    copyFileSync(path.join(repoRoot, 'fixtures', 'media', 'h264-aac.mp4'), path.join(dataDir, 'buckets', 'local-1250000000', 'bench', 'h264-aac.mp4'));
    const first = await post(serve.base, body);
    while (!['Success', 'Failed'].includes(await state(serve.base, first))) await sleep(50);
    await sleep(IDLE_MS);
    const idle = sample(serve.child.pid!, dataDir);
    rows.push([`idle (${IDLE_MS / 1000} s after a first job)`, describeSample(idle)]);

    let peak = idle;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const now = sample(serve!.child.pid!, dataDir);
        if (now.totalMb > peak.totalMb) peak = now;
        await sleep(250);
      }
    })();
    const started = performance.now();
    let next = 0;
    const ids: string[] = [];
    await Promise.all(Array.from({ length: SUBMITTERS }, async () => {
      while (next < JOBS) {
        next++;
        ids.push(await post(serve!.base, body));
      }
    }));
    // The last job submitted is among the last to end (first in, first out within a priority).
    for (const id of ids.slice(-SUBMITTERS)) {
      while (!['Success', 'Failed'].includes(await state(serve.base, id))) await sleep(100);
    }
    const seconds = (performance.now() - started) / 1000;
    sampling = false;
    await sampler;
    rows.push([`under MediaInfo load (${JOBS} jobs, ${SUBMITTERS} clients, ${(JOBS / seconds).toFixed(0)} jobs/s), peak`, describeSample(peak)]);
    rows.push(['targets', `idle ≤ ${IDLE_TARGET_MB} MB: ${idle.totalMb <= IDLE_TARGET_MB ? 'met' : 'MISSED'}; under load ≤ ${LOAD_TARGET_MB} MB: ${peak.totalMb <= LOAD_TARGET_MB ? 'met' : 'MISSED'}`]);
  } finally {
    await serve?.stop();
    rmSync(root, { recursive: true, force: true });
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\nMemory of \`mediajobs serve\` on the embedded PostgreSQL (PSS, service + PostgreSQL)\n${rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`memory.bench: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});

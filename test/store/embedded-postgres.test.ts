import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import pg from 'pg';

/*
 * The embedded default (src/store/embedded-postgres.ts) with real processes:
 * `mediajobs serve`, `worker` and `migrate` on one data dir, DATABASE_URL unset.
 */

const FIXTURE = path.resolve('fixtures/media/h264-aac.mp4');
const BUCKET_DIR = ['buckets', 'local-1250000000'];
const asRoot = process.getuid?.() === 0;
const hasSetpriv = ['/usr/bin/setpriv', '/bin/setpriv'].some((p) => existsSync(p));

interface CliProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The API's base URL, for `serve`. */
  readonly base: string;
  output(): string;
  /** Sends the signal and waits for the exit; resolves with the exit code or signal. */
  stop(signal?: NodeJS.Signals): Promise<string>;
}

/** `mediajobs <command>` on `dataDir`, resolved once it serves (serve), has started its worker (worker) or has exited (migrate). */
function startCli(command: 'serve' | 'worker' | 'migrate', dataDir: string, env: Record<string, string> = {}): Promise<CliProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', command], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', MEDIAJOBS_DATA_DIR: dataDir, MEDIAJOBS_PORT: '0', MEDIAJOBS_LOG_LEVEL: 'info', MEDIAJOBS_POLL_INTERVAL: '200ms', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(String(signal ?? code))));
  const handle = (base: string): CliProcess => ({
    child,
    pid: child.pid!,
    base,
    output: () => output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} did not start:\n${output}`)), 40_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const listening = /mediajobs listening on (http:\/\/\S+)/.exec(output);
      if ((command === 'serve' && listening) || (command === 'worker' && output.includes('worker started'))) {
        clearTimeout(timer);
        resolve(handle(listening?.[1] ?? ''));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((how) => {
      clearTimeout(timer);
      if (command === 'migrate' && how === '0') resolve(handle(''));
      else reject(new Error(`${command} exited with ${how}:\n${output}`));
    });
  });
}

function postmasterPid(dataDir: string): number {
  return Number(readFileSync(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (killed, not yet reaped) counts as gone.
  return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let value: T | undefined | false;
    try {
      value = probe();
    } catch {
      value = undefined;
    }
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Submits a MediaInfo job of the fixture, unsigned, and returns its JobId. */
async function submitMediaInfo(api: CliProcess, dataDir: string): Promise<string> {
  mkdirSync(path.join(dataDir, ...BUCKET_DIR, 'input'), { recursive: true });
  copyFileSync(FIXTURE, path.join(dataDir, ...BUCKET_DIR, 'input', 'demo.mp4'));
  const res = await fetch(`${api.base}/jobs`, { method: 'POST', body: '<Request><Tag>MediaInfo</Tag><Input><Object>input/demo.mp4</Object></Input></Request>' });
  const text = await res.text();
  expect(res.status, text).to.equal(200);
  return /<JobId>(\w+)<\/JobId>/.exec(text)![1];
}

async function jobState(api: CliProcess, jobId: string): Promise<string> {
  const text = await (await fetch(`${api.base}/jobs/${jobId}`)).text();
  return /<State>(\w+)<\/State>/.exec(text)?.[1] ?? text;
}

async function waitForState(api: CliProcess, jobId: string, state: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  let last = '';
  while ((last = await jobState(api, jobId)) !== state) {
    if (Date.now() > deadline) throw new Error(`job ${jobId} is ${last}, not ${state}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('embedded PostgreSQL (real processes)', function () {
  this.timeout(90_000);
  let root: string;
  let dataDir: string;
  const started: CliProcess[] = [];

  const cli = async (command: 'serve' | 'worker' | 'migrate', env?: Record<string, string>, dir = dataDir) => {
    const proc = await startCli(command, dir, env);
    started.push(proc);
    return proc;
  };

  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-embedded-'));
    chmodSync(root, 0o755);
    dataDir = path.join(root, 'data');
  });

  afterEach(async () => {
    for (const proc of started.splice(0)) await proc.stop('SIGKILL');
    // A server whose owner was killed shuts down on its own (parent-death signal); wait for it.
    const pidFile = path.join(dataDir, 'pg', 'postmaster.pid');
    if (existsSync(pidFile)) {
      const pid = postmasterPid(dataDir);
      await waitFor('the server to stop', () => !alive(pid)).catch(() => process.kill(pid, 'SIGQUIT'));
    }
    rmSync(root, { recursive: true, force: true });
  });

  it('runs PostgreSQL as the child of serve on a Unix socket in the data dir, password in a 0600 file, and stops it with serve', async () => {
    const serve = await cli('serve', { MEDIAJOBS_WORKERS: '0' });
    const pid = postmasterPid(dataDir);
    expect(parentOf(pid), 'the server is the service\'s child').to.equal(serve.pid);
    if (asRoot) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
      expect(readFileSync(`/proc/${pid}/status`, 'utf8')).to.match(new RegExp(`^Uid:\\s+${uid}\\s`, 'm'));
    }
    const passwordFile = path.join(dataDir, 'pg', 'mediajobs.password');
    expect(statSync(passwordFile).mode & 0o777).to.equal(0o600);
    expect(statSync(path.join(dataDir, 'pg', '.s.PGSQL.5432')).isSocket()).to.equal(true);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).to.include('listen_addresses=\0');

    const password = readFileSync(passwordFile, 'utf8').trim();
    const connect = async (pw: string) => {
      const client = new pg.Client({ host: path.join(dataDir, 'pg'), port: 5432, user: 'postgres', password: pw, database: 'postgres' });
      await client.connect();
      try {
        return (await client.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations')).rows[0].n;
      } finally {
        await client.end();
      }
    };
    expect(await connect(password)).to.be.greaterThan(0);
    const wrong = await connect('not-the-password').then(() => undefined, (err: Error) => err.message);
    expect(wrong).to.match(/password authentication failed/);

    expect(await serve.stop('SIGTERM')).to.equal('0');
    expect(alive(pid)).to.equal(false);
    expect(existsSync(path.join(dataDir, 'pg', 'postmaster.pid'))).to.equal(false);
    expect(existsSync(path.join(dataDir, 'pg', '.s.PGSQL.5432'))).to.equal(false);
  });

  it('lets a worker on the same data dir join the server and run jobs; when serve exits the worker starts the server again, and a kill -9 of that worker stops it', async () => {
    const serve = await cli('serve', { MEDIAJOBS_WORKERS: '0' });
    const pid = postmasterPid(dataDir);
    const worker = await cli('worker');
    expect(worker.output()).to.include('joined the embedded PostgreSQL another process runs');
    expect(postmasterPid(dataDir), 'one server').to.equal(pid);
    const jobId = await submitMediaInfo(serve, dataDir);
    await waitForState(serve, jobId, 'Success');

    expect(await serve.stop('SIGTERM')).to.equal('0');
    const next = await waitFor('the worker to start the server again', () => {
      const p = postmasterPid(dataDir);
      return p !== pid && alive(p) && parentOf(p) === worker.pid && p;
    });
    // The worker still takes jobs: a new serve joins the worker's server and its job runs.
    const serve2 = await cli('serve', { MEDIAJOBS_WORKERS: '0' });
    expect(serve2.output()).to.include('joined, another process runs it');
    await waitForState(serve2, await submitMediaInfo(serve2, dataDir), 'Success');
    await serve2.stop('SIGTERM');

    if (!hasSetpriv) return;
    await worker.stop('SIGKILL');
    await waitFor('the killed owner\'s server to shut down', () => !alive(next), 10_000);
  });

  it('gives two processes started at once on a fresh data dir one server: one starts it, the other joins', async () => {
    const [serve, worker] = await Promise.all([cli('serve', { MEDIAJOBS_WORKERS: '0' }), cli('worker')]);
    const owner = parentOf(postmasterPid(dataDir));
    expect([serve.pid, worker.pid]).to.include(owner);
    const joiner = owner === serve.pid ? worker : serve;
    expect(joiner.output()).to.match(/joined the embedded PostgreSQL another process runs/);
    await waitForState(serve, await submitMediaInfo(serve, dataDir), 'Success');
  });

  it('refuses a data dir whose pg/ it did not make (PGlite files of an older mediajobs), saying what to do', async () => {
    mkdirSync(path.join(dataDir, 'pg'), { recursive: true });
    writeFileSync(path.join(dataDir, 'pg', 'PG_VERSION'), '17\n');
    const failure = await cli('migrate').then(() => 'started', (err: Error) => err.message);
    expect(failure).to.match(/exited with 1/).and.to.match(/move it away to start afresh, or set DATABASE_URL/);
  });

  it('starts again after a kill -9 of the service and its server: stale postmaster.pid (its pid since reused) and socket, jobs kept', async () => {
    const serve = await cli('serve', { MEDIAJOBS_WORKERS: '0' });
    const jobId = await submitMediaInfo(serve, dataDir);
    const pid = postmasterPid(dataDir);
    process.kill(pid, 'SIGKILL');
    await serve.stop('SIGKILL');
    await waitFor('the server to die', () => !alive(pid));
    expect(existsSync(path.join(dataDir, 'pg', 'postmaster.pid'))).to.equal(true);
    expect(existsSync(path.join(dataDir, 'pg', '.s.PGSQL.5432'))).to.equal(true);
    // The stale pid now names another live process, as after a reboot.
    const squatter = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const pidFile = path.join(dataDir, 'pg', 'postmaster.pid');
      writeFileSync(pidFile, readFileSync(pidFile, 'utf8').replace(/^\d+/, String(squatter.pid)));
      const again = await cli('serve');
      expect(alive(postmasterPid(dataDir))).to.equal(true);
      expect(parentOf(postmasterPid(dataDir))).to.equal(again.pid);
      await waitForState(again, jobId, 'Success');
    } finally {
      squatter.kill('SIGKILL');
    }
  });

  it('listens on 127.0.0.1, on a port kept in the data dir, where the socket path would be too long', async () => {
    const deep = path.join(root, 'd'.repeat(60), 'e'.repeat(60));
    await cli('migrate', {}, deep);
    const port = Number(readFileSync(path.join(deep, 'pg', 'mediajobs.port'), 'utf8'));
    expect(port).to.be.within(1024, 65535);
    expect(readFileSync(path.join(deep, 'pg', 'server.log'), 'utf8')).to.include(`listening on IPv4 address "127.0.0.1", port ${port}`);
    expect(existsSync(path.join(deep, 'pg', 'postmaster.pid')), 'migrate stopped its server').to.equal(false);
    await cli('migrate', {}, deep);
    expect(readFileSync(path.join(deep, 'pg', 'server.log'), 'utf8').split(`port ${port}`).length - 1, 'the same port again').to.equal(2);
  });
});

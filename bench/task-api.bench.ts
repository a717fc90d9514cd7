/**
 * The task API end to end: no-op tasks created over HTTP and drained by
 * external workers over HTTP (create_task → get_next_task → complete_task).
 *
 *   DATABASE_URL=postgres://… npx tsx bench/task-api.bench.ts
 *   node dist/bench/task-api.bench.js   (after tsc -p tsconfig.json)
 *
 * One process runs the service (API only: no internal worker, so nothing but
 * the task API touches the queue) on a scratch database; a second process
 * (this file, forked) runs the producers and BENCH_WORKERS external workers,
 * over loopback HTTP/1.1 with keep-alive, so that the service's CPU per task
 * is measured apart from its clients'. The clients are lean: one socket per
 * producer or worker, a request written as one string, the answer read by
 * Content-Length (no http.Agent, no library). BENCH_CLIENTS=inprocess runs
 * them in the service's process instead (the figures up to 2026-12-07 were
 * taken so, with node's http.Agent).
 *
 * 1. Drain: BENCH_PRODUCERS producers create BENCH_TASKS tasks as fast as
 *    they are answered while the workers poll (`wait` 5 s) and complete each
 *    task at once. Printed: tasks/s from the first create to the last
 *    complete; the round trip of get_next_task calls that got a task; per
 *    task, its create's answer → its hand-out (client clock, including the
 *    wait behind the backlog), p50/p99. A warm-up round of
 *    BENCH_WARMUP tasks runs first and is not counted.
 * 2. Long-poll wake-up: one worker waits (`wait` 10 s) on an idle service;
 *    a task is created; the time from sending create_task to the worker's
 *    answer, BENCH_WAKEUPS times. Goal: p50 ≤ 10 ms.
 *
 * CPU per task of the measured drain (step 1, warm-up excluded): the
 * service's process, the clients' process, and the PostgreSQL backends of
 * the scratch database (from /proc; the server's shared processes, the WAL
 * writer among them, are not counted).
 *
 * Settings: BENCH_TASKS (3000), BENCH_WARMUP (500), BENCH_WORKERS (8),
 * BENCH_PRODUCERS (4), BENCH_WAKEUPS (50), BENCH_CLIENTS (process |
 * inprocess), BENCH_PROFILE (a file: the service's CPU profile of the
 * measured drain, for Chrome DevTools or `node --cpu-prof` tooling). Goal: ≥ 1,500 tasks/s on the 2-core development machine.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import net from 'node:net';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { sql } from 'kysely';
import { loadConfig } from '../src/config.js';
import { startService, type Service } from '../src/main.js';
import { envInt, fmt, fmtSummary, printBlock, scratchDatabase, sleep, summarize } from './lib.js';

const TASKS = envInt('BENCH_TASKS', 3000);
const WARMUP = envInt('BENCH_WARMUP', 500, 0);
const WORKERS = envInt('BENCH_WORKERS', 8);
const PRODUCERS = envInt('BENCH_PRODUCERS', 4);
const WAKEUPS = envInt('BENCH_WAKEUPS', 50);
const IN_PROCESS = process.env.BENCH_CLIENTS === 'inprocess';
const IS_CLIENT = process.env.BENCH_ROLE === 'clients';

interface Envelope {
  code: number;
  msg: string;
  data: any;
}

/**
 * One keep-alive HTTP/1.1 connection used by one loop, one request at a time:
 * the request is written as one string and the answer read by its
 * Content-Length. Anything but 200 rejects.
 */
class Connection {
  private readonly socket: net.Socket;
  private buffered: Buffer = Buffer.alloc(0);
  private pending: { action: string; resolve(e: Envelope): void; reject(err: unknown): void } | undefined;
  private readonly ready: Promise<void>;

  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    this.socket.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
      this.parse();
    });
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => this.fail(new Error('the service closed the connection')));
  }

  private fail(err: unknown): void {
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(err);
  }

  private parse(): void {
    const end = this.buffered.indexOf('\r\n\r\n');
    if (end < 0 || !this.pending) return;
    const head = this.buffered.toString('latin1', 0, end);
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (!length) return this.fail(new Error(`an answer without Content-Length: ${head}`));
    const total = end + 4 + Number(length[1]);
    if (this.buffered.length < total) return;
    const body = this.buffered.toString('utf8', end + 4, total);
    this.buffered = this.buffered.subarray(total);
    const { action, resolve, reject } = this.pending;
    this.pending = undefined;
    const status = Number(head.slice(9, 12));
    try {
      const parsed = JSON.parse(body) as Envelope;
      if (status !== 200) reject(new Error(`${action}: ${status} ${parsed.msg}`));
      else resolve(parsed);
    } catch (err) {
      reject(err);
    }
  }

  async post(action: string, body: unknown): Promise<Envelope> {
    await this.ready;
    const text = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      this.pending = { action, resolve, reject };
      this.socket.write(`POST /api.php?action=${action} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
    });
  }

  close(): void {
    this.socket.removeAllListeners('close');
    this.socket.destroy();
  }
}

interface DrainFigures {
  seconds: number;
  handOut: number[];
  roundTrip: number[];
}

/** Creates `count` tasks with PRODUCERS concurrent producers and drains them with WORKERS workers; returns the figures. */
async function drain(port: number, appKey: string, taskType: string, count: number): Promise<DrainFigures> {
  const connections: Connection[] = [];
  const connect = () => {
    const connection = new Connection(port);
    connections.push(connection);
    return connection;
  };
  const createdAt = new Map<number, number>();
  const handOut: number[] = [];
  const roundTrip: number[] = [];
  let lastCompleted = 0;
  let created = 0;
  let completed = 0;
  const started = performance.now();
  const producer = async () => {
    const connection = connect();
    while (created < count) {
      created++;
      const answer = await connection.post('create_task', { app_key: appKey, task_type: taskType, task_data: { n: created } });
      createdAt.set(answer.data.task_id as number, performance.now());
    }
  };
  const worker = async (name: string) => {
    const connection = connect();
    while (completed < count) {
      const asked = performance.now();
      const answer = await connection.post('get_next_task', { app_key: appKey, worker_id: name, task_types: [taskType], wait: 5 });
      if (answer.code !== 1) continue;
      roundTrip.push(performance.now() - asked);
      const id = answer.data.id as number;
      const at = createdAt.get(id);
      if (at !== undefined) handOut.push(performance.now() - at);
      await connection.post('complete_task', { app_key: appKey, task_id: id, worker_id: name, result: { ok: true } });
      completed++;
      lastCompleted = performance.now();
    }
  };
  try {
    await Promise.all([
      ...Array.from({ length: PRODUCERS }, () => producer()),
      ...Array.from({ length: WORKERS }, (_, i) => worker(`bench-${i}`)),
    ]);
  } finally {
    // The workers' last long polls are still waiting when the work is done; they are not the service's time.
    for (const connection of connections) connection.close();
  }
  return { seconds: (lastCompleted - started) / 1000, handOut, roundTrip };
}

async function wakeups(port: number, appKey: string, count: number): Promise<number[]> {
  const poller = new Connection(port);
  const producer = new Connection(port);
  const latencies: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const waiting = poller.post('get_next_task', { app_key: appKey, worker_id: 'long-poller', task_types: ['wake'], wait: 10 });
      await sleep(30);
      const sent = performance.now();
      const created = await producer.post('create_task', { app_key: appKey, task_type: 'wake' });
      const answer = await waiting;
      latencies.push(performance.now() - sent);
      if (answer.data?.id !== created.data.task_id) throw new Error('the long poll got another task');
      await producer.post('complete_task', { app_key: appKey, task_id: created.data.task_id });
    }
  } finally {
    poller.close();
    producer.close();
  }
  return latencies;
}

/** What the clients report; `mark` is called when the measured drain starts and ends. */
interface ClientFigures extends DrainFigures {
  wake: number[];
  /** CPU of the clients' process during the measured drain, ms. */
  cpuMs: number;
}

async function clients(port: number, appKey: string, mark: (at: 'start' | 'end') => Promise<void>): Promise<ClientFigures> {
  if (WARMUP > 0) await drain(port, appKey, 'warmup', WARMUP);
  await mark('start');
  const cpuBefore = process.cpuUsage();
  const run = await drain(port, appKey, 'noop', TASKS);
  const cpu = process.cpuUsage(cpuBefore);
  await mark('end');
  const wake = await wakeups(port, appKey, WAKEUPS);
  return { ...run, wake, cpuMs: (cpu.user + cpu.system) / 1000 };
}

/** The clients' process: told the port and app_key, reports each mark and then its figures. */
function clientMain(): void {
  process.once('message', (job: { port: number; appKey: string }) => {
    const mark = (at: 'start' | 'end') => new Promise<void>((resolve) => {
      process.once('message', () => resolve());
      process.send!({ mark: at });
    });
    clients(job.port, job.appKey, mark).then(
      (figures) => process.send!({ figures }, () => process.exit(0)),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  });
}

function clientsInChild(port: number, appKey: string, mark: (at: 'start' | 'end') => Promise<void>): Promise<ClientFigures> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [], { env: { ...process.env, BENCH_ROLE: 'clients' } });
  return new Promise((resolve, reject) => {
    child.on('message', (message: { mark?: 'start' | 'end'; figures?: ClientFigures }) => {
      if (message.mark) void mark(message.mark).then(() => child.send({}));
      if (message.figures) resolve(message.figures);
    });
    child.once('exit', (code) => reject(new Error(`the clients' process exited with ${code}`)));
    child.once('error', reject);
    child.send({ port, appKey });
  });
}

const TICK_MS = 10; // /proc/<pid>/stat counts CPU in clock ticks (USER_HZ, 100 on Linux)

/** CPU so far (ms) of each PostgreSQL backend serving the scratch database. */
async function backendCpu(service: Service): Promise<Map<number, number>> {
  const { rows } = await sql<{ pid: number }>`SELECT pid FROM pg_stat_activity WHERE datname = current_database()`.execute(service.db.kysely);
  const cpu = new Map<number, number>();
  for (const { pid } of rows) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      cpu.set(pid, (Number(fields[11]) + Number(fields[12])) * TICK_MS);
    } catch {
      // Not on this machine (a remote server), or gone.
    }
  }
  return cpu;
}

function backendCpuSpent(before: Map<number, number>, after: Map<number, number>): number | undefined {
  if (after.size === 0) return undefined;
  let total = 0;
  for (const [pid, ms] of after) total += ms - (before.get(pid) ?? 0);
  return total;
}

async function main(): Promise<void> {
  const db = await scratchDatabase();
  const config = loadConfig({
    MEDIAJOBS_PORT: '0',
    MEDIAJOBS_HOST: '127.0.0.1',
    MEDIAJOBS_DATA_DIR: db.dataDir,
    DATABASE_URL: db.databaseUrl,
    MEDIAJOBS_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'silent',
  });
  const service = await startService(config, { api: true, worker: false, logger: pino({ level: config.logLevel }) });
  const port = service.port!;
  const appKey = service.app.appKey;
  try {
    // Room for every worker at once in the default queue (MaxConcurrent defaults to 10).
    const setup = new Connection(port);
    await setup.post('create_task', { app_key: appKey, task_type: 'setup' });
    setup.close();
    await service.db.kysely.updateTable('queues').set({ max_concurrent: Math.max(10, WORKERS * 2) }).execute();
    let serviceCpu = { user: 0, system: 0 };
    let pgBefore = new Map<number, number>();
    let pgAfter = new Map<number, number>();
    const profileFile = process.env.BENCH_PROFILE;
    const profiler = profileFile ? new Session() : undefined;
    const mark = async (at: 'start' | 'end') => {
      if (at === 'start') {
        if (profiler) {
          profiler.connect();
          await profiler.post('Profiler.enable');
          await profiler.post('Profiler.start');
        }
        pgBefore = await backendCpu(service);
        serviceCpu = process.cpuUsage();
      } else {
        serviceCpu = process.cpuUsage(serviceCpu);
        pgAfter = await backendCpu(service);
        if (profiler) {
          const { profile } = await profiler.post('Profiler.stop');
          writeFileSync(profileFile!, JSON.stringify(profile));
          profiler.disconnect();
        }
      }
    };
    const { wake, cpuMs: clientCpuMs, ...run } = IN_PROCESS ? await clients(port, appKey, mark) : await clientsInChild(port, appKey, mark);
    const serviceCpuMs = (serviceCpu.user + serviceCpu.system) / 1000;
    const pgCpuMs = backendCpuSpent(pgBefore, pgAfter);
    const perTask = (ms: number) => fmt(ms / TASKS, 3);
    const handOut = summarize(run.handOut);
    const wakeSummary = summarize(wake);
    printBlock('task API: create → get_next_task → complete_task over HTTP', [
      ['database', `${db.kind} (${db.label})`],
      ['tasks', `${TASKS} (after ${WARMUP} warm-up), ${PRODUCERS} producers, ${WORKERS} workers, clients ${IN_PROCESS ? 'in the service\'s process' : 'in a process of their own'}`],
      ['throughput', `${fmt(TASKS / run.seconds, 0)} tasks/s end to end (${fmt(run.seconds, 2)} s; goal ≥ 1500)`],
      ['get_next_task ms', `${fmtSummary(summarize(run.roundTrip))} (round trip of a call that got a task)`],
      ['create → hand-out ms', `${fmtSummary(handOut)} (includes the wait behind the backlog when producers outrun the workers)`],
      ['CPU ms per task', IN_PROCESS
        ? `service + clients ${perTask(serviceCpuMs)} (one process), PostgreSQL backends ${pgCpuMs === undefined ? '?' : perTask(pgCpuMs)}`
        : `service ${perTask(serviceCpuMs)}, clients ${perTask(clientCpuMs)}, PostgreSQL backends ${pgCpuMs === undefined ? '?' : perTask(pgCpuMs)} (measured drain only)`],
      ['load average', `${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (other work on the machine shows in every figure)`],
      ['long-poll wake-up ms', `${fmtSummary(wakeSummary)} (goal p50 ≤ 10)`],
    ]);
  } finally {
    await service.stop();
    await db.dispose();
  }
}

if (IS_CLIENT) {
  clientMain();
} else {
  main().then(() => process.exit(0), (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}

/**
 * The task API end to end: no-op tasks created over HTTP and drained by
 * external workers over HTTP (create_task → get_next_task → complete_task).
 *
 *   DATABASE_URL=postgres://… npx tsx bench/task-api.bench.ts
 *   node dist/bench/task-api.bench.js   (after tsc -p tsconfig.json)
 *
 * One process runs the service (API only: no internal worker, so nothing but
 * the task API touches the queue) on a scratch database, and the producers
 * and BENCH_WORKERS external workers, all over loopback HTTP with keep-alive.
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
 * Settings: BENCH_TASKS (3000), BENCH_WARMUP (500), BENCH_WORKERS (8),
 * BENCH_PRODUCERS (4), BENCH_WAKEUPS (50). Goal: ≥ 1,500 tasks/s on the
 * 2-core development machine.
 */
import http from 'node:http';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { startService } from '../src/main.js';
import { envInt, fmt, fmtSummary, printBlock, scratchDatabase, sleep, summarize } from './lib.js';

const TASKS = envInt('BENCH_TASKS', 3000);
const WARMUP = envInt('BENCH_WARMUP', 500, 0);
const WORKERS = envInt('BENCH_WORKERS', 8);
const PRODUCERS = envInt('BENCH_PRODUCERS', 4);
const WAKEUPS = envInt('BENCH_WAKEUPS', 50);

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

interface Envelope {
  code: number;
  msg: string;
  data: any;
}

function post(port: number, action: string, body: unknown): Promise<Envelope> {
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: `/api.php?action=${action}`, agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Envelope;
        if (res.statusCode !== 200) reject(new Error(`${action}: ${res.statusCode} ${parsed.msg}`));
        else resolve(parsed);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(text);
  });
}

/** Creates `count` tasks with `producers` concurrent producers and drains them with `workers`; returns the figures. */
async function drain(port: number, appKey: string, taskType: string, count: number): Promise<{ seconds: number; handOut: number[]; roundTrip: number[] }> {
  const createdAt = new Map<number, number>();
  const handOut: number[] = [];
  const roundTrip: number[] = [];
  let lastCompleted = 0;
  let created = 0;
  let completed = 0;
  const started = performance.now();
  const producer = async () => {
    while (created < count) {
      created++;
      const answer = await post(port, 'create_task', { app_key: appKey, task_type: taskType, task_data: { n: created } });
      createdAt.set(answer.data.task_id as number, performance.now());
    }
  };
  const worker = async (name: string) => {
    while (completed < count) {
      const asked = performance.now();
      const answer = await post(port, 'get_next_task', { app_key: appKey, worker_id: name, task_types: [taskType], wait: 5 });
      if (answer.code !== 1) continue;
      roundTrip.push(performance.now() - asked);
      const id = answer.data.id as number;
      const at = createdAt.get(id);
      if (at !== undefined) handOut.push(performance.now() - at);
      await post(port, 'complete_task', { app_key: appKey, task_id: id, worker_id: name, result: { ok: true } });
      completed++;
      lastCompleted = performance.now();
    }
  };
  await Promise.all([
    ...Array.from({ length: PRODUCERS }, () => producer()),
    ...Array.from({ length: WORKERS }, (_, i) => worker(`bench-${i}`)),
  ]);
  // Until the last complete_task: the workers' last long polls, still waiting when the work is done, are not the service's time.
  return { seconds: (lastCompleted - started) / 1000, handOut, roundTrip };
}

async function wakeups(port: number, appKey: string, count: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const waiting = post(port, 'get_next_task', { app_key: appKey, worker_id: 'long-poller', task_types: ['wake'], wait: 10 });
    await sleep(30);
    const sent = performance.now();
    const created = await post(port, 'create_task', { app_key: appKey, task_type: 'wake' });
    const answer = await waiting;
    latencies.push(performance.now() - sent);
    if (answer.data?.id !== created.data.task_id) throw new Error('the long poll got another task');
    await post(port, 'complete_task', { app_key: appKey, task_id: created.data.task_id });
  }
  return latencies;
}

interface ClientJob {
  readonly port: number;
  readonly appKey: string;
}

/**
 * The producers and workers, in the service's process (their CPU counts in
 * `process CPU`). A second process for them was tried on the 2-core machine:
 * no better beyond the run-to-run noise, which the other work on the
 * machine makes large (see `load average`).
 */
async function clients({ port, appKey }: ClientJob): Promise<{ seconds: number; handOut: number[]; roundTrip: number[]; wake: number[] }> {
  if (WARMUP > 0) await drain(port, appKey, 'warmup', WARMUP);
  const run = await drain(port, appKey, 'noop', TASKS);
  const wake = await wakeups(port, appKey, WAKEUPS);
  agent.destroy();
  return { ...run, wake };
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
    await post(port, 'create_task', { app_key: appKey, task_type: 'setup' });
    await service.db.kysely.updateTable('queues').set({ max_concurrent: Math.max(10, WORKERS * 2) }).execute();
    const cpuBefore = process.cpuUsage();
    const { wake, ...run } = await clients({ port, appKey });
    const cpu = process.cpuUsage(cpuBefore);
    const handOut = summarize(run.handOut);
    const wakeSummary = summarize(wake);
    printBlock('task API: create → get_next_task → complete_task over HTTP', [
      ['database', `${db.kind} (${db.label})`],
      ['tasks', `${TASKS} (after ${WARMUP} warm-up), ${PRODUCERS} producers, ${WORKERS} workers`],
      ['throughput', `${fmt(TASKS / run.seconds, 0)} tasks/s end to end (${fmt(run.seconds, 2)} s; goal ≥ 1500)`],
      ['get_next_task ms', `${fmtSummary(summarize(run.roundTrip))} (round trip of a call that got a task)`],
      ['create → hand-out ms', `${fmtSummary(handOut)} (includes the wait behind the backlog when producers outrun the workers)`],
      ['process CPU', `${fmt((cpu.user + cpu.system) / 1000 / (TASKS + WARMUP), 3)} ms per task (the service and the bench's HTTP clients, one process; warm-up and wake-ups included)`],
      ['load average', `${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (other work on the machine shows in every figure)`],
      ['long-poll wake-up ms', `${fmtSummary(wakeSummary)} (goal p50 ≤ 10)`],
    ]);
  } finally {
    agent.destroy();
    await service.stop();
    await db.dispose();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

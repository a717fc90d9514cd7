import { pino, type Logger } from 'pino';
import { ensureDefaultApp, type App } from './auth/credentials.js';
import type { Config } from './config.js';
import { JobInserter } from './engine/job-inserter.js';
import { createHttpServer, type HttpServer } from './http/app.js';
import { openDatabase, type Db } from './store/database.js';
import { migrate } from './store/migrate.js';
import { loadAdminToken } from './store/apps.repository.js';
import { startTaskMaintenance } from './tasks/task-maintenance.js';
import { heartbeatInternalWorker } from './tasks/worker-registry.js';
import { createStorage } from './storage/create-storage.js';
import { Worker } from './engine/worker.js';
import { CallbackSender, loadCallbackSecret } from './callbacks/sender.js';
import { withDbRetry } from './engine/db-retry.js';
import { createSpawner } from './media/spawner.js';
import { NativeSpawner } from './media/native-spawner.js';
import { createProcessorRegistry } from './processors/index.js';
import { ffmpegCapabilities } from './media/ffmpeg-capabilities.js';
import type { Processor } from './processors/processor.js';
import type { ObjectStorage } from './storage/object-storage.js';

/** How long a starting process waits for its database before it gives up. */
const STARTUP_DB_WAIT_MS = 5 * 60_000;

export interface ServiceOptions {
  /** Serve the HTTP API. */
  readonly api: boolean;
  /** Run workers in this process. */
  readonly worker: boolean;
  readonly logger?: Logger;
  /** Tag → processor; defaults to every processor of this build. */
  readonly processors?: ReadonlyMap<string, Processor>;
}

export interface Service {
  readonly db: Db;
  readonly storage: ObjectStorage;
  readonly config: Config;
  readonly app: App;
  /** Authorizes the admin API (/admin/): MEDIAJOBS_ADMIN_TOKEN, else the generated one. */
  readonly adminToken: string;
  /** What signs callbacks: MEDIAJOBS_CALLBACK_SECRET, else the generated one. */
  readonly callbackSecret: string;
  readonly worker: Worker | undefined;
  /** Bound HTTP port, when the API is served. */
  readonly port: number | undefined;
  stop(): Promise<void>;
}

export function createLogger(config: Config): Logger {
  return pino({ level: config.logLevel, base: { pid: process.pid } });
}

/**
 * The composition root: builds the database, storage, API and workers from a
 * Config and wires them together. Nothing else creates these, so a test can
 * start several services against one database.
 */
export async function startService(config: Config, options: ServiceOptions): Promise<Service> {
  const logger = options.logger ?? createLogger(config);
  const db = await openDatabase(config, logger);
  const stoppers: Array<() => Promise<void>> = [() => db.close()];
  // A process may start before its database accepts connections (both booting), or see it
  // restart mid-start: the start waits for it rather than exiting.
  const onceReachable = <T>(step: () => Promise<T>) => withDbRetry(step, STARTUP_DB_WAIT_MS, (err) => {
    logger.warn({ err: (err as Error).message }, 'database not reachable yet; retrying');
  });
  try {
    await onceReachable(() => migrate(db.kysely));
    const app = await onceReachable(() => ensureDefaultApp(db.kysely, config));
    const adminToken = await onceReachable(() => loadAdminToken(db.kysely, config.apps.adminToken));
    const storage = createStorage(config);
    // The ffmpeg binary's encoders and filters are listed once, now, rather than by the first submission that needs them.
    const ffmpeg = ffmpegCapabilities(config.ffmpegPath);
    if (ffmpeg.error) logger.warn({ reason: ffmpeg.error }, 'ffmpeg cannot run: jobs of the video and audio Tags will be refused');
    let http: HttpServer | undefined;
    let port: number | undefined;
    if (options.api) {
      http = createHttpServer({ config, db, jobInserter: new JobInserter(db.kysely), storage, logger });
      port = await http.start(config.port, config.host);
      const server = http;
      stoppers.unshift(() => server.stop());
      const stopTaskMaintenance = startTaskMaintenance(db, config.tasks.leaseMs, logger);
      stoppers.unshift(async () => stopTaskMaintenance());
    }
    let worker: Worker | undefined;
    if (options.worker) {
      const spawner = createSpawner();
      if (spawner.kind === 'child') logger.warn({ reason: NativeSpawner.unavailableReason() }, 'spawn addon not built (make build does it); tools are spawned with Node\'s child_process instead');
      stoppers.unshift(async () => spawner.close());
      const processors = options.processors ?? createProcessorRegistry({ spawner });
      worker = new Worker({ db, config, storage, logger, processors });
      await worker.start();
      const started = worker;
      const stopHeartbeat = heartbeatInternalWorker(db, started, [...processors.keys()], config.concurrency,
        Math.max(200, Math.min(config.leaseMs / 3, 10_000)), logger);
      stoppers.unshift(async () => stopHeartbeat());
      // Stop the worker first: running jobs finish (or go back to the queue) while the database and the spawner are still there.
      stoppers.unshift(() => started.stop());
    }
    // Every process delivers callbacks, so notifications go out as long as any process runs.
    const callbackSecret = config.callbacks.signingSecret || await onceReachable(() => loadCallbackSecret(db));
    const sender = new CallbackSender(db, config.callbacks, callbackSecret, logger);
    await sender.start();
    stoppers.splice(stoppers.length - 1, 0, () => sender.stop());
    return {
      db,
      callbackSecret,
      worker,
      storage,
      config,
      app,
      adminToken,
      port,
      async stop() {
        for (const stop of stoppers.splice(0)) await stop();
      },
    };
  } catch (err) {
    for (const stop of stoppers) await stop().catch(() => undefined);
    throw err;
  }
}

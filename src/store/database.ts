import path from 'node:path';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.js';
import { preparingPool } from './prepared-statements.js';
import type { Database } from './schema.js';

/** A notification handler for LISTEN/NOTIFY channels. */
export type NotifyHandler = (payload: string) => void;

/**
 * The database as the rest of the service sees it: Kysely for queries, plus
 * LISTEN/NOTIFY, which Kysely does not cover. Built once in the composition
 * root and passed down; there is no module-level connection.
 */
export interface Db {
  readonly kysely: Kysely<Database>;
  /** The embedded server this process started or joined; undefined with DATABASE_URL. */
  readonly embedded: EmbeddedPostgres | undefined;
  /** Subscribes to a channel. Delivery is best effort: callers must also poll. */
  listen(channel: string, handler: NotifyHandler): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

// int8 (bigserial seq, count(*)) as text: JavaScript numbers lose precision past 2^53.
pg.types.setTypeParser(20, (value) => value);

/**
 * The server DATABASE_URL names, else the embedded one under `<data dir>/pg`
 * (started, or joined when another process of this data dir runs it). Closing
 * the Db stops an embedded server this process started.
 */
export async function openDatabase(config: Config, logger: Logger): Promise<Db> {
  if (config.databaseUrl !== undefined) return openPostgres(config.databaseUrl, config, logger, undefined);
  const embedded = await startEmbeddedPostgres({ dir: path.join(config.dataDir, 'pg'), logger });
  try {
    return await openPostgres(embedded.url, config, logger, embedded);
  } catch (err) {
    await embedded.close();
    throw err;
  }
}

async function openPostgres(connectionString: string, { concurrency, dbQueryTimeoutMs }: Config, logger: Logger, embedded: EmbeddedPostgres | undefined): Promise<Db> {
  const pool = new pg.Pool({
    connectionString,
    max: Math.max(10, concurrency * 2 + 4),
    connectionTimeoutMillis: 10_000,
    // Both for a server gone without a reset: keepalives find an idle connection dead, the
    // timeout a statement that will never be answered (prepared-statements.ts drops its connection).
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    ...(dbQueryTimeoutMs > 0 ? { query_timeout: dbQueryTimeoutMs } : {}),
  });
  // An idle client whose server went away emits 'error'; the pool drops it and makes a new one on demand.
  pool.on('error', (err) => logger.warn({ err: err.message }, 'idle database connection lost'));
  // A checked-out client has no pool listener: one whose server goes away between two of its
  // queries (inside a transaction, or before its first) emits 'error' to nobody, which crashes
  // the process. Its next query fails with a retryable error instead, and its release drops it.
  pool.on('connect', (client) => client.on('error', () => undefined));
  const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool: preparingPool(pool) }) });
  const listener = new PgListener(connectionString, logger);
  return {
    kysely,
    embedded,
    listen: (channel, handler) => listener.listen(channel, handler),
    async close() {
      await listener.close();
      await kysely.destroy();
      await embedded?.close();
    },
  };
}

/**
 * One dedicated connection for LISTEN, re-established after the server
 * restarts. Notifications sent while it is down are lost; the engine's polling
 * fallback covers that gap.
 */
class PgListener {
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private readonly handlers = new Map<string, Set<NotifyHandler>>();
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly connectionString: string, private readonly logger: Logger) {}

  async listen(channel: string, handler: NotifyHandler): Promise<() => Promise<void>> {
    let set = this.handlers.get(channel);
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
      await this.ensureConnected().catch(() => undefined);
      await this.client?.query(`LISTEN ${pg.escapeIdentifier(channel)}`).catch(() => undefined);
    }
    set.add(handler);
    return async () => {
      set.delete(handler);
    };
  }

  private ensureConnected(): Promise<void> {
    if (this.client || this.closed) return Promise.resolve();
    this.connecting ??= this.connect().finally(() => { this.connecting = undefined; });
    return this.connecting;
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.connectionString, connectionTimeoutMillis: 5000, keepAlive: true, keepAliveInitialDelayMillis: 10_000 });
    client.on('notification', (msg) => {
      for (const handler of this.handlers.get(msg.channel) ?? []) handler(msg.payload ?? '');
    });
    const lost = (err?: Error) => {
      if (this.client !== client) return;
      this.client = undefined;
      client.end().catch(() => undefined);
      if (!this.closed) {
        this.logger.warn({ err: err?.message }, 'LISTEN connection lost; reconnecting');
        this.scheduleReconnect();
      }
    };
    client.on('error', lost);
    client.on('end', () => lost());
    try {
      await client.connect();
      for (const channel of this.handlers.keys()) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      if (this.closed) {
        await client.end();
        return;
      }
      this.client = client;
    } catch (err) {
      client.end().catch(() => undefined);
      this.scheduleReconnect();
      throw err;
    }
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.ensureConnected().catch(() => undefined);
    }, 1000);
    this.retryTimer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}

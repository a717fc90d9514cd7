import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { CHANNELS } from '../engine/channels.js';
import { APPS_CHANNEL } from '../tasks/app-keys.js';
import type { Db } from '../store/database.js';
import { parseChange } from './changes.js';
import { jobSummaries, type JobSummary } from './console.queries.js';

/*
 * The console's live feed: one LISTEN on the changes channel per process
 * (sql/0012), fanned out to every open browser as server-sent events. Job
 * changes are gathered for FLUSH_MS, the changed rows read once (by job_id)
 * and each browser sent the rows it may see; deliveries and queues go out as
 * ids (the page that shows them reads them again). Nothing here polls: a
 * quiet service sends only a comment every 15 s to keep proxies from closing
 * the stream.
 */

/** How long job changes are gathered before their rows are read: one read per batch, whatever the number of browsers. */
const FLUSH_MS = 40;
const KEEPALIVE_MS = 15_000;
/** A browser that stops reading is dropped once this much waits unsent for it (else every event piled up in memory); it reconnects and reloads. */
const MAX_UNSENT_BYTES = 1 << 20;

interface Client {
  readonly res: ServerResponse;
  /** undefined: the admin (every row); else one APPID's rows. */
  readonly appid: string | undefined;
  /** Whether the session may still watch (an app session: its app neither disabled nor rotated). */
  readonly stillValid?: () => Promise<boolean>;
}

/** What ends a stream besides the browser leaving: the session's expiry, and its app's disable or rotation. */
export interface StreamSession {
  /** Unix ms: the stream is ended then, as any request of the session would be refused. */
  readonly expires?: number;
  /** Asked when apps change (APPS_CHANNEL) and at each keepalive; false ends the stream. */
  readonly stillValid?: () => Promise<boolean>;
}

export class ConsoleFeed {
  private readonly clients = new Set<Client>();
  private readonly jobIds = new Set<string>();
  private readonly deliveries = new Map<string, { delivery_id: string; job_id: string; state: string; attempts: number }>();
  private readonly queues = new Set<string>();
  private flushTimer: NodeJS.Timeout | undefined;
  private keepalive: NodeJS.Timeout | undefined;
  private unsubscribe: Promise<() => Promise<void>> | undefined;
  private appsChanged: Promise<(() => Promise<void>) | undefined> | undefined;
  private stopped = false;

  constructor(private readonly db: Db, private readonly logger: Logger) {}

  /** Adds a browser's stream; the LISTEN starts with the first. */
  async add(res: ServerResponse, appid: string | undefined, session: StreamSession = {}): Promise<void> {
    this.unsubscribe ??= this.db.listen(CHANNELS.changes, (payload) => this.onChange(payload));
    await this.unsubscribe;
    // A stream is one request: without these, a session ended by expiry, disable or rotation kept receiving rows.
    this.appsChanged ??= this.db.listen(APPS_CHANNEL, () => this.recheck()).catch(() => undefined);
    await this.appsChanged;
    const client: Client = { res, appid, ...(session.stillValid ? { stillValid: session.stillValid } : {}) };
    this.clients.add(client);
    const expiry = session.expires === undefined ? undefined
      : setTimeout(() => this.end(client), Math.min(Math.max(0, session.expires - Date.now()), 2 ** 31 - 1));
    expiry?.unref();
    res.on('close', () => {
      clearTimeout(expiry);
      this.clients.delete(client);
    });
    this.keepalive ??= setInterval(() => {
      for (const c of this.clients) this.write(c, ': keepalive\n\n');
      this.recheck();
    }, KEEPALIVE_MS);
    this.keepalive.unref();
    res.write('retry: 1000\nevent: hello\ndata: {}\n\n');
  }

  /** Ends the streams whose session is no longer valid (a lost notification is caught at the next keepalive). */
  private recheck(): void {
    for (const client of this.clients) {
      client.stillValid?.().then((ok) => { if (!ok) this.end(client); }, () => undefined);
    }
  }

  private send(client: Client, event: string, data: unknown): void {
    this.write(client, `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private write(client: Client, text: string): void {
    if (client.res.writableLength > MAX_UNSENT_BYTES) {
      this.clients.delete(client);
      client.res.destroy();
      return;
    }
    client.res.write(text);
  }

  private end(client: Client): void {
    this.clients.delete(client);
    client.res.end();
  }

  get size(): number {
    return this.clients.size;
  }

  private onChange(payload: string): void {
    if (this.clients.size === 0) return;
    const change = parseChange(payload);
    if (!change) return;
    if (change.kind === 'job') this.jobIds.add(change.jobId);
    else if (change.kind === 'delivery') this.deliveries.set(change.deliveryId, { delivery_id: change.deliveryId, job_id: change.jobId, state: change.state, attempts: change.attempts });
    else this.queues.add(change.queueId);
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      this.flush().catch((err: Error) => this.logger.warn({ err: err.message }, 'console feed: could not read changed rows'));
    }, FLUSH_MS);
  }

  private async flush(): Promise<void> {
    const ids = [...this.jobIds];
    this.jobIds.clear();
    const deliveries = [...this.deliveries.values()];
    this.deliveries.clear();
    const queues = [...this.queues];
    this.queues.clear();
    const rows = ids.length ? await jobSummaries(this.db.kysely, ids) : [];
    // Which apps the changed deliveries and queues belong to, read only when an app's browser is listening.
    const forApps = [...this.clients].some((c) => c.appid !== undefined);
    const deliveryApps = forApps && deliveries.length ? await appidsOfJobs(this.db, deliveries.map((d) => d.job_id)) : new Set<string>();
    const queueApps = forApps && queues.length ? await appidsOfQueues(this.db, queues) : new Set<string>();
    if (this.stopped) return;
    const at = Date.now();
    for (const client of this.clients) {
      const mine = client.appid === undefined ? rows : rows.filter((r: JobSummary) => r.appid === client.appid);
      if (mine.length) this.send(client, 'jobs', { at, jobs: mine });
      // An app's browser is told only that its own deliveries or queues changed, without ids: the page reads its own through the scoped API.
      // (Told of every change, it could watch other apps' callback and queue activity.)
      if (client.appid === undefined) {
        if (deliveries.length) this.send(client, 'deliveries', { at, deliveries });
        if (queues.length) this.send(client, 'queues', { at, queues });
      } else {
        if (deliveryApps.has(client.appid)) this.send(client, 'deliveries', { at, deliveries: [] });
        if (queueApps.has(client.appid)) this.send(client, 'queues', { at, queues: [] });
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.flushTimer);
    clearInterval(this.keepalive);
    for (const c of this.clients) c.res.end();
    this.clients.clear();
    const unsubscribe = await this.unsubscribe?.catch(() => undefined);
    await unsubscribe?.();
    await (await this.appsChanged)?.();
  }
}

async function appidsOfJobs(db: Db, jobIds: string[]): Promise<Set<string>> {
  const rows = await db.kysely.selectFrom('jobs').select('appid').distinct().where('job_id', 'in', [...new Set(jobIds)]).execute();
  return new Set(rows.flatMap((r) => (r.appid === null ? [] : [r.appid])));
}

/** A queue's app is its bucket's APPID (`<name>-<appid>`), as the console's queue scope reads it. */
async function appidsOfQueues(db: Db, queueIds: string[]): Promise<Set<string>> {
  const rows = await db.kysely.selectFrom('queues').select('bucket').distinct().where('queue_id', 'in', queueIds).execute();
  return new Set(rows.flatMap((r) => /-([0-9]+)$/.exec(r.bucket)?.[1] ?? []));
}

import { sql } from 'kysely';
import { constantTimeEqual, findAppByAppKey } from '../auth/credentials.js';
import { appKeyHash, type App } from '../store/apps.repository.js';
import type { Db } from '../store/database.js';
import type { Executor } from '../store/jobs.repository.js';

/** Apps were created, rotated or disabled: every process drops the app_keys it remembers. */
export const APPS_CHANNEL = 'mediajobs_apps_changed';

/** How long a remembered app_key is trusted without a word from APPS_CHANNEL (a lost notification). */
const TRUST_MS = 5000;

/**
 * The task API's app_key → app, remembered: every task-API call names its
 * app_key, and looking it up cost one statement per call. An admin change
 * (create, rotate, disable) clears this process's memory at once and every
 * other process's through NOTIFY on APPS_CHANNEL; a process that missed the
 * notification (its LISTEN connection reconnecting) trusts an entry for
 * TRUST_MS at most. Unknown keys are never remembered. One per database
 * handle (`appKeysOf`), shared by the task API and the admin API.
 */
export class AppKeys {
  private readonly known = new Map<string, { app: App; at: number }>();
  private subscribed: Promise<unknown> | undefined;
  private listening = false;

  constructor(private readonly db: Db) {}

  async find(appKey: string): Promise<App | undefined> {
    if (!this.listening) {
      this.subscribed ??= this.db.listen(APPS_CHANNEL, () => this.known.clear()).catch(() => undefined);
      await this.subscribed;
      this.listening = true;
    }
    const hash = appKeyHash(appKey);
    const id = hash.toString('hex');
    const entry = this.known.get(id);
    if (entry && performance.now() - entry.at < TRUST_MS && constantTimeEqual(entry.app.appKey, appKey)) return entry.app;
    const app = await findAppByAppKey(this.db.kysely, appKey);
    if (!app) return undefined;
    if (this.known.size > 10_000) this.known.clear();
    this.known.set(id, { app, at: performance.now() });
    return app;
  }

  /** After an admin change: forget here now, and tell the other processes. */
  async changed(db: Executor): Promise<void> {
    this.known.clear();
    await sql`SELECT pg_notify(${APPS_CHANNEL}, '')`.execute(db);
  }
}

const byDb = new WeakMap<Db, AppKeys>();

/** The AppKeys of a database handle (one per service: tests run several side by side). */
export function appKeysOf(db: Db): AppKeys {
  let keys = byDb.get(db);
  if (!keys) {
    keys = new AppKeys(db);
    byDb.set(db, keys);
  }
  return keys;
}

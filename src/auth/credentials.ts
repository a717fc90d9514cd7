import { randomBytes } from 'node:crypto';
import type { Executor } from '../store/jobs.repository.js';

/** An app: the owner of a key pair for COS signatures and of a task-API app_key. */
export interface App {
  readonly appId: string;
  readonly name: string;
  readonly secretId: string;
  readonly secretKey: string;
  readonly appKey: string;
}

function randomToken(bytes: number): string {
  return randomBytes(bytes).toString('base64url').replace(/[-_]/g, '').slice(0, Math.ceil(bytes * 1.2));
}

/** Creates an app with fresh credentials shaped like Tencent Cloud's (AKID… SecretId). */
export async function createApp(db: Executor, name: string): Promise<App> {
  const app: App = {
    appId: randomBytes(8).toString('hex'),
    name,
    secretId: `AKID${randomToken(30)}`,
    secretKey: randomToken(30),
    appKey: randomBytes(16).toString('hex'),
  };
  await db.insertInto('apps').values({ app_id: app.appId, name, secret_id: app.secretId, secret_key: app.secretKey, app_key: app.appKey }).execute();
  return app;
}

/** The first app, created on first start so that `make start` can print working credentials. */
export async function ensureDefaultApp(db: Executor): Promise<App> {
  const existing = await db.selectFrom('apps').selectAll().orderBy('created_at').limit(1).executeTakeFirst();
  if (existing) {
    return { appId: existing.app_id, name: existing.name, secretId: existing.secret_id, secretKey: existing.secret_key, appKey: existing.app_key };
  }
  return createApp(db, 'default');
}

export async function findAppBySecretId(db: Executor, secretId: string): Promise<App | undefined> {
  const row = await db.selectFrom('apps').selectAll().where('secret_id', '=', secretId).executeTakeFirst();
  return row && { appId: row.app_id, name: row.name, secretId: row.secret_id, secretKey: row.secret_key, appKey: row.app_key };
}

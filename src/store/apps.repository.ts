import { createHash, randomBytes, randomInt } from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import type { Executor } from './jobs.repository.js';
import type { AppsTable, Database } from './schema.js';
import { DB_NOW } from './now.js';

/**
 * An app: a tenant. It owns an APPID (the number its buckets end with, as in
 * CI's `<name>-<APPID>`), a key pair for COS signatures, an `app_key` for the
 * task API, and through its buckets its queues, templates, jobs and tasks.
 */
export interface App {
  readonly appId: string;
  readonly name: string;
  /** CI's APPID: a signed request may address only buckets `<name>-<appid>`. */
  readonly appid: string;
  /** Its own bucket: where its tasks go, and the bucket of its signed requests whose Host names none. */
  readonly bucket: string;
  readonly secretId: string;
  readonly secretKey: string;
  readonly appKey: string;
  readonly createdAt: Date;
  readonly disabledAt: Date | null;
}

/** Credentials an app is created or rotated with; unset ones are generated. */
export interface AppKeys {
  readonly secretId?: string;
  readonly secretKey?: string;
  readonly appKey?: string;
}

type AppRow = Selectable<AppsTable>;

function appRowToApp(row: AppRow): App {
  return {
    appId: row.app_id,
    name: row.name,
    appid: row.appid ?? '',
    bucket: row.bucket ?? '',
    secretId: row.secret_id,
    secretKey: row.secret_key,
    appKey: row.app_key,
    createdAt: new Date(row.created_at),
    disabledAt: row.disabled_at ? new Date(row.disabled_at) : null,
  };
}

/** The SHA-256 of an app_key: how the task API looks an app up (sql/0010 says why). */
export function appKeyHash(appKey: string): Buffer {
  return createHash('sha256').update(appKey, 'utf8').digest();
}

function randomToken(bytes: number): string {
  return randomBytes(bytes).toString('base64url').replace(/[-_]/g, '').slice(0, Math.ceil(bytes * 1.2));
}

/** Fresh credentials shaped like Tencent Cloud's (an AKID… SecretId), with any pinned ones kept. */
function newKeys(pinned: AppKeys = {}): Required<AppKeys> {
  return {
    secretId: pinned.secretId ?? `AKID${randomToken(30)}`,
    secretKey: pinned.secretKey ?? randomToken(30),
    appKey: pinned.appKey ?? randomBytes(16).toString('hex'),
  };
}

/** An APPID of ten digits outside the 125xxxxxxx range the default bucket uses. */
function newAppid(): string {
  return String(randomInt(1_300_000_000, 1_999_999_999));
}

/** A bucket name from an app's name: CI's characters, then `-<appid>`. */
export function bucketForApp(name: string, appid: string): string {
  const slug = name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40).replace(/-+$/, '');
  return `${slug || 'app'}-${appid}`;
}

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === '23505';
}

/**
 * Creates an app with fresh credentials (or the pinned ones), a new APPID and
 * its bucket `<name>-<appid>`, unless `appid`/`bucket` are given (the first app).
 */
export async function insertApp(db: Executor, name: string, options: { keys?: AppKeys; appid?: string; bucket?: string } = {}): Promise<App> {
  for (let tries = 0; ; tries++) {
    const keys = newKeys(options.keys);
    const appid = options.appid ?? newAppid();
    try {
      const row = await db.insertInto('apps').values({
        app_id: randomBytes(8).toString('hex'),
        name,
        appid,
        bucket: options.bucket ?? bucketForApp(name, appid),
        secret_id: keys.secretId,
        secret_key: keys.secretKey,
        app_key: keys.appKey,
        app_key_sha256: appKeyHash(keys.appKey),
      }).returningAll().executeTakeFirstOrThrow();
      return appRowToApp(row);
    } catch (err) {
      // A random APPID (or key) that is taken: draw again. Pinned values that clash are the caller's to fix.
      if (!isUniqueViolation(err) || tries >= 5 || options.appid !== undefined) throw err;
    }
  }
}

/** Every app, oldest first, disabled ones included. */
export async function listApps(db: Executor): Promise<App[]> {
  const rows = await db.selectFrom('apps').selectAll().orderBy('created_at').orderBy('app_id').execute();
  return rows.map(appRowToApp);
}

export async function findApp(db: Executor, appId: string): Promise<App | undefined> {
  const row = await db.selectFrom('apps').selectAll().where('app_id', '=', appId).executeTakeFirst();
  return row && appRowToApp(row);
}

/** The app that owns an APPID (the number its buckets end with), disabled or not. */
export async function findAppByAppid(db: Executor, appid: string): Promise<App | undefined> {
  const row = await db.selectFrom('apps').selectAll().where('appid', '=', appid).executeTakeFirst();
  return row && appRowToApp(row);
}

/** An enabled app by its SecretId (the COS signature's q-ak). */
export async function findEnabledAppBySecretId(db: Executor, secretId: string): Promise<App | undefined> {
  const row = await db.selectFrom('apps').selectAll().where('secret_id', '=', secretId).where('disabled_at', 'is', null).executeTakeFirst();
  return row && appRowToApp(row);
}

/** An enabled app by the SHA-256 of its app_key; the caller compares the key itself in constant time. */
export async function findEnabledAppByAppKeyHash(db: Executor, hash: Buffer): Promise<App | undefined> {
  const row = await db.selectFrom('apps').selectAll().where('app_key_sha256', '=', hash).where('disabled_at', 'is', null).executeTakeFirst();
  return row && appRowToApp(row);
}

/** New credentials for an app; the old ones stop working with this commit. */
export async function rotateAppKeys(db: Executor, appId: string, pinned: AppKeys = {}): Promise<App | undefined> {
  const keys = newKeys(pinned);
  const row = await db.updateTable('apps').set({
    secret_id: keys.secretId,
    secret_key: keys.secretKey,
    app_key: keys.appKey,
    app_key_sha256: appKeyHash(keys.appKey),
    updated_at: DB_NOW,
  }).where('app_id', '=', appId).returningAll().executeTakeFirst();
  return row && appRowToApp(row);
}

/** Disables an app: its keys stop working; its jobs and tasks stay. */
export async function disableApp(db: Executor, appId: string): Promise<App | undefined> {
  const row = await db.updateTable('apps').set({ disabled_at: DB_NOW, updated_at: DB_NOW })
    .where('app_id', '=', appId).returningAll().executeTakeFirst();
  return row && appRowToApp(row);
}

/**
 * The first app, created on first start so that `make start` can print
 * working credentials. Its APPID and bucket are the default bucket's, so the
 * jobs of unsigned local requests are its own. `pinned` (MEDIAJOBS_SECRET_ID,
 * MEDIAJOBS_SECRET_KEY, MEDIAJOBS_APP_KEY) replaces whatever it had, as
 * MinIO's root user variables do. Older apps stored before APPIDs existed get one.
 */
export async function ensureFirstApp(db: Kysely<Database>, defaultBucket: string, pinned: AppKeys = {}): Promise<App> {
  const appid = defaultBucket.slice(defaultBucket.lastIndexOf('-') + 1);
  return db.transaction().execute(async (tx) => {
    const rows = await tx.selectFrom('apps').selectAll().orderBy('created_at').orderBy('app_id').forUpdate().execute();
    if (rows.length === 0) return insertApp(tx, 'default', { keys: pinned, appid, bucket: defaultBucket });
    for (const row of rows.slice(1).filter((r) => r.appid === null)) {
      const other = newAppid();
      await tx.updateTable('apps').set({ appid: other, bucket: bucketForApp(row.name, other) }).where('app_id', '=', row.app_id).execute();
    }
    const first = rows[0];
    const patch = {
      ...(first.appid === null ? { appid, bucket: defaultBucket } : {}),
      ...(pinned.secretId !== undefined && pinned.secretId !== first.secret_id ? { secret_id: pinned.secretId } : {}),
      ...(pinned.secretKey !== undefined && pinned.secretKey !== first.secret_key ? { secret_key: pinned.secretKey } : {}),
      ...(pinned.appKey !== undefined && pinned.appKey !== first.app_key ? { app_key: pinned.appKey, app_key_sha256: appKeyHash(pinned.appKey) } : {}),
    };
    if (Object.keys(patch).length === 0) return appRowToApp(first);
    const row = await tx.updateTable('apps').set({ ...patch, updated_at: DB_NOW }).where('app_id', '=', first.app_id).returningAll().executeTakeFirstOrThrow();
    return appRowToApp(row);
  });
}

/** The admin API's token: MEDIAJOBS_ADMIN_TOKEN when set, else one generated at first start and stored. */
export async function loadAdminToken(db: Executor, configured: string): Promise<string> {
  if (configured) return configured;
  await db.insertInto('service_settings').values({ name: 'admin_token', value: `mja_${randomBytes(24).toString('hex')}` })
    .onConflict((oc) => oc.column('name').doNothing()).execute();
  const row = await db.selectFrom('service_settings').select('value').where('name', '=', 'admin_token').executeTakeFirstOrThrow();
  return row.value;
}

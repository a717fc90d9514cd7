import { timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Config } from '../config.js';
import { appKeyHash, ensureFirstApp, findEnabledAppByAppKeyHash, findEnabledAppBySecretId, type App } from '../store/apps.repository.js';
import type { Executor } from '../store/jobs.repository.js';
import type { Database } from '../store/schema.js';

export type { App } from '../store/apps.repository.js';

/**
 * The first app, created on first start so that `make start` can print
 * working credentials; MEDIAJOBS_SECRET_ID, MEDIAJOBS_SECRET_KEY and
 * MEDIAJOBS_APP_KEY pin its keys.
 */
export async function ensureDefaultApp(db: Kysely<Database>, config: Config): Promise<App> {
  const { secretId, secretKey, appKey } = config.apps.pinned;
  return ensureFirstApp(db, config.defaultBucket, {
    ...(secretId ? { secretId } : {}),
    ...(secretKey ? { secretKey } : {}),
    ...(appKey ? { appKey } : {}),
  });
}

/** The enabled app whose SecretId signed a COS request (its secret is then checked by the signature, in constant time). */
export async function findAppBySecretId(db: Executor, secretId: string): Promise<App | undefined> {
  return findEnabledAppBySecretId(db, secretId);
}

/**
 * The enabled app whose task-API `app_key` this is. Looked up by the key's
 * SHA-256 and then compared in constant time, so neither the index walk nor
 * the comparison tells a caller how much of a guess was right.
 */
export async function findAppByAppKey(db: Executor, appKey: string): Promise<App | undefined> {
  const app = await findEnabledAppByAppKeyHash(db, appKeyHash(appKey));
  return app && constantTimeEqual(app.appKey, appKey) ? app : undefined;
}

/** Compares two secrets in time that depends only on their lengths. */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The APPID a bucket belongs to: the number after its last `-`, as in CI. */
export function appidOfBucket(bucket: string): string {
  return bucket.slice(bucket.lastIndexOf('-') + 1);
}

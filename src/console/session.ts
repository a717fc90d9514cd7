import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/*
 * The console's session: a cookie holding who logged in, when it expires and
 * the session's CSRF token, signed with HMAC-SHA256 under a key derived from
 * the admin token. Every API process derives the same key (no session table,
 * no sticky sessions), and a new admin token ends every session. An app's
 * session also names the SecretId it logged in with: rotating or disabling
 * the app ends it (checked on every request, src/console/console.routes.ts).
 */

export const SESSION_COOKIE = 'mediajobs_console';
/** A session lasts this long from login. */
export const SESSION_TTL_MS = 12 * 3_600_000;

export interface Session {
  /** admin: everything; app: one app's jobs, tasks, queues, workers and callbacks. */
  readonly kind: 'admin' | 'app';
  /** The app's id (apps.app_id) and the SecretId it logged in with, for an app session. */
  readonly appId?: string;
  readonly secretId?: string;
  /** Unix ms. */
  readonly expires: number;
  /** Sent back as X-CSRF-Token on every action. */
  readonly csrf: string;
}

export function sessionKey(adminToken: string): Buffer {
  return createHmac('sha256', adminToken).update('mediajobs console session v1').digest();
}

export function newSession(kind: 'admin' | 'app', app?: { appId: string; secretId: string }, now = Date.now()): Session {
  return { kind, ...(app ? { appId: app.appId, secretId: app.secretId } : {}), expires: now + SESSION_TTL_MS, csrf: randomBytes(18).toString('base64url') };
}

export function encodeSession(key: Buffer, session: Session): string {
  const body = Buffer.from(JSON.stringify(session)).toString('base64url');
  return `${body}.${createHmac('sha256', key).update(body).digest('base64url')}`;
}

/** The session a cookie value carries, if its signature is right and it has not expired. */
export function decodeSession(key: Buffer, value: string | undefined, now = Date.now()): Session | undefined {
  if (!value) return undefined;
  const dot = value.indexOf('.');
  if (dot <= 0) return undefined;
  const body = value.slice(0, dot);
  const given = Buffer.from(value.slice(dot + 1));
  const expected = Buffer.from(createHmac('sha256', key).update(body).digest('base64url'));
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  let session: Session;
  try {
    session = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Session;
  } catch {
    return undefined;
  }
  if (typeof session.expires !== 'number' || session.expires < now || typeof session.csrf !== 'string') return undefined;
  if (session.kind !== 'admin' && !(session.kind === 'app' && typeof session.appId === 'string')) return undefined;
  return session;
}

import type { Middleware } from 'koa';
import { verifyCosSignature } from '../../auth/cos-signature.js';
import { findAppBySecretId } from '../../auth/credentials.js';
import { CiError } from '../../errors.js';
import type { AppDeps } from '../handler.js';
import type { RequestState } from '../context.js';
import { hostNamesBucket } from './request-context.js';
import { appidOfBucket, type App } from '../../auth/credentials.js';

/**
 * The bucket a signed request works on: the Host's, which must be one of the
 * signing app's (its APPID, as in CI: another app's bucket is AccessDenied,
 * so its jobs, queues and templates are out of reach), else the app's own.
 */
function ownBucket(app: App, bucket: string, named: boolean): string {
  if (!named) return app.bucket || bucket;
  if (appidOfBucket(bucket) !== app.appid) throw new CiError('AccessDenied', `The bucket ${bucket} belongs to another APPID than the key that signed the request.`);
  return bucket;
}

/**
 * Verifies the COS signature of every signed request and records the app.
 * Unsigned requests pass only when MEDIAJOBS_REQUIRE_AUTH is off (the local
 * default), so curl works against a development server.
 */
export function authenticate(deps: AppDeps): Middleware<RequestState> {
  return async (ctx, next) => {
    const signed = ctx.get('authorization') !== '' || new URLSearchParams(ctx.querystring).has('q-signature');
    if (!signed) {
      if (deps.config.requireAuth) throw new CiError('AccessDenied', 'The request is not signed; send a COS Authorization header.');
      return next();
    }
    let app: App | undefined;
    await verifyCosSignature(
      { method: ctx.method, path: ctx.path, query: ctx.querystring, headers: ctx.headers },
      async (secretId) => {
        app = await findAppBySecretId(deps.db.kysely, secretId);
        return app?.secretKey;
      },
      Math.floor(Date.now() / 1000),
      { maxSignatureAgeSeconds: Math.floor(deps.config.maxSignatureAgeMs / 1000) },
    );
    ctx.state.appId = app?.appId;
    if (app) ctx.state.bucket = ownBucket(app, ctx.state.bucket, hostNamesBucket(ctx.get('host')));
    return next();
  };
}

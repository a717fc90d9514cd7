import type { Middleware } from 'koa';
import { verifyCosSignature } from '../../auth/cos-signature.js';
import { appidOfBucket, findAppBySecretId, type App } from '../../auth/credentials.js';
import { CiError } from '../../errors.js';
import type { AppDeps } from '../handler.js';
import type { AppContext, RequestState } from '../context.js';
import { hostNamesBucket } from './request-context.js';

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
 * The app whose key signed this request (Authorization header or presigned
 * URL), the signature verified; undefined for an unsigned request, which is
 * refused when MEDIAJOBS_REQUIRE_AUTH is on. One check for the CI API and the
 * object API alike.
 */
export async function signingApp(ctx: Pick<AppContext, 'method' | 'path' | 'querystring' | 'headers' | 'get'>, deps: AppDeps): Promise<App | undefined> {
  const signed = ctx.get('authorization') !== '' || new URLSearchParams(ctx.querystring).has('q-signature');
  if (!signed) {
    if (deps.config.requireAuth) throw new CiError('AccessDenied', 'The request is not signed; send a COS Authorization header or a presigned URL.');
    return undefined;
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
  return app;
}

/**
 * Verifies the COS signature of every signed request and records the app.
 * Unsigned requests pass only when MEDIAJOBS_REQUIRE_AUTH is off (the local
 * default), so curl works against a development server.
 */
export function authenticate(deps: AppDeps): Middleware<RequestState> {
  return async (ctx, next) => {
    const app = await signingApp(ctx, deps);
    if (!app) return next();
    ctx.state.appId = app.appId;
    ctx.state.bucket = ownBucket(app, ctx.state.bucket, hostNamesBucket(ctx.get('host')));
    return next();
  };
}

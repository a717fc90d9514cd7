import type { Middleware } from 'koa';
import { verifyCosSignature } from '../../auth/cos-signature.js';
import { findAppBySecretId } from '../../auth/credentials.js';
import { CiError } from '../../errors.js';
import type { AppDeps } from '../handler.js';
import type { RequestState } from '../context.js';

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
    let appId: string | undefined;
    await verifyCosSignature(
      { method: ctx.method, path: ctx.path, query: ctx.querystring, headers: ctx.headers },
      async (secretId) => {
        const app = await findAppBySecretId(deps.db.kysely, secretId);
        appId = app?.appId;
        return app?.secretKey;
      },
      Math.floor(Date.now() / 1000),
      { maxSignatureAgeSeconds: Math.floor(deps.config.maxSignatureAgeMs / 1000) },
    );
    ctx.state.appId = appId;
    return next();
  };
}

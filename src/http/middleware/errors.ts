import type { Middleware } from 'koa';
import { CiError, toCiError } from '../../errors.js';
import { buildErrorResponse } from '../../xml/responses.js';
import { isDatabaseUnreachable, type DatabaseOutageLog } from '../database-outage.js';
import type { RequestState } from '../context.js';

/**
 * The only writer of error bodies. Handlers throw (a CiError, or anything);
 * this turns it into CI's `<Error>` with the right status. Unknown errors
 * become InternalError and are logged with the request id; no stack trace
 * ever reaches the client. A request refused because the database cannot
 * be reached is not logged on its own: `outages` logs the outage once.
 */
export function errorResponder(outages?: DatabaseOutageLog): Middleware<RequestState> {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new CiError('NoSuchResource', 'There is no such API path.');
    } catch (err) {
      const ciError = toCiError(err);
      if (outages && ciError.code === 'ServiceUnavailable' && isDatabaseUnreachable(err)) outages.refused(err);
      else if (ciError.status >= 500) ctx.state.log.error({ err }, 'request failed');
      ctx.status = ciError.status;
      ctx.type = 'application/xml';
      ctx.set('x-ci-trace-id', ctx.state.traceId);
      if (ciError.status === 503) ctx.set('Retry-After', '1');
      // The body of either was never read: close rather than parse it as the next request.
      if (ciError.code === 'EntityTooLarge' || ciError.code === 'ExpectationFailed') ctx.set('Connection', 'close');
      ctx.body = buildErrorResponse(ciError, {
        resource: `${ctx.get('host') || 'localhost'}${ctx.path}`,
        requestId: ctx.state.requestId,
        traceId: ctx.state.traceId,
      });
    }
  };
}

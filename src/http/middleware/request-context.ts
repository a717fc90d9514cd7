import { randomFillSync } from 'node:crypto';
import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import type { Config } from '../../config.js';
import type { RequestState } from '../context.js';

/**
 * `<bucket>-<appid>.ci.<region>.<domain>`; also the `pic` and `cos` host
 * families, which SDKs use for pic jobs and with an IP override.
 */
const CI_HOST = /^([a-z0-9][a-z0-9-]{0,48}-\d{1,12})\.(?:ci|pic|cos)\.([a-z0-9-]{1,40})\.[^:]+(?::\d+)?$/i;

/** Whether a Host names a bucket (`<bucket>-<appid>.ci.<region>.…`) rather than the service (`127.0.0.1:8080`). */
export function hostNamesBucket(host: string | undefined): boolean {
  return host !== undefined && CI_HOST.test(host);
}

/** `ci.<region>.<domain>`: the service host without a bucket, which the bucket-listing calls use (DescribeMediaBuckets). */
const CI_SERVICE_HOST = /^(?:ci|pic)\.([a-z0-9-]{1,40})\.[^:]+(?::\d+)?$/i;

export function bucketFromHost(host: string | undefined, config: Config): { bucket: string; region: string } {
  const match = host ? CI_HOST.exec(host) : null;
  if (match) return { bucket: match[1].toLowerCase(), region: match[2].toLowerCase() };
  const service = host ? CI_SERVICE_HOST.exec(host) : null;
  return { bucket: config.defaultBucket, region: service ? service[1].toLowerCase() : config.region };
}

/** Random bytes for 256 request ids, refilled when used up: one call into the RNG per 256 requests, not one per request. */
const ID_BYTES = 18;
const idPool = Buffer.alloc(ID_BYTES * 256);
let idOffset = idPool.length;

function newRequestId(): string {
  // CI's ids are opaque base64 tokens; 18 random bytes give 24 characters without padding.
  if (idOffset === idPool.length) {
    randomFillSync(idPool);
    idOffset = 0;
  }
  const id = idPool.toString('base64', idOffset, idOffset + ID_BYTES);
  idOffset += ID_BYTES;
  return id;
}

/** Sets the request id, bucket and region, and the headers every response carries. */
export function requestContext(config: Config, logger: Logger): Middleware<RequestState> {
  return async (ctx, next) => {
    const requestId = newRequestId();
    ctx.state.requestId = requestId;
    ctx.state.traceId = requestId;
    Object.assign(ctx.state, bucketFromHost(ctx.get('host'), config));
    ctx.state.appId = undefined;
    ctx.state.operation = undefined;
    // Most requests log nothing; a child logger per request cost a few microseconds each.
    let log: Logger | undefined;
    Object.defineProperty(ctx.state, 'log', {
      get: () => (log ??= logger.child({ requestId, ...(ctx.state.operation ? { operation: ctx.state.operation } : {}) })),
    });
    ctx.set('x-ci-request-id', requestId);
    ctx.set('x-cos-request-id', requestId);
    ctx.set('Server', 'mediajobs');
    ctx.set('Date', new Date().toUTCString());
    await next();
  };
}

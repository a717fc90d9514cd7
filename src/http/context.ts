import type { Context, ParameterizedContext } from 'koa';
import type { Logger } from 'pino';

/** What the middleware chain knows about a request, typed once. */
export interface RequestState {
  requestId: string;
  traceId: string;
  /** Bucket and region the request addresses (from Host, else the defaults). */
  bucket: string;
  region: string;
  /** The app whose key signed the request; undefined for unsigned local requests. */
  appId: string | undefined;
  /** The API operation, once routed (DescribeMediaJob, …). */
  operation: string | undefined;
  /** The request's logger, with its id and operation; made when first used. */
  readonly log: Logger;
}

export type AppContext = ParameterizedContext<RequestState> & Context;

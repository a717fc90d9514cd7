import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import Koa from 'koa';
import { CiError } from '../errors.js';
import type { RequestState } from './context.js';
import type { AppDeps } from './handler.js';
import { authenticate } from './middleware/authenticate.js';
import { errorResponder } from './middleware/errors.js';
import { requestContext } from './middleware/request-context.js';
import { ROUTES } from './routes.js';

export interface HttpServer {
  /** Starts listening; resolves with the bound port (useful with port 0). */
  start(port: number, host: string): Promise<number>;
  stop(): Promise<void>;
  readonly koa: Koa<RequestState>;
}

/** Builds the HTTP API from its dependencies; nothing global, so tests can run several. */
export function createHttpServer(deps: AppDeps): HttpServer {
  const koa = new Koa<RequestState>();
  koa.proxy = false;
  const router = new Router<RequestState>();
  for (const route of ROUTES) {
    router[route.method.toLowerCase() as 'get' | 'post' | 'put' | 'delete'](route.path, async (ctx) => {
      ctx.state.log = ctx.state.log.child({ operation: route.name });
      await route.handler(ctx as never, deps);
    });
  }
  koa.use(requestContext(deps.config, deps.logger));
  koa.use(errorResponder());
  koa.use(authenticate(deps));
  koa.use(router.routes());
  koa.use(router.allowedMethods({
    throw: true,
    methodNotAllowed: () => new CiError('MethodNotAllowed', 'The method is not allowed on this resource.'),
    notImplemented: () => new CiError('MethodNotAllowed', 'The method is not implemented.'),
  }));
  // Errors are answered by errorResponder; this only keeps Koa from printing them again.
  koa.on('error', () => undefined);

  let server: Server | undefined;
  return {
    koa,
    start(port, host) {
      return new Promise((resolve, reject) => {
        const listening = koa.listen(port, host);
        listening.once('error', reject);
        listening.once('listening', () => {
          server = listening;
          // Bodies are read by our own limit-aware reader; headers still need a bound.
          listening.headersTimeout = 30_000;
          listening.requestTimeout = 60_000;
          resolve((listening.address() as AddressInfo).port);
        });
      });
    },
    async stop() {
      if (!server) return;
      const closing = server;
      server = undefined;
      await new Promise<void>((resolve) => {
        closing.close(() => resolve());
        closing.closeAllConnections();
      });
    },
  };
}

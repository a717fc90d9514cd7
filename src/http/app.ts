import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import Koa from 'koa';
import { CiError } from '../errors.js';
import { buildErrorResponse } from '../xml/responses.js';
import type { RequestState } from './context.js';
import type { AppDeps } from './handler.js';
import { authenticate } from './middleware/authenticate.js';
import { errorResponder } from './middleware/errors.js';
import { requestContext } from './middleware/request-context.js';
import { ROUTES } from './routes.js';

/**
 * Requests Node's HTTP parser refuses (a malformed Content-Length, headers too
 * large) never reach Koa; answer them in CI's error shape too.
 */
function answerUnparseableRequest(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const requestId = randomBytes(18).toString('base64');
  const body = buildErrorResponse(new CiError('InvalidRequest', `The HTTP request could not be parsed (${err.code ?? 'malformed request'}).`), {
    resource: '/',
    requestId,
    traceId: requestId,
  });
  socket.end([
    'HTTP/1.1 400 Bad Request',
    'Content-Type: application/xml',
    `Content-Length: ${Buffer.byteLength(body)}`,
    `Date: ${new Date().toUTCString()}`,
    `x-ci-request-id: ${requestId}`,
    `x-cos-request-id: ${requestId}`,
    `x-ci-trace-id: ${requestId}`,
    'Connection: close',
    '',
    body,
  ].join('\r\n'));
}

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
      ctx.state.operation = route.name;
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
          listening.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => answerUnparseableRequest(err, socket));
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

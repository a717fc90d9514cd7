import { randomBytes } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import Koa from 'koa';
import { sql } from 'kysely';
import { CiError } from '../errors.js';
import { buildErrorResponse } from '../xml/responses.js';
import type { RequestState } from './context.js';
import { DatabaseOutageLog } from './database-outage.js';
import type { AppDeps } from './handler.js';
import { adminApi } from './admin.handlers.js';
import { authenticate } from './middleware/authenticate.js';
import { objectApi } from './object-api.js';
import { errorResponder } from './middleware/errors.js';
import { requestContext } from './middleware/request-context.js';
import { ROUTES } from './routes.js';
import { taskApi } from './task-api.handlers.js';
import { createMetrics } from '../metrics/metrics.js';
import { createConsole } from '../console/console.routes.js';

/**
 * The CI error for a request Node's HTTP parser refused, with the status
 * Node itself would send (`socketOnError` in Node's `_http_server.js`);
 * `undefined` when there is nobody left to answer (the client reset).
 */
export function ciErrorForParserError(err: NodeJS.ErrnoException): CiError | undefined {
  switch (err.code) {
    case 'ECONNRESET':
      return undefined;
    case 'HPE_HEADER_OVERFLOW':
      return new CiError('RequestHeaderFieldsTooLarge', 'The request line and headers exceed the 16 KiB the server accepts.');
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new CiError('EntityTooLarge', 'The chunk extensions of the request body are too large.');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new CiError('RequestTimeout');
    default:
      return new CiError('InvalidRequest', `The HTTP request could not be parsed (${err.code ?? 'malformed request'}).`);
  }
}

/**
 * Requests Node's HTTP parser refuses (a malformed request line or
 * Content-Length, headers too large, broken chunked framing) never reach
 * Koa; answer them in CI's error shape too, then close the connection (the
 * parser cannot go on after an error). As Node does, nothing is written when
 * a response on this connection has already begun: that would corrupt it.
 */
function answerUnparseableRequest(err: NodeJS.ErrnoException, socket: Duplex): void {
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  const ciError = ciErrorForParserError(err);
  if (!ciError || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const requestId = randomBytes(18).toString('base64');
  const body = buildErrorResponse(ciError, { resource: '/', requestId, traceId: requestId });
  socket.end([
    `HTTP/1.1 ${ciError.status} ${STATUS_CODES[ciError.status] ?? 'Error'}`,
    'Content-Type: application/xml',
    `Content-Length: ${Buffer.byteLength(body)}`,
    `Date: ${new Date().toUTCString()}`,
    'Server: mediajobs',
    `x-ci-request-id: ${requestId}`,
    `x-cos-request-id: ${requestId}`,
    `x-ci-trace-id: ${requestId}`,
    'Connection: close',
    '',
    body,
  ].join('\r\n'));
}

/**
 * Node answers `Expect: 100-continue` with `100 Continue` as soon as the
 * headers arrive, unless 'checkContinue' has a listener; the listener calls
 * this, so the interim answer goes out only when something first reads the
 * body. A request refused before (a bad signature, a Content-Length over the
 * limit, a route that takes no body) is answered without the client ever
 * sending its body. Every way of consuming a stream ('data', pipe, async
 * iteration, Node draining an unread body) goes through `read`; once the
 * final response has begun, nothing is sent. A final answer sent without
 * 100 Continue closes the connection (Node does so itself), so a body the
 * client sends anyway is never read as the next request.
 */
function continueOnFirstRead(req: IncomingMessage, res: ServerResponse): void {
  const read = req.read;
  req.read = function (this: IncomingMessage, size?: number) {
    Reflect.deleteProperty(req, 'read');
    if (!res.headersSent && !res.writableEnded) res.writeContinue();
    return read.call(this, size);
  };
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
  // Node answers an Expect other than 100-continue with a bare 417 unless 'checkExpectation' has
  // a listener. The listener (in start) hands such requests to Koa marked, and they are refused
  // here, after the request id is set, so the 417 has the same shape as every other error.
  const unmetExpectations = new WeakSet<IncomingMessage>();
  const metrics = createMetrics(deps);
  const consoleUi = createConsole(deps);
  koa.use(metrics.http);
  koa.use(requestContext(deps.config, deps.logger));
  const outages = new DatabaseOutageLog(() => sql`SELECT 1`.execute(deps.db.kysely), deps.logger);
  koa.use(errorResponder(outages));
  koa.use(async (ctx, next) => {
    if (unmetExpectations.has(ctx.req)) {
      throw new CiError('ExpectationFailed', `The expectation "Expect: ${ctx.get('expect').slice(0, 64)}" cannot be met; only 100-continue is supported.`);
    }
    return next();
  });
  // The COS object API (issue 17): a cos Host, a path-style bucket or a non-CI path of a bare host (host-routing.ts);
  // first, so that a cos Host's `GET /` is GetBucket, while the console, metrics and the other APIs keep their paths.
  koa.use(objectApi(deps));
  // /metrics, /healthz, /readyz, / and /console/… (issue 19) are answered here, before the front doors and any catch-all.
  koa.use(metrics.endpoints);
  koa.use(consoleUi.middleware);
  // The task API and the admin API have their own keys and error envelopes (G16): they answer before the CI API's signature check.
  koa.use(taskApi(deps));
  koa.use(adminApi(deps));
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
    async start(port, host) {
      await metrics.start();
      return new Promise((resolve, reject) => {
        const listening = koa.listen(port, host);
        listening.once('error', reject);
        listening.once('listening', () => {
          server = listening;
          // Bodies are read by our own limit-aware reader; headers still need a bound.
          listening.headersTimeout = 30_000;
          listening.requestTimeout = 60_000;
          listening.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => answerUnparseableRequest(err, socket));
          const handle = koa.callback();
          listening.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
            unmetExpectations.add(req);
            void handle(req, res);
          });
          listening.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
            continueOnFirstRead(req, res);
            void handle(req, res);
          });
          resolve((listening.address() as AddressInfo).port);
        });
      });
    },
    async stop() {
      outages.stop();
      await consoleUi.stop();
      await metrics.stop();
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

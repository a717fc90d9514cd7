import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedCallback {
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/**
 * A callback receiver on loopback. `answer` decides the status of each
 * request (default 200); `received` keeps every request in order.
 */
export interface Receiver {
  readonly url: string;
  readonly port: number;
  readonly received: ReceivedCallback[];
  answer: (request: ReceivedCallback) => number;
  close(): Promise<void>;
}

export async function startReceiver(port = 0): Promise<Receiver> {
  const received: ReceivedCallback[] = [];
  const receiver = {
    received,
    answer: (_request: ReceivedCallback) => 200,
  } as Receiver;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      received.push(request);
      res.statusCode = receiver.answer(request);
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const bound = (server.address() as AddressInfo).port;
  Object.assign(receiver, {
    port: bound,
    url: `http://127.0.0.1:${bound}/callback`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  });
  return receiver;
}

/** A loopback port that nothing listens on (for a receiver that is down). */
export async function unusedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

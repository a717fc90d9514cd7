import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { CALLBACK_USER_AGENT, deliverOnce, type DeliveryRequest } from '../../src/callbacks/deliver.js';
import type { ResolvedAddress } from '../../src/callbacks/url-policy.js';

interface ReceivedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface TestReceiver {
  /** Base URL, `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  readonly requests: ReceivedRequest[];
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

describe('deliverOnce', function () {
  const servers: http.Server[] = [];

  /** A loopback HTTP server on port 0 that records each request once its body is in, then runs `handler`. */
  async function receiver(handler: Handler, host = '127.0.0.1'): Promise<TestReceiver> {
    const requests: ReceivedRequest[] = [];
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        handler(req, res);
      });
    });
    servers.push(server);
    server.listen(0, host);
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    return { url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`, port, requests };
  }

  const base = (url: string, overrides: Partial<DeliveryRequest> = {}): DeliveryRequest => ({
    url,
    body: '<Response><EventName>TaskFinish</EventName></Response>',
    contentType: 'application/xml',
    timeoutMs: 2000,
    allowPrivateAddresses: true,
    ...overrides,
  });

  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('reports ok with the status for a 2xx answer', async () => {
    const { url } = await receiver((_req, res) => res.writeHead(200).end('ok'));
    const result = await deliverOnce(base(`${url}/cb`));
    expect(result).to.include({ ok: true, status: 200, responseBody: 'ok' });
    expect(result.error).to.equal(undefined);
    expect(result.latencyMs).to.be.a('number').and.at.least(0);
  });

  it('treats 204 No Content as delivered', async () => {
    const { url } = await receiver((_req, res) => res.writeHead(204).end());
    expect(await deliverOnce(base(url))).to.include({ ok: true, status: 204 });
  });

  it('POSTs the body, content type, length, user agent and extra headers', async () => {
    const r = await receiver((_req, res) => res.writeHead(200).end());
    const body = '{"EventName":"TaskFinish","JobsDetail":{"UserData":"视频 ✓"}}';
    await deliverOnce(
      base(`${r.url}/notify/ci?token=a%2Fb`, {
        body,
        contentType: 'application/json',
        headers: { 'X-Mediajobs-Delivery-Id': 'd-1', 'X-Mediajobs-Signature': 'sha256=abc', Host: 'evil.example.com', 'content-length': '1' },
      }),
    );
    expect(r.requests).to.have.length(1);
    const [received] = r.requests;
    expect(received.method).to.equal('POST');
    expect(received.url).to.equal('/notify/ci?token=a%2Fb');
    expect(received.body).to.equal(body);
    expect(received.headers).to.include({
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'user-agent': CALLBACK_USER_AGENT,
      'x-mediajobs-delivery-id': 'd-1',
      'x-mediajobs-signature': 'sha256=abc',
      host: `127.0.0.1:${r.port}`,
    });
  });

  it('lets the caller replace the User-Agent', async () => {
    const r = await receiver((_req, res) => res.writeHead(200).end());
    await deliverOnce(base(r.url, { headers: { 'user-agent': 'custom/1' } }));
    expect(r.requests[0].headers['user-agent']).to.equal('custom/1');
  });

  it('reports a 500 as not ok, with the status and the start of the body', async () => {
    const { url } = await receiver((_req, res) => res.writeHead(500).end('database is down'));
    expect(await deliverOnce(base(url))).to.include({ ok: false, status: 500, error: 'HTTP 500', responseBody: 'database is down' });
  });

  it('does not follow a redirect: a 3xx is a failed attempt', async () => {
    const target = await receiver((_req, res) => res.writeHead(200).end());
    const { url } = await receiver((_req, res) => res.writeHead(307, { Location: `${target.url}/elsewhere` }).end());
    const result = await deliverOnce(base(url));
    expect(result).to.include({ ok: false, status: 307, error: 'HTTP 307 (redirects are not followed)' });
    expect(target.requests).to.have.length(0);
  });

  it('reports a refused connection', async () => {
    const probe = net.createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const { port } = probe.address() as net.AddressInfo;
    await new Promise((resolve) => probe.close(resolve));

    const result = await deliverOnce(base(`http://127.0.0.1:${port}/`));
    expect(result.ok).to.equal(false);
    expect(result.status).to.equal(undefined);
    expect(result.error).to.match(/ECONNREFUSED/);
  });

  it('gives up with "timeout" when the receiver never answers, within the timeout plus a margin', async () => {
    const r = await receiver(() => undefined);
    const started = Date.now();
    const result = await deliverOnce(base(r.url, { timeoutMs: 300 }));
    const elapsed = Date.now() - started;
    expect(result).to.include({ ok: false, error: 'timeout' });
    expect(result.status).to.equal(undefined);
    expect(elapsed).to.be.at.least(290).and.below(800);
    expect(result.latencyMs).to.be.at.least(290).and.below(800);
    expect(r.requests).to.have.length(1);
  });

  it('counts DNS time against the same deadline', async () => {
    const started = Date.now();
    const result = await deliverOnce(base('http://slow-dns.example.com/', { timeoutMs: 200, resolve: () => new Promise<ResolvedAddress[]>(() => undefined) }));
    expect(result).to.include({ ok: false, error: 'timeout' });
    expect(Date.now() - started).to.be.below(700);
  });

  it('keeps a 200 that was answered in time even if its body then stalls', async () => {
    const { url } = await receiver((_req, res) => {
      res.writeHead(200, { 'Content-Length': '100' });
      res.write('partial');
    });
    expect(await deliverOnce(base(url, { timeoutMs: 300 }))).to.include({ ok: true, status: 200, responseBody: 'partial' });
  });

  it('reads no more than maxResponseBytes of a huge answer and hangs up', async () => {
    let written = 0;
    let hungUp!: Promise<unknown>;
    const { url } = await receiver((_req, res) => {
      hungUp = once(res, 'close');
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      const chunk = Buffer.alloc(64 * 1024, 'x');
      // Write until the client hangs up, honouring backpressure: the response is endless.
      const pump = (): void => {
        while (!res.destroyed) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      pump();
    });

    const result = await deliverOnce(base(url, { timeoutMs: 5000 }));
    expect(result).to.include({ ok: true, status: 200 });
    expect(result.responseBody).to.have.length(4096);
    // It hung up as soon as it had enough, not at the deadline.
    expect(result.latencyMs).to.be.below(1000);
    await hungUp;
    expect(written).to.be.above(0).and.below(64 * 1024 * 1024);

    const small = await deliverOnce(base(url, { maxResponseBytes: 10 }));
    expect(small.responseBody).to.equal('xxxxxxxxxx');
  });

  it('connects to the address it checked instead of asking DNS again', async () => {
    const r = await receiver((_req, res) => res.writeHead(200).end());
    let lookups = 0;
    const resolve = async (): Promise<ResolvedAddress[]> => {
      lookups += 1;
      return [{ address: '127.0.0.1', family: 4 }];
    };
    // `callbacks.invalid` exists in no DNS; reaching the server proves the pinned lookup was used.
    const result = await deliverOnce(base(`http://callbacks.invalid:${r.port}/cb`, { resolve }));
    expect(result).to.include({ ok: true, status: 200 });
    expect(lookups).to.equal(1);
    expect(r.requests[0].headers.host).to.equal(`callbacks.invalid:${r.port}`);
  });

  it('refuses a private destination when private addresses are not allowed, without connecting', async () => {
    const r = await receiver((_req, res) => res.writeHead(200).end());
    const result = await deliverOnce(base(r.url, { allowPrivateAddresses: false }));
    expect(result.ok).to.equal(false);
    expect(result.error).to.match(/^rejected: .*loopback/);
    expect(result.permanent).to.equal(undefined);
    expect(r.requests).to.have.length(0);
  });

  it('refuses a host name that resolves to a private address', async () => {
    const result = await deliverOnce(
      base('http://rebind.example.com/', { allowPrivateAddresses: false, resolve: async () => [{ address: '10.0.0.5', family: 4 }] }),
    );
    expect(result.ok).to.equal(false);
    expect(result.error).to.contain('10.0.0.5');
  });

  it('marks a URL that can never be delivered to as permanent', async () => {
    const result = await deliverOnce(base('ftp://example.com/'));
    expect(result).to.include({ ok: false, permanent: true });
    expect(result.error).to.match(/^rejected: .*http or https/);
  });

  it('never throws, even for a header value Node refuses', async () => {
    const { url } = await receiver((_req, res) => res.writeHead(200).end());
    const result = await deliverOnce(base(url, { headers: { 'X-Bad': 'a\r\nInjected: yes' } }));
    expect(result.ok).to.equal(false);
    expect(result.error).to.be.a('string').and.not.equal('');
  });

  it('reports a DNS failure as an error', async () => {
    const result = await deliverOnce(
      base('http://nowhere.example.com/', { resolve: async () => Promise.reject(Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.example.com'), { code: 'ENOTFOUND' })) }),
    );
    expect(result).to.include({ ok: false, error: 'getaddrinfo ENOTFOUND nowhere.example.com' });
  });

  it('delivers to an IPv6 literal', async function () {
    let r: TestReceiver;
    try {
      r = await receiver((_req, res) => res.writeHead(200).end(), '::1');
    } catch {
      this.skip();
    }
    expect(await deliverOnce(base(`${r.url}/cb`))).to.include({ ok: true, status: 200 });
  });
});

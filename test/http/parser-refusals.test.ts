import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import { parseXml, startTestService, type TestService } from '../helpers/service.js';

/*
 * Requests Node's HTTP layer answers before Koa sees them: an Expect it
 * cannot meet, and whatever its parser refuses (a malformed request line,
 * headers over the limit, broken chunked framing). Each must still get CI's
 * <Error> body, the right status and a request id, over a raw socket since
 * no well-behaved client can send them.
 */

interface RawAnswer {
  readonly statusLine: string;
  readonly status: number;
  readonly headers: Map<string, string>;
  readonly body: string;
  readonly xml: Record<string, any>;
}

/** Writes `raw` as is (without half-closing: Node drops a request whose client half-closed) and reads until one whole response has arrived. */
function sendRaw(port: number, raw: string | Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(raw));
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no complete answer within 5 s; got ${JSON.stringify(data.toString())}`)); }, 5000);
    const finish = () => {
      const text = data.toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      if (split < 0) return false;
      const [statusLine, ...lines] = text.slice(0, split).split('\r\n');
      const headers = new Map(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
      const body = text.slice(split + 4);
      if (headers.has('content-length') && Buffer.byteLength(body) < Number(headers.get('content-length'))) return false;
      clearTimeout(timer);
      socket.destroy();
      resolve({ statusLine, status: Number(statusLine.split(' ')[1]), headers, body, xml: parseXml(body) });
      return true;
    };
    socket.on('data', (chunk: Buffer) => { data = Buffer.concat([data, chunk]); finish(); });
    socket.on('end', () => { if (!finish()) { clearTimeout(timer); reject(new Error(`connection closed; got ${JSON.stringify(data.toString())}`)); } });
    socket.on('error', (err) => { clearTimeout(timer); reject(err); });
  });
}

function expectCiError(answer: RawAnswer, status: number, code: string, message?: RegExp): void {
  const what = `${answer.statusLine}\n${answer.body}`;
  expect(answer.status, what).to.equal(status);
  expect(answer.headers.get('content-type'), what).to.match(/^application\/xml/);
  const requestId = answer.headers.get('x-ci-request-id');
  expect(requestId, what).to.be.a('string').and.not.empty;
  expect(answer.headers.get('x-cos-request-id'), what).to.equal(requestId);
  expect(answer.headers.get('date'), what).to.be.a('string').and.not.empty;
  expect(Object.keys(answer.xml), what).to.deep.equal(['Error']);
  expect(answer.xml.Error.Code, what).to.equal(code);
  for (const field of ['Message', 'Resource', 'RequestId', 'TraceId']) expect(answer.xml.Error[field], `${what}: ${field}`).to.be.a('string').and.not.empty;
  expect(answer.xml.Error.RequestId, what).to.equal(requestId);
  expect(answer.headers.get('x-ci-trace-id'), what).to.equal(answer.xml.Error.TraceId);
  if (message) expect(answer.xml.Error.Message, what).to.match(message);
}

describe('requests Node answers before the API sees them', () => {
  let api: TestService;
  let port: number;
  before(async () => {
    api = await startTestService();
    port = api.service.port!;
  });
  after(async () => { await api.stop(); });

  describe('Expect', () => {
    for (const [method, path] of [['GET', '/jobs'], ['POST', '/jobs'], ['PUT', '/queue/p' + '0'.repeat(32)], ['GET', '/no/such/path']] as const) {
      it(`answers Expect: bogus on ${method} ${path} with 417 ExpectationFailed in CI's shape`, async () => {
        const body = method === 'GET' ? '' : '<Request/>';
        const answer = await sendRaw(port, `${method} ${path} HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
        expectCiError(answer, 417, 'ExpectationFailed', /Expect.*100-continue/);
        expect(answer.xml.Error.Resource).to.equal(`x${path}`);
        expect(answer.headers.get('connection')).to.equal('close');
      });
    }

    it('sends 100 Continue when the body is read, and takes the body that follows', async () => {
      const body = '<Request><Tag>MediaInfo</Tag><Input><Object>in/a.mp4</Object></Input></Request>';
      const answer = await new Promise<{ continued: boolean; status: number; text: string }>((resolve, reject) => {
        let continued = false;
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/jobs', agent: false, headers: { expect: '100-continue', 'content-length': String(body.length) } }, (res) => {
          let text = '';
          res.on('data', (chunk) => { text += chunk; });
          res.on('end', () => resolve({ continued, status: res.statusCode!, text }));
        });
        req.on('continue', () => { continued = true; req.end(body); });
        req.on('error', reject);
      });
      expect(answer.continued).to.equal(true);
      expect(answer.status, answer.text).to.equal(200);
    });

    for (const [what, raw, status, code, connection] of [
      ['a GET, which has no body to read', 'GET /jobs HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n', 200, undefined, 'close'],
      ['a Content-Length over the limit', 'POST /jobs HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000000\r\n\r\n', 400, 'EntityTooLarge', 'close'],
      ['a bad signature', 'POST /jobs HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nAuthorization: garbage\r\nContent-Length: 10\r\n\r\n', 403, 'AccessDenied', 'close'],
    ] as const) {
      it(`answers Expect: 100-continue with ${what} at once, without 100 Continue (connection ${connection})`, async () => {
        const answer = await sendRaw(port, raw);
        expect(answer.status, `${answer.statusLine}\n${answer.body}`).to.equal(status);
        if (code) expectCiError(answer, status, code);
        // Whether the client sends its body after a final answer is its choice (RFC 9110 §10.1.1), so
        // Node closes a connection whose 100 Continue was never sent rather than read the next request.
        expect(answer.headers.get('connection')).to.equal(connection);
      });
    }

    it('ignores Expect on an HTTP/1.0 request, as RFC 9110 asks', async () => {
      const answer = await sendRaw(port, 'GET /jobs HTTP/1.0\r\nHost: x\r\nExpect: bogus\r\n\r\n');
      expect(answer.status, answer.body).to.equal(200);
    });
  });

  describe("the parser's refusals", () => {
    const cases: Array<[string, string, number, string, RegExp]> = [
      ['a malformed request line', 'GARBAGE\r\n\r\n', 400, 'InvalidRequest', /could not be parsed/],
      ['a request line with a space in the path', 'GET /jobs /x HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'InvalidRequest', /could not be parsed/],
      ['an unknown HTTP version', 'GET /jobs HTTP/9.9\r\nHost: x\r\n\r\n', 400, 'InvalidRequest', /could not be parsed/],
      ['a malformed Content-Length', 'GET /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', 400, 'InvalidRequest', /could not be parsed/],
      ['a header without a colon', 'GET /jobs HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n', 400, 'InvalidRequest', /could not be parsed/],
      ['a NUL in a header value', 'GET /jobs HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n', 400, 'InvalidRequest', /could not be parsed/],
      ['a request line over the header limit', `GET /jobs?tag=${'x'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431, 'RequestHeaderFieldsTooLarge', /headers/],
      ['headers over the header limit', `GET /jobs HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'v'.repeat(50)}\r\n`).join('')}\r\n`, 431, 'RequestHeaderFieldsTooLarge', /headers/],
      ['a bad chunk size', 'POST /jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n<Request/>\r\n0\r\n\r\n', 400, 'InvalidRequest', /could not be parsed/],
      ['both Content-Length and chunked', 'POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'InvalidRequest', /could not be parsed/],
    ];
    for (const [what, raw, status, code, message] of cases) {
      it(`answers ${what} with ${status} ${code} in CI's shape`, async () => {
        expectCiError(await sendRaw(port, raw), status, code, message);
      });
    }

    it('maps a header timeout to 408 RequestTimeout and a reset to no answer (Node sweeps for timeouts only every 30 s)', async () => {
      const { ciErrorForParserError } = await import('../../src/http/app.js');
      expect(ciErrorForParserError(Object.assign(new Error('timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }))).to.include({ code: 'RequestTimeout', status: 408 });
      expect(ciErrorForParserError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).to.equal(undefined);
    });

    it('still serves the next connection (control)', async () => {
      const answer = await sendRaw(port, 'GET /jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      expect(answer.status, answer.body).to.equal(200);
    });
  });
});

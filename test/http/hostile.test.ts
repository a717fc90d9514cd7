import { expect } from 'chai';
import { XMLValidator } from 'fast-xml-parser';
import http from 'node:http';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { signRequest } from '../helpers/cos-signer.js';
import { startTestService, toTestResponse, type TestResponse, type TestService } from '../helpers/service.js';

/*
 * Requests an attacker or a broken client might send. Whatever arrives, the
 * service answers 4xx in CI's <Error> shape (never 5xx, never a stack trace),
 * every response carries x-ci-request-id and Date, and a refused request
 * leaves no job behind.
 */

const CREATE_MEDIAINFO = readFileSync('fixtures/xml/create-mediainfo.xml', 'utf8');
const MAX_BODY = 1024 * 1024;
/** XML 1.0 `Char` complement: a response containing one of these is not well-formed XML. */
const NON_XML_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

function mediaInfo(object: string, extra = ''): string {
  return `<Request><Tag>MediaInfo</Tag><Input><Object>${object}</Object></Input>${extra}</Request>`;
}

function picProcess(output: string, bucket = 'local-1250000000'): string {
  return `<Request><Tag>PicProcess</Tag><Input><Object>in/a.jpg</Object></Input><Operation><PicProcess><ProcessRule>imageMogr2/rotate/90</ProcessRule></PicProcess><Output><Region>ap-local</Region><Bucket>${bucket}</Bucket><Object>${output}</Object></Output></Operation></Request>`;
}

/** Deterministic bytes, so a failure can be replayed. */
function garbage(length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

/**
 * The invariants every response must keep, whatever was sent: no 5xx,
 * x-ci-request-id and an RFC 1123 Date, a well-formed body without stack
 * traces, and for errors CI's <Error> with every field non-empty.
 */
function assertSane(res: TestResponse, what: string): void {
  expect(res.status, `${what}: status ${res.status} ${res.text.slice(0, 300)}`).to.be.below(500);
  expect(res.headers.get('x-ci-request-id'), `${what}: x-ci-request-id`).to.be.a('string').and.not.empty;
  const date = res.headers.get('date');
  expect(date, `${what}: Date`).to.be.a('string');
  expect(new Date(date!).toUTCString(), `${what}: Date is RFC 1123`).to.equal(date);
  expect(res.text, `${what}: stack trace`).not.to.match(/^\s*at\s/m);
  expect(res.text, `${what}: source location`).not.to.match(/\.(?:ts|js|mjs|cjs):\d+/);
  expect(res.text, `${what}: file paths`).not.to.match(/node_modules|\/work\/|file:\/\//);
  expect(res.text.length, `${what}: body size`).to.be.below(4096);
  if (res.text !== '') {
    expect(NON_XML_CHAR.test(res.text), `${what}: body has a character XML does not allow`).to.equal(false);
    expect(XMLValidator.validate(res.text), `${what}: body is well-formed XML`).to.equal(true);
  }
  if (res.status >= 400) {
    expect(res.headers.get('content-type'), `${what}: Content-Type`).to.match(/^application\/xml/);
    expect(Object.keys(res.xml), `${what}: root`).to.deep.equal(['Error']);
    for (const field of ['Code', 'Message', 'Resource', 'RequestId', 'TraceId']) {
      expect(res.xml.Error[field], `${what}: Error/${field}`).to.be.a('string').and.not.empty;
    }
    expect(res.xml.Error.RequestId).to.equal(res.headers.get('x-ci-request-id'));
    expect(res.headers.get('x-ci-trace-id'), `${what}: x-ci-trace-id`).to.equal(res.xml.Error.TraceId);
  }
}

interface RawResult {
  readonly response: TestResponse;
  readonly elapsedMs: number;
  /** Body bytes handed to the socket before the response arrived. */
  readonly bytesSent: number;
}

/**
 * Sends a request body piece by piece and stops as soon as the response
 * arrives: for refusals that must come before the body is read.
 */
function streamRequest(port: number, path: string, headers: Record<string, string>, totalBytes: number, chunkBytes: number): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let bytesSent = 0;
    let answered = false;
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, headers, agent: false }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({ response: toTestResponse(res, Buffer.concat(chunks)), elapsedMs: Date.now() - started, bytesSent });
        req.destroy();
      });
      res.on('error', reject);
    });
    // Writing into a connection the server has closed fails; only a failure before the answer matters.
    req.on('error', (err) => { if (!answered) reject(err); });
    const chunk = Buffer.alloc(chunkBytes, 0x20);
    const pump = () => {
      while (!answered && bytesSent < totalBytes) {
        const piece = chunk.subarray(0, Math.min(chunkBytes, totalBytes - bytesSent));
        bytesSent += piece.length;
        if (!req.write(piece)) {
          req.once('drain', pump);
          return;
        }
      }
      if (!answered && headers['content-length'] === undefined) req.end();
    };
    req.write('<Request><Tag>MediaInfo</Tag><Input><Object>in/a.mp4</Object></Input>');
    pump();
  });
}

describe('hostile requests', () => {
  let api: TestService;
  let port: number;
  before(async () => {
    api = await startTestService();
    port = api.service.port!;
  });
  after(async () => { await api.stop(); });

  async function jobCount(): Promise<number> {
    const db = api.service.db.kysely;
    const row = await db.selectFrom('jobs').select(db.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Sends a request that must be refused: checks status, code, message, the invariants, and that no job appeared. */
  async function expectRefused(
    what: string,
    send: () => Promise<TestResponse>,
    status: number,
    code: string,
    message?: RegExp | string,
  ): Promise<TestResponse> {
    const before = await jobCount();
    const res = await send();
    assertSane(res, what);
    expect(res.status, `${what}: ${res.text.slice(0, 300)}`).to.equal(status);
    expect(res.xml.Error.Code, what).to.equal(code);
    if (typeof message === 'string') expect(res.xml.Error.Message, what).to.equal(message);
    else if (message) expect(res.xml.Error.Message, what).to.match(message);
    expect(await jobCount(), `${what}: job count`).to.equal(before);
    return res;
  }

  function post(body: string | Buffer, headers: Record<string, string> = {}): () => Promise<TestResponse> {
    return () => api.request('POST', '/jobs', { body, headers });
  }

  describe('bodies that are not a well-formed <Request>', () => {
    const cases: Array<[string, string | Buffer, RegExp | string]> = [
      ['an unclosed element', '<Request><Tag>MediaInfo</Tag><Input><Object>a.mp4</Object></Input>', /^The XML is not well-formed: /],
      ['mismatched tags', '<Request><Tag>MediaInfo</Input></Request>', /^The XML is not well-formed: /],
      ['a truncated document', CREATE_MEDIAINFO.slice(0, 60), /^The XML is not well-formed: /],
      ['a document cut inside a tag', CREATE_MEDIAINFO.slice(0, 45), /^The XML is not well-formed: /],
      ['a wrong root', '<Foo><Tag>MediaInfo</Tag><Input><Object>a.mp4</Object></Input></Foo>', 'The root element must be <Request>.'],
      ['two roots', '<Request><Tag>MediaInfo</Tag></Request><Request/>', /^(The XML is not well-formed: .*|The root element must be <Request>\.|<Request> must contain elements\.)$/],
      ['a namespaced root', '<x:Request xmlns:x="urn:x"><x:Tag>MediaInfo</x:Tag></x:Request>', 'The root element must be <Request>.'],
      ['text only', 'Tag=MediaInfo&Object=a.mp4', /^The XML is not well-formed: /],
      ['a JSON body', '{"Request":{"Tag":"MediaInfo","Input":{"Object":"a.mp4"}}}', /^The XML is not well-formed: /],
      [
        'a DOCTYPE with nested entity definitions (billion laughs)',
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;"><!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;"><!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;"><!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;"><!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;"><!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]><Request><Tag>MediaInfo</Tag><Input><Object>&lol9;</Object></Input></Request>',
        'DTDs and entity declarations are not allowed.',
      ],
      [
        'an external entity (XXE)',
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Request><Tag>MediaInfo</Tag><Input><Object>in/a.mp4</Object></Input><Operation><UserData>&xxe;</UserData></Operation></Request>',
        'DTDs and entity declarations are not allowed.',
      ],
      ['a lower-case doctype', '<!doctype Request><Request><Tag>MediaInfo</Tag><Input><Object>a.mp4</Object></Input></Request>', 'DTDs and entity declarations are not allowed.'],
      ['an undefined entity', mediaInfo('in/&foo;.mp4'), 'Undefined entity &foo;.'],
      ['an HTML entity', mediaInfo('in/&nbsp;.mp4'), 'Undefined entity &nbsp;.'],
      ['a bare &', mediaInfo('in/a & b.mp4'), /^The XML is not well-formed: |^The XML contains a bare "&"\.$/],
      ['a bare < in text', mediaInfo('in/a < b.mp4'), /^The XML is not well-formed: /],
      ['the character reference &#0;', mediaInfo('in/&#0;.mp4'), 'Invalid character reference &#0;.'],
      ['the character reference &#x1;', mediaInfo('in/&#x1;.mp4'), 'Invalid character reference &#x1;.'],
      ['a lone-surrogate character reference', mediaInfo('in/&#xD800;.mp4'), 'Invalid character reference &#xD800;.'],
      ['the character reference &#xFFFE;', mediaInfo('in/&#xFFFE;.mp4'), 'Invalid character reference &#xFFFE;.'],
      ['a character reference beyond U+10FFFF', mediaInfo('in/&#99999999999;.mp4'), 'Invalid character reference &#99999999999;.'],
      ['a raw NUL character', mediaInfo('in/\u0000.mp4'), /^The XML contains a character that XML does not allow/],
      ['a raw control character', mediaInfo('in/\u0007.mp4'), /^The XML contains a character that XML does not allow/],
      ['a repeated attribute', '<Request a="1" a="2"><Tag>MediaInfo</Tag><Input><Object>a.mp4</Object></Input></Request>', /^The XML is not well-formed: Attribute 'a' is repeated/],
      ['invalid UTF-8', Buffer.concat([Buffer.from('<Request><Tag>MediaInfo</Tag><Input><Object>in/'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('.mp4</Object></Input></Request>')]), 'The request body is not valid UTF-8.'],
      ['binary garbage', garbage(4096, 7), /^The (request body is not valid UTF-8|XML .*)\.?/],
      ['binary garbage that starts like XML', Buffer.concat([Buffer.from('<Request>'), garbage(2048, 11)]), /^The (request body is not valid UTF-8|XML .*)\.?/],
      ['NUL bytes', Buffer.alloc(64), /^The XML contains a character that XML does not allow/],
      ['an empty body', '', 'The request body is empty; expected <Request>.'],
      ['a whitespace-only body', ' \r\n\t ', 'The request body is empty; expected <Request>.'],
    ];
    for (const [what, body, message] of cases) {
      it(`refuses ${what} with 400 MalformedXML`, async () => {
        await expectRefused(what, post(body, { 'content-type': 'application/xml' }), 400, 'MalformedXML', message);
      });
    }

    it('does not leak file contents through an external entity', async () => {
      const res = await api.request('POST', '/jobs', {
        body: '<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Request><Tag>MediaInfo</Tag><Input><Object>&xxe;</Object></Input></Request>',
      });
      expect(res.status).to.equal(400);
      expect(res.text).not.to.include('root:');
    });

    it('refuses 10 000 levels of nesting quickly', async () => {
      const started = Date.now();
      const deep = mediaInfo('in/a.mp4', `<Operation>${'<a>'.repeat(10_000)}${'</a>'.repeat(10_000)}</Operation>`);
      await expectRefused('10 000 nested elements', post(deep), 400, 'MalformedXML');
      expect(Date.now() - started).to.be.below(5000);
    });

    it('refuses 100 000 levels of nesting, closed or not, with a short error body', async () => {
      await expectRefused('100 000 nested elements', post(`<Request>${'<a>'.repeat(100_000)}${'</a>'.repeat(100_000)}</Request>`), 400, 'MalformedXML');
      const unclosed = await expectRefused('100 000 unclosed elements', post(`<Request>${'<a>'.repeat(140_000)}`), 400, 'MalformedXML', /^The XML is not well-formed: /);
      expect(unclosed.xml.Error.Message.length).to.be.below(400);
    });

    it('survives 90 000 attributes on one element without storing anything for an invalid request', async () => {
      const attrs = Array.from({ length: 90_000 }, (_, i) => `a${i}=""`).join(' ');
      const started = Date.now();
      await expectRefused('90 000 attributes', post(`<Request ${attrs}><Input><Object>a.mp4</Object></Input></Request>`), 400, 'InvalidArgument', 'Request/Tag or Request/Operation/Tag is required.');
      expect(Date.now() - started).to.be.below(5000);
    });
  });

  describe('bodies over the size limit', () => {
    it('refuses a declared Content-Length over 1 MiB with EntityTooLarge before reading the body', async () => {
      const before = await jobCount();
      const declared = 64 * MAX_BODY;
      const { response, elapsedMs, bytesSent } = await streamRequest(port, '/jobs', { 'content-type': 'application/xml', 'content-length': String(declared) }, declared, 16 * 1024);
      assertSane(response, 'declared 64 MiB');
      expect(response.status).to.equal(400);
      expect(response.xml.Error.Code).to.equal('EntityTooLarge');
      expect(response.xml.Error.Message).to.equal(`The request body is larger than ${MAX_BODY} bytes.`);
      expect(response.headers.get('connection')).to.equal('close');
      expect(elapsedMs, 'answered without waiting for the body').to.be.below(2000);
      expect(bytesSent, 'answered long before 64 MiB were sent').to.be.below(declared / 2);
      expect(await jobCount()).to.equal(before);
    });

    it('refuses a body of 1 MiB + 1 byte sent with its Content-Length', async () => {
      const body = Buffer.alloc(MAX_BODY + 1, 0x20);
      body.write(CREATE_MEDIAINFO);
      await expectRefused('1 MiB + 1', post(body), 400, 'EntityTooLarge', `The request body is larger than ${MAX_BODY} bytes.`);
    });

    it('accepts a body of exactly 1 MiB', async () => {
      const head = '<Request><Tag>MediaInfo</Tag><Input><Object>in/limit.mp4</Object></Input>';
      const body = head + ' '.repeat(MAX_BODY - head.length - '</Request>'.length) + '</Request>';
      expect(Buffer.byteLength(body)).to.equal(MAX_BODY);
      const before = await jobCount();
      const res = await api.request('POST', '/jobs', { body });
      assertSane(res, 'exactly 1 MiB');
      expect(res.status, res.text).to.equal(200);
      expect(res.xml.Response.JobsDetail.Input.Object).to.equal('in/limit.mp4');
      expect(await jobCount()).to.equal(before + 1);
    });

    it('refuses a chunked body without Content-Length once it passes 1 MiB', async () => {
      const before = await jobCount();
      const total = 8 * MAX_BODY;
      const { response, elapsedMs } = await streamRequest(port, '/jobs', { 'content-type': 'application/xml' }, total, 64 * 1024);
      assertSane(response, 'chunked 8 MiB');
      expect(response.status).to.equal(400);
      expect(response.xml.Error.Code).to.equal('EntityTooLarge');
      expect(response.xml.Error.Message).to.equal(`The request body is larger than ${MAX_BODY} bytes.`);
      expect(elapsedMs).to.be.below(5000);
      expect(await jobCount()).to.equal(before);
    });

    it('still serves the next request after refusing a large body', async () => {
      const res = await api.request('GET', '/jobs?size=1');
      assertSane(res, 'after EntityTooLarge');
      expect(res.status).to.equal(200);
    });
  });

  describe('character references', () => {
    it('decodes numeric character references once', async () => {
      const res = await api.request('POST', '/jobs', {
        body: mediaInfo('in/&#65;&#x42;&#x1F600;&#x4E2D;.mp4', '<Operation><UserData>&#38;lt; &amp;amp; &#x26;#65;</UserData></Operation>'),
      });
      assertSane(res, 'character references');
      expect(res.status, res.text).to.equal(200);
      const detail = res.xml.Response.JobsDetail;
      expect(detail.Input.Object).to.equal('in/AB\u{1F600}中.mp4');
      expect(res.text).to.include('<UserData>&amp;lt; &amp;amp; &amp;#65;</UserData>');
      const again = await api.request('GET', `/jobs/${detail.JobId}`);
      expect(again.xml.Response.JobsDetail.Input.Object).to.equal('in/AB\u{1F600}中.mp4');
    });
  });

  describe('object keys that leave the bucket', () => {
    const inputCases: Array<[string, string, string]> = [
      ['a ../ key', '../etc/passwd', 'Request/Input/Object must not contain "." or ".." segments.'],
      ['a key with ../ in the middle', 'in/../../../etc/passwd', 'Request/Input/Object must not contain "." or ".." segments.'],
      ['a bare ..', '..', 'Request/Input/Object must not contain "." or ".." segments.'],
      ['a ./ segment', 'in/./a.mp4', 'Request/Input/Object must not contain "." or ".." segments.'],
      ['an absolute key', '/etc/passwd', 'Request/Input/Object must not start with "/".'],
      ['a backslash key', 'in\\..\\..\\etc\\passwd', 'Request/Input/Object contains a control character or a backslash.'],
      ['an empty segment', 'in//a.mp4', 'Request/Input/Object must not contain empty path segments.'],
      ['a trailing slash', 'in/', 'Request/Input/Object must not contain empty path segments.'],
      ['an empty key', '', 'Request/Input/Object must not be empty.'],
    ];
    for (const [what, key, message] of inputCases) {
      it(`refuses ${what} as Input/Object`, async () => {
        await expectRefused(what, post(mediaInfo(key)), 400, 'InvalidArgument', message);
      });
    }

    const outputCases: Array<[string, string, string]> = [
      ['a ../ key', '../../x.jpg', 'Request/Operation/Output/Object must not contain "." or ".." segments.'],
      ['an absolute key', '/tmp/x.jpg', 'Request/Operation/Output/Object must not start with "/".'],
      ['a backslash key', 'out\\x.jpg', 'Request/Operation/Output/Object contains a control character or a backslash.'],
    ];
    for (const [what, key, message] of outputCases) {
      it(`refuses ${what} as Output/Object`, async () => {
        await expectRefused(what, post(picProcess(key)), 400, 'InvalidArgument', message);
      });
    }

    it('refuses an Output/Bucket of another APPID with 403 AccessDenied, and a malformed one with 400', async () => {
      await expectRefused('another APPID', post(picProcess('out/x.jpg', 'other-1300000000')), 403, 'AccessDenied',
        'Request/Operation/Output/Bucket other-1300000000 belongs to another APPID than local-1250000000.');
      await expectRefused('a path as bucket', post(picProcess('out/x.jpg', '../local-1250000000')), 400, 'InvalidArgument');
    });

    it('accepts an Output/Bucket of the same APPID (control)', async () => {
      const res = await post(picProcess('out/x.jpg', 'other-1250000000'))();
      expect(res.status, res.text).to.equal(200);
    });

    it('refuses a NUL key as &#0; and as a raw character', async () => {
      await expectRefused('&#0; key', post(mediaInfo('in/a&#0;.mp4')), 400, 'MalformedXML', 'Invalid character reference &#0;.');
      await expectRefused('&#0; output key', post(picProcess('out/&#0;x.jpg')), 400, 'MalformedXML', 'Invalid character reference &#0;.');
      await expectRefused('raw NUL key', post(mediaInfo('in/a\u0000.mp4')), 400, 'MalformedXML');
    });
  });

  describe('paths and methods', () => {
    const notFound: Array<[string, string]> = [
      ['GET', '/jobs/a/b'],
      ['GET', '/mediaqueue'],
      ['POST', '/ai_jobs'],
      ['PUT', '/queue/p00000000000000000000000000000000/x'],
      ['GET', '/jobs/a/b/c'],
    ];
    for (const [method, path] of notFound) {
      it(`answers ${method} ${path} with 404 NoSuchResource`, async () => {
        await expectRefused(`${method} ${path}`, () => api.request(method, path), 404, 'NoSuchResource', 'There is no such API path.');
      });
    }

    // Other paths of a bare host are objects of the default bucket (the object API, src/http/host-routing.ts).
    const objectPaths: Array<[string, string, number, string]> = [
      ['GET', '/nope', 404, 'NoSuchKey'],
      ['POST', '/', 405, 'MethodNotAllowed'],
      // The client's URL parser takes the dots out: what arrives is the key etc/passwd, looked for in the bucket.
      ['GET', '/../etc/passwd', 404, 'NoSuchKey'],
      ['GET', '/%2e%2e/etc/passwd', 404, 'NoSuchKey'],
    ];
    for (const [method, path, status, code] of objectPaths) {
      it(`answers ${method} ${path} as the object API: ${status} ${code}`, async () => {
        await expectRefused(`${method} ${path}`, () => api.request(method, path), status, code);
      });
    }

    const notAllowed: Array<[string, string]> = [
      ['DELETE', '/jobs'],
      ['PATCH', '/jobs'],
      ['PUT', '/jobs'],
      ['POST', '/jobs/j00000000000000000000000000000000'],
      ['DELETE', '/jobs/j00000000000000000000000000000000'],
      ['POST', '/queue'],
      ['DELETE', '/queue'],
      ['GET', '/queue/p00000000000000000000000000000000'],
      ['DELETE', '/queue/p00000000000000000000000000000000'],
    ];
    for (const [method, path] of notAllowed) {
      it(`answers ${method} ${path} with 405 MethodNotAllowed`, async () => {
        // An explicit Content-Length: Node's client sends a DELETE or GET body unframed otherwise.
        const headers = { 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(CREATE_MEDIAINFO)) };
        await expectRefused(`${method} ${path}`, () => api.request(method, path, { body: CREATE_MEDIAINFO, headers }), 405, 'MethodNotAllowed', 'The method is not allowed on this resource.');
      });
    }
  });

  describe('query strings', () => {
    const repeated: Array<[string, string]> = [
      ['/jobs?size=10&size=20', 'size may be given only once.'],
      ['/jobs?tag=MediaInfo&tag=PicProcess', 'tag may be given only once.'],
      ['/jobs?states=All&states=Cancel', 'states may be given only once.'],
      ['/jobs?nextToken=&nextToken=', 'nextToken may be given only once.'],
      ['/jobs?orderByTime=Asc&orderByTime=Desc', 'orderByTime may be given only once.'],
      ['/jobs?queueId=p00000000000000000000000000000000&queueId=p00000000000000000000000000000001', 'queueId may be given only once.'],
      ['/queue?queueIds=a&queueIds=b', 'queueIds may be given only once.'],
    ];
    for (const [path, message] of repeated) {
      it(`refuses repeated parameters: GET ${path}`, async () => {
        await expectRefused(path, () => api.request('GET', path), 400, 'InvalidArgument', message);
      });
    }

    const odd: Array<[string, string]> = [
      ['/jobs?tag=%00', 'InvalidArgument'],
      ['/jobs?inputObject=in%2F%00.mp4', 'InvalidArgument'],
      ['/jobs?queueId=p%00', 'InvalidArgument'],
      ['/jobs?size=%', 'InvalidArgument'],
      ['/jobs?startCreationTime=%ZZ', 'InvalidArgument'],
      ['/jobs?startCreationTime=9999-12-31T23:59:59-2359', 'InvalidArgument'],
      ['/jobs?endCreationTime=0000-01-01T00:00:00%2B0000', 'InvalidArgument'],
      ['/jobs?nextToken=99999999999999999999999', 'InvalidArgument'],
    ];
    for (const [path, code] of odd) {
      it(`answers GET ${path} with 400 ${code}`, async () => {
        await expectRefused(path, () => api.request('GET', path), 400, code);
      });
    }

    it('keeps responses well-formed when an echoed id holds NUL or control characters', async () => {
      const before = await jobCount();
      const res = await api.request('GET', '/jobs/j%00,%01x,%7F');
      assertSane(res, 'GET /jobs/j%00,%01x,%7F');
      expect(res.status).to.equal(200);
      expect(res.xml.Response.NonExistJobIds).to.deep.equal(['j\uFFFD', '\uFFFDx', '\u007F']);
      const percent = await api.request('GET', '/jobs/%');
      assertSane(percent, 'GET /jobs/%');
      expect(percent.xml.Response.NonExistJobIds).to.equal('%');
      const error = await api.request('GET', '/jobs?queueId=p%00');
      assertSane(error, 'GET /jobs?queueId=p%00');
      expect(error.xml.Error.Message).to.equal('queueId p\uFFFD is not a queue id.');
      expect(await jobCount()).to.equal(before);
    });
  });

  describe('signatures', () => {
    function signedPost(opts: { secretId?: string; secretKey?: string; keyTime?: string; signedBody?: string; sentBody?: string; method?: string }): () => Promise<TestResponse> {
      const sentBody = opts.sentBody ?? CREATE_MEDIAINFO;
      const signedBody = opts.signedBody ?? sentBody;
      const headers = { host: `127.0.0.1:${port}`, 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(signedBody)) };
      const authorization = signRequest({
        method: opts.method ?? 'POST',
        path: '/jobs',
        headers,
        secretId: opts.secretId ?? api.service.app.secretId,
        secretKey: opts.secretKey ?? api.service.app.secretKey,
        keyTime: opts.keyTime,
      });
      return () => api.request('POST', '/jobs', { body: sentBody, headers: { ...headers, 'content-length': String(Buffer.byteLength(sentBody)), authorization } });
    }

    it('takes "q-signature=" inside a query value for data, not for a presigned request', async () => {
      for (const query of ['inputObject=q-signature%3Dx', 'inputObject=a&x=q-signature=']) {
        const res = await api.request('GET', `/jobs?${query}`);
        assertSane(res, query);
        expect(res.status, `${query}: ${res.text}`).to.equal(200);
      }
    });

    it('accepts a correctly signed request (control)', async () => {
      const before = await jobCount();
      const res = await signedPost({})();
      assertSane(res, 'signed');
      expect(res.status, res.text).to.equal(200);
      expect(await jobCount()).to.equal(before + 1);
    });

    const garbageAuthorizations: Array<[string, string]> = [
      ['garbage', 'garbage'],
      ['random bytes as hex', garbage(64, 3).toString('hex')],
      ['an AWS signature', 'AWS4-HMAC-SHA256 Credential=AKID/20220627/ap/s3/aws4_request, SignedHeaders=host, Signature=00'],
      ['an unsupported algorithm', 'q-sign-algorithm=md5&q-ak=AKID&q-sign-time=1;2&q-key-time=1;2&q-header-list=&q-url-param-list=&q-signature=' + '0'.repeat(40)],
      ['a malformed sign time', 'q-sign-algorithm=sha1&q-ak=AKID&q-sign-time=soon&q-key-time=soon&q-header-list=&q-url-param-list=&q-signature=' + '0'.repeat(40)],
      ['a short signature', 'q-sign-algorithm=sha1&q-ak=AKID&q-sign-time=1;2&q-key-time=1;2&q-header-list=&q-url-param-list=&q-signature=abc'],
    ];
    for (const [what, authorization] of garbageAuthorizations) {
      it(`refuses an Authorization that is ${what} with 403 AccessDenied`, async () => {
        await expectRefused(what, post(CREATE_MEDIAINFO, { authorization }), 403, 'AccessDenied');
      });
    }

    it('refuses a signature made with the wrong SecretKey with 403 SignatureDoesNotMatch', async () => {
      await expectRefused('wrong key', signedPost({ secretKey: 'not-the-secret-key' }), 403, 'SignatureDoesNotMatch');
    });

    it('refuses an unknown SecretId with 403 InvalidAccessKeyId', async () => {
      await expectRefused('unknown SecretId', signedPost({ secretId: 'AKIDunknownunknownunknownunknown' }), 403, 'InvalidAccessKeyId');
    });

    it("refuses an expired or future sign time with 403 AccessDenied 'Request has expired'", async () => {
      const now = Math.floor(Date.now() / 1000);
      await expectRefused('expired', signedPost({ keyTime: `${now - 7200};${now - 3600}` }), 403, 'AccessDenied', 'Request has expired');
      await expectRefused('future', signedPost({ keyTime: `${now + 3600};${now + 7200}` }), 403, 'AccessDenied', 'Request has expired');
    });

    it('refuses a signature for another body length or another method', async () => {
      await expectRefused('other body', signedPost({ signedBody: CREATE_MEDIAINFO, sentBody: mediaInfo('in/other-object.mp4') }), 403, 'SignatureDoesNotMatch');
      await expectRefused('other method', signedPost({ method: 'GET' }), 403, 'SignatureDoesNotMatch');
    });
  });
});

describe('requests the HTTP parser refuses', () => {
  let api: TestService;
  before(async () => { api = await startTestService(); });
  after(async () => { await api.stop(); });

  for (const [what, raw, status, code] of [
    ['a malformed Content-Length', 'GET /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', 400, 'InvalidRequest'],
    ['headers over the size limit', `GET /jobs?tag=${'x'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431, 'RequestHeaderFieldsTooLarge'],
  ] as const) {
    it(`answers ${what} with CI's error shape`, async () => {
      const port = Number(new URL(api.baseUrl).port);
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () => socket.end(raw));
        let data = '';
        socket.on('data', (chunk) => { data += chunk.toString(); });
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
      });
      expect(answer).to.match(new RegExp(`^HTTP/1\\.1 ${status} `));
      expect(answer).to.match(/\r\nx-ci-request-id: \S+/);
      expect(answer).to.match(/\r\nDate: /);
      expect(answer).to.include(`<Error><Code>${code}</Code>`);
    });
  }
});

import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { parsePresignedAuthorization, verifyCosSignature, type SignedRequest } from '../../src/auth/cos-signature.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { CiError } from '../../src/errors.js';
import { signRequest } from '../helpers/cos-signer.js';
import { startTestService, type TestService } from '../helpers/service.js';

/*
 * What a signature may carry before any key is looked up: a q-ak that is
 * plain text (a NUL reached PostgreSQL, which answered 400), and a validity
 * window no longer than MEDIAJOBS_MAX_SIGNATURE_AGE (0;999999999999 was a
 * key that never expires).
 */

const CREATE_MEDIAINFO = readFileSync('fixtures/xml/create-mediainfo.xml', 'utf8');
const THIRTY_DAYS = 30 * 86_400;

async function ciErrorOf(promise: Promise<unknown>): Promise<CiError> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(CiError);
    return err as CiError;
  }
  throw new Error('expected a CiError');
}

function presignedQuery(secretId: string, keyTime: string): string {
  const params = new URLSearchParams({
    'q-sign-algorithm': 'sha1',
    'q-ak': secretId,
    'q-sign-time': keyTime,
    'q-key-time': keyTime,
    'q-header-list': '',
    'q-url-param-list': '',
    'q-signature': '0'.repeat(40),
  });
  return params.toString();
}

function nowWindow(seconds = 900): string {
  const now = Math.floor(Date.now() / 1000);
  return `${now - 1};${now - 1 + seconds}`;
}

describe('q-ak that cannot be a SecretId', () => {
  for (const [what, secretId] of [
    ['a NUL', 'AKID\0x'],
    ['a control character', 'AKID\x01x'],
    ['a space', 'AKID x'],
    ['a non-ASCII character', 'AKIDé'],
    ['257 characters', 'A'.repeat(257)],
  ] as const) {
    it(`refuses ${what} with 403 AccessDenied before the key is looked up`, async () => {
      expect(() => parsePresignedAuthorization(presignedQuery(secretId, nowWindow()))).to.throw(CiError, /q-ak/);
      const req: SignedRequest = { method: 'GET', path: '/jobs', query: presignedQuery(secretId, nowWindow()), headers: { host: 'x' } };
      let looked = false;
      const err = await ciErrorOf(verifyCosSignature(req, async () => { looked = true; return 'key'; }, Math.floor(Date.now() / 1000)));
      expect([err.status, err.code]).to.deep.equal([403, 'AccessDenied']);
      expect(looked).to.equal(false);
    });
  }
});

describe('the longest validity a signature may have', () => {
  const req = (keyTime: string): SignedRequest => ({ method: 'GET', path: '/jobs', query: presignedQuery('AKIDabc', keyTime), headers: { host: 'x' } });
  const now = 1_800_000_000;

  it(`refuses a q-key-time spanning 0;999999999999 with 403 AccessDenied naming the limit`, async () => {
    const err = await ciErrorOf(verifyCosSignature(req('0;999999999999'), async () => 'key', now));
    expect([err.status, err.code]).to.deep.equal([403, 'AccessDenied']);
    expect(err.message).to.match(/999999999999 s/).and.match(/2592000 s/).and.match(/MEDIAJOBS_MAX_SIGNATURE_AGE/);
  });

  it('refuses a span one second over the limit and checks q-sign-time as well as q-key-time', async () => {
    const over = await ciErrorOf(verifyCosSignature(req(`${now - 10};${now - 10 + THIRTY_DAYS + 1}`), async () => 'key', now));
    expect(over.code).to.equal('AccessDenied');
    expect(over.message).to.match(/MEDIAJOBS_MAX_SIGNATURE_AGE/);
    const query = presignedQuery('AKIDabc', `${now - 10};${now + 10}`).replace(/q-sign-time=[^&]*/, `q-sign-time=${now - 10}%3B${now + THIRTY_DAYS}`);
    const signOver = await ciErrorOf(verifyCosSignature({ ...req(''), query }, async () => 'key', now));
    expect(signOver.message).to.match(/q-sign-time/).and.match(/MEDIAJOBS_MAX_SIGNATURE_AGE/);
  });

  it('lets a span of exactly the limit through to the signature check, and honours a smaller limit', async () => {
    const exact = await ciErrorOf(verifyCosSignature(req(`${now - 10};${now - 10 + THIRTY_DAYS}`), async () => 'key', now));
    expect(exact.code).to.equal('SignatureDoesNotMatch'); // past the age check: the zero signature is wrong
    const hour = await ciErrorOf(verifyCosSignature(req(`${now - 10};${now + 3600}`), async () => 'key', now, { maxSignatureAgeSeconds: 3600 }));
    expect(hour.code).to.equal('AccessDenied');
    expect(hour.message).to.match(/at most 3600 s/);
  });

  it('reads MEDIAJOBS_MAX_SIGNATURE_AGE as a duration, 30 days by default', () => {
    expect(loadConfig({}).maxSignatureAgeMs).to.equal(THIRTY_DAYS * 1000);
    expect(loadConfig({ MEDIAJOBS_MAX_SIGNATURE_AGE: '1h' }).maxSignatureAgeMs).to.equal(3_600_000);
    expect(() => loadConfig({ MEDIAJOBS_MAX_SIGNATURE_AGE: 'forever' })).to.throw(ConfigError, /MEDIAJOBS_MAX_SIGNATURE_AGE/);
    expect(() => loadConfig({ MEDIAJOBS_MAX_SIGNATURE_AGE: '0' })).to.throw(ConfigError, /MEDIAJOBS_MAX_SIGNATURE_AGE/);
  });
});

describe('signature limits over HTTP', () => {
  let api: TestService;
  let port: number;
  before(async () => {
    api = await startTestService();
    port = api.service.port!;
  });
  after(async () => { await api.stop(); });

  function signedPost(keyTime?: string) {
    const headers = { host: `127.0.0.1:${port}`, 'content-type': 'application/xml', 'content-length': String(Buffer.byteLength(CREATE_MEDIAINFO)) };
    const authorization = signRequest({ method: 'POST', path: '/jobs', headers, secretId: api.service.app.secretId, secretKey: api.service.app.secretKey, keyTime });
    return api.request('POST', '/jobs', { body: CREATE_MEDIAINFO, headers: { ...headers, authorization } });
  }

  it('answers a presigned URL whose q-ak holds a NUL with 403 AccessDenied, not a database error', async () => {
    for (const ak of ['AKID%00x', '%00', 'AKID%01']) {
      const query = presignedQuery('PLACEHOLDER', nowWindow()).replace('PLACEHOLDER', ak);
      const res = await api.request('GET', `/jobs?${query}`);
      expect(res.status, `${ak}: ${res.text}`).to.equal(403);
      expect(res.xml.Error.Code, ak).to.equal('AccessDenied');
      expect(res.xml.Error.Message, ak).to.match(/q-ak/);
    }
  });

  it('answers an Authorization whose q-ak is garbage with 403', async () => {
    const authorization = `q-sign-algorithm=sha1&q-ak=AKID\xff"<>&q-sign-time=${nowWindow()}&q-key-time=${nowWindow()}&q-header-list=&q-url-param-list=&q-signature=${'0'.repeat(40)}`;
    const res = await api.request('GET', '/jobs', { headers: { authorization } });
    expect(res.status, res.text).to.equal(403);
    expect(res.xml.Error.Code).to.equal('AccessDenied');
  });

  it('refuses a signature valid from 0 to 999999999999 with 403 AccessDenied naming the limit', async () => {
    const res = await signedPost('0;999999999999');
    expect(res.status, res.text).to.equal(403);
    expect(res.xml.Error.Code).to.equal('AccessDenied');
    expect(res.xml.Error.Message).to.match(/at most 2592000 s \(MEDIAJOBS_MAX_SIGNATURE_AGE\)/);
  });

  it('accepts an SDK-default signature (900 s) and one valid for exactly 30 days (controls)', async () => {
    for (const keyTime of [undefined, nowWindow(THIRTY_DAYS)]) {
      const res = await signedPost(keyTime);
      expect(res.status, `${keyTime}: ${res.text}`).to.equal(200);
    }
  });
});

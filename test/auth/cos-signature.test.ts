import { expect } from 'chai';
import COS from 'cos-nodejs-sdk-v5';
import {
  buildHttpHeaders,
  buildHttpParameters,
  buildHttpString,
  buildSignKey,
  buildSignature,
  buildStringToSign,
  cosEncode,
  parseAuthorization,
  parseQuery,
  REQUEST_EXPIRED_MESSAGE,
  verifyCosSignature,
  type SignedRequest,
} from '../../src/auth/cos-signature.js';
import { CiError, type CiErrorCode } from '../../src/errors.js';
import {
  flipSignature,
  replaceAuthField,
  sdkListJobsQuery,
  sdkRequest,
  signRequest,
  withAuthorization,
  withHeader,
  type SdkRequestOptions,
} from '../helpers/cos-signer.js';

const NOW = 1_700_000_000;
const SECRET_ID = 'AKIDmediajobsTestSecretId0000000000';
const SECRET_KEY = 'mediajobsTestSecretKey000000000';
const HOST = '127.0.0.1:8080';
const JOB_ID = 'j682b9662f84611ecb8546d80f2baf56f';
const QUEUE_ID = 'p2242ab62c7c94486915508540933a2c6';

const secrets: Record<string, string> = { [SECRET_ID]: SECRET_KEY, other: 'otherKey' };
const lookupSecret = async (id: string) => secrets[id];
/** Unsigned headers every SDK request carries. */
const SDK_EXTRAS = { 'User-Agent': 'cos-nodejs-sdk-v5-3.0.0', Connection: 'keep-alive' };

function verify(req: SignedRequest, now = NOW) {
  return verifyCosSignature(req, lookupSecret, now);
}

async function expectCiError(promise: Promise<unknown>, code: CiErrorCode, message?: string): Promise<void> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(CiError);
    expect((err as CiError).code).to.equal(code);
    if (message !== undefined) expect((err as CiError).message).to.equal(message);
    return;
  }
  expect.fail(`expected CiError ${code}, got success`);
}

/** Signs with the real SDK's static getAuthorization, at NOW (same window as the SDK's default). */
function sdkAuthorization(opts: Pick<SdkRequestOptions, 'method' | 'path' | 'query' | 'headers'>): string {
  return COS.getAuthorization({
    SecretId: SECRET_ID,
    SecretKey: SECRET_KEY,
    Method: opts.method as COS.Method,
    Pathname: opts.path,
    Query: opts.query ?? {},
    Headers: opts.headers ?? {},
    KeyTime: `${NOW - 1};${NOW + 899}`,
  });
}

describe('COS signature building blocks', () => {
  it('cosEncode leaves only RFC 3986 unreserved characters, upper-case hex', () => {
    expect(cosEncode("aZ09-_.~ !'()*/:+,中")).to.equal('aZ09-_.~%20%21%27%28%29%2A%2F%3A%2B%2C%E4%B8%AD');
  });

  it('parseQuery gives an empty value to a parameter without "=" and decodes "+" as a space', () => {
    expect(parseQuery('cancel')).to.deep.equal([['cancel', '']]);
    expect(parseQuery('cancel=&a=b+c%2Bd')).to.deep.equal([
      ['cancel', ''],
      ['a', 'b c+d'],
    ]);
  });

  it('reproduces the Go SDK auth_test.go vector (ce4ac0ec…)', () => {
    const keyTime = '1480932292;1481012292';
    const headers = {
      host: 'testbucket-125000000.cos.ap-guangzhou.myqcloud.com',
      'x-cos-content-sha1': 'db8ac1c259eb89d4a131b253bacfca5f319d54f2',
      'x-cos-stroage-class': 'nearline',
    };
    const httpHeaders = buildHttpHeaders(headers, ['host', 'x-cos-content-sha1', 'x-cos-stroage-class']);
    const httpString = buildHttpString('PUT', '/testfile2', buildHttpParameters([], []), httpHeaders);
    const signature = buildSignature(buildSignKey('AKIDZfbOA78asKUYBcXFrJD0a1ICvR98JM', keyTime), buildStringToSign(keyTime, httpString));
    expect(signature).to.equal('ce4ac0ecbcdb30538b3fee0a97cc6389694ce53a');
  });

  it('reproduces the self-generated GET /jobs vector (634d801d…)', () => {
    const keyTime = '1700000000;1700003600';
    const httpString = buildHttpString(
      'GET',
      '/jobs',
      buildHttpParameters(parseQuery(`queueId=${QUEUE_ID}&tag=Transcode`), ['queueid', 'tag']),
      buildHttpHeaders({ host: 'test-1250000000.ci.ap-chongqing.myqcloud.com' }, ['host']),
    );
    expect(httpString).to.equal(`get\n/jobs\nqueueid=${QUEUE_ID}&tag=Transcode\nhost=test-1250000000.ci.ap-chongqing.myqcloud.com\n`);
    expect(buildSignature(buildSignKey('testSecretKey', keyTime), buildStringToSign(keyTime, httpString))).to.equal(
      '634d801d0280f1c04144f500dbff901199f4de3b',
    );
  });

  it('reproduces the self-generated PUT ?cancel vector (efbc2451…)', () => {
    const keyTime = '1700000000;1700003600';
    const httpString = buildHttpString(
      'PUT',
      `/jobs/${JOB_ID}`,
      buildHttpParameters(parseQuery('cancel'), ['cancel']),
      buildHttpHeaders({ host: 'test-1250000000.ci.ap-chongqing.myqcloud.com' }, ['host']),
    );
    expect(buildSignature(buildSignKey('testSecretKey', keyTime), buildStringToSign(keyTime, httpString))).to.equal(
      'efbc245145f8813d91236067b7c12b84204f2b20',
    );
  });

  it('sorts signed pairs by key and ignores unlisted ones', () => {
    const headers = { host: 'h', 'x-cos-b': 'B', 'x-cos-a': 'a b', 'content-md5': '', 'user-agent': 'x' };
    expect(buildHttpHeaders(headers, ['x-cos-b', 'host', 'x-cos-a', 'content-md5'])).to.equal('content-md5=&host=h&x-cos-a=a%20b&x-cos-b=B');
  });

  it('refuses a listed header or parameter the request lacks with SignatureDoesNotMatch', () => {
    expect(() => buildHttpHeaders({ host: 'h' }, ['content-md5', 'host'])).to.throw(CiError).with.property('code', 'SignatureDoesNotMatch');
    expect(() => buildHttpParameters(parseQuery(''), ['cancel'])).to.throw(CiError).with.property('code', 'SignatureDoesNotMatch');
  });
});

describe('verifyCosSignature: spec vectors', () => {
  const host = 'test-1250000000.ci.ap-chongqing.myqcloud.com';
  const keyTime = '1700000000;1700003600';
  const auth = (headerList: string, paramList: string, signature: string) =>
    `q-sign-algorithm=sha1&q-ak=testId&q-sign-time=${keyTime}&q-key-time=${keyTime}` +
    `&q-header-list=${headerList}&q-url-param-list=${paramList}&q-signature=${signature}`;
  const lookup = async (id: string) => (id === 'testId' ? 'testSecretKey' : undefined);

  it('accepts the Go auth_test.go request', async () => {
    const req: SignedRequest = {
      method: 'PUT',
      path: '/testfile2',
      query: '',
      headers: {
        host: 'testbucket-125000000.cos.ap-guangzhou.myqcloud.com',
        'x-cos-content-sha1': 'db8ac1c259eb89d4a131b253bacfca5f319d54f2',
        'x-cos-stroage-class': 'nearline',
        authorization:
          'q-sign-algorithm=sha1&q-ak=goId&q-sign-time=1480932292;1481012292&q-key-time=1480932292;1481012292' +
          '&q-header-list=host;x-cos-content-sha1;x-cos-stroage-class&q-url-param-list=' +
          '&q-signature=ce4ac0ecbcdb30538b3fee0a97cc6389694ce53a',
      },
    };
    expect(await verifyCosSignature(req, async () => 'AKIDZfbOA78asKUYBcXFrJD0a1ICvR98JM', 1480932300)).to.equal('goId');
  });

  it('accepts the GET /jobs vector', async () => {
    const req: SignedRequest = {
      method: 'GET',
      path: '/jobs',
      query: `queueId=${QUEUE_ID}&tag=Transcode`,
      headers: { host, authorization: auth('host', 'queueid;tag', '634d801d0280f1c04144f500dbff901199f4de3b') },
    };
    expect(await verifyCosSignature(req, lookup, 1700000100)).to.equal('testId');
  });

  for (const query of ['cancel', 'cancel=']) {
    it(`accepts the cancel vector sent as ?${query}`, async () => {
      const req: SignedRequest = {
        method: 'PUT',
        path: `/jobs/${JOB_ID}`,
        query,
        headers: { host, authorization: auth('host', 'cancel', 'efbc245145f8813d91236067b7c12b84204f2b20') },
      };
      expect(await verifyCosSignature(req, lookup, 1700000100)).to.equal('testId');
    });
  }
});

/** The Node SDK calls from shared/sdk-wire-format.md §2, as signer input. */
const SDK_CALLS: Record<string, SdkRequestOptions> = {
  'POST /jobs with Content-Type and Content-Length': {
    method: 'POST',
    path: '/jobs',
    headers: { 'Content-Type': 'application/xml', 'Content-Length': 245, Host: HOST },
    secretId: SECRET_ID,
    secretKey: SECRET_KEY,
  },
  'GET /jobs with the list query, including an empty workflowId': {
    method: 'GET',
    path: '/jobs',
    query: sdkListJobsQuery(QUEUE_ID),
    headers: { Host: HOST },
    secretId: SECRET_ID,
    secretKey: SECRET_KEY,
  },
  'GET /jobs/<id>': { method: 'GET', path: `/jobs/${JOB_ID}`, headers: { Host: HOST }, secretId: SECRET_ID, secretKey: SECRET_KEY },
  'PUT /jobs/<id>?cancel=': {
    method: 'PUT',
    path: `/jobs/${JOB_ID}`,
    query: { cancel: '' },
    headers: { 'Content-Length': 0, Host: HOST },
    secretId: SECRET_ID,
    secretKey: SECRET_KEY,
  },
  'GET /queue with its query': {
    method: 'GET',
    path: '/queue',
    query: { state: 'Active', category: 'CateAll', pageNumber: 1, pageSize: 10 },
    headers: { Host: HOST },
    secretId: SECRET_ID,
    secretKey: SECRET_KEY,
  },
  'a retry carrying the signed x-cos-sdk-retry header': {
    method: 'POST',
    path: '/jobs',
    headers: { 'Content-Type': 'application/xml', 'Content-Length': 245, Host: HOST, 'x-cos-sdk-retry': 'true' },
    secretId: SECRET_ID,
    secretKey: SECRET_KEY,
  },
  'a virtual-host request (Ip option, no port)': {
    method: 'GET',
    path: `/jobs/${JOB_ID}`,
    headers: { Host: 'test-1250000000.ci.ap-chongqing.myqcloud.com' },
    secretId: SECRET_ID,
    secretKey: SECRET_KEY,
  },
  'a key with special characters, signed decoded': {
    method: 'GET',
    path: "/jobs/a b+c(1)!*'~,中文.mp4",
    headers: { Host: HOST },
    secretId: SECRET_ID,
    secretKey: SECRET_KEY,
  },
  'a key with special characters, signed still encoded (Key taken from the Url)': {
    method: 'GET',
    path: '/jobs/a%20b%2Bc%E4%B8%AD.mp4',
    wirePath: '/jobs/a%20b%2Bc%E4%B8%AD.mp4',
    headers: { Host: HOST },
    secretId: SECRET_ID,
    secretKey: SECRET_KEY,
  },
};

describe('verifyCosSignature: cos-nodejs-sdk-v5 parity', () => {
  for (const [name, call] of Object.entries(SDK_CALLS)) {
    it(`the test signer matches COS.getAuthorization for ${name}`, () => {
      const ours = signRequest({ ...call, now: NOW });
      const theirs = sdkAuthorization(call);
      expect(ours).to.equal(theirs);
    });

    it(`accepts ${name} signed by the SDK`, async () => {
      const req = sdkRequest({ ...call, now: NOW, unsignedHeaders: SDK_EXTRAS });
      req.headers['authorization'] = sdkAuthorization(call);
      expect(await verify(req)).to.equal(SECRET_ID);
    });
  }

  it('signs the list call exactly as captured in sdk-wire-format.md §3', () => {
    const call = SDK_CALLS['GET /jobs with the list query, including an empty workflowId']!;
    const req = sdkRequest({ ...call, now: NOW });
    expect(req.query).to.include('startCreationTime=2001-01-01T00%3A00%3A00%2B0800').and.include('workflowId=');
    expect(String(req.headers['authorization'])).to.include(
      'q-header-list=host&q-url-param-list=orderbytime;queueid;size;startcreationtime;states;tag;workflowid&',
    );
  });

  it('accepts a presigned URL from cos.getObjectUrl (fields in the query string)', async () => {
    const cos = new COS({ SecretId: SECRET_ID, SecretKey: SECRET_KEY });
    const url = await new Promise<string>((resolve, reject) =>
      cos.getObjectUrl(
        { Bucket: 'test-1250000000', Region: 'ap-chongqing', Key: 'input/a b.mp4', Sign: true, Query: { 'ci-process': 'videoinfo', dummy: 'x y' } },
        (err, data) => (err ? reject(err) : resolve(data.Url)),
      ),
    );
    const parsed = new URL(url);
    const req: SignedRequest = { method: 'GET', path: parsed.pathname, query: parsed.search.slice(1), headers: { host: parsed.host } };
    expect(await verify(req, Math.floor(Date.now() / 1000))).to.equal(SECRET_ID);
    const tampered = { ...req, query: req.query.replace('videoinfo', 'snapshot') };
    await expectCiError(verify(tampered, Math.floor(Date.now() / 1000)), 'SignatureDoesNotMatch');
  });
});

describe('verifyCosSignature: other clients', () => {
  it('accepts a Python-style signature over the host without its port', async () => {
    const req = sdkRequest({ method: 'GET', path: '/jobs', headers: { Host: 'localhost' }, secretId: SECRET_ID, secretKey: SECRET_KEY, now: NOW });
    expect(await verify(withHeader(req, 'host', 'localhost:8080'))).to.equal(SECRET_ID);
  });

  it('accepts a path whose comma is percent-encoded on the wire but signed decoded', async () => {
    const req = sdkRequest({
      method: 'GET',
      path: '/jobs/a,b',
      wirePath: '/jobs/a%2Cb',
      headers: { Host: HOST },
      secretId: SECRET_ID,
      secretKey: SECRET_KEY,
      now: NOW,
    });
    expect(req.path).to.equal('/jobs/a%2Cb');
    expect(await verify(req)).to.equal(SECRET_ID);
  });

  it('accepts Python-style "+" for a space in a signed query value', async () => {
    const req = sdkRequest({
      method: 'GET',
      path: '/jobs',
      query: { tag: 'a b' },
      headers: { Host: HOST },
      secretId: SECRET_ID,
      secretKey: SECRET_KEY,
      now: NOW,
    });
    expect(await verify({ ...req, query: 'tag=a+b' })).to.equal(SECRET_ID);
  });

  describe('a listed header signed with an empty value (Go sends empty headers)', () => {
    const keyTime = `${NOW};${NOW + 60}`;
    const httpString = buildHttpString('GET', '/jobs', '', `content-md5=&host=${cosEncode(HOST)}`);
    const signature = buildSignature(buildSignKey(SECRET_KEY, keyTime), buildStringToSign(keyTime, httpString));
    const authorization =
      `q-sign-algorithm=sha1&q-ak=${SECRET_ID}&q-sign-time=${keyTime}&q-key-time=${keyTime}` +
      `&q-header-list=content-md5;host&q-url-param-list=&q-signature=${signature}`;

    it('is accepted when sent empty', async () => {
      const req: SignedRequest = { method: 'GET', path: '/jobs', query: '', headers: { host: HOST, 'content-md5': '', authorization } };
      expect(await verify(req)).to.equal(SECRET_ID);
    });

    it('is refused when not sent at all', async () => {
      await expectCiError(verify({ method: 'GET', path: '/jobs', query: '', headers: { host: HOST, authorization } }), 'SignatureDoesNotMatch');
    });
  });

  it('tolerates unsigned extra parameters and headers', async () => {
    const req = sdkRequest({ ...SDK_CALLS['GET /jobs/<id>']!, now: NOW });
    expect(await verify(withHeader({ ...req, query: 'extra=1' }, 'x-cos-unsigned', 'v'))).to.equal(SECRET_ID);
  });
});

describe('verifyCosSignature: tampered requests', () => {
  const post = () => sdkRequest({ ...SDK_CALLS['POST /jobs with Content-Type and Content-Length']!, now: NOW, unsignedHeaders: SDK_EXTRAS });
  const list = () => sdkRequest({ ...SDK_CALLS['GET /jobs with the list query, including an empty workflowId']!, now: NOW });
  const cancel = () => sdkRequest({ ...SDK_CALLS['PUT /jobs/<id>?cancel=']!, now: NOW });

  const mismatches: Record<string, () => SignedRequest> = {
    'a changed method': () => ({ ...post(), method: 'PUT' }),
    'a changed path': () => ({ ...post(), path: '/jobs2' }),
    'a changed job id': () => ({ ...cancel(), path: `/jobs/${JOB_ID.replace(/f$/, 'e')}` }),
    'a changed host': () => withHeader(post(), 'host', '127.0.0.1:8081'),
    'a changed host without port': () => withHeader(post(), 'host', 'evil.example'),
    'a changed content-length': () => withHeader(post(), 'content-length', '246'),
    'a changed content-type': () => withHeader(post(), 'content-type', 'text/xml'),
    'a removed content-type': () => withHeader(post(), 'content-type', undefined),
    'a changed query value': () => {
      const req = list();
      return { ...req, query: req.query.replace('tag=MediaInfo', 'tag=Transcode') };
    },
    'a removed query parameter': () => {
      const req = list();
      return { ...req, query: req.query.replace(/&size=10/, '') };
    },
    'a value given to an empty parameter': () => {
      const req = list();
      return { ...req, query: req.query.replace('workflowId=', 'workflowId=w1') };
    },
    'a removed cancel parameter': () => ({ ...cancel(), query: '' }),
    'a flipped signature': () => withAuthorization(post(), flipSignature),
    'a shortened header list': () => withAuthorization(post(), (a) => replaceAuthField(a, 'q-header-list', 'host')),
    'a wrong secret key': () =>
      sdkRequest({ ...SDK_CALLS['POST /jobs with Content-Type and Content-Length']!, secretKey: 'wrong', now: NOW }),
    'another known access key': () => withAuthorization(post(), (a) => replaceAuthField(a, 'q-ak', 'other')),
    'a widened sign time': () => withAuthorization(post(), (a) => replaceAuthField(a, 'q-sign-time', `${NOW - 1};${NOW + 9999}`)),
  };
  for (const [name, make] of Object.entries(mismatches)) {
    it(`rejects ${name} with SignatureDoesNotMatch`, async () => {
      await expectCiError(verify(make()), 'SignatureDoesNotMatch');
    });
  }

  it('rejects an unknown access key with InvalidAccessKeyId', async () => {
    await expectCiError(verify(withAuthorization(post(), (a) => replaceAuthField(a, 'q-ak', 'AKIDunknown'))), 'InvalidAccessKeyId');
  });

  it(`rejects an expired signature with AccessDenied "${REQUEST_EXPIRED_MESSAGE}"`, async () => {
    await expectCiError(verify(post(), NOW + 899 + 61), 'AccessDenied', 'Request has expired');
  });

  it('rejects a signature from the future with AccessDenied "Request has expired"', async () => {
    await expectCiError(verify(post(), NOW - 1 - 61), 'AccessDenied', 'Request has expired');
  });

  it('rejects an expired q-key-time even when q-sign-time is current', async () => {
    const req = sdkRequest({ ...SDK_CALLS['GET /jobs/<id>']!, keyTime: `${NOW - 1000};${NOW - 900}` });
    const current = withAuthorization(req, (a) => replaceAuthField(a, 'q-sign-time', `${NOW - 1};${NOW + 899}`));
    await expectCiError(verify(current), 'AccessDenied', 'Request has expired');
  });

  it('allows 60 s of clock skew at both ends', async () => {
    expect(await verify(post(), NOW + 899 + 60)).to.equal(SECRET_ID);
    expect(await verify(post(), NOW - 1 - 60)).to.equal(SECRET_ID);
  });

  it('checks the time before looking up the key', async () => {
    const req = withAuthorization(post(), (a) => replaceAuthField(a, 'q-ak', 'AKIDunknown'));
    await expectCiError(verify(req, NOW + 10_000), 'AccessDenied', 'Request has expired');
  });
});

describe('parseAuthorization', () => {
  const valid = signRequest({ method: 'GET', path: '/jobs', headers: { Host: HOST }, secretId: SECRET_ID, secretKey: SECRET_KEY, now: NOW });

  it('returns the seven fields', () => {
    expect(parseAuthorization(valid)).to.deep.include({
      algorithm: 'sha1',
      secretId: SECRET_ID,
      signTime: `${NOW - 1};${NOW + 899}`,
      signStart: NOW - 1,
      signEnd: NOW + 899,
      keyTime: `${NOW - 1};${NOW + 899}`,
      headerList: ['host'],
      urlParamList: [],
    });
  });

  const malformed: Record<string, string> = {
    'an empty header': '',
    'a header that is not q-sign': 'Bearer abc',
    'a missing q-ak': replaceAuthField(valid, 'q-ak', undefined),
    'an empty q-ak': replaceAuthField(valid, 'q-ak', ''),
    'a missing q-signature': replaceAuthField(valid, 'q-signature', undefined),
    'a missing q-header-list': replaceAuthField(valid, 'q-header-list', undefined),
    'a missing q-url-param-list': replaceAuthField(valid, 'q-url-param-list', undefined),
    'a non-hex q-signature': replaceAuthField(valid, 'q-signature', 'z'.repeat(40)),
    'a short q-signature': replaceAuthField(valid, 'q-signature', 'abc'),
    'a malformed q-sign-time': replaceAuthField(valid, 'q-sign-time', 'yesterday'),
    'a q-key-time that ends before it starts': replaceAuthField(valid, 'q-key-time', `${NOW};${NOW - 1}`),
    'another algorithm': replaceAuthField(valid, 'q-sign-algorithm', 'md5'),
    'a repeated field': `${valid}&q-ak=other`,
  };
  for (const [name, header] of Object.entries(malformed)) {
    it(`refuses ${name} with AccessDenied`, () => {
      expect(() => parseAuthorization(header)).to.throw(CiError).with.property('code', 'AccessDenied');
    });
  }

  it('names the unsupported algorithm in its message', () => {
    expect(() => parseAuthorization(replaceAuthField(valid, 'q-sign-algorithm', 'hmac-sha256'))).to.throw(CiError, /only sha1/);
  });

  it('verifyCosSignature refuses a request without any Authorization with AccessDenied', async () => {
    await expectCiError(verify({ method: 'GET', path: '/jobs', query: '', headers: { host: HOST } }), 'AccessDenied');
  });
});

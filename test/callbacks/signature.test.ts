import { expect } from 'chai';
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import {
  callbackHeaders,
  DELIVERY_ID_HEADER,
  SIGNATURE_HEADER,
  signBody,
  TIMESTAMP_HEADER,
  verifySignature,
} from '../../src/callbacks/signature.js';

/** The receiver example from the signature.ts doc comment (and the README), typed and otherwise verbatim. */
function isFromMediajobs(headers: IncomingHttpHeaders, rawBody: Buffer, secret: string): boolean {
  const timestamp = String(headers['x-mediajobs-timestamp'] ?? '');
  const given = Buffer.from(String(headers['x-mediajobs-signature'] ?? ''));
  const expected = Buffer.from('sha256=' + createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest('hex'));
  const fresh = /^\d+$/.test(timestamp) && Math.abs(Date.now() / 1000 - Number(timestamp)) <= 300;
  return fresh && given.length === expected.length && timingSafeEqual(given, expected);
}

/** Headers as Node's server hands them to a receiver: lower-case names. */
const asReceived = (headers: Record<string, string>): IncomingHttpHeaders =>
  Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));

const SECRET = 's3cret';
const T = 1_700_000_000;
const NOW_MS = T * 1000;

describe('signBody', () => {
  it('matches an HMAC-SHA256 computed by openssl over "<timestamp>.<body>"', () => {
    // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 's3cret'
    expect(signBody(SECRET, '{"a":1}', T)).to.equal('sha256=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940');
  });

  it('signs a string as its UTF-8 bytes', () => {
    const body = '{"UserData":"视频 ✓"}';
    expect(signBody(SECRET, body, T)).to.equal(signBody(SECRET, Buffer.from(body, 'utf8'), T));
  });

  it('refuses an empty secret and a timestamp that is not whole seconds', () => {
    expect(() => signBody('', 'x', T)).to.throw(/non-empty secret/);
    expect(() => signBody(SECRET, 'x', Date.now() / 1000 + 0.5)).to.throw(/whole unix seconds/);
    expect(() => signBody(SECRET, 'x', -1)).to.throw(/whole unix seconds/);
  });
});

describe('verifySignature', () => {
  const body = '<Response><EventName>TaskFinish</EventName></Response>';
  const signature = signBody(SECRET, body, T);
  const valid = { secret: SECRET, body, timestamp: String(T), signature, nowMs: NOW_MS };

  it('accepts a fresh, correct signature', () => {
    expect(verifySignature(valid)).to.equal(true);
    expect(verifySignature({ ...valid, body: Buffer.from(body) })).to.equal(true);
  });

  it('accepts up to 300 s of clock difference either way, and no more', () => {
    expect(verifySignature({ ...valid, nowMs: NOW_MS + 300_000 })).to.equal(true);
    expect(verifySignature({ ...valid, nowMs: NOW_MS - 300_000 })).to.equal(true);
    expect(verifySignature({ ...valid, nowMs: NOW_MS + 301_000 })).to.equal(false);
    expect(verifySignature({ ...valid, nowMs: NOW_MS - 301_000 })).to.equal(false);
    expect(verifySignature({ ...valid, nowMs: NOW_MS + 3_600_000, toleranceSeconds: 3600 })).to.equal(true);
  });

  const tampered: Array<[string, Partial<typeof valid>]> = [
    ['a changed body', { body: body.replace('TaskFinish', 'TaskFinisH') }],
    ['a wrong secret', { secret: 'other' }],
    ['an empty secret', { secret: '' }],
    ['a timestamp other than the signed one', { timestamp: String(T + 1) }],
    ['a non-numeric timestamp', { timestamp: '1700000000.0' }],
    ['an empty timestamp', { timestamp: '' }],
    ['a signature without its scheme', { signature: signature.slice('sha256='.length) }],
    ['a truncated signature', { signature: signature.slice(0, -2) }],
    ['an empty signature', { signature: '' }],
    ['a non-hex signature', { signature: `sha256=${'z'.repeat(64)}` }],
  ];
  for (const [what, change] of tampered) {
    it(`refuses ${what}`, () => {
      expect(verifySignature({ ...valid, ...change })).to.equal(false);
    });
  }
});

describe('callbackHeaders', () => {
  it('sends the delivery id, timestamp and signature under their documented names', () => {
    const headers = callbackHeaders({ deliveryId: 'd-42', body: 'x', secret: SECRET, timestamp: T });
    expect(headers).to.deep.equal({
      'X-Mediajobs-Delivery-Id': 'd-42',
      'X-Mediajobs-Timestamp': '1700000000',
      'X-Mediajobs-Signature': signBody(SECRET, 'x', T),
    });
    expect([DELIVERY_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER]).to.deep.equal(Object.keys(headers));
  });

  it('leaves the signature out when no secret is configured', () => {
    expect(callbackHeaders({ deliveryId: 'd-42', body: 'x', secret: '', timestamp: T })).to.have.all.keys(DELIVERY_ID_HEADER, TIMESTAMP_HEADER);
  });

  it('keeps the delivery id across retries while the timestamp and signature change', () => {
    const first = callbackHeaders({ deliveryId: 'd-42', body: 'x', secret: SECRET, timestamp: T });
    const retry = callbackHeaders({ deliveryId: 'd-42', body: 'x', secret: SECRET, timestamp: T + 60 });
    expect(retry[DELIVERY_ID_HEADER]).to.equal(first[DELIVERY_ID_HEADER]);
    expect(retry[SIGNATURE_HEADER]).to.not.equal(first[SIGNATURE_HEADER]);
  });

  it('defaults the timestamp to now, in seconds', () => {
    const seconds = Number(callbackHeaders({ deliveryId: 'd', body: 'x', secret: SECRET })[TIMESTAMP_HEADER]);
    expect(Math.abs(seconds - Date.now() / 1000)).to.be.below(2);
  });
});

describe('the README receiver example', () => {
  const body = Buffer.from('{"EventName":"TaskFinish","JobsDetail":{"UserData":"视频 ✓"}}', 'utf8');

  it('accepts what callbackHeaders signs', () => {
    const headers = asReceived(callbackHeaders({ deliveryId: 'd-1', body, secret: SECRET }));
    expect(isFromMediajobs(headers, body, SECRET)).to.equal(true);
  });

  it('refuses a changed body, a wrong secret, a stale timestamp and a missing signature', () => {
    const headers = asReceived(callbackHeaders({ deliveryId: 'd-1', body, secret: SECRET }));
    expect(isFromMediajobs(headers, Buffer.concat([body, Buffer.from(' ')]), SECRET)).to.equal(false);
    expect(isFromMediajobs(headers, body, 'other')).to.equal(false);
    const stale = Math.floor(Date.now() / 1000) - 600;
    expect(isFromMediajobs(asReceived(callbackHeaders({ deliveryId: 'd-1', body, secret: SECRET, timestamp: stale })), body, SECRET)).to.equal(false);
    expect(isFromMediajobs(asReceived(callbackHeaders({ deliveryId: 'd-1', body, secret: '' })), body, SECRET)).to.equal(false);
  });
});

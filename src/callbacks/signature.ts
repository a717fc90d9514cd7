import { createHmac, timingSafeEqual } from 'node:crypto';

/*
 * Our own callback signature. CI documents none (shared/ci-api.md §6.1), so
 * receivers written for CI ignore these headers; receivers written for us can
 * check that a notification came from this service and is recent.
 *
 *   X-Mediajobs-Delivery-Id: <opaque id, the same on every retry of one notification>
 *   X-Mediajobs-Timestamp:   <unix seconds when this attempt was signed>
 *   X-Mediajobs-Signature:   sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body bytes>")>
 *
 * The timestamp is inside the MAC so a captured request cannot be replayed
 * later with a fresh timestamp; receivers refuse old timestamps and drop
 * repeated delivery ids (retries after a lost 2xx are expected, so receivers
 * must be idempotent anyway). Each attempt is signed anew, so the signature
 * changes between retries while the delivery id does not.
 *
 * Receiver check, Node, no dependencies (copied into the README):
 *
 * ```js
 * import { createHmac, timingSafeEqual } from 'node:crypto';
 *
 * // rawBody: the request body exactly as received (a Buffer), before any JSON/XML parsing.
 * function isFromMediajobs(headers, rawBody, secret) {
 *   const timestamp = String(headers['x-mediajobs-timestamp'] ?? '');
 *   const given = Buffer.from(String(headers['x-mediajobs-signature'] ?? ''));
 *   const expected = Buffer.from('sha256=' + createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest('hex'));
 *   const fresh = /^\d+$/.test(timestamp) && Math.abs(Date.now() / 1000 - Number(timestamp)) <= 300;
 *   return fresh && given.length === expected.length && timingSafeEqual(given, expected);
 * }
 * // Then answer 2xx quickly, and skip the work if x-mediajobs-delivery-id was seen before.
 * ```
 */

export const DELIVERY_ID_HEADER = 'X-Mediajobs-Delivery-Id';
export const TIMESTAMP_HEADER = 'X-Mediajobs-Timestamp';
export const SIGNATURE_HEADER = 'X-Mediajobs-Signature';
/** The signature header value is this prefix and the lowercase hex MAC. */
export const SIGNATURE_SCHEME = 'sha256=';
/** Timestamps further than this from the receiver's clock are refused by `verifySignature`. */
export const DEFAULT_SIGNATURE_TOLERANCE_SECONDS = 300;

/**
 * Signs one attempt: returns the `X-Mediajobs-Signature` value,
 * `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. `timestamp` is unix
 * seconds; `body` is the exact bytes sent (a string is taken as UTF-8).
 *
 * @example
 * signBody('s3cret', '{"EventName":"TaskFinish"}', 1700000000) // 'sha256=…64 hex…'
 */
export function signBody(secret: string, body: string | Uint8Array, timestamp: number): string {
  if (secret === '') throw new Error('signBody needs a non-empty secret; send unsigned callbacks without calling it.');
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new Error(`Callback timestamp must be whole unix seconds, got ${timestamp}.`);
  return SIGNATURE_SCHEME + createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

/**
 * The headers that identify and sign one attempt. Without a secret (the
 * default, MEDIAJOBS_CALLBACK_SECRET unset) only the delivery id and timestamp
 * are sent.
 */
export function callbackHeaders(options: {
  readonly deliveryId: string;
  readonly body: string | Uint8Array;
  readonly secret: string;
  /** Unix seconds; defaults to now. */
  readonly timestamp?: number;
}): Record<string, string> {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    [DELIVERY_ID_HEADER]: options.deliveryId,
    [TIMESTAMP_HEADER]: String(timestamp),
  };
  if (options.secret !== '') headers[SIGNATURE_HEADER] = signBody(options.secret, options.body, timestamp);
  return headers;
}

/**
 * The receiver's side of `signBody`: true when `signature` (the
 * `X-Mediajobs-Signature` value) is valid for `body` and `timestamp` (the
 * `X-Mediajobs-Timestamp` value, as received) and the timestamp is within
 * `toleranceSeconds` of `nowMs`. Compares in constant time; never throws.
 */
export function verifySignature(options: {
  readonly secret: string;
  readonly body: string | Uint8Array;
  readonly timestamp: string;
  readonly signature: string;
  readonly toleranceSeconds?: number;
  readonly nowMs?: number;
}): boolean {
  const { secret, body, timestamp, signature } = options;
  if (secret === '' || !/^\d{1,15}$/.test(timestamp)) return false;
  const seconds = Number(timestamp);
  const nowSeconds = (options.nowMs ?? Date.now()) / 1000;
  if (Math.abs(nowSeconds - seconds) > (options.toleranceSeconds ?? DEFAULT_SIGNATURE_TOLERANCE_SECONDS)) return false;
  const expected = Buffer.from(signBody(secret, body, seconds));
  const given = Buffer.from(signature.trim().toLowerCase());
  return given.length === expected.length && timingSafeEqual(given, expected);
}

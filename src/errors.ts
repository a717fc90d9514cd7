import { isRetryableDbError } from './engine/db-retry.js';

/**
 * The whole vocabulary of CI error codes this service answers with: code →
 * HTTP status → default message. Codes and statuses follow CI/COS
 * (`shared/ci-api.md` §7.2); SDKs branch on the code, so never invent a code
 * where CI has one.
 */
export const CI_ERRORS = {
  InvalidArgument: { status: 400, message: 'The request argument is invalid.' },
  MalformedXML: { status: 400, message: 'The XML you provided was not well-formed or did not validate against our published schema.' },
  InvalidRequest: { status: 400, message: 'The request is missing a required element.' },
  InvalidDigest: { status: 400, message: 'The Content-MD5 you specified is not valid.' },
  BadDigest: { status: 400, message: 'The Content-MD5 you specified did not match what we received.' },
  EntityTooLarge: { status: 400, message: 'The request body exceeds the maximum allowed size.' },
  AccessDenied: { status: 403, message: 'Access denied.' },
  SignatureDoesNotMatch: { status: 403, message: 'The request signature we calculated does not match the signature you provided.' },
  InvalidAccessKeyId: { status: 403, message: 'The access key ID you provided does not exist in our records.' },
  RequestTimeTooSkewed: { status: 403, message: 'The difference between the request time and the server time is too large.' },
  NoSuchKey: { status: 404, message: 'The specified key does not exist.' },
  NoSuchBucket: { status: 404, message: 'The specified bucket does not exist.' },
  NoSuchResource: { status: 404, message: 'The specified resource does not exist.' },
  MethodNotAllowed: { status: 405, message: 'The specified method is not allowed against this resource.' },
  // The object API's (COS): buckets, multipart uploads, conditional and ranged reads.
  MetadataTooLarge: { status: 400, message: 'The x-cos-meta-* headers exceed the 2 KB allowed.' },
  InvalidURI: { status: 400, message: 'The URI could not be parsed.' },
  InvalidBucketName: { status: 400, message: 'The specified bucket name is not valid.' },
  KeyTooLong: { status: 400, message: 'The object key is longer than 850 bytes.' },
  IncompleteBody: { status: 400, message: 'The body does not have the length given in Content-Length.' },
  EntityTooSmall: { status: 400, message: 'A part of the multipart upload, other than the last, is smaller than 1 MB.' },
  InvalidPart: { status: 400, message: 'One or more of the specified parts could not be found, or its ETag does not match.' },
  InvalidPartOrder: { status: 400, message: 'The list of parts was not in ascending order of part number.' },
  NoSuchUpload: { status: 404, message: 'The specified multipart upload does not exist.' },
  BucketAlreadyExists: { status: 409, message: 'The requested bucket name is not available.' },
  BucketAlreadyOwnedByYou: { status: 409, message: 'The bucket you tried to create already exists, and you own it.' },
  BucketNotEmpty: { status: 409, message: 'The bucket you tried to delete is not empty.' },
  MissingContentLength: { status: 411, message: 'You must provide the Content-Length HTTP header.' },
  PreconditionFailed: { status: 412, message: 'At least one of the preconditions you specified did not hold.' },
  InvalidRange: { status: 416, message: 'The requested range is not satisfiable.' },
  // HTTP-level refusals (Node's parser and its Expect check), with the status Node would send.
  // CI documents no code for 417 and 431; S3/COS answer RequestTimeout with 400, but 408 tells
  // a client that sending the request again is fine.
  RequestTimeout: { status: 408, message: 'The request headers were not received in time.' },
  ExpectationFailed: { status: 417, message: 'The expectation given in the Expect header cannot be met; only 100-continue is supported.' },
  RequestHeaderFieldsTooLarge: { status: 431, message: 'The request line and headers exceed the maximum allowed size.' },
  InternalError: { status: 500, message: 'We encountered an internal error. Please try again.' },
  NotImplemented: { status: 501, message: 'A header or parameter you provided implies functionality that is not implemented.' },
  ServiceUnavailable: { status: 503, message: 'Service is unable to handle the request now. Please try again.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type CiErrorCode = keyof typeof CI_ERRORS;

/** An error that reaches the client as CI's `<Error>` body. */
export class CiError extends Error {
  readonly code: CiErrorCode;
  readonly status: number;

  constructor(code: CiErrorCode, message?: string) {
    super(message ?? CI_ERRORS[code].message);
    this.name = 'CiError';
    this.code = code;
    this.status = CI_ERRORS[code].status;
  }
}

/** Postgres SQLSTATEs that mean "bad value from the client", not a server fault. */
const CLIENT_SQLSTATES = new Set(['22P02', '22001', '22003', '22007', '22008', '22009', '22021']);

/**
 * Maps anything thrown while serving a request to the CI error the client
 * sees. Unknown errors become `InternalError`; the caller logs them.
 */
export function toCiError(err: unknown): CiError {
  if (err instanceof CiError) return err;
  const e = err as { code?: unknown; status?: unknown; type?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  if (e?.type === 'entity.too.large' || e?.status === 413) return new CiError('EntityTooLarge');
  if (code !== undefined && CLIENT_SQLSTATES.has(code)) return new CiError('InvalidArgument', 'A parameter value is out of range or malformed.');
  if (isRetryableDbError(err)) return new CiError('ServiceUnavailable');
  return new CiError('InternalError');
}

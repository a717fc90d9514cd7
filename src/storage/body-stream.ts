import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { CiError } from '../errors.js';
import { createMd5, type Md5 } from './md5-offload.js';
import type { PutObjectInput } from './object-storage.js';

/**
 * Reads and writes of 1 MiB (the default is 16 KiB): the request's 64 KiB
 * socket reads queue here while the backend's write of the previous ones runs.
 */
const BODY_BUFFER_BYTES = 1024 * 1024;

/**
 * A pass-through that computes the MD5 of what flows (MinIO's hash.Reader),
 * counts it, and fails as soon as more than `maxBytes` pass. At the end it
 * checks the count against the declared length and the digest against
 * Content-MD5, so a backend sees the error before it commits anything.
 * The MD5 of a body of 4 MiB or more runs on a thread of its own
 * (md5-offload.ts).
 */
export class HashingStream extends Transform {
  private readonly md5: Md5;
  size = 0;
  private digest: Buffer | undefined;
  private digestAsked = false;

  constructor(private readonly limits: Pick<PutObjectInput, 'maxBytes' | 'contentLength' | 'contentMd5'>) {
    super({ highWaterMark: BODY_BUFFER_BYTES });
    this.md5 = createMd5(limits.contentLength);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.limits.maxBytes) {
      callback(new CiError('EntityTooLarge', `The body is larger than the ${this.limits.maxBytes} bytes allowed.`));
      return;
    }
    const behind = this.md5.update(chunk);
    if (!behind) {
      callback(null, chunk);
      return;
    }
    // The chunk goes on to the backend now; the next one waits until the hashing thread has caught up.
    this.push(chunk);
    behind.then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    if (this.limits.contentLength !== undefined && this.size !== this.limits.contentLength) {
      callback(new CiError('IncompleteBody', `The body has ${this.size} bytes; Content-Length said ${this.limits.contentLength}.`));
      return;
    }
    this.digestAsked = true;
    this.md5.digest().then((digest) => {
      if (this.limits.contentMd5 && !digest.equals(this.limits.contentMd5)) {
        callback(new CiError('BadDigest'));
        return;
      }
      this.digest = digest;
      callback();
    }, (err: Error) => callback(err));
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // A body that failed (too large, cut short, the client gone): the hashing thread forgets it.
    if (!this.digestAsked) this.md5.abort();
    callback(err);
  }

  /** The quoted hex MD5, once the stream has ended. */
  get etag(): string {
    if (!this.digest) throw new Error('HashingStream: the body has not ended');
    return `"${this.digest.toString('hex')}"`;
  }
}

/**
 * Pipes a request body into a HashingStream without tying their fates as
 * `pipeline` does: a refusal (too large, bad digest) must not destroy the
 * request's socket, or the client would never read the error. A body that
 * ends early (the client hung up) fails the hasher.
 */
export function hashBody(body: Readable, input: Pick<PutObjectInput, 'maxBytes' | 'contentLength' | 'contentMd5'>): HashingStream {
  const hasher = new HashingStream(input);
  const early = () => {
    if (!body.readableEnded) hasher.destroy(new CiError('IncompleteBody', 'The request body ended before it was complete.'));
  };
  body.once('error', early);
  body.once('close', early);
  hasher.once('close', () => {
    body.off('error', early);
    body.off('close', early);
  });
  // A refusal can come before anyone reads the hasher (a short body ends while the backend is still
  // opening its target); it stays in the stream's errored state, where pipeline and for-await find it.
  hasher.on('error', () => undefined);
  body.pipe(hasher);
  return hasher;
}

import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/**
 * The MD5 of a large upload, computed on a thread of its own.
 *
 * MD5 runs at 250–650 MB/s on one core of this host, about as fast as the
 * disk takes a plain copy: on the event loop, a 64 MB PutObject was bound by
 * it (~100 ms of its ~170 ms of CPU). Bodies of at least OFFLOAD_BYTES are
 * copied 512 KiB at a time (a memcpy, a few % of the hash's cost) to one
 * hashing thread, which hashes while the loop goes on receiving and writing.
 * Measured paired against hashing inline (bench/README.md, objects): 64 MB
 * uploads 1.18–1.22×, 1 MB ones 0.92–1.02× (the thread's round trips cost
 * what the overlap saves), hence the threshold. Smaller bodies, and every
 * body if the thread cannot start, are hashed inline.
 */
export interface Md5 {
  /**
   * Adds `chunk`. A promise when the hashing thread has fallen behind (more
   * than MAX_IN_FLIGHT bytes sent and not yet hashed): the caller waits for
   * it before the next chunk, so a fast client cannot queue its whole body.
   */
  update(chunk: Buffer): Promise<void> | undefined;
  /** The 16-byte digest of everything passed to update. Call once. */
  digest(): Promise<Buffer>;
  /** Forgets the hash (the body failed); digest must not be called after. */
  abort(): void;
}

export const OFFLOAD_BYTES = 4 * 1024 * 1024;
const BATCH_BYTES = 512 * 1024;
const MAX_IN_FLIGHT = 4 * 1024 * 1024;

/** An MD5 for a body of `expectedBytes` (undefined: unknown, e.g. chunked). */
export function createMd5(expectedBytes: number | undefined): Md5 {
  if (expectedBytes !== undefined && expectedBytes < OFFLOAD_BYTES) return inlineMd5();
  const thread = hashingThread();
  return thread ? thread.open() : inlineMd5();
}

function inlineMd5(): Md5 {
  const hash = createHash('md5');
  return {
    update: (chunk) => {
      hash.update(chunk);
      return undefined;
    },
    digest: async () => hash.digest(),
    abort: () => undefined,
  };
}

/** The hashing thread's code, evaluated (no file to resolve, so it runs the same from dist/ and under tsx). */
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  if (m.data !== undefined) {
    let hash = hashes.get(m.id);
    if (!hash) { hash = createHash('md5'); hashes.set(m.id, hash); }
    hash.update(new Uint8Array(m.data, 0, m.length));
    parentPort.postMessage({ hashed: m.length, data: m.data }, [m.data]);
  } else if (m.end) {
    const hash = hashes.get(m.id) ?? createHash('md5');
    hashes.delete(m.id);
    const digest = hash.digest();
    parentPort.postMessage({ id: m.id, digest: digest.buffer.slice(digest.byteOffset, digest.byteOffset + digest.length) });
  } else {
    hashes.delete(m.id);
  }
});
`;
interface Pending {
  resolve(digest: Buffer): void;
  reject(err: Error): void;
}

class HashingThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Bytes posted to the thread and not yet hashed (shared by all bodies: the thread is one). */
  private inFlight = 0;
  private caughtUp: Array<() => void> = [];
  /**
  * Batch buffers the thread has hashed and sent back: reused, so the memory
  * a body costs stays MAX_IN_FLIGHT (the thread's V8 heap would otherwise
  * hold transferred buffers until its next GC: +60 MB on a 2 GiB upload).
  */
  private readonly spare: ArrayBuffer[] = [];
  broken = false;

  constructor() {
    this.worker = new Worker(THREAD_SOURCE, { eval: true, name: 'md5' });
    this.worker.unref();
    this.worker.on('message', (m: { hashed: number; data: ArrayBuffer } | { id: number; digest: ArrayBuffer }) => {
      if ('hashed' in m) {
        this.inFlight -= m.hashed;
        if (this.spare.length < MAX_IN_FLIGHT / BATCH_BYTES + 2) this.spare.push(m.data);
        if (this.inFlight <= MAX_IN_FLIGHT / 2) this.release();
        return;
      }
      const waiting = this.pending.get(m.id);
      if (!waiting) return;
      this.pending.delete(m.id);
      this.holdProcess();
      waiting.resolve(Buffer.from(m.digest));
    });
    const fail = (err: Error) => {
      this.broken = true;
      this.release();
      const failed = [...this.pending.values()];
      this.pending.clear();
      this.holdProcess();
      for (const waiting of failed)
        waiting.reject(err);
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`the MD5 thread exited (${code})`)));
  }
  private release(): void {
    const waiting = this.caughtUp;
    this.caughtUp = [];
    for (const resume of waiting)
      resume();
    this.holdProcess();
  }

  /** Idle, the thread does not keep the process alive; while someone waits for it, it does. */
  private holdProcess(): void {
    if (this.pending.size > 0 || this.caughtUp.length > 0) this.worker.ref();
    else
      this.worker.unref();
  }

  open(): Md5 {
    const id = this.nextId++;
    let batch: Buffer | undefined;
    let used = 0;
    let done = false;
    const flush = () => {
      if (!batch || used === 0) return;
      const data = batch.buffer as ArrayBuffer;
      this.worker.postMessage({ id, data, length: used }, [data]);
      this.inFlight += used;
      batch = undefined;
      used = 0;
    };
    return {
      update: (chunk) => {
        let offset = 0;
        while (offset < chunk.length) {
          // A buffer of its own (not a slice of Node's pool), so it can be transferred.
          if (!batch) {
            const spare = this.spare.pop();
            batch = spare ? Buffer.from(spare) : Buffer.allocUnsafeSlow(BATCH_BYTES);
          }
          const n = chunk.copy(batch, used, offset);
          used += n;
          offset += n;
          if (used === BATCH_BYTES) flush();
        }
        if (this.inFlight <= MAX_IN_FLIGHT || this.broken) return undefined;
        return new Promise<void>((resolve) => {
          this.caughtUp.push(resolve);
          this.holdProcess();
        });
      },
      digest: () => {
        done = true;
        flush();
        if (this.broken) return Promise.reject(new Error('the MD5 thread is not running'));
        return new Promise<Buffer>((resolve, reject) => {
          this.pending.set(id, { resolve, reject });
          this.holdProcess();
          this.worker.postMessage({ id, end: true });
        });
      },
      abort: () => {
        if (done) return;
        done = true;
        batch = undefined;
        if (!this.broken) this.worker.postMessage({ id, abort: true });
      },
    };
  }
}

let thread: HashingThread | undefined;
let unavailable = false;

function hashingThread(): HashingThread | undefined {
  if (unavailable) return undefined;
  if (thread && !thread.broken) return thread;
  try {
    thread = new HashingThread();
    return thread;
  } catch {
    unavailable = true;
    return undefined;
  }
}

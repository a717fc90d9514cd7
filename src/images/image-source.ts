import { promises as fs } from 'node:fs';
import sharp from 'sharp';
import { tuneMalloc } from './malloc-tune.js';

// libvips caches what it loaded by file name, and an object can be replaced
// under the same key: a cached load would process the old image. The cache
// would also hold up to 50 MB of pixels and 100 operations after the jobs
// that made them have ended.
sharp.cache(false);
// One libvips thread per pipeline: jobs run in parallel in the worker's tool
// slots (MEDIAJOBS_CONCURRENCY, one per core), so more threads per pipeline
// would only oversubscribe the cores, and every extra thread gets a glibc
// malloc arena of its own that keeps freed tiles. sharp already picks 1 on
// glibc without jemalloc; this says so for every platform.
sharp.concurrency(1);
// And glibc returns the freed pixel memory (figures in malloc-tune.ts).
export const MALLOC_TUNING = tuneMalloc();

/** Enough for every header read here: JPEG quantization tables sit behind at most a few APPn segments. */
const HEAD_BYTES = 64 * 1024;

/**
 * The encoded input image. From a file, libvips reads it itself: reading a
 * 1 MB input into the JS heap for every job cost the worker ~1 ms of CPU and
 * as much again in garbage collection (bench/pic-process). The whole content
 * is read only for what needs it: BMP decoding, the input returned unchanged,
 * a header that does not fit in `head`.
 */
export class ImageSource {
  private constructor(
    /** What sharp opens: the file's path, or the bytes themselves. */
    readonly input: string | Buffer,
    readonly size: number,
    /** The first bytes (all of them when `complete`). */
    readonly head: Buffer,
    private content: Buffer | undefined,
  ) {}

  static fromBuffer(data: Buffer): ImageSource {
    return new ImageSource(data, data.length, data, data);
  }

  static async fromFile(filePath: string): Promise<ImageSource> {
    const handle = await fs.open(filePath, 'r');
    try {
      const { size } = await handle.stat();
      const head = Buffer.alloc(Math.min(size, HEAD_BYTES));
      const { bytesRead } = await handle.read(head, 0, head.length, 0);
      const read = head.subarray(0, bytesRead);
      return new ImageSource(filePath, size, read, bytesRead === size ? read : undefined);
    } finally {
      await handle.close();
    }
  }

  /** True when `head` is the whole input. */
  get complete(): boolean {
    return this.head.length >= this.size;
  }

  /** The whole encoded input, read once. */
  async bytes(): Promise<Buffer> {
    this.content ??= await fs.readFile(this.input as string);
    return this.content;
  }
}

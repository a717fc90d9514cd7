import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Blocks of at least this many bytes get a mapping of their own, returned to the system when freed (glibc's initial value). */
export const MMAP_THRESHOLD_BYTES = 128 * 1024;

/**
 * Makes glibc give freed pixel memory back to the system, through
 * build/malloc-tune.node (src/images/malloc-tune.c, built by the Makefile).
 *
 * glibc maps each block over 128 KiB on its own, but after freeing such a
 * mapping it raises that threshold to the block's size, up to 32 MB; from
 * then on libvips's tile and region buffers (a few MB each for a wide
 * picture) come from its arenas, which keep them once freed. Measured on a
 * corpus of heavy rules the limits admit (48 Mpx thumbnails with 5 blurs,
 * rotations, masks; two rounds, two jobs at a time): RSS 90 MB idle, peak
 * 1048 MB, 421 MB once idle again. With the threshold fixed at 128 KiB:
 * 96 MB idle, peak 659 MB, 107 MB once idle again, for the same CPU time
 * (27.6 s against 29 s). The same as starting the process with
 * MALLOC_MMAP_THRESHOLD_=131072, which a service cannot count on.
 *
 * Returns what was done, for the start-up log: `'tuned'`, or why not (not
 * Linux, the addon not built: no C compiler, or a libc without mallopt).
 */
export function tuneMalloc(): string {
  if (process.platform !== 'linux') return 'not Linux';
  // Found from src/images (tsx) and from dist/src/images (compiled) alike: build/ sits next to package.json.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  const file = path.join(dir, 'build', 'malloc-tune.node');
  try {
    const addon = createRequire(import.meta.url)(file) as { setMmapThreshold(bytes: number): boolean };
    return addon.setMmapThreshold(MMAP_THRESHOLD_BYTES) ? 'tuned' : 'mallopt refused the threshold';
  } catch (err) {
    return `cannot load ${file}: ${(err as Error).message}`;
  }
}

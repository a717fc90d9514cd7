/**
 * Estimating the encoder quality (1–100) of lossy images from their headers,
 * without decoding any pixels. CI reports it as `ImageInfo/Quality` and uses it
 * for `quality` (result = min(source, q)), `rquality` and `lquality`.
 *
 * JPEG: libjpeg derives its quantization tables from the Annex K tables by a
 * quality scale (`jpeg_quality_scaling` + `jpeg_add_quant_table`). We rebuild
 * the tables for every quality 1–100 and pick the one closest to the file's
 * DQT tables (sum of absolute differences, luminance plus chrominance). For
 * libjpeg/libjpeg-turbo/libvips output this is exact; for cameras with their
 * own tables it is the nearest IJG quality, like ImageMagick's estimate.
 *
 * WebP (lossy): libwebp maps quality to a quantizer index through
 * `QualityToCompression` (a cube root) modulated per segment; we read the
 * segment quantizers from the VP8 frame header (RFC 6386 §9.3, §9.6) and
 * invert that mapping assuming libwebp's default `sns_strength` (50). Within
 * ±2 of the encoder setting for photographs written with libwebp defaults; an
 * estimate otherwise.
 */

import { jpegHeader } from './jpeg-header.js';

/** ITU T.81 Annex K.1, luminance, natural (row-major) order. */
const STD_LUMINANCE = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
  18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100,
  103, 99,
];

/** ITU T.81 Annex K.2, chrominance, natural order. */
const STD_CHROMINANCE = [
  17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
  ...new Array<number>(32).fill(99),
];

/** Position in natural order of the k-th coefficient of a DQT table (tables are stored zigzag). */
const ZIGZAG = [
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49,
  56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/**
 * Reads the DQT tables of a JPEG (natural order), keyed by table id, stopping
 * at the first scan. Returns an empty map for anything that is not a JPEG.
 */
export function readJpegQuantTables(jpeg: Buffer): Map<number, number[]> {
  const tables = new Map<number, number[]>();
  for (const { marker, start, end } of jpegHeader(jpeg).segments) {
    if (marker !== 0xdb) continue;
    let p = start;
    while (p < end) {
      const precision = jpeg[p] >> 4;
      const id = jpeg[p] & 0x0f;
      const size = precision === 0 ? 64 : 128;
      if (p + 1 + size > end) break;
      const table = new Array<number>(64);
      for (let k = 0; k < 64; k++) {
        table[ZIGZAG[k]] = precision === 0 ? jpeg[p + 1 + k] : jpeg.readUInt16BE(p + 1 + 2 * k);
      }
      tables.set(id, table);
      p += 1 + size;
    }
  }
  return tables;
}

/** libjpeg's `jpeg_quality_scaling` followed by `jpeg_add_quant_table` (force_baseline). */
function scaledEntry(base: number, quality: number): number {
  const scale = quality < 50 ? Math.floor(5000 / quality) : 200 - quality * 2;
  const value = Math.floor((base * scale + 50) / 100);
  return Math.min(255, Math.max(1, value));
}

/** The IJG tables for qualities 1–100 (64 entries from `q * 64`), built on first use: rebuilding them for every image cost more than the rest of the estimate. */
let scaledTables: { luminance: Uint8Array; chrominance: Uint8Array } | undefined;

function ijgTables(): { luminance: Uint8Array; chrominance: Uint8Array } {
  if (!scaledTables) {
    const luminance = new Uint8Array(101 * 64);
    const chrominance = new Uint8Array(101 * 64);
    for (let q = 1; q <= 100; q++) {
      for (let i = 0; i < 64; i++) {
        luminance[q * 64 + i] = scaledEntry(STD_LUMINANCE[i], q);
        chrominance[q * 64 + i] = scaledEntry(STD_CHROMINANCE[i], q);
      }
    }
    scaledTables = { luminance, chrominance };
  }
  return scaledTables;
}

/** Estimated IJG quality of a JPEG, or `undefined` when it has no quantization tables. */
export function estimateJpegQuality(jpeg: Buffer): number | undefined {
  const tables = readJpegQuantTables(jpeg);
  const luminance = tables.get(0) ?? tables.values().next().value;
  if (luminance === undefined) return undefined;
  const chrominance = tables.get(1);
  const ijg = ijgTables();
  let best = 0;
  let bestError = Infinity;
  // From 100 down so that ties (tables saturated at 1 or 255) resolve to the higher quality.
  for (let q = 100; q >= 1; q--) {
    const row = q * 64;
    let error = 0;
    for (let i = 0; i < 64; i++) error += Math.abs(luminance[i] - ijg.luminance[row + i]);
    if (chrominance) for (let i = 0; i < 64; i++) error += Math.abs(chrominance[i] - ijg.chrominance[row + i]);
    if (error < bestError) {
      bestError = error;
      best = q;
    }
  }
  return best;
}

/** RFC 6386 §7.3 boolean decoder, just enough to read the frame header. */
class BoolDecoder {
  private value: number;
  private range = 255;
  private bitCount = 0;
  private pos: number;

  constructor(private readonly data: Buffer, start: number) {
    this.value = ((data[start] ?? 0) << 8) | (data[start + 1] ?? 0);
    this.pos = start + 2;
  }

  bool(probability: number): boolean {
    const split = 1 + (((this.range - 1) * probability) >> 8);
    const bigSplit = split << 8;
    let bit: boolean;
    if (this.value >= bigSplit) {
      bit = true;
      this.range -= split;
      this.value -= bigSplit;
    } else {
      bit = false;
      this.range = split;
    }
    while (this.range < 128) {
      this.value <<= 1;
      this.range <<= 1;
      if (++this.bitCount === 8) {
        this.bitCount = 0;
        this.value |= this.data[this.pos++] ?? 0;
      }
    }
    return bit;
  }

  literal(bits: number): number {
    let v = 0;
    for (let i = 0; i < bits; i++) v = (v << 1) | (this.bool(128) ? 1 : 0);
    return v;
  }

  /** An optional signed field: flag, magnitude, sign. */
  optionalSigned(bits: number): number | undefined {
    if (!this.bool(128)) return undefined;
    const magnitude = this.literal(bits);
    return this.bool(128) ? -magnitude : magnitude;
  }
}

/** Finds the payload of the first `VP8 ` chunk (lossy bitstream), if any. */
function findVp8Chunk(webp: Buffer): { start: number; end: number } | undefined {
  if (webp.length < 20 || webp.toString('latin1', 0, 4) !== 'RIFF' || webp.toString('latin1', 8, 12) !== 'WEBP') return undefined;
  let pos = 12;
  while (pos + 8 <= webp.length) {
    const type = webp.toString('latin1', pos, pos + 4);
    const size = webp.readUInt32LE(pos + 4);
    const start = pos + 8;
    const end = Math.min(webp.length, start + size);
    if (type === 'VP8 ') return { start, end };
    if (type === 'ANMF') {
      // An animation frame: 16 bytes of frame header, then its own chunks.
      const inner = findVp8ChunkIn(webp, start + 16, end);
      if (inner) return inner;
    }
    pos = start + size + (size & 1);
  }
  return undefined;
}

function findVp8ChunkIn(webp: Buffer, from: number, to: number): { start: number; end: number } | undefined {
  let pos = from;
  while (pos + 8 <= to) {
    const type = webp.toString('latin1', pos, pos + 4);
    const size = webp.readUInt32LE(pos + 4);
    if (type === 'VP8 ') return { start: pos + 8, end: Math.min(to, pos + 8 + size) };
    pos += 8 + size + (size & 1);
  }
  return undefined;
}

/** Estimated libwebp quality of a lossy WebP, or `undefined` for lossless or unreadable files. */
export function estimateWebpQuality(webp: Buffer): number | undefined {
  const chunk = findVp8Chunk(webp);
  if (!chunk || chunk.end - chunk.start < 12) return undefined;
  const { start } = chunk;
  const keyFrame = (webp[start] & 1) === 0;
  if (!keyFrame || webp[start + 3] !== 0x9d || webp[start + 4] !== 0x01 || webp[start + 5] !== 0x2a) return undefined;
  const d = new BoolDecoder(webp, start + 10);
  d.literal(1); // colour space
  d.literal(1); // clamping type
  let segmentQuants: number[] | undefined;
  let absolute = false;
  if (d.bool(128)) {
    const updateMap = d.bool(128);
    if (d.bool(128)) {
      absolute = d.bool(128);
      segmentQuants = [];
      for (let i = 0; i < 4; i++) segmentQuants.push(d.optionalSigned(7) ?? 0);
      for (let i = 0; i < 4; i++) d.optionalSigned(6); // loop filter levels
    }
    if (updateMap) for (let i = 0; i < 3; i++) if (d.bool(128)) d.literal(8);
  }
  d.literal(1); // filter type
  d.literal(6); // loop filter level
  d.literal(3); // sharpness
  if (d.bool(128) && d.bool(128)) {
    for (let i = 0; i < 8; i++) d.optionalSigned(6); // ref-frame and mode deltas
  }
  d.literal(2); // DCT partitions
  const base = d.literal(7); // y_ac_qi
  const indices = segmentQuants ? segmentQuants.map((q) => (absolute ? q : base + q)) : [base];
  // libwebp quantizes segment i with 127 * (1 - c_base^(1 - amp * alpha_i)), amp = 0.9 * sns / 100 / 128
  // (default sns_strength 50). The alphas are 255 * (center_i - mid) / (max - min) clipped to ±127:
  // either the coarsest segment sits at -127 or the finest at +127, and the header cannot tell
  // which. Photographs measured here are the first case (pure noise is the second, and then reads
  // up to ~20 high), so the coarsest segment is taken at -127, exponent 1 + 127 * amp. Without
  // distinct segments the index is c_base itself. +0.5 undoes the truncation to an integer index.
  const coarsest = Math.min(127, Math.max(...indices));
  const exponent = Math.min(...indices) === coarsest ? 1 : 1 + (127 * 0.9 * 50) / 100 / 128;
  const c = Math.pow(Math.max(1e-6, 1 - (coarsest + 0.5) / 127), 1 / exponent);
  // Inverse of QualityToCompression: c = linear_c^(1/3), linear_c = quality < 0.75 ? quality * 2/3 : 2 * quality - 1.
  const linear = c * c * c;
  const quality = linear < 0.5 ? linear * 1.5 : (linear + 1) / 2;
  return Math.min(100, Math.max(1, Math.round(quality * 100)));
}

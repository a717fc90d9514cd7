/**
 * A small BMP codec, because libvips (as shipped with sharp) can neither read
 * nor write BMP while CI accepts BMP input and offers `format/bmp`.
 *
 * Reading: BITMAPINFOHEADER and its V4/V5 extensions, uncompressed 1/4/8-bit
 * palette, 16-bit (5-5-5 or bit-fields), 24-bit and 32-bit (BI_RGB or
 * bit-fields, alpha kept only when a mask says so and some pixel uses it),
 * bottom-up or top-down. RLE-compressed and OS/2 files are refused.
 * Writing: 24-bit BGR, bottom-up, rows padded to 4 bytes (alpha must already
 * be flattened; it is dropped).
 */

/** What the file and info headers say; `height` is positive, `topDown` tells the row order. */
export interface BmpHeader {
  readonly width: number;
  readonly height: number;
  readonly bitsPerPixel: number;
  readonly topDown: boolean;
  readonly compression: number;
  readonly dataOffset: number;
  readonly headerSize: number;
}

/** 8-bit interleaved pixels, top row first. */
export interface RawPixels {
  readonly data: Buffer;
  readonly width: number;
  readonly height: number;
  readonly channels: 3 | 4;
}

/** Thrown for a BMP this codec cannot read; the caller maps it to its own error. */
export class BmpFormatError extends Error {
  constructor(message: string) {
    super(`BMP: ${message}`);
    this.name = 'BmpFormatError';
  }
}

const BI_RGB = 0;
const BI_BITFIELDS = 3;
const BI_ALPHABITFIELDS = 6;

/** `BM` magic and room for the headers. */
export function isBmp(data: Buffer): boolean {
  return data.length >= 26 && data[0] === 0x42 && data[1] === 0x4d;
}

/** Reads the file and info headers only (no pixel data is touched). */
export function readBmpHeader(data: Buffer): BmpHeader {
  if (!isBmp(data)) throw new BmpFormatError('not a BMP file');
  const dataOffset = data.readUInt32LE(10);
  const headerSize = data.readUInt32LE(14);
  if (headerSize < 40 || data.length < 14 + headerSize) throw new BmpFormatError(`unsupported info header of ${headerSize} bytes`);
  const width = data.readInt32LE(18);
  const rawHeight = data.readInt32LE(22);
  const bitsPerPixel = data.readUInt16LE(28);
  const compression = data.readUInt32LE(30);
  if (width <= 0 || rawHeight === 0) throw new BmpFormatError(`invalid size ${width}x${rawHeight}`);
  if (![1, 4, 8, 16, 24, 32].includes(bitsPerPixel)) throw new BmpFormatError(`unsupported bit depth ${bitsPerPixel}`);
  const fields = compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS;
  if (compression !== BI_RGB && !(fields && (bitsPerPixel === 16 || bitsPerPixel === 32))) {
    throw new BmpFormatError(`unsupported compression ${compression}`);
  }
  return { width, height: Math.abs(rawHeight), bitsPerPixel, topDown: rawHeight < 0, compression, dataOffset, headerSize };
}

/** A channel mask, as shift and width, for bit-field pixels. */
function maskInfo(mask: number): { shift: number; max: number } {
  if (mask === 0) return { shift: 0, max: 0 };
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  return { shift, max: mask >>> shift };
}

/** Decodes to 8-bit RGB or RGBA, top row first. Validate the header size against limits before calling. */
export function decodeBmp(data: Buffer): RawPixels {
  const h = readBmpHeader(data);
  const { width, height, bitsPerPixel: bpp } = h;
  const stride = Math.ceil((width * bpp) / 32) * 4;
  if (h.dataOffset + stride * height > data.length) throw new BmpFormatError('pixel data is truncated');

  let masks = [0x00ff0000, 0x0000ff00, 0x000000ff, 0];
  if (bpp === 16) masks = [0x7c00, 0x03e0, 0x001f, 0];
  if (h.compression === BI_BITFIELDS || h.compression === BI_ALPHABITFIELDS) {
    // Masks follow a 40-byte header, or sit inside the V4/V5 header at the same offset.
    const at = 14 + 40;
    masks = [data.readUInt32LE(at), data.readUInt32LE(at + 4), data.readUInt32LE(at + 8), 0];
    if (h.headerSize >= 56 || h.compression === BI_ALPHABITFIELDS) masks[3] = data.readUInt32LE(at + 12);
  } else if (bpp === 32 && h.headerSize >= 56) {
    masks[3] = data.readUInt32LE(14 + 52);
  }
  const [red, green, blue, alpha] = masks.map(maskInfo);

  const paletteAt = 14 + h.headerSize;
  const paletteSize = bpp <= 8 ? data.readUInt32LE(46) || 1 << bpp : 0;
  if (bpp <= 8 && paletteAt + paletteSize * 4 > h.dataOffset) throw new BmpFormatError('palette is truncated');

  const withAlpha = alpha.max > 0;
  const channels = withAlpha ? 4 : 3;
  const out = Buffer.alloc(width * height * channels);
  let alphaUsed = false;
  const scale = (value: number, m: { shift: number; max: number }) => (m.max === 0 ? 0 : Math.round((((value >>> m.shift) & m.max) * 255) / m.max));

  for (let y = 0; y < height; y++) {
    const row = h.dataOffset + (h.topDown ? y : height - 1 - y) * stride;
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * channels;
      let r: number;
      let g: number;
      let b: number;
      let a = 255;
      if (bpp <= 8) {
        const bit = x * bpp;
        const index = (data[row + (bit >> 3)] >> (8 - bpp - (bit & 7))) & ((1 << bpp) - 1);
        if (index >= paletteSize) throw new BmpFormatError(`palette index ${index} out of range`);
        const p = paletteAt + index * 4;
        b = data[p];
        g = data[p + 1];
        r = data[p + 2];
      } else if (bpp === 24) {
        const p = row + x * 3;
        b = data[p];
        g = data[p + 1];
        r = data[p + 2];
      } else {
        const value = bpp === 16 ? data.readUInt16LE(row + x * 2) : data.readUInt32LE(row + x * 4);
        r = scale(value, red);
        g = scale(value, green);
        b = scale(value, blue);
        if (withAlpha) {
          a = scale(value, alpha);
          if (a !== 0) alphaUsed = true;
        }
      }
      out[o] = r;
      out[o + 1] = g;
      out[o + 2] = b;
      if (withAlpha) out[o + 3] = a;
    }
  }
  // Many writers leave the alpha byte of 32-bit pixels at 0; treat an all-zero alpha as opaque.
  if (withAlpha && !alphaUsed) {
    for (let i = 3; i < out.length; i += 4) out[i] = 255;
  }
  return { data: out, width, height, channels };
}

/** Encodes 8-bit raw pixels (1–4 channels, top row first) as a 24-bit BMP; alpha is dropped. */
export function encodeBmp(pixels: Buffer, width: number, height: number, channels: number): Buffer {
  const stride = Math.ceil((width * 3) / 4) * 4;
  const size = 54 + stride * height;
  const out = Buffer.alloc(size);
  out.write('BM', 0, 'latin1');
  out.writeUInt32LE(size, 2);
  out.writeUInt32LE(54, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(24, 28);
  out.writeUInt32LE(BI_RGB, 30);
  out.writeUInt32LE(stride * height, 34);
  out.writeInt32LE(2835, 38); // 72 DPI
  out.writeInt32LE(2835, 42);
  const grey = channels < 3;
  for (let y = 0; y < height; y++) {
    const row = 54 + (height - 1 - y) * stride;
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * channels;
      const o = row + x * 3;
      const r = pixels[i];
      out[o] = grey ? r : pixels[i + 2];
      out[o + 1] = grey ? r : pixels[i + 1];
      out[o + 2] = r;
    }
  }
  return out;
}

/**
 * What we learn about a source image before deciding whether to decode it:
 * format (from magic bytes), size, frames and EXIF orientation from the
 * header, and the estimated encoder quality; plus the average colour CI
 * reports as `ImageInfo/Ave`, which does need pixels.
 *
 * Glossary: *width/height* are the stored pixel dimensions of one frame (EXIF
 * orientation not applied, as CI reports them); *pages* is the number of
 * frames (1 for still images); *quality* is the estimated encoder quality of a
 * lossy source, `undefined` when there is nothing to estimate (lossless).
 */
import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';
import { JOB_FAILURE_CODES, PermanentJobError } from '../engine/job-errors.js';
import { decodeBmp, isBmp, readBmpHeader } from './bmp.js';
import type { ImageSource } from './image-source.js';
import { hasWholeJpegHeader, readJpegFrameInfo } from './jpeg-header.js';
import { estimateJpegQuality, estimateWebpQuality } from './quality-estimate.js';

/** Input formats we decode (BMP by our own codec, the rest by libvips). */
export type InputFormat = 'jpeg' | 'png' | 'gif' | 'webp' | 'bmp' | 'tiff' | 'avif';

/** Header facts about a source image (see the glossary above). */
export interface SourceImage {
  readonly format: InputFormat;
  readonly width: number;
  readonly height: number;
  readonly pages: number;
  /** EXIF orientation 1–8, or 0 when the file has none. */
  readonly orientation: number;
  readonly hasAlpha: boolean;
  readonly quality: number | undefined;
  /** Per-frame delays (ms) and loop count of animations. */
  readonly delay?: readonly number[];
  readonly loop?: number;
}

/** CI's upper-case type names (`ImageInfo/Format`). */
export const FORMAT_NAMES: Readonly<Record<InputFormat, string>> = {
  jpeg: 'JPEG',
  png: 'PNG',
  gif: 'GIF',
  webp: 'WEBP',
  bmp: 'BMP',
  tiff: 'TIFF',
  avif: 'AVIF',
};

/** Quality CI reports for images without a lossy quality (PNG, GIF, BMP, lossless WebP, TIFF). */
export const LOSSLESS_QUALITY = 100;

function invalidMedia(message: string): PermanentJobError {
  return new PermanentJobError(JOB_FAILURE_CODES.InvalidMedia, message);
}

/** Identifies the container from its first bytes; `undefined` for anything we do not decode. */
export function sniffImageFormat(data: Buffer): InputFormat | 'heic' | undefined {
  if (data.length >= 3 && data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff) return 'jpeg';
  if (data.length >= 8 && data.readUInt32BE(0) === 0x89504e47 && data.readUInt32BE(4) === 0x0d0a1a0a) return 'png';
  if (data.length >= 6 && /^GIF8[79]a$/.test(data.toString('latin1', 0, 6))) return 'gif';
  if (data.length >= 12 && data.toString('latin1', 0, 4) === 'RIFF' && data.toString('latin1', 8, 12) === 'WEBP') return 'webp';
  if (isBmp(data)) return 'bmp';
  if (data.length >= 4 && (data.toString('latin1', 0, 4) === 'II*\0' || data.toString('latin1', 0, 4) === 'MM\0*')) return 'tiff';
  if (data.length >= 16 && data.toString('latin1', 4, 8) === 'ftyp') {
    // Major brand, then (after the minor version) the compatible brands: an AVIF may carry
    // the generic `mif1` as major brand and `avif` only among the compatible ones.
    const end = Math.min(data.length, data.readUInt32BE(0));
    const brands = [data.toString('latin1', 8, 12)];
    for (let p = 16; p + 4 <= end; p += 4) brands.push(data.toString('latin1', p, p + 4));
    if (brands.includes('avif') || brands.includes('avis')) return 'avif';
    if (brands.some((b) => ['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'mif1', 'msf1'].includes(b))) return 'heic';
  }
  return undefined;
}

/**
 * Reads the header of `image`. Nothing is decoded: sharp's `metadata()` only
 * parses headers, and BMP headers are read here. Throws
 * `PermanentJobError('InvalidMedia')` for unknown, unsupported or unreadable input.
 */
export async function probeImage(image: ImageSource): Promise<SourceImage> {
  const data = image.head;
  const format = sniffImageFormat(data);
  if (format === undefined) throw invalidMedia('The input is not an image in a supported format (JPEG, PNG, GIF, WebP, BMP, TIFF, AVIF).');
  if (format === 'heic') throw invalidMedia('HEIC/HEIF (HEVC) input is not supported by this server.');
  if (format === 'bmp') {
    try {
      const h = readBmpHeader(data);
      return { format, width: h.width, height: h.height, pages: 1, orientation: 0, hasAlpha: h.bitsPerPixel === 32, quality: undefined };
    } catch (err) {
      throw invalidMedia(`The input BMP cannot be read: ${(err as Error).message}`);
    }
  }
  if (format === 'jpeg') {
    // An ordinary JPEG header whole in the head is read here (libvips' call cost ~0.2 ms of CPU).
    const frame = readJpegFrameInfo(data);
    if (frame) return { format, ...frame, pages: 1, hasAlpha: false, quality: estimateJpegQuality(data) };
  }
  // Any other JPEG header whole in the head is read by libvips from memory instead of
  // opening the file again (half the cost of that call, bench/pic-process).
  const jpegHeaderInHead = format === 'jpeg' && (image.complete || hasWholeJpegHeader(data));
  let meta: Metadata;
  try {
    // limitInputPixels: false so that a header claiming huge dimensions is still reported and
    // refused by our own limits with a clear message instead of libvips' generic one.
    meta = await sharp(jpegHeaderInHead ? data : image.input, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw invalidMedia(`The input image cannot be read: ${(err as Error).message}`);
  }
  if (format === 'avif' && meta.compression === 'hevc') throw invalidMedia('HEIC/HEIF (HEVC) input is not supported by this server.');
  const pages = Math.max(1, meta.pages ?? 1);
  let quality: number | undefined;
  if (format === 'jpeg') quality = estimateJpegQuality(jpegHeaderInHead ? data : await image.bytes());
  if (format === 'webp') quality = estimateWebpQuality(data) ?? (image.complete ? undefined : estimateWebpQuality(await image.bytes()));
  return {
    format,
    width: meta.width,
    height: pages > 1 && meta.pageHeight ? meta.pageHeight : meta.height,
    pages,
    orientation: meta.orientation ?? 0,
    hasAlpha: meta.hasAlpha,
    quality,
    ...(meta.delay ? { delay: meta.delay } : {}),
    ...(meta.loop !== undefined ? { loop: meta.loop } : {}),
  };
}

/** `0xrrggbb` */
export function hexColour(r: number, g: number, b: number): string {
  return `0x${[r, g, b].map((v) => Math.round(v).toString(16).padStart(2, '0')).join('')}`;
}

/**
 * CI's `Ave`: the mean colour of the (first frame of the) image as `0xrrggbb`,
 * alpha ignored. Computed on a ≤64×64 reduction, which libvips produces with
 * JPEG shrink-on-load and box filtering, so it costs a fraction of a full
 * decode and differs from the exact mean by well under one level. Only call it
 * for sources that passed the input limits.
 */
export async function averageColour(input: ImageSource, source: SourceImage): Promise<string> {
  let image: Sharp;
  if (source.format === 'bmp') {
    const raw = decodeBmp(await input.bytes());
    image = sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } });
  } else {
    image = sharp(input.input, { failOn: 'error', limitInputPixels: false });
  }
  let pixels: { data: Buffer; info: OutputInfo };
  try {
    pixels = await image
      .resize(Math.min(64, source.width), Math.min(64, source.height), { fit: 'fill' })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw invalidMedia(`The input image cannot be decoded: ${(err as Error).message}`);
  }
  const { channels } = pixels.info;
  const sum = [0, 0, 0];
  const count = pixels.data.length / channels;
  for (let i = 0; i < pixels.data.length; i += channels) {
    sum[0] += pixels.data[i];
    sum[1] += pixels.data[i + (channels >= 3 ? 1 : 0)];
    sum[2] += pixels.data[i + (channels >= 3 ? 2 : 0)];
  }
  return hexColour(sum[0] / count, sum[1] / count, sum[2] / count);
}

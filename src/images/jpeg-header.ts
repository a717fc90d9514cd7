/**
 * The marker segments of a JPEG header (ITU T.81 Annex B), read without
 * decoding anything: the frame size, the EXIF orientation and the DQT tables
 * (`quality-estimate.ts`) all sit before the first scan.
 */

export interface JpegSegment {
  readonly marker: number;
  /** The segment's payload, after its length field. */
  readonly start: number;
  readonly end: number;
}

/**
 * The marker segments of a JPEG header, up to its first scan. `complete` is
 * false when the data ends (or breaks) before the scan: a file read only in
 * part may hold more tables further on.
 */
export function jpegHeader(jpeg: Buffer): { segments: JpegSegment[]; complete: boolean } {
  const segments: JpegSegment[] = [];
  if (jpeg.length < 4 || jpeg[0] !== 0xff || jpeg[1] !== 0xd8) return { segments, complete: false };
  let pos = 2;
  while (pos + 4 <= jpeg.length) {
    if (jpeg[pos] !== 0xff) return { segments, complete: false };
    const marker = jpeg[pos + 1];
    if (marker === 0xff) {
      pos += 1; // fill byte
      continue;
    }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      pos += 2; // standalone markers
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return { segments, complete: true }; // start of scan / end of image
    const length = jpeg.readUInt16BE(pos + 2);
    const end = pos + 2 + length;
    if (length < 2 || end > jpeg.length) return { segments, complete: false };
    segments.push({ marker, start: pos + 4, end });
    pos = end;
  }
  return { segments, complete: false };
}

/** True when `jpeg` holds its whole header, up to the first scan. */
export function hasWholeJpegHeader(jpeg: Buffer): boolean {
  return jpegHeader(jpeg).complete;
}

/** What libvips' JPEG header read reports that we use, read here instead. */
export interface JpegFrameInfo {
  readonly width: number;
  readonly height: number;
  /** EXIF orientation 1–8 (1 for a value out of that range, as libvips reads it), 0 without one. */
  readonly orientation: number;
}

/** SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC). */
function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

const EXIF_PREFIX = Buffer.from('Exif\0\0', 'latin1');

/**
 * The frame size and EXIF orientation of a JPEG whose header `jpeg` holds
 * whole, or `undefined` when anything is unusual (no or several frame
 * headers, a height deferred to a DNL marker, several EXIF blocks, an EXIF
 * block that does not parse): the caller then asks libvips, whose answer
 * these values match for ordinary files (test/images/jpeg-header.test.ts).
 * Asking libvips costs ~0.2 ms of CPU per image; this, a few microseconds.
 */
export function readJpegFrameInfo(jpeg: Buffer): JpegFrameInfo | undefined {
  const { segments, complete } = jpegHeader(jpeg);
  if (!complete) return undefined;
  let frame: { width: number; height: number } | undefined;
  let exif: JpegSegment | undefined;
  for (const segment of segments) {
    const { marker, start, end } = segment;
    if (isStartOfFrame(marker)) {
      if (frame || end - start < 6) return undefined;
      frame = { height: jpeg.readUInt16BE(start + 1), width: jpeg.readUInt16BE(start + 3) };
    } else if (marker === 0xe1 && end - start >= EXIF_PREFIX.length && jpeg.subarray(start, start + EXIF_PREFIX.length).equals(EXIF_PREFIX)) {
      if (exif) return undefined;
      exif = segment;
    }
  }
  if (!frame || frame.width === 0 || frame.height === 0) return undefined;
  let orientation = 0;
  if (exif) {
    const value = exifOrientation(jpeg.subarray(exif.start + EXIF_PREFIX.length, exif.end));
    if (value === undefined) return undefined;
    if (value !== null) orientation = value >= 1 && value <= 8 ? value : 1;
  }
  return { ...frame, orientation };
}

/** The Orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block; `null` when absent, `undefined` when the block is malformed. */
function exifOrientation(tiff: Buffer): number | null | undefined {
  if (tiff.length < 8) return undefined;
  const order = tiff.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') return undefined;
  const little = order === 'II';
  const u16 = (at: number) => (little ? tiff.readUInt16LE(at) : tiff.readUInt16BE(at));
  const u32 = (at: number) => (little ? tiff.readUInt32LE(at) : tiff.readUInt32BE(at));
  if (u16(2) !== 42) return undefined;
  const ifd = u32(4);
  if (ifd + 2 > tiff.length) return undefined;
  const count = u16(ifd);
  if (ifd + 2 + 12 * count > tiff.length) return undefined;
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + 12 * i;
    if (u16(entry) !== 0x0112) continue;
    const type = u16(entry + 2);
    // SHORT as the standard says; LONG from some writers. Anything else: let libvips decide.
    if (type === 3) return u16(entry + 8);
    if (type === 4) return u32(entry + 8);
    return undefined;
  }
  return null;
}

/**
 * A small EXIF reader for CI's `GET <key>?exif`: the TIFF block that sharp's
 * `metadata().exif` returns (`Exif\0\0` + TIFF header) to CI's JSON,
 * `{"<TagName>":{"val":"<text>"},…}`. Values as CI prints them: ASCII as
 * text, rationals `n/d`, integers plain, UNDEFINED bytes as decimals joined by
 * spaces (`ExifVersion` → `48 50 51 48`), several values joined by spaces,
 * `ColorSpace` as `sRGB`/`Uncalibrated`. IFD0, the Exif IFD, the GPS IFD
 * and the Interop IFD are read; tags this table does not name, MakerNote and
 * the thumbnail's IFD1 are left out. Every offset is bounds-checked: a bad
 * block yields the tags read so far, never an exception.
 */

const TAGS: Readonly<Record<number, string>> = {
  0x010e: 'ImageDescription', 0x010f: 'Make', 0x0110: 'Model', 0x0112: 'Orientation', 0x011a: 'XResolution',
  0x011b: 'YResolution', 0x0128: 'ResolutionUnit', 0x0131: 'Software', 0x0132: 'DateTime', 0x013b: 'Artist',
  0x013e: 'WhitePoint', 0x013f: 'PrimaryChromaticities', 0x0211: 'YCbCrCoefficients', 0x0213: 'YCbCrPositioning',
  0x0214: 'ReferenceBlackWhite', 0x8298: 'Copyright', 0x0100: 'ImageWidth', 0x0101: 'ImageLength',
  0x0102: 'BitsPerSample', 0x0103: 'Compression', 0x0106: 'PhotometricInterpretation', 0x0115: 'SamplesPerPixel',
  0x829a: 'ExposureTime', 0x829d: 'FNumber', 0x8822: 'ExposureProgram', 0x8824: 'SpectralSensitivity',
  0x8827: 'ISOSpeedRatings', 0x8830: 'SensitivityType', 0x8832: 'RecommendedExposureIndex', 0x9000: 'ExifVersion',
  0x9003: 'DateTimeOriginal', 0x9004: 'DateTimeDigitized', 0x9010: 'OffsetTime', 0x9011: 'OffsetTimeOriginal',
  0x9012: 'OffsetTimeDigitized', 0x9101: 'ComponentsConfiguration', 0x9102: 'CompressedBitsPerPixel',
  0x9201: 'ShutterSpeedValue', 0x9202: 'ApertureValue', 0x9203: 'BrightnessValue', 0x9204: 'ExposureBiasValue',
  0x9205: 'MaxApertureValue', 0x9206: 'SubjectDistance', 0x9207: 'MeteringMode', 0x9208: 'LightSource', 0x9209: 'Flash',
  0x920a: 'FocalLength', 0x9214: 'SubjectArea', 0x9286: 'UserComment', 0x9290: 'SubSecTime',
  0x9291: 'SubSecTimeOriginal', 0x9292: 'SubSecTimeDigitized', 0xa000: 'FlashpixVersion', 0xa001: 'ColorSpace',
  0xa002: 'PixelXDimension', 0xa003: 'PixelYDimension', 0xa004: 'RelatedSoundFile', 0xa20b: 'FlashEnergy',
  0xa20e: 'FocalPlaneXResolution', 0xa20f: 'FocalPlaneYResolution', 0xa210: 'FocalPlaneResolutionUnit',
  0xa214: 'SubjectLocation', 0xa215: 'ExposureIndex', 0xa217: 'SensingMethod', 0xa300: 'FileSource', 0xa301: 'SceneType',
  0xa401: 'CustomRendered', 0xa402: 'ExposureMode', 0xa403: 'WhiteBalance', 0xa404: 'DigitalZoomRatio',
  0xa405: 'FocalLengthIn35mmFilm', 0xa406: 'SceneCaptureType', 0xa407: 'GainControl', 0xa408: 'Contrast',
  0xa409: 'Saturation', 0xa40a: 'Sharpness', 0xa40c: 'SubjectDistanceRange', 0xa420: 'ImageUniqueID',
  0xa430: 'CameraOwnerName', 0xa431: 'BodySerialNumber', 0xa432: 'LensSpecification', 0xa433: 'LensMake',
  0xa434: 'LensModel', 0xa435: 'LensSerialNumber',
};

const GPS_TAGS: Readonly<Record<number, string>> = {
  0x0000: 'GPSVersionID', 0x0001: 'GPSLatitudeRef', 0x0002: 'GPSLatitude', 0x0003: 'GPSLongitudeRef', 0x0004: 'GPSLongitude',
  0x0005: 'GPSAltitudeRef', 0x0006: 'GPSAltitude', 0x0007: 'GPSTimeStamp', 0x0008: 'GPSSatellites', 0x0009: 'GPSStatus',
  0x000a: 'GPSMeasureMode', 0x000b: 'GPSDOP', 0x000c: 'GPSSpeedRef', 0x000d: 'GPSSpeed', 0x000e: 'GPSTrackRef',
  0x000f: 'GPSTrack', 0x0010: 'GPSImgDirectionRef', 0x0011: 'GPSImgDirection', 0x0012: 'GPSMapDatum',
  0x001b: 'GPSProcessingMethod', 0x001d: 'GPSDateStamp',
};

const INTEROP_TAGS: Readonly<Record<number, string>> = { 0x0001: 'InteroperabilityIndex', 0x0002: 'InteroperabilityVersion' };

/** Bytes per value of each TIFF type. */
const TYPE_SIZES: Readonly<Record<number, number>> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4 };
const EXIF_IFD = 0x8769;
const GPS_IFD = 0x8825;
const INTEROP_IFD = 0xa005;
/** Values longer than this many bytes are left out (MakerNote-like blobs). */
const MAX_VALUE_BYTES = 4096;
const MAX_ENTRIES_PER_IFD = 512;

export type ExifJson = Record<string, { val: string }>;

/** CI's JSON of the EXIF block, or undefined when it holds no tag this reader knows. */
export function readExif(block: Buffer | undefined): ExifJson | undefined {
  if (!block || block.length < 8) return undefined;
  let base = 0;
  if (block.subarray(0, 6).toString('latin1') === 'Exif\0\0') base = 6;
  const order = block.subarray(base, base + 2).toString('latin1');
  if (order !== 'II' && order !== 'MM') return undefined;
  const le = order === 'II';
  const tiff = block.subarray(base);
  const u16 = (at: number) => (le ? tiff.readUInt16LE(at) : tiff.readUInt16BE(at));
  const u32 = (at: number) => (le ? tiff.readUInt32LE(at) : tiff.readUInt32BE(at));
  const i32 = (at: number) => (le ? tiff.readInt32LE(at) : tiff.readInt32BE(at));
  if (tiff.length < 8 || u16(2) !== 42) return undefined;

  const out: ExifJson = {};
  const seen = new Set<number>();

  const value = (type: number, count: number, at: number): string | undefined => {
    switch (type) {
      case 2: return tiff.subarray(at, at + count).toString('latin1').replace(/\0[\s\S]*$/, '').trim();
      case 1: case 6: case 7: {
        const bytes = [...tiff.subarray(at, at + count)];
        return bytes.map((b) => String(type === 6 && b > 127 ? b - 256 : b)).join(' ');
      }
      default: {
        const size = TYPE_SIZES[type]!;
        const parts: string[] = [];
        for (let i = 0; i < count; i++) {
          const p = at + i * size;
          if (type === 3) parts.push(String(u16(p)));
          else if (type === 8) parts.push(String(le ? tiff.readInt16LE(p) : tiff.readInt16BE(p)));
          else if (type === 4 || type === 13) parts.push(String(u32(p)));
          else if (type === 9) parts.push(String(i32(p)));
          else if (type === 5) parts.push(`${u32(p)}/${u32(p + 4)}`);
          else if (type === 10) parts.push(`${i32(p)}/${i32(p + 4)}`);
          else if (type === 11) parts.push(String(le ? tiff.readFloatLE(p) : tiff.readFloatBE(p)));
          else parts.push(String(le ? tiff.readDoubleLE(p) : tiff.readDoubleBE(p)));
        }
        return parts.join(' ');
      }
    }
  };

  const readIfd = (offset: number, names: Readonly<Record<number, string>>, depth: number): void => {
    if (depth > 2 || seen.has(offset) || offset < 8 || offset + 2 > tiff.length) return;
    seen.add(offset);
    const entries = Math.min(u16(offset), MAX_ENTRIES_PER_IFD);
    for (let i = 0; i < entries; i++) {
      const entry = offset + 2 + i * 12;
      if (entry + 12 > tiff.length) return;
      const tag = u16(entry);
      const type = u16(entry + 2);
      const count = u32(entry + 4);
      const size = TYPE_SIZES[type];
      if (size === undefined) continue;
      const bytes = size * count;
      if (count === 0 || bytes > MAX_VALUE_BYTES) continue;
      const at = bytes <= 4 ? entry + 8 : u32(entry + 8);
      if (at + bytes > tiff.length) continue;
      if (names === TAGS && (tag === EXIF_IFD || tag === GPS_IFD) && (type === 4 || type === 13)) {
        readIfd(u32(entry + 8), tag === EXIF_IFD ? TAGS : GPS_TAGS, depth + 1);
        continue;
      }
      if (names === TAGS && tag === INTEROP_IFD && (type === 4 || type === 13)) {
        readIfd(u32(entry + 8), INTEROP_TAGS, depth + 1);
        continue;
      }
      const name = names[tag];
      if (!name) continue;
      let text = value(type, count, at);
      if (name === 'ColorSpace') text = text === '1' ? 'sRGB' : text === '65535' ? 'Uncalibrated' : text;
      if (text !== undefined) out[name] = { val: text };
    }
  };

  try {
    readIfd(u32(4), TAGS, 0);
  } catch {
    // A read past the end despite the checks: answer what was read.
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

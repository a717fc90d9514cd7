/**
 * The hls output Transcode and Segment share: the segments ffmpeg wrote
 * beside the playlist, and HlsEncrypt.
 *
 * HlsEncrypt{IsHlsEncrypt, UriKey} (shared/ci-media-tags.md §2.5, §7; hls
 * only, as CI documents it, so other formats ignore it). CI encrypts the
 * segments with AES-128 and names `UriKey`, the user's key service, in the
 * playlist's `#EXT-X-KEY`; that service fetches the key from Tencent's KMS.
 * There is no KMS here, so each job draws its own random 16-byte key and
 * stores it as the object `<playlist key without .m3u8>.key` (16 raw bytes)
 * in the output bucket, for the bucket's owner (or the key service in front of
 * it) to hand out. It is written with the outputs, before the playlist, but
 * not listed in the result: CI's result names no key object, as CI stores none.
 *
 * ffmpeg's hls muxer encrypts, by `-hls_key_info_file` (the key file and that
 * info file are ours, in the job's work folder, never inputs). No IV is given:
 * ffmpeg then uses each segment's media sequence number (16 bytes big-endian),
 * as the HLS spec says a player does when `#EXT-X-KEY` has no IV, so segments
 * differ in IV without a per-job value to keep.
 *
 * UriKey is written into the playlist as sent: an http(s) URL, or a relative
 * reference (no scheme), which a player resolves against the playlist's URL;
 * `<playlist name>.key` thus names the stored key itself, for local playback,
 * but only when the user asks for it. Other schemes (file:, data:) are refused.
 */
import { createDecipheriv, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { XmlObject } from '../xml/tree.js';
import { goFlag, invalid, safeKey, storeFiles, text, type StoredFile } from './media-output.js';
import type { ProcessorContext } from './processor.js';

/** HlsEncrypt asked for on an hls output: the URI the playlist names for the key. */
export interface HlsEncryption {
  readonly uriKey: string;
}

/** ffmpeg reads the key info file's lines into buffers of this size (hlsenc.c's LINE_BUFFER_SIZE): a longer URI would be cut. */
const MAX_URI_KEY = 1024;

/**
 * Parses an `HlsEncrypt` element (`where` names it): the encryption for an hls
 * output, undefined when IsHlsEncrypt is false or absent, or when the output
 * is not hls (`hls` false: ignored, as CI does). Throws InvalidArgument.
 */
export function parseHlsEncrypt(hlsEncrypt: XmlObject, where: string, hls: boolean): HlsEncryption | undefined {
  // Checked even where ignored: Go decodes it as a bool (see goFlag).
  if (!goFlag(hlsEncrypt.IsHlsEncrypt, `${where}/IsHlsEncrypt`) || !hls) return undefined;
  const uriKey = text(hlsEncrypt.UriKey);
  if (uriKey === undefined) throw invalid(`${where}/UriKey is required when IsHlsEncrypt is true: it is the key's URI the playlist names.`);
  if (uriKey.length > MAX_URI_KEY) throw invalid(`${where}/UriKey must be at most ${MAX_URI_KEY} characters.`);
  // A quote would end the playlist's URI="…" attribute, a line break the tag or the key info file's line.
  if (/[\s"\u0000-\u001f\u007f]/.test(uriKey)) throw invalid(`${where}/UriKey must be a URI without spaces, quotes or control characters.`);
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(uriKey)?.[1].toLowerCase();
  if (scheme !== undefined) {
    let host = '';
    try {
      host = new URL(uriKey).host;
    } catch {
      // refused below
    }
    if ((scheme !== 'http' && scheme !== 'https') || host === '') throw invalid(`${where}/UriKey must be an http(s) URL or a URI relative to the playlist, not ${JSON.stringify(uriKey)}.`);
  }
  return { uriKey };
}

/** The object holding an encrypted playlist's key: `<playlist key without .m3u8>.key`. */
export function hlsKeyObject(playlistKey: string): string {
  return `${playlistKey.replace(/\.m3u8$/i, '')}.key`;
}

/** A job's key, written in its work folder, with the key info file ffmpeg's hls muxer reads. */
export interface HlsKey {
  readonly key: Buffer;
  readonly file: string;
  readonly infoFile: string;
}

/** Draws a fresh key for this job and writes it and ffmpeg's key info file (`-hls_key_info_file`) into `dir`. */
export async function prepareHlsKey(dir: string, base: string, encryption: HlsEncryption): Promise<HlsKey> {
  const key = randomBytes(16);
  const file = path.join(dir, `${base}.key`);
  const infoFile = path.join(dir, 'keyinfo.txt');
  // 0600: the local storage renames the file into the bucket as it is, so on disk the key stays
  // the service user's alone; the bucket's readers get it through the object API.
  await fs.writeFile(file, key, { mode: 0o600 });
  await fs.writeFile(infoFile, `${encryption.uriKey}\n${file}\n`, { mode: 0o600 });
  return { key, file, infoFile };
}

/** The hls muxer's options for an encrypted output (none without a key). */
export function hlsKeyArgs(keyInfoFile: string | undefined): string[] {
  return keyInfoFile ? ['-hls_key_info_file', keyInfoFile] : [];
}

/** An hls output as written: the playlist and its segments (in order), stored under `playlistKey` and keys beside it. */
export interface HlsFiles {
  /** The playlist then its segments: the objects the result lists. */
  readonly listed: Array<{ key: string; file: string }>;
}

/** The first segment's file (the playlist is `listed[0]`), or undefined when ffmpeg wrote none. */
export function firstSegmentFile(files: HlsFiles): string | undefined {
  return files.listed[1]?.file;
}

/** The playlist `<dir>/<base>.m3u8` and the segments `<base>-<n>.ts` ffmpeg wrote, with their keys: the playlist names them relative to itself, so they go beside it. */
export async function hlsFiles(dir: string, base: string, playlistKey: string): Promise<HlsFiles> {
  const folder = playlistKey.includes('/') ? playlistKey.slice(0, playlistKey.lastIndexOf('/') + 1) : '';
  const index = (name: string) => Number(name.slice(base.length + 1, -3));
  const segments = (await fs.readdir(dir)).filter((f) => f.startsWith(`${base}-`) && f.endsWith('.ts') && Number.isInteger(index(f)))
    .sort((a, b) => index(a) - index(b));
  return {
    listed: [{ key: playlistKey, file: path.join(dir, `${base}.m3u8`) }, ...segments.map((s) => ({ key: safeKey(folder + s), file: path.join(dir, s) }))],
  };
}

/**
 * Stores an hls output: the key object first (so that a reader who finds
 * the playlist finds its key), then the playlist and segments. Returns the
 * stored playlist and segments only, as the result lists them.
 */
export async function storeHls(ctx: ProcessorContext, bucket: string, files: HlsFiles, hlsKey: HlsKey | undefined): Promise<StoredFile[]> {
  if (!hlsKey) return storeFiles(ctx, bucket, files.listed);
  await fs.rm(hlsKey.infoFile, { force: true });
  const keyObject = safeKey(hlsKeyObject(files.listed[0].key));
  const stored = await storeFiles(ctx, bucket, [{ key: keyObject, file: hlsKey.file }, ...files.listed]);
  return stored.slice(1);
}

/**
 * Runs `use` (ffprobe, for the MediaInfo) on a segment in the clear: `segment`
 * itself, or (encrypted) a decrypted copy in the work folder, removed
 * afterwards; the segment's IV is its media sequence number, the playlist's
 * `#EXT-X-MEDIA-SEQUENCE` for the first one.
 */
export async function withClearSegment<T>(dir: string, playlist: string, segment: string, hlsKey: HlsKey | undefined, use: (file: string) => Promise<T>): Promise<T> {
  if (!hlsKey) return use(segment);
  const sequence = Number(/^#EXT-X-MEDIA-SEQUENCE:(\d+)/m.exec(await fs.readFile(playlist, 'utf8'))?.[1] ?? 0);
  const clear = path.join(dir, 'probe-clear.ts');
  try {
    await pipeline(createReadStream(segment), createDecipheriv('aes-128-cbc', hlsKey.key, sequenceIv(sequence)), createWriteStream(clear));
    return await use(clear);
  } finally {
    await fs.rm(clear, { force: true });
  }
}

/** The IV ffmpeg and players use for a segment without an explicit one: its media sequence number, 16 bytes big-endian. */
export function sequenceIv(sequence: number): Buffer {
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(sequence), 8);
  return iv;
}

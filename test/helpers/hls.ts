import { createDecipheriv } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { runFfprobe } from '../../src/media/ffprobe.js';
import type { Spawner } from '../../src/media/spawner.js';
import { BUCKET } from './jobs.js';
import type { TestService } from './service.js';

/** An MPEG-TS in the clear: whole 188-byte packets, each starting with the sync byte 0x47. */
export function isClearTs(data: Buffer): boolean {
  if (data.length === 0 || data.length % 188 !== 0) return false;
  for (let at = 0; at < data.length; at += 188) if (data[at] !== 0x47) return false;
  return true;
}

/** AES-128-CBC as HLS applies it without an IV attribute: the IV is the media sequence number, 16 bytes big-endian. */
export function decryptSegment(data: Buffer, key: Buffer, sequence: number): Buffer {
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(sequence), 8);
  const decipher = createDecipheriv('aes-128-cbc', key, iv);
  return Buffer.concat([decipher.update(data), decipher.final()]);
}

/**
 * Checks an encrypted hls output as a player would use it: the playlist names
 * `uriKey` (and nothing else) as the AES-128 key's URI; the key object beside
 * it holds 16 bytes; every segment is not a TS in the clear, but decrypts with
 * that key into one that ffprobe reads, as long as its EXTINF says. Returns the key.
 */
export async function expectEncryptedHls(api: TestService, spawner: Spawner, playlistKey: string, uriKey: string, totalSec: number): Promise<Buffer> {
  const playlist = (await api.service.storage.get(BUCKET, playlistKey)).toString();
  const keyTags = playlist.split('\n').filter((line) => line.startsWith('#EXT-X-KEY'));
  expect(keyTags).to.deep.equal([`#EXT-X-KEY:METHOD=AES-128,URI="${uriKey}"`]);
  const key = await api.service.storage.get(BUCKET, playlistKey.replace(/\.m3u8$/, '.key'));
  expect(key).to.have.length(16);
  const sequence = Number(/^#EXT-X-MEDIA-SEQUENCE:(\d+)$/m.exec(playlist)?.[1]);
  expect(sequence).to.be.a('number').and.not.NaN;
  const folder = playlistKey.slice(0, playlistKey.lastIndexOf('/') + 1);
  const segments = playlist.split('\n').filter((line) => line.endsWith('.ts'));
  const extinf = [...playlist.matchAll(/#EXTINF:([\d.]+)/g)].map((m) => Number(m[1]));
  expect(segments).to.have.length(extinf.length).and.length.above(1);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hls-clear-'));
  try {
    for (const [i, name] of segments.entries()) {
      const data = await api.service.storage.get(BUCKET, folder + name);
      expect(isClearTs(data), `${name} is a TS in the clear`).to.equal(false);
      const clear = decryptSegment(data, key, sequence + i);
      expect(isClearTs(clear), `${name} decrypted`).to.equal(true);
      const file = path.join(dir, `${i}.ts`);
      await fs.writeFile(file, clear);
      const report = await runFfprobe(file, { spawner });
      expect(report.format?.format_name).to.equal('mpegts');
      expect(Number(report.format?.duration), name).to.be.closeTo(extinf[i], 0.25);
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  expect(extinf.reduce((sum, s) => sum + s, 0)).to.be.closeTo(totalSec, 0.2);
  return key;
}

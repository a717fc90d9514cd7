import path from 'node:path';
import type { Config } from '../config.js';
import { LocalDiskObjectStorage } from './local-disk-objects.js';
import type { ObjectStorage } from './object-storage.js';
import { S3Storage } from './s3.js';

/** The backend MEDIAJOBS_STORAGE names: files under `<dataDir>/buckets` (default), or an S3-compatible store. */
export function createStorage(config: Config): ObjectStorage {
  if (config.storage.kind === 's3') return new S3Storage(config.storage.s3, path.join(config.dataDir, 'tmp'));
  return new LocalDiskObjectStorage(path.join(config.dataDir, 'buckets'));
}

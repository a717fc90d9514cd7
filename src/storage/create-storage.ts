import path from 'node:path';
import type { Config } from '../config.js';
import { LocalDiskObjectStorage } from './local-disk-objects.js';
import type { ObjectStorage } from './object-storage.js';

/** The backend MEDIAJOBS_STORAGE names: files under `<dataDir>/buckets` (default), or an S3-compatible store. */
export function createStorage(config: Config): ObjectStorage {
  if (config.storage.kind === 's3') throw new Error('MEDIAJOBS_STORAGE=s3 is not built yet');
  return new LocalDiskObjectStorage(path.join(config.dataDir, 'buckets'));
}

/**
 * Tag=FileHashCode (shared/ci-media-tags.md §16, the `/file_jobs` family):
 * a hash of the input object, read once as a stream.
 *
 * `FileHashCodeConfig{Type MD5|SHA1|SHA256 (any case), AddToHeader}`.
 * AddToHeader=true (CI then sets `x-cos-meta-<type>` on the object) is refused
 * at submit: this build does not change an object's metadata from a job.
 *
 * Result: `FileHashCodeResult{<MD5|SHA1|SHA256>, FileSize (bytes), LastModified
 * (CI's time format, from the file), Etag (the quoted MD5 of the bytes, as
 * for an object stored in one piece)}`.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import type { Config } from '../config.js';
import { formatCiTime } from '../xml/time.js';
import { isXmlObject, type XmlObject } from '../xml/tree.js';
import { asSubmitError, goFlag, invalid, text, withInputFile } from './media-output.js';
import type { Processor, ProcessorContext } from './processor.js';

const TYPES = { md5: 'MD5', sha1: 'SHA1', sha256: 'SHA256' } as const;
type HashType = keyof typeof TYPES;

/** The hash asked for; throws InvalidArgument naming the element. */
export function parseFileHashCode(operation: XmlObject): HashType {
  const config = isXmlObject(operation.FileHashCodeConfig) ? operation.FileHashCodeConfig : {};
  const type = text(config.Type)?.toLowerCase();
  if (type === undefined || !Object.hasOwn(TYPES, type)) throw invalid('FileHashCodeConfig/Type must be MD5, SHA1 or SHA256.');
  if (goFlag(config.AddToHeader, 'FileHashCodeConfig/AddToHeader')) throw invalid('FileHashCodeConfig/AddToHeader true is not supported here: the hash is reported in the result only.');
  return type as HashType;
}

/** Submit-time checks. */
export function checkFileHashCodeOperation(operation: XmlObject, _config: Config, where: string): void {
  try {
    parseFileHashCode(operation);
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export const fileHashCodeProcessor: Processor = {
  tag: 'FileHashCode',
  run: (ctx) => runFileHashCode(ctx),
};

async function runFileHashCode(ctx: ProcessorContext): Promise<XmlObject> {
  const type = parseFileHashCode(ctx.job.operation);
  return withInputFile(ctx, async (file) => {
    const wanted = createHash(type);
    const md5 = createHash('md5');
    let size = 0;
    for await (const chunk of createReadStream(file, { signal: ctx.signal })) {
      wanted.update(chunk as Buffer);
      if (type !== 'md5') md5.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    const digest = wanted.digest('hex');
    const { mtime } = await fs.stat(file);
    return {
      FileHashCodeResult: {
        [TYPES[type]]: digest,
        FileSize: String(size),
        LastModified: formatCiTime(mtime),
        Etag: `"${type === 'md5' ? digest : md5.digest('hex')}"`,
      },
    };
  });
}

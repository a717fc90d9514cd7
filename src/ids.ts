import { randomBytes } from 'node:crypto';

/** CI resource ids: a one-letter kind prefix and 32 lowercase hex digits (`shared/ci-api.md` §0); file jobs' start with `f` (§16). */
export type IdPrefix = 'j' | 'f' | 'p';

export function newId(prefix: IdPrefix): string {
  return prefix + randomBytes(16).toString('hex');
}

/** Template ids are `t1` followed by 32 hex digits, as in CI's samples. */
export function newTemplateId(): string {
  return 't1' + randomBytes(16).toString('hex');
}

/** Media jobs' ids start with `j`, file jobs' (FileHashCode, FileCompress, FileUncompress) with `f`. */
export const JOB_ID_PATTERN = /^[jf][0-9a-f]{32}$/;
export const QUEUE_ID_PATTERN = /^p[0-9a-f]{32}$/;
export const TEMPLATE_ID_PATTERN = /^t1[0-9a-f]{32}$/;

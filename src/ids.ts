import { randomBytes } from 'node:crypto';

/** CI resource ids: a one-letter kind prefix and 32 lowercase hex digits (`shared/ci-api.md` §0). */
export type IdPrefix = 'j' | 'p';

export function newId(prefix: IdPrefix): string {
  return prefix + randomBytes(16).toString('hex');
}

/** Template ids are `t1` followed by 32 hex digits, as in CI's samples. */
export function newTemplateId(): string {
  return 't1' + randomBytes(16).toString('hex');
}

export const JOB_ID_PATTERN = /^j[0-9a-f]{32}$/;
export const QUEUE_ID_PATTERN = /^p[0-9a-f]{32}$/;
export const TEMPLATE_ID_PATTERN = /^t1[0-9a-f]{32}$/;

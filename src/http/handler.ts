import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { JobInserter } from '../engine/job-inserter.js';
import { CiError } from '../errors.js';
import type { Db } from '../store/database.js';
import type { ObjectStorage } from '../storage/object-storage.js';
import type { AppContext } from './context.js';

/** What handlers may use; built once in the composition root. */
export interface AppDeps {
  readonly config: Config;
  readonly db: Db;
  /** Stores CreateMediaJobs submissions, grouping those that arrive together. */
  readonly jobInserter: JobInserter;
  /** Jobs' storage and the object API's (objects, buckets, multipart uploads). */
  readonly storage: ObjectStorage;
  readonly logger: Logger;
}

/** Every handler has this shape: parse → validate → call engine/store → build XML → write. */
export type Handler = (ctx: AppContext, deps: AppDeps) => Promise<void>;

export function writeXml(ctx: AppContext, body: string, status = 200): void {
  ctx.status = status;
  ctx.type = 'application/xml';
  ctx.body = body;
}

/** A query parameter; empty means absent (Python sends `nextToken=`), repeated is an error. */
export function optionalQuery(ctx: AppContext, name: string): string | undefined {
  const value = ctx.query[name];
  if (Array.isArray(value)) throw new CiError('InvalidArgument', `${name} may be given only once.`);
  return value === undefined || value === '' ? undefined : value;
}

/** An optional positive integer query parameter (page numbers and sizes). */
export function optionalPositiveQuery(ctx: AppContext, name: string, fallback: number, max: number): number {
  const raw = optionalQuery(ctx, name);
  if (raw === undefined) return fallback;
  if (!/^\d{1,7}$/.test(raw) || Number(raw) < 1 || Number(raw) > max) throw new CiError('InvalidArgument', `${name} must be an integer from 1 to ${max}.`);
  return Number(raw);
}

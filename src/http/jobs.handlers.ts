import { cancelJobs } from '../engine/cancel.js';
import { isJobState, type JobState } from '../engine/job-state.js';
import { submitJobs } from '../engine/submit.js';
import { CiError } from '../errors.js';
import { JOB_ID_PATTERN, QUEUE_ID_PATTERN } from '../ids.js';
import { findJobs, listJobs } from '../store/jobs.repository.js';
import { buildCreateMediaJobsResponse, buildDescribeMediaJobResponse, buildDescribeMediaJobsResponse } from '../xml/responses.js';
import { parseCiTime } from '../xml/time.js';
import { readXmlBody } from './body.js';
import type { AppContext } from './context.js';
import { optionalPositiveQuery, optionalQuery, writeXml, type Handler } from './handler.js';

const MAX_IDS_PER_REQUEST = 10;

/** `POST /jobs` — CreateMediaJobs, single and multi-Operation forms. */
export const createMediaJobs: Handler = async (ctx, deps) => {
  const request = await readXmlBody(ctx, deps.config.maxBodyBytes);
  const jobs = await submitJobs(deps, ctx.state, request);
  writeXml(ctx, buildCreateMediaJobsResponse(jobs));
};

/** `GET /jobs/<id>[,<id>…]` — DescribeMediaJob; unknown ids are listed, never a 404. */
export const describeMediaJob: Handler = async (ctx, deps) => {
  const ids = parseIdList(ctx.params.ids);
  const jobs = await findJobs(deps.db.kysely, ctx.state.bucket, ids.filter((id) => JOB_ID_PATTERN.test(id)));
  const byId = new Map(jobs.map((job) => [job.jobId, job]));
  const found = ids.flatMap((id) => byId.get(id) ?? []);
  const missing = ids.filter((id) => !byId.has(id));
  writeXml(ctx, buildDescribeMediaJobResponse(found, missing));
};

/** `GET /jobs` — DescribeMediaJobs with CI's filters and NextToken paging. */
export const describeMediaJobs: Handler = async (ctx, deps) => {
  const size = optionalPositiveQuery(ctx, 'size', 10, 100);
  const order = optionalQuery(ctx, 'orderByTime') ?? 'Desc';
  if (order !== 'Desc' && order !== 'Asc') throw new CiError('InvalidArgument', 'orderByTime must be Desc or Asc.');
  const queueId = optionalQuery(ctx, 'queueId');
  if (queueId !== undefined && !QUEUE_ID_PATTERN.test(queueId)) throw new CiError('InvalidArgument', `queueId ${queueId} is not a queue id.`);
  const nextToken = optionalQuery(ctx, 'nextToken');
  if (nextToken !== undefined && !/^[1-9]\d{0,17}$/.test(nextToken)) throw new CiError('InvalidArgument', 'nextToken is not a token this service returned.');
  const page = await listJobs(deps.db.kysely, {
    bucket: ctx.state.bucket,
    tag: optionalQuery(ctx, 'tag'),
    queueId,
    states: parseStates(optionalQuery(ctx, 'states')),
    order,
    size,
    afterSeq: nextToken,
    startCreationTime: parseTimeParam(ctx, 'startCreationTime'),
    endCreationTime: parseTimeParam(ctx, 'endCreationTime'),
    inputObject: optionalQuery(ctx, 'inputObject'),
  });
  writeXml(ctx, buildDescribeMediaJobsResponse(page.jobs, page.nextSeq));
};

/** `PUT /jobs/<id>[,<id>…]` with `?cancel`, `?cancel=` or nothing — CancelMediaJob. */
export const cancelMediaJob: Handler = async (ctx, deps) => {
  const ids = parseIdList(ctx.params.ids);
  await cancelJobs(deps.db, ctx.state.bucket, ids);
  ctx.status = 200;
  ctx.body = '';
};

function parseIdList(raw: string | undefined): string[] {
  const ids = (raw ?? '').split(',').map((id) => id.trim()).filter(Boolean);
  if (ids.length === 0) throw new CiError('InvalidArgument', 'A JobId is required.');
  if (ids.length > MAX_IDS_PER_REQUEST) throw new CiError('InvalidArgument', `At most ${MAX_IDS_PER_REQUEST} JobIds may be given at once.`);
  return [...new Set(ids)];
}

function parseStates(raw: string | undefined): JobState[] | undefined {
  if (raw === undefined) return undefined;
  const values = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (values.length === 0 || values.includes('All')) return undefined;
  for (const value of values) {
    if (!isJobState(value)) throw new CiError('InvalidArgument', `states value ${value} is not one of All, Submitted, Running, Success, Failed, Pause, Cancel.`);
  }
  return values as JobState[];
}

function parseTimeParam(ctx: AppContext, name: string): Date | undefined {
  const raw = optionalQuery(ctx, name);
  if (raw === undefined) return undefined;
  // An unencoded '+' in a query string arrives as a space.
  const date = parseCiTime(raw.replace(/ (\d{2}:?\d{2})$/, '+$1'));
  if (!date) throw new CiError('InvalidArgument', `${name} must look like 2022-06-27T15:23:10+0800.`);
  return date;
}

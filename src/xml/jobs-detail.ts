import type { Job } from '../store/jobs.repository.js';
import { formatCiTime } from './time.js';
import type { XmlObject } from './tree.js';

/** States in which CI shows a Progress element. */
const SHOWS_PROGRESS = new Set(['Running', 'Success', 'Failed', 'Cancel']);
/** Echoed Operation elements that CI puts after the results. */
const TRAILING_OPERATION_ELEMENTS = ['UserData', 'JobLevel'];

/**
 * The only code that turns a job into `<JobsDetail>`: used by create,
 * describe, list and the TaskFinish callback, so they can never disagree.
 * Element order follows CI's DescribeMediaJob samples.
 */
export function buildJobsDetail(job: Job): XmlObject {
  const detail: XmlObject = {
    Code: job.code,
    Message: job.message,
    JobId: job.jobId,
    State: job.state,
  };
  if (SHOWS_PROGRESS.has(job.state)) detail.Progress = String(job.progress);
  detail.CreationTime = formatCiTime(job.createdAt);
  detail.StartTime = formatCiTime(job.startedAt);
  detail.EndTime = formatCiTime(job.endedAt);
  detail.QueueId = job.queueId;
  detail.Tag = job.tag;
  // File jobs (ids `f…`): CI's doc sample echoes BucketId while its table and Go's FileProcessInput read Bucket, so both.
  detail.Input = job.jobId.startsWith('f')
    ? { Bucket: job.bucket, BucketId: job.bucket, Object: job.inputObject, Region: job.region }
    : { BucketId: job.bucket, Object: job.inputObject, Region: job.region };
  detail.Operation = buildOperation(job);
  return detail;
}

function buildOperation(job: Job): XmlObject {
  const operation: XmlObject = {};
  for (const [name, value] of Object.entries(job.operation)) {
    if (!TRAILING_OPERATION_ELEMENTS.includes(name)) operation[name] = value;
  }
  Object.assign(operation, job.result ?? {});
  for (const name of TRAILING_OPERATION_ELEMENTS) {
    const value = job.operation[name];
    if (value !== undefined) operation[name] = value;
  }
  return operation;
}

import type { CiError } from '../errors.js';
import type { Job } from '../store/jobs.repository.js';
import type { Queue } from '../store/queues.repository.js';
import { encodeXml } from './codec.js';
import { buildJobsDetail } from './jobs-detail.js';
import { formatCiTime } from './time.js';
import type { XmlObject } from './tree.js';

/*
 * Every response body, as a pure function of domain objects. Handlers call
 * one of these and write the string; none builds XML itself.
 */

export function buildCreateMediaJobsResponse(jobs: readonly Job[]): string {
  return encodeXml('Response', { JobsDetail: jobs.map(buildJobsDetail) });
}

export function buildDescribeMediaJobResponse(jobs: readonly Job[], missingIds: readonly string[]): string {
  const body: XmlObject = {};
  if (jobs.length) body.JobsDetail = jobs.map(buildJobsDetail);
  if (missingIds.length) body.NonExistJobIds = [...missingIds];
  return encodeXml('Response', body);
}

export function buildDescribeMediaJobsResponse(jobs: readonly Job[], nextToken: string | undefined): string {
  return encodeXml('Response', { JobsDetail: jobs.map(buildJobsDetail), NextToken: nextToken ?? '' });
}

export function buildQueueElement(queue: Queue): XmlObject {
  const element: XmlObject = {
    QueueId: queue.queueId,
    Name: queue.name,
    State: queue.state,
  };
  const notify = queue.notifyConfig;
  element.NotifyConfig = {
    Url: notify?.Url ?? '',
    Event: notify?.Event ?? '',
    Type: notify?.Type ?? 'Url',
    State: notify?.State ?? 'Off',
    ResultFormat: notify?.ResultFormat ?? 'XML',
  };
  element.MaxSize = String(queue.maxSize);
  element.MaxConcurrent = String(queue.maxConcurrent);
  element.UpdateTime = formatCiTime(queue.updatedAt);
  element.CreateTime = formatCiTime(queue.createdAt);
  element.Category = queue.category;
  return element;
}

export interface QueueListPage {
  readonly requestId: string;
  readonly queues: readonly Queue[];
  readonly total: number;
  readonly pageNumber: number;
  readonly pageSize: number;
  /** Set when the client asked for specific queueIds. */
  readonly missingIds?: readonly string[];
}

export function buildDescribeMediaQueuesResponse(page: QueueListPage): string {
  const body: XmlObject = { RequestId: page.requestId };
  if (page.missingIds === undefined) {
    body.TotalCount = String(page.total);
    body.PageNumber = String(page.pageNumber);
    body.PageSize = String(page.pageSize);
  }
  body.QueueList = page.queues.map(buildQueueElement);
  if (page.missingIds?.length) body.NonExistPIDs = [...page.missingIds];
  return encodeXml('Response', body);
}

export function buildUpdateMediaQueueResponse(requestId: string, queue: Queue): string {
  return encodeXml('Response', { RequestId: requestId, Queue: buildQueueElement(queue) });
}

export interface ErrorContext {
  readonly resource: string;
  readonly requestId: string;
  readonly traceId: string;
}

/** CI's error body; every field non-empty (the Python SDK reports `Unknown` otherwise). */
export function buildErrorResponse(error: CiError, context: ErrorContext): string {
  return encodeXml('Error', {
    Code: error.code,
    Message: error.message || error.code,
    Resource: context.resource || '/',
    RequestId: context.requestId,
    TraceId: context.traceId,
  });
}

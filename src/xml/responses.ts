import type { DeliveryWithAttempts } from '../callbacks/deliveries.repository.js';
import type { CiError } from '../errors.js';
import type { Job } from '../store/jobs.repository.js';
import type { Queue } from '../store/queues.repository.js';
import type { Template } from '../store/templates.repository.js';
import type { BucketInfo } from '../storage/object-storage.js';
import type { OfficialTemplate } from '../templates/official-presets.js';
import { answerContainer } from '../templates/template-tags.js';
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

/** A bucket as the bucket-listing endpoints show it; Name is the same as BucketId, as in CI. */
function buildServiceBucketElement(bucket: BucketInfo, region: string): XmlObject {
  return { BucketId: bucket.name, Name: bucket.name, Region: region, CreateTime: formatCiTime(bucket.createdAt) };
}

export interface ServiceBucketPage {
  readonly requestId: string;
  readonly buckets: readonly BucketInfo[];
  readonly region: string;
  readonly total: number;
  readonly pageNumber: number;
  readonly pageSize: number;
}

/** DescribeMediaBuckets and its kin: `listElement` (MediaBucketList, PicBucketList, …) repeats once per bucket. */
export function buildDescribeServiceBucketsResponse(listElement: string, page: ServiceBucketPage): string {
  return encodeXml('Response', {
    RequestId: page.requestId,
    TotalCount: String(page.total),
    PageNumber: String(page.pageNumber),
    PageSize: String(page.pageSize),
    [listElement]: page.buckets.map((b) => buildServiceBucketElement(b, page.region)),
  });
}

/** CreateMediaBucket and its kin: the bucket in `element` (MediaBucket, PicBucket, …). */
export function buildCreateServiceBucketResponse(element: string, requestId: string, bucket: BucketInfo, region: string): string {
  return encodeXml('Response', { RequestId: requestId, [element]: buildServiceBucketElement(bucket, region) });
}

/**
 * One template as CI shows it, inside `<Template>` or a `<TemplateList>`:
 * the parameters' container is the Tag's (templates/template-tags.ts: `<TransTpl>` for Transcode).
 * A bucket's own template is Custom; an Official preset belongs to no bucket and has no times to show.
 */
export function buildTemplateElement(template: Template | OfficialTemplate): XmlObject {
  const container = { [answerContainer(template.tag)]: template.body };
  if (!('bucket' in template)) {
    return { Tag: template.tag, TemplateId: template.templateId, Name: template.name, Category: 'Official', ...container };
  }
  return {
    Tag: template.tag,
    TemplateId: template.templateId,
    Name: template.name,
    BucketId: template.bucket,
    Category: 'Custom',
    ...container,
    CreateTime: formatCiTime(template.createdAt),
    UpdateTime: formatCiTime(template.updatedAt),
  };
}

/** CreateMediaTemplate and UpdateMediaTemplate answer with the same shape. */
export function buildTemplateResponse(requestId: string, template: Template): string {
  return encodeXml('Response', { RequestId: requestId, Template: buildTemplateElement(template) });
}

export interface TemplateListPage {
  readonly requestId: string;
  readonly templates: readonly (Template | OfficialTemplate)[];
  readonly total: number;
  readonly pageNumber: number;
  readonly pageSize: number;
}

/** DescribeMediaTemplates: `<TemplateList>` repeats once per template, and is absent when there are none. */
export function buildDescribeMediaTemplatesResponse(page: TemplateListPage): string {
  return encodeXml('Response', {
    RequestId: page.requestId,
    TotalCount: String(page.total),
    PageNumber: String(page.pageNumber),
    PageSize: String(page.pageSize),
    TemplateList: page.templates.map(buildTemplateElement),
  });
}

export function buildDeleteMediaTemplateResponse(requestId: string, templateId: string): string {
  return encodeXml('Response', { RequestId: requestId, TemplateId: templateId });
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

/** Our extension: a job's callback deliveries and their attempts, in CI's XML style. */
export function buildCallbackDeliveriesResponse(requestId: string, deliveries: readonly DeliveryWithAttempts[]): string {
  return encodeXml('Response', {
    RequestId: requestId,
    Delivery: deliveries.map(({ delivery, attempts }) => ({
      DeliveryId: delivery.delivery_id,
      JobId: delivery.job_id,
      Url: delivery.url,
      Format: delivery.format,
      State: delivery.state,
      Attempts: String(delivery.attempts),
      NextAttemptTime: delivery.state === 'Pending' ? formatCiTime(new Date(delivery.next_attempt_at)) : '-',
      CreateTime: formatCiTime(new Date(delivery.created_at)),
      DeliveredTime: formatCiTime(delivery.delivered_at ? new Date(delivery.delivered_at) : null),
      Attempt: attempts.map((a) => ({
        Number: String(a.attempt),
        Time: formatCiTime(new Date(a.attempted_at)),
        HttpStatus: a.http_status === null ? '-' : String(a.http_status),
        LatencyMs: String(a.latency_ms),
        Error: a.error ?? '',
      })),
    })),
  });
}

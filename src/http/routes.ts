import { describeCallbacks, redeliverCallback } from './callbacks.handlers.js';
import type { Handler } from './handler.js';
import { generateMediaInfo } from './mediainfo.handlers.js';
import { cancelMediaJob, createMediaJobs, describeMediaJob, describeMediaJobs } from './jobs.handlers.js';
import { describeMediaQueues, updateMediaQueueHandler } from './queues.handlers.js';
import { BUCKET_SERVICE_FAMILIES, createServiceBucket, describeServiceBuckets } from './service-buckets.handlers.js';
import { createMediaTemplate, deleteMediaTemplate, describeMediaTemplates, updateMediaTemplate } from './templates.handlers.js';

export interface Route {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  readonly path: string;
  readonly handler: Handler;
  /** CI's operation name, for logs and metrics. */
  readonly name: string;
}

/**
 * Every endpoint, in one list. `PUT /jobs/:ids` is CancelMediaJob with
 * `?cancel`, `?cancel=` or no query at all (the Java SDK sends none).
 */
export const ROUTES: readonly Route[] = [
  { method: 'POST', path: '/jobs', handler: createMediaJobs, name: 'CreateMediaJobs' },
  { method: 'GET', path: '/jobs', handler: describeMediaJobs, name: 'DescribeMediaJobs' },
  { method: 'GET', path: '/jobs/:ids', handler: describeMediaJob, name: 'DescribeMediaJob' },
  { method: 'PUT', path: '/jobs/:ids', handler: cancelMediaJob, name: 'CancelMediaJob' },
  { method: 'GET', path: '/queue', handler: describeMediaQueues, name: 'DescribeMediaQueues' },
  { method: 'PUT', path: '/queue/:queueId', handler: updateMediaQueueHandler, name: 'UpdateMediaQueue' },
  { method: 'POST', path: '/template', handler: createMediaTemplate, name: 'CreateMediaTemplate' },
  { method: 'GET', path: '/template', handler: describeMediaTemplates, name: 'DescribeMediaTemplates' },
  { method: 'PUT', path: '/template/:templateId', handler: updateMediaTemplate, name: 'UpdateMediaTemplate' },
  { method: 'DELETE', path: '/template/:templateId', handler: deleteMediaTemplate, name: 'DeleteMediaTemplate' },
  // The PicProcess path family the Python SDK uses (shared/ci-media-tags.md §15): the same jobs and
  // queues as /jobs and /queue, whose handlers already serve any Tag.
  { method: 'POST', path: '/pic_jobs', handler: createMediaJobs, name: 'CreatePicProcessJobs' },
  { method: 'GET', path: '/pic_jobs', handler: describeMediaJobs, name: 'DescribePicProcessJobs' },
  { method: 'GET', path: '/pic_jobs/:ids', handler: describeMediaJob, name: 'DescribePicProcessJob' },
  { method: 'GET', path: '/picqueue', handler: describeMediaQueues, name: 'DescribePicProcessQueues' },
  { method: 'PUT', path: '/picqueue/:queueId', handler: updateMediaQueueHandler, name: 'UpdatePicProcessQueue' },
  // The file-job family (§16): FileHashCode, on the same jobs as /jobs.
  { method: 'POST', path: '/file_jobs', handler: createMediaJobs, name: 'CreateFileJobs' },
  { method: 'GET', path: '/file_jobs', handler: describeMediaJobs, name: 'DescribeFileJobs' },
  { method: 'GET', path: '/file_jobs/:ids', handler: describeMediaJob, name: 'DescribeFileJob' },
  // Synchronous media info on the CI endpoint (the Go SDK's GenerateMediaInfo), answered as GET <key>?ci-process=videoinfo.
  { method: 'POST', path: '/mediainfo', handler: generateMediaInfo, name: 'GenerateMediaInfo' },
  // The queues of the AI, speech, file and document services: the bucket's queues, which run every Tag here.
  { method: 'GET', path: '/ai_queue', handler: describeMediaQueues, name: 'DescribeAIProcessQueues' },
  { method: 'PUT', path: '/ai_queue/:queueId', handler: updateMediaQueueHandler, name: 'UpdateAIProcessQueue' },
  { method: 'GET', path: '/asrqueue', handler: describeMediaQueues, name: 'DescribeASRProcessQueues' },
  { method: 'PUT', path: '/asrqueue/:queueId', handler: updateMediaQueueHandler, name: 'UpdateASRProcessQueue' },
  { method: 'GET', path: '/file_queue', handler: describeMediaQueues, name: 'DescribeFileProcessQueues' },
  { method: 'GET', path: '/docqueue', handler: describeMediaQueues, name: 'DescribeDocProcessQueues' },
  { method: 'PUT', path: '/docqueue/:queueId', handler: updateMediaQueueHandler, name: 'UpdateDocProcessQueue' },
  // Which buckets have each service on (service-buckets.handlers.ts): GET lists, POST turns it on.
  ...BUCKET_SERVICE_FAMILIES.flatMap((family): Route[] => [
    { method: 'GET', path: family.path, handler: describeServiceBuckets(family), name: family.describeName },
    { method: 'POST', path: family.path, handler: createServiceBucket(family), name: family.createName },
  ]),
  { method: 'GET', path: '/callbacks', handler: describeCallbacks, name: 'DescribeCallbacks' },
  { method: 'POST', path: '/callbacks/:deliveryId', handler: redeliverCallback, name: 'RedeliverCallback' },
];

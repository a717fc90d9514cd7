import { updateMediaQueue } from '../engine/queues.js';
import { CiError } from '../errors.js';
import { QUEUE_ID_PATTERN } from '../ids.js';
import { ensureDefaultQueue, listQueues } from '../store/queues.repository.js';
import type { NotifyConfig } from '../store/schema.js';
import { validateCallbackUrlSyntax } from '../callbacks/url-policy.js';
import type { XmlObject } from '../xml/tree.js';
import { buildDescribeMediaQueuesResponse, buildUpdateMediaQueueResponse } from '../xml/responses.js';
import { readXmlBody } from './body.js';
import { optionalPositiveQuery, optionalQuery, writeXml, type Handler } from './handler.js';
import { assertMatchesSchema } from '../validation/xml-request.js';

const QUEUE_CATEGORIES = ['CateAll', 'Transcoding', 'SpeedTranscoding'];

/** `GET /queue` — DescribeMediaQueues. The bucket's default queue exists from the first call. */
export const describeMediaQueues: Handler = async (ctx, deps) => {
  await ensureDefaultQueue(deps.db.kysely, ctx.state.bucket);
  const queueIds = optionalQuery(ctx, 'queueIds')?.split(',').map((s) => s.trim()).filter(Boolean);
  if (queueIds && queueIds.length > 10) throw new CiError('InvalidArgument', 'At most 10 queueIds may be given at once.');
  const state = optionalQuery(ctx, 'state');
  if (state !== undefined && !['Active', 'Paused', 'All'].includes(state)) throw new CiError('InvalidArgument', 'state must be Active or Paused.');
  const category = optionalQuery(ctx, 'category');
  if (category !== undefined && !QUEUE_CATEGORIES.includes(category)) throw new CiError('InvalidArgument', `category must be one of ${QUEUE_CATEGORIES.join(', ')}.`);
  const pageNumber = optionalPositiveQuery(ctx, 'pageNumber', 1, 1_000_000);
  const pageSize = optionalPositiveQuery(ctx, 'pageSize', 10, 100);
  const { queues, total } = await listQueues(deps.db.kysely, {
    bucket: ctx.state.bucket,
    queueIds,
    state: state === 'All' ? undefined : (state as 'Active' | 'Paused' | undefined),
    // Every queue here is a Transcoding queue; CateAll and Transcoding both list them all.
    category: category === 'SpeedTranscoding' ? 'SpeedTranscoding' : undefined,
    pageNumber,
    pageSize,
  });
  const missingIds = queueIds?.filter((id) => !queues.some((q) => q.queueId === id));
  writeXml(ctx, buildDescribeMediaQueuesResponse({ requestId: ctx.state.requestId, queues, total, pageNumber, pageSize, missingIds }));
};

/** `PUT /queue/<QueueId>` — UpdateMediaQueue: Name, State, MaxConcurrent, NotifyConfig. */
export const updateMediaQueueHandler: Handler = async (ctx, deps) => {
  const queueId = ctx.params.queueId ?? '';
  if (!QUEUE_ID_PATTERN.test(queueId)) throw new CiError('InvalidArgument', `${queueId} is not a queue id.`);
  const request = await readXmlBody(ctx, deps.config.maxBodyBytes);
  assertMatchesSchema('update-media-queue.request.json', request, 'Request');
  const notify = request.NotifyConfig as XmlObject | undefined;
  const notifyConfig = notify === undefined ? undefined : parseNotifyConfig(notify, deps.config.callbacks.allowPrivateAddresses);
  const queue = await updateMediaQueue(deps.db, ctx.state.bucket, queueId, {
    name: request.Name as string,
    state: request.State as 'Active' | 'Paused',
    maxConcurrent: request.MaxConcurrent === undefined ? undefined : Number(request.MaxConcurrent),
    notifyConfig,
  });
  writeXml(ctx, buildUpdateMediaQueueResponse(ctx.state.requestId, queue));
};

function parseNotifyConfig(notify: XmlObject, allowPrivateAddresses: boolean): NotifyConfig {
  const config: NotifyConfig = {
    Url: (notify.Url as string | undefined) ?? '',
    Event: (notify.Event as string | undefined) ?? 'TaskFinish',
    Type: (notify.Type as string | undefined) || 'Url',
    State: (notify.State as string | undefined) ?? 'Off',
    ResultFormat: (notify.ResultFormat as string | undefined) || 'XML',
  };
  if (config.State === 'On') {
    try {
      validateCallbackUrlSyntax(config.Url ?? '', { allowPrivateAddresses });
    } catch (err) {
      throw new CiError('InvalidArgument', `Request/NotifyConfig/Url ${(err as Error).message}`);
    }
  }
  return config;
}

import { sql } from 'kysely';
import { findDeliveriesOfJob, redeliver } from '../callbacks/deliveries.repository.js';
import { CHANNELS } from '../engine/channels.js';
import { CiError } from '../errors.js';
import { JOB_ID_PATTERN } from '../ids.js';
import { findJobs } from '../store/jobs.repository.js';
import { buildCallbackDeliveriesResponse } from '../xml/responses.js';
import { optionalQuery, writeXml, type Handler } from './handler.js';

const DELIVERY_ID_PATTERN = /^d[0-9a-f]{32}$/;

/** `GET /callbacks?jobId=…` — a job's TaskFinish deliveries and every attempt (our extension to CI). */
export const describeCallbacks: Handler = async (ctx, deps) => {
  const jobId = optionalQuery(ctx, 'jobId');
  if (!jobId || !JOB_ID_PATTERN.test(jobId)) throw new CiError('InvalidArgument', 'jobId is required and must be a JobId.');
  const [job] = await findJobs(deps.db.kysely, ctx.state.bucket, [jobId]);
  if (!job) throw new CiError('InvalidArgument', `The job ${jobId} does not exist.`);
  writeXml(ctx, buildCallbackDeliveriesResponse(ctx.state.requestId, await findDeliveriesOfJob(deps.db.kysely, jobId)));
};

/** `POST /callbacks/<DeliveryId>` — deliver a notification again, now. */
export const redeliverCallback: Handler = async (ctx, deps) => {
  const deliveryId = ctx.params.deliveryId ?? '';
  if (!DELIVERY_ID_PATTERN.test(deliveryId)) throw new CiError('InvalidArgument', `${deliveryId} is not a delivery id.`);
  const delivery = await deps.db.kysely.selectFrom('callback_deliveries').innerJoin('jobs', 'jobs.job_id', 'callback_deliveries.job_id')
    .select(['callback_deliveries.job_id']).where('delivery_id', '=', deliveryId).where('jobs.bucket', '=', ctx.state.bucket).executeTakeFirst();
  if (!delivery) throw new CiError('InvalidArgument', `The delivery ${deliveryId} does not exist.`);
  await deps.db.kysely.transaction().execute(async (tx) => {
    await redeliver(tx, deliveryId);
    await sql`SELECT pg_notify(${CHANNELS.deliveriesAvailable}, '')`.execute(tx);
  });
  writeXml(ctx, buildCallbackDeliveriesResponse(ctx.state.requestId, (await findDeliveriesOfJob(deps.db.kysely, delivery.job_id)).filter((d) => d.delivery.delivery_id === deliveryId)));
};

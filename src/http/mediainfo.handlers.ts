import { readXmlBody } from './body.js';
import type { Handler } from './handler.js';
import { objectProcessingOf } from './object-processing.js';

/**
 * `POST /mediainfo` — the CI endpoint's synchronous media info (the Go SDK's
 * GenerateMediaInfo): `<Request><Input><Object>` of the request's bucket →
 * `<Response><MediaInfo>`, as `GET <key>?ci-process=videoinfo` answers it,
 * in the same slots.
 */
export const generateMediaInfo: Handler = async (ctx, deps) => {
  const request = await readXmlBody(ctx, deps.config.maxBodyBytes);
  await objectProcessingOf(deps).mediaInfoRequest(ctx, request, ctx.state.bucket, deps.storage);
};

import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { newId } from '../../src/ids.js';
import type { NewJob } from '../../src/store/jobs.repository.js';
import { ffmpegPidsOf } from './processes.js';
import type { TestService } from './service.js';
import { startTestService, waitFor } from './service.js';

export const BUCKET = 'local-1250000000';
const FINAL = new Set(['Success', 'Failed', 'Cancel']);

/** Copies a fixture into the default bucket under `key`. */
export async function putFixture(api: TestService, fixture: string, key: string): Promise<void> {
  await api.service.storage.put(BUCKET, key, readFileSync(fixture));
}

/** A service with a worker and each fixture file copied into the default bucket under its key: how the job tests start one. */
export async function startWorkerService(fixtures: Readonly<Record<string, string>>): Promise<TestService> {
  const api = await startTestService({ worker: true });
  for (const [key, fixture] of Object.entries(fixtures)) await putFixture(api, fixture, key);
  return api;
}

export function mediaInfoRequest(object: string, options: { jobLevel?: number; queueId?: string; userData?: string; callBack?: string; callBackFormat?: string } = {}): string {
  return '<Request><Tag>MediaInfo</Tag>'
    + `<Input><Object>${object}</Object></Input>`
    + `<Operation>${options.userData ? `<UserData>${options.userData}</UserData>` : ''}<JobLevel>${options.jobLevel ?? 0}</JobLevel></Operation>`
    + (options.queueId ? `<QueueId>${options.queueId}</QueueId>` : '')
    + (options.callBack ? `<CallBack>${options.callBack}</CallBack>` : '')
    + (options.callBackFormat ? `<CallBackFormat>${options.callBackFormat}</CallBackFormat>` : '')
    + '</Request>';
}

/** Submits one job and returns its JobId. */
export async function submit(api: TestService, body: string): Promise<string> {
  const res = await api.request('POST', '/jobs', { body });
  expect(res.status, res.text).to.equal(200);
  return res.xml.Response.JobsDetail.JobId as string;
}

export async function describeJob(api: TestService, jobId: string): Promise<Record<string, any>> {
  const res = await api.request('GET', `/jobs/${jobId}`);
  expect(res.status, res.text).to.equal(200);
  return res.xml.Response.JobsDetail as Record<string, any>;
}

export async function waitForState(api: TestService, jobId: string, states: string | string[] = [...FINAL], timeoutMs = 20_000): Promise<Record<string, any>> {
  const wanted = Array.isArray(states) ? states : [states];
  return waitFor(async () => {
    const detail = await describeJob(api, jobId);
    return wanted.includes(detail.State) ? detail : undefined;
  }, timeoutMs, `job ${jobId} to reach ${wanted.join('/')}`);
}

export async function defaultQueueId(api: TestService): Promise<string> {
  const res = await api.request('GET', '/queue');
  const list = res.xml.Response.QueueList;
  return (Array.isArray(list) ? list[0] : list).QueueId as string;
}

export async function setQueue(api: TestService, queueId: string, state: 'Active' | 'Paused', extra = ''): Promise<void> {
  const res = await api.request('PUT', `/queue/${queueId}`, { body: `<Request><Name>q</Name><State>${state}</State>${extra}</Request>` });
  expect(res.status, res.text).to.equal(200);
}

/** A job as `insertJobs` takes it: a MediaInfo job on in.mp4 at `priority`, for tests that store jobs below the API. */
export function newJobRecord(bucket: string, priority = 0): NewJob {
  return {
    jobId: newId('j'),
    bucket,
    region: 'ap-local',
    tag: 'MediaInfo',
    priority,
    inputObject: 'in.mp4',
    operation: { JobLevel: String(priority) },
    callback: { url: undefined, format: undefined, type: undefined },
    maxAttempts: 3,
    expiresAt: new Date(Date.now() + 3_600_000),
  };
}

/**
 * For a long ffmpeg job just submitted: waits for its ffmpeg and for a
 * progress ffmpeg reported (between 5 and 100), cancels the job, and checks
 * that ffmpeg is gone and `outputKey` was never stored.
 */
export async function expectProgressThenCancel(api: TestService, jobId: string, outputKey: string): Promise<void> {
  await waitFor(async () => (ffmpegPidsOf(jobId).length > 0 ? true : undefined), 20_000, 'ffmpeg to start');
  await waitFor(async () => {
    const progress = Number((await describeJob(api, jobId)).Progress);
    return progress > 5 && progress < 100 ? true : undefined;
  }, 30_000, 'progress from ffmpeg');
  const res = await api.request('PUT', `/jobs/${jobId}?cancel`);
  expect(res.status, res.text).to.equal(200);
  await waitForState(api, jobId, 'Cancel');
  await waitFor(async () => (ffmpegPidsOf(jobId).length === 0 ? true : undefined), 5_000, 'ffmpeg to be gone');
  expect(await api.service.storage.stat(BUCKET, outputKey)).to.equal(undefined);
}

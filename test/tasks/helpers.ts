import { expect } from 'chai';
import { httpRequest, type TestService } from '../helpers/service.js';

/** A task-API answer: the HTTP status and the parsed `{code, msg, data}` envelope. */
export interface TaskAnswer {
  readonly status: number;
  readonly code: number;
  readonly msg: string;
  readonly data: any;
}

/** POST /api.php?action=<action> with a JSON body (a string is sent as it is). */
export async function callTask(api: TestService, action: string, body: unknown, headers: Record<string, string> = {}): Promise<TaskAnswer> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const res = await httpRequest(`${api.baseUrl}/api.php?action=${encodeURIComponent(action)}`, 'POST', text, { 'content-type': 'application/json', ...headers });
  expect(res.headers.get('content-type') ?? '', `${action}: ${res.text}`).to.match(/^application\/json/);
  const parsed = JSON.parse(res.text) as { code: number; msg: string; data: unknown };
  expect(Object.keys(parsed), res.text).to.deep.equal(['code', 'msg', 'data']);
  return { status: res.status, ...parsed };
}

/** The same, expecting success (HTTP 200, code 1); returns data. */
export async function okTask(api: TestService, action: string, body: unknown): Promise<any> {
  const answer = await callTask(api, action, body);
  expect(answer, `${action} ${JSON.stringify(body)}`).to.include({ status: 200, code: 1 });
  return answer.data;
}

/** An admin-API request with the service's admin token. */
export async function admin(api: TestService, method: string, path: string, body?: unknown, token = api.service.adminToken): Promise<{ status: number; body: any }> {
  const res = await httpRequest(`${api.baseUrl}${path}`, method, body === undefined ? undefined : JSON.stringify(body), {
    authorization: `Bearer ${token}`,
    ...(body === undefined ? {} : { 'content-type': 'application/json' }),
  });
  return { status: res.status, body: res.text ? JSON.parse(res.text) : undefined };
}

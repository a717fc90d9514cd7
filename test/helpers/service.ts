import http from 'node:http';
import { XMLParser } from 'fast-xml-parser';
import { pino, type Logger } from 'pino';
import { loadConfig, type Config } from '../../src/config.js';
import { startService, type Service } from '../../src/main.js';
import { freshDatabase, type FreshDatabase } from './databases.js';
import type { Processor } from '../../src/processors/processor.js';

export interface TestResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The body parsed by a plain XML parser (not ours), values as strings. */
  readonly xml: Record<string, any>;
}

export interface TestService {
  readonly service: Service;
  readonly config: Config;
  readonly baseUrl: string;
  request(method: string, path: string, options?: { body?: string | Buffer; headers?: Record<string, string> }): Promise<TestResponse>;
  stop(): Promise<void>;
}

// A neutral parser, so a bug in our own codec cannot hide in both sides of an assertion.
const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, trimValues: false });

export function parseXml(text: string): Record<string, any> {
  return text.trim().startsWith('<') ? (parser.parse(text) as Record<string, any>) : {};
}

/**
 * A service on a fresh database, listening on a free loopback port. Workers
 * are off unless asked for, so API tests see jobs stay Submitted.
 */
export async function startTestService(options: { worker?: boolean; env?: Record<string, string>; processors?: ReadonlyMap<string, Processor>; database?: FreshDatabase; logger?: Logger } = {}): Promise<TestService> {
  const fresh = options.database ?? await freshDatabase();
  const config = loadConfig({
    MEDIAJOBS_PORT: '0',
    MEDIAJOBS_DATA_DIR: fresh.dataDir,
    ...(fresh.databaseUrl ? { DATABASE_URL: fresh.databaseUrl } : {}),
    MEDIAJOBS_LOG_LEVEL: 'silent',
    // The suites speak unsigned CI requests, on the test server as in the embedded mode; test/tasks/apps.test.ts covers the default.
    MEDIAJOBS_REQUIRE_AUTH: 'false',
    ...options.env,
  });
  const service = await startService(config, { api: true, worker: options.worker ?? false, processors: options.processors, logger: options.logger ?? pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }) });
  const baseUrl = `http://127.0.0.1:${service.port}`;
  return {
    service,
    config,
    baseUrl,
    async request(method, path, { body, headers } = {}) {
      return httpRequest(baseUrl + path, method, body, headers);
    },
    stop: () => service.stop(),
  };
}

/** A node:http response and its whole body, as tests read them. */
export function toTestResponse(res: http.IncomingMessage, body: Buffer): TestResponse {
  const text = body.toString('utf8');
  const headers = new Headers();
  for (const [name, value] of Object.entries(res.headers)) if (typeof value === 'string') headers.set(name, value);
  return { status: res.statusCode ?? 0, headers, text, xml: parseXml(text) };
}

/** node:http rather than fetch: fetch will not send a Host header of our choosing. */
export function httpRequest(url: string, method: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<TestResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(toTestResponse(res, Buffer.concat(chunks))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined>, timeoutMs = 20_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function asArray<T>(value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

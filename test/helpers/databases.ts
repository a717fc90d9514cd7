import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/store/database.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/store/embedded-postgres.js';
import { migrate } from '../../src/store/migrate.js';

/*
 * Fresh, migrated databases for tests, cheaply, always on real PostgreSQL: the
 * server DATABASE_URL names, or else an embedded server (the service's own
 * default, src/store/embedded-postgres.ts) that this module starts once per
 * run, on loopback, in a scratch directory. The schema is migrated once per run
 * into a template and each test that needs isolation gets a copy
 * (CREATE DATABASE … TEMPLATE, about 100 ms).
 */

const scratchRoot = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-test-'));
// As root the embedded server runs as `postgres`, which must be able to enter it (mkdtemp makes it 0700).
chmodSync(scratchRoot, 0o755);
const silent = pino({ level: 'silent' });

/** The suite's server when DATABASE_URL names one; otherwise see serverUrl(). */
export const SERVER_URL: string | undefined = process.env.DATABASE_URL || undefined;

let embedded: Promise<EmbeddedPostgres> | undefined;

/**
 * The server the suite runs on: DATABASE_URL, or else the harness's embedded
 * one, started on first use (fsync off, room for the process tests' workers).
 */
export async function serverUrl(): Promise<string> {
  if (SERVER_URL) return SERVER_URL;
  embedded ??= startEmbeddedPostgres({
    dir: path.join(scratchRoot, 'embedded', 'pg'),
    logger: silent,
    tcp: true,
    settings: { max_connections: '200', fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
  });
  return (await embedded).url;
}

const runId = `${process.pid}_${Date.now().toString(36)}`;
let templateReady: Promise<void> | undefined;
let counter = 0;
const created: string[] = [];

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function adminQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: await serverUrl() });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

const templateName = `mediajobs_tpl_${runId}`;

function prepareTemplate(): Promise<void> {
  templateReady ??= (async () => {
    await adminQuery(`CREATE DATABASE ${templateName}`);
    created.push(templateName);
    await migrateDatabase({ DATABASE_URL: withDatabase(await serverUrl(), templateName), MEDIAJOBS_DATA_DIR: scratchRoot });
  })();
  return templateReady;
}

/** Runs every migration on the database these settings name. */
async function migrateDatabase(env: Record<string, string>): Promise<void> {
  const db = await openDatabase(loadConfig(env), silent);
  try {
    await migrate(db.kysely);
  } finally {
    await db.close();
  }
}

/** A migrated database on a server of the caller's (a throwaway cluster), with a data directory of its own. */
export async function migratedDatabaseAt(databaseUrl: string): Promise<FreshDatabase> {
  const dataDir = path.join(scratchRoot, `data-${++counter}`);
  await migrateDatabase({ DATABASE_URL: databaseUrl, MEDIAJOBS_DATA_DIR: dataDir });
  return { databaseUrl, dataDir };
}

export interface FreshDatabase {
  /** Its DATABASE_URL. */
  readonly databaseUrl: string;
  /** A data dir of its own (objects under `buckets/`). */
  readonly dataDir: string;
}

/** A new, migrated, empty database and data directory. */
export async function freshDatabase(): Promise<FreshDatabase> {
  await prepareTemplate();
  const n = ++counter;
  const dataDir = path.join(scratchRoot, `data-${n}`);
  const name = `mediajobs_t_${runId}_${n}`;
  await adminQuery(`CREATE DATABASE ${name} TEMPLATE ${templateName}`);
  created.push(name);
  return { databaseUrl: withDatabase(await serverUrl(), name), dataDir };
}

/** Drops every database this run made, stops the embedded server and removes the scratch directory. */
export async function cleanupDatabases(): Promise<void> {
  if (embedded) {
    // A pool's connection dropped in a suite's last test may still be saying goodbye: a fast
    // shutdown would answer it with an error nobody listens to any more.
    await (await embedded.catch(() => undefined))?.close({ waitForClientsMs: 5000 });
  } else {
    for (const name of created.splice(0).reverse()) {
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
    }
  }
  rmSync(scratchRoot, { recursive: true, force: true });
}

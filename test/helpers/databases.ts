import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/store/database.js';
import { migrate } from '../../src/store/migrate.js';

/*
 * Fresh, migrated databases for tests, cheaply. The suite runs on the real
 * PostgreSQL server named by DATABASE_URL when it is set, on embedded PGlite
 * otherwise. Either way the schema is migrated once per run into a template
 * and each test that needs isolation gets a copy:
 * - PostgreSQL: CREATE DATABASE … TEMPLATE (about 100 ms);
 * - PGlite: a copy of the template's data directory (about 400 ms to open).
 */

export const SERVER_URL = process.env.DATABASE_URL;
export const DB_KIND: 'postgres' | 'pglite' = SERVER_URL ? 'postgres' : 'pglite';

const scratchRoot = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-test-'));
const runId = `${process.pid}_${Date.now().toString(36)}`;
let templateReady: Promise<void> | undefined;
let counter = 0;
const created: string[] = [];
const silent = pino({ level: 'silent' });

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function adminQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: SERVER_URL });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

const templateName = `mediajobs_tpl_${runId}`;
const templateDir = path.join(scratchRoot, 'template', 'pg');

function prepareTemplate(): Promise<void> {
  templateReady ??= (async () => {
    if (SERVER_URL) {
      await adminQuery(`CREATE DATABASE ${templateName}`);
      created.push(templateName);
      await migrateDatabase({ DATABASE_URL: withDatabase(SERVER_URL, templateName), MEDIAJOBS_DATA_DIR: scratchRoot });
    } else {
      await migrateDatabase({ MEDIAJOBS_DATA_DIR: path.dirname(templateDir) });
    }
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
  /** DATABASE_URL for PostgreSQL; unset for PGlite. */
  readonly databaseUrl: string | undefined;
  /** A data dir of its own (PGlite files under `pg/`, objects under `buckets/`). */
  readonly dataDir: string;
}

/** A new, migrated, empty database and data directory. */
export async function freshDatabase(): Promise<FreshDatabase> {
  await prepareTemplate();
  const n = ++counter;
  const dataDir = path.join(scratchRoot, `data-${n}`);
  if (SERVER_URL) {
    const name = `mediajobs_t_${runId}_${n}`;
    await adminQuery(`CREATE DATABASE ${name} TEMPLATE ${templateName}`);
    created.push(name);
    return { databaseUrl: withDatabase(SERVER_URL, name), dataDir };
  }
  cpSync(templateDir, path.join(dataDir, 'pg'), { recursive: true });
  return { databaseUrl: undefined, dataDir };
}

/** Drops every database this run made and removes the scratch directory. */
export async function cleanupDatabases(): Promise<void> {
  if (SERVER_URL) {
    for (const name of created.splice(0).reverse()) {
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
    }
  }
  rmSync(scratchRoot, { recursive: true, force: true });
}

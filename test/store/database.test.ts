import { expect } from 'chai';
import { sql } from 'kysely';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { isRetryableDbError } from '../../src/engine/db-retry.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import { DB_KIND, freshDatabase } from '../helpers/databases.js';

(DB_KIND === 'postgres' ? describe : describe.skip)('database connections (PostgreSQL)', () => {
  let db: Db;
  let databaseUrl: string;

  beforeEach(async () => {
    const fresh = await freshDatabase();
    databaseUrl = fresh.databaseUrl!;
    db = await openDatabase(loadConfig({ DATABASE_URL: databaseUrl, MEDIAJOBS_DATA_DIR: fresh.dataDir }), pino({ level: 'silent' }));
  });

  afterEach(async () => {
    await db.close();
  });

  it('survives the server ending a connection between two queries of a transaction: the next query fails retryably, the process goes on', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => { uncaught.push(err); };
    // Mocha's own handler would fail the test anyway; this one says why.
    process.prependListener('uncaughtException', onUncaught);
    let failure: unknown;
    try {
      await db.kysely.transaction().execute(async (tx) => {
        const { rows } = await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(tx);
        const admin = new pg.Client({ connectionString: databaseUrl });
        await admin.connect();
        await admin.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
        await admin.end();
        // The server's goodbye arrives while this transaction's client runs no query.
        await new Promise((resolve) => setTimeout(resolve, 300));
        await sql`SELECT 1`.execute(tx);
      });
    } catch (err) {
      failure = err;
    } finally {
      process.removeListener('uncaughtException', onUncaught);
    }
    expect(uncaught, 'uncaught errors').to.deep.equal([]);
    expect(isRetryableDbError(failure), String(failure)).to.equal(true);
    // The dead client was dropped from the pool: the next statement gets a new connection.
    const { rows } = await sql<{ one: number }>`SELECT 1 AS one`.execute(db.kysely);
    expect(rows[0].one).to.equal(1);
  });
});

import net from 'node:net';
import { expect } from 'chai';
import { sql } from 'kysely';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { isRetryableDbError } from '../../src/engine/db-retry.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import { freshDatabase } from '../helpers/databases.js';

describe('database connections', () => {
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

  it('gives up on a statement a vanished server never answers, drops that connection, and the next statement gets a new one', async () => {
    // A proxy whose open connections can be made to swallow everything, as when the server's host
    // disappears without a reset; connections made afterwards pass.
    const target = new URL(databaseUrl);
    const clients = new Set<net.Socket>();
    const swallowing = new Set<net.Socket>();
    const proxy = net.createServer((client) => {
      const server = net.connect(Number(target.port || 5432), target.hostname);
      for (const socket of [client, server]) socket.on('error', () => undefined);
      client.on('data', (chunk) => { if (!swallowing.has(client)) server.write(chunk); });
      server.on('data', (chunk) => { if (!swallowing.has(client)) client.write(chunk); });
      client.on('close', () => { server.destroy(); clients.delete(client); });
      server.on('close', () => { if (!swallowing.has(client)) client.destroy(); });
      clients.add(client);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const viaProxy = new URL(databaseUrl);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String((proxy.address() as net.AddressInfo).port);
    const proxied = await openDatabase(loadConfig({ DATABASE_URL: viaProxy.toString(), MEDIAJOBS_DATA_DIR: '/nonexistent', MEDIAJOBS_DB_QUERY_TIMEOUT: '500ms' }), pino({ level: 'silent' }));
    try {
      await sql`SELECT 1`.execute(proxied.kysely);
      for (const client of clients) swallowing.add(client);
      const started = Date.now();
      const err = await sql`SELECT 1`.execute(proxied.kysely).then(() => undefined, (e: unknown) => e);
      expect(isRetryableDbError(err), String(err)).to.equal(true);
      expect(Date.now() - started).to.be.within(400, 3000);
      // Only the connections open before the black hole swallow; a new one works.
      const again = Date.now();
      const { rows } = await sql<{ one: number }>`SELECT 1 AS one`.execute(proxied.kysely);
      expect(rows[0].one).to.equal(1);
      expect(Date.now() - again, 'a new connection, not the one stuck behind the lost answer').to.be.below(400);
    } finally {
      await Promise.race([proxied.close(), new Promise((resolve) => setTimeout(resolve, 1000))]);
      proxy.close();
      for (const socket of clients) socket.destroy();
    }
  });
});

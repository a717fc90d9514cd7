import { expect } from 'chai';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { preparingPool } from '../../src/store/prepared-statements.js';
import { freshDatabase } from '../helpers/databases.js';

interface Scratch {
  items: { id: number; label: string };
}

/** The statements this session has prepared, as pg_prepared_statements shows them. */
async function preparedTexts(db: Kysely<Scratch>): Promise<string[]> {
  const { rows } = await sql<{ statement: string }>`SELECT statement FROM pg_prepared_statements ORDER BY prepare_time`.execute(db);
  return rows.map((r) => r.statement);
}

const byId = (db: Kysely<Scratch>, id: number) => db.selectFrom('items').selectAll().where('id', '=', id).execute();

describe('prepared statements', () => {
  let pool: pg.Pool;
  let db: Kysely<Scratch>;

  beforeEach(async () => {
    const { databaseUrl } = await freshDatabase();
    // One connection, so every statement below runs on the session whose prepared statements we read.
    pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
    db = new Kysely<Scratch>({ dialect: new PostgresDialect({ pool: preparingPool(pool, { preparedOnRun: 3, maxPerConnection: 2 }) }) });
    await sql`CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL)`.execute(db);
    await db.insertInto('items').values([{ id: 1, label: 'one' }, { id: 2, label: 'two' }]).execute();
  });

  afterEach(async () => {
    await db.destroy();
  });

  it('prepares a statement on its third run on a connection, and answers the same', async () => {
    expect(await byId(db, 1)).to.deep.equal([{ id: 1, label: 'one' }]);
    expect(await byId(db, 2)).to.deep.equal([{ id: 2, label: 'two' }]);
    expect(await preparedTexts(db)).to.deep.equal([]);
    expect(await byId(db, 1)).to.deep.equal([{ id: 1, label: 'one' }]);
    expect(await preparedTexts(db)).to.deep.equal(['select * from "items" where "id" = $1']);
    expect(await byId(db, 3)).to.deep.equal([]);
  });

  it('prepares at most maxPerConnection texts; the others still run', async () => {
    const texts = [
      () => db.selectFrom('items').select('id').where('id', '=', 1).execute(),
      () => db.selectFrom('items').select('label').where('id', '=', 1).execute(),
      () => db.selectFrom('items').select(['id', 'label']).where('id', '=', 1).execute(),
    ];
    for (let run = 0; run < 3; run++) for (const query of texts) await query();
    expect(await preparedTexts(db)).to.have.length(2);
    expect(await texts[2]()).to.deep.equal([{ id: 1, label: 'one' }]);
  });

  it('leaves statements without parameters unprepared', async () => {
    for (let run = 0; run < 4; run++) await sql`SELECT count(*) FROM items`.execute(db);
    expect(await preparedTexts(db)).to.deep.equal([]);
  });

  it('survives a prepared statement whose result columns changed under it: runs it unprepared and drops the connection', async () => {
    for (let run = 0; run < 3; run++) await byId(db, 1);
    const before = await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(db);
    await sql`ALTER TABLE items ADD COLUMN note text`.execute(db);
    expect(await byId(db, 1)).to.deep.equal([{ id: 1, label: 'one', note: null }]);
    const after = await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(db);
    expect(after.rows[0].pid).to.not.equal(before.rows[0].pid);
  });

  it('inside a transaction, the stale statement fails the transaction instead of retrying in an aborted one', async () => {
    for (let run = 0; run < 3; run++) await byId(db, 1);
    await sql`ALTER TABLE items ADD COLUMN note text`.execute(db);
    const failed = await db.transaction().execute((tx) => byId(tx as unknown as Kysely<Scratch>, 1)).then(() => undefined, (err: Error) => err);
    expect(failed?.message).to.match(/cached plan must not change result type/);
    expect(await byId(db, 2)).to.deep.equal([{ id: 2, label: 'two', note: null }]);
  });
});

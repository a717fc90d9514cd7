import type { PGlite } from '@electric-sql/pglite';
import type { PostgresPool, PostgresPoolClient } from 'kysely';

/**
 * Presents an embedded PGlite database as the `pg.Pool` that Kysely's
 * PostgresDialect expects, so the same queries and migrations run on both.
 *
 * PGlite has exactly one session. A Kysely transaction holds its "connection"
 * from BEGIN to COMMIT, so connections are handed out one at a time: a second
 * `connect()` waits until the first is released, which keeps transactions
 * from interleaving on the shared session.
 */
export function pglitePool(db: PGlite): PostgresPool {
  let tail: Promise<void> = Promise.resolve();

  const client = (release: () => void): PostgresPoolClient => ({
    async query(sql: string, parameters: ReadonlyArray<unknown>) {
      // Without parameters, `exec` runs multi-statement scripts (migrations), as pg's simple protocol does.
      const result = parameters.length === 0
        ? (await db.exec(sql)).at(-1) ?? { rows: [], affectedRows: 0 }
        : await db.query<Record<string, unknown>>(sql, parameters as unknown[]);
      const command = /^\s*(\w+)/.exec(sql)?.[1]?.toUpperCase() ?? 'SELECT';
      return { command, rowCount: result.affectedRows ?? result.rows.length, rows: result.rows };
    },
    release,
  } as unknown as PostgresPoolClient);

  return {
    async connect() {
      let release!: () => void;
      const turn = new Promise<void>((resolve) => { release = resolve; });
      const previous = tail;
      tail = previous.then(() => turn);
      await previous;
      return client(release);
    },
    async end() {
      await tail;
    },
  };
}

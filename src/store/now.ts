import { sql } from 'kysely';

/**
 * The database's `now()` as a value for `set()`/`values()`: timestamps written
 * by the database clock, so every process agrees on them. Typed as a Date
 * because that is what the column reads back as.
 */
export const DB_NOW = sql<Date>`now()` as unknown as Date;

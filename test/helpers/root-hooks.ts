import { cleanupDatabases } from './databases.js';

/** Mocha root hooks: runs once around the whole suite. */
export const mochaHooks = {
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await cleanupDatabases();
  },
};

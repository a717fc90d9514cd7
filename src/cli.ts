#!/usr/bin/env node
import { appsCommand, writeAdminTokenFile } from './apps-cli.js';
import { ConfigError, loadConfig } from './config.js';
import { createLogger, startService, type Service } from './main.js';

/**
 * `mediajobs serve` (API, plus an in-process worker unless MEDIAJOBS_WORKERS=0),
 * `mediajobs worker` (worker only), `mediajobs migrate`, and
 * `mediajobs apps create|list|rotate|disable` (a client of a running server's admin API).
 */
async function main(command: string): Promise<void> {
  const config = loadConfig();
  if (command === 'apps') {
    process.exitCode = await appsCommand(config, process.argv.slice(3));
    return;
  }
  const logger = createLogger(config);
  const modes: Record<string, { api: boolean; worker: boolean }> = {
    serve: { api: true, worker: config.workers > 0 },
    worker: { api: false, worker: true },
    migrate: { api: false, worker: false },
  };
  const mode = modes[command];
  if (!mode) throw new Error(`unknown command "${command}"; use serve, worker, migrate or apps`);
  const service = await startService(config, { ...mode, logger });
  if (command === 'migrate') {
    await service.stop();
    return;
  }
  if (mode.api) {
    const base = `http://${config.host}:${service.port}`;
    process.stdout.write([
      `mediajobs listening on ${base} (database: ${describeDatabase(service)}, objects: ${config.dataDir}/buckets)`,
      `  default bucket ${config.defaultBucket}, region ${config.region}`,
      `  SecretId  ${service.app.secretId}`,
      `  SecretKey ${service.app.secretKey}`,
      `  app_key   ${service.app.appKey}`,
      `  admin token ${service.adminToken}`,
      // Local mode only: the URL carries the admin token (in the fragment, which no request sends).
      ...(config.databaseUrl === undefined ? [`  console   ${base}/console/#token=${encodeURIComponent(service.adminToken)}`] : [`  console   ${base}/console/ (log in with the admin token)`]),
      `  callbacks are signed (X-Mediajobs-Signature) with ${config.callbacks.signingSecret ? 'MEDIAJOBS_CALLBACK_SECRET' : service.callbackSecret}`,
      `  try: curl -s -X POST -H 'Content-Type: application/xml' --data-binary @fixtures/xml/create-mediainfo.xml ${base}/jobs`,
      '',
    ].join('\n'));
  }
  if (mode.api) await writeAdminTokenFile(config, service.adminToken).catch((err: Error) => logger.warn({ err: err.message }, 'could not write the admin token file for `mediajobs apps`'));
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    service.stop().then(() => process.exit(0), (err: unknown) => {
      logger.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

/** Where the data lives, for the banner: the embedded server says whether this process runs it. */
function describeDatabase({ config, db }: Service): string {
  if (!db.embedded) return 'PostgreSQL at DATABASE_URL';
  const how = db.embedded.role === 'owner' ? 'started by this process, stops with it' : 'joined, another process runs it';
  return `embedded PostgreSQL in ${config.dataDir}/pg, ${how}`;
}

main(process.argv[2] ?? 'serve').catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`mediajobs: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`mediajobs: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

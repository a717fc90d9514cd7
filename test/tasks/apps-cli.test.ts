import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { appsCommand } from '../../src/apps-cli.js';
import { loadConfig } from '../../src/config.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { callTask } from './helpers.js';

describe('mediajobs apps (CLI over the admin API)', function () {
  this.timeout(60_000);
  let api: TestService;
  before(async () => { api = await startTestService(); });
  after(() => api.stop());

  async function run(args: string[], env: Record<string, string> = {}): Promise<string> {
    let printed = '';
    const status = await appsCommand(loadConfig({ MEDIAJOBS_PORT: String(new URL(api.baseUrl).port), ...env }), args, (text) => { printed += text; });
    expect(status).to.equal(0);
    return printed;
  }

  it('creates, lists, rotates and disables apps', async () => {
    const token = api.service.adminToken;
    const created = JSON.parse(await run(['create', 'cli app', '--token', token]));
    expect(created).to.include({ name: 'cli app' });
    expect(created.app_key).to.be.a('string');
    const listed = await run(['list', '--url', api.baseUrl, '--token', token]);
    expect(listed.split('\n')[0]).to.equal('APP_ID\tAPPID\tBUCKET\tSECRET_ID\tSTATE\tCREATED_AT\tNAME');
    expect(listed).to.contain(`${created.app_id}\t${created.appid}\t${created.bucket}\t${created.secret_id}\tenabled`);
    const rotated = JSON.parse(await run(['rotate', created.app_id], { MEDIAJOBS_ADMIN_TOKEN: token }));
    expect(rotated.app_key).to.not.equal(created.app_key);
    expect(await callTask(api, 'list_tasks', { app_key: created.app_key })).to.include({ status: 401 });
    expect(JSON.parse(await run(['disable', created.app_id, '--token', token])).disabled).to.equal(true);
    expect(await callTask(api, 'list_tasks', { app_key: rotated.app_key })).to.include({ status: 401 });
  });

  it('reads the token from the file serve leaves in the data dir', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mediajobs-cli-'));
    writeFileSync(path.join(dataDir, 'admin-token'), `${api.service.adminToken}\n`);
    expect(await run(['list'], { MEDIAJOBS_DATA_DIR: dataDir })).to.contain(api.service.app.appId);
  });

  it('says what is wrong: a bad token, no server, a bad command', async () => {
    const config = loadConfig({ MEDIAJOBS_PORT: String(new URL(api.baseUrl).port) });
    await expectError(appsCommand(config, ['list', '--token', 'wrong'], () => undefined), /401 the admin token is wrong/);
    await expectError(appsCommand(config, ['list', '--token', 'x', '--url', 'http://127.0.0.1:1'], () => undefined), /cannot reach http:\/\/127.0.0.1:1/);
    await expectError(appsCommand(config, ['frobnicate', '--token', 'x'], () => undefined), /usage: mediajobs apps/);
    await expectError(appsCommand(loadConfig({ MEDIAJOBS_DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'mediajobs-cli-')) }), ['list'], () => undefined), /no admin token/);
  });

  it('runs as `mediajobs apps list` from the command line', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'apps', 'list', '--url', api.baseUrl, '--token', api.service.adminToken], {
      env: { ...process.env, MEDIAJOBS_LOG_LEVEL: 'silent' },
    });
    expect(stdout).to.contain(api.service.app.appId);
  });
});

async function expectError(promise: Promise<unknown>, message: RegExp): Promise<void> {
  const err = await promise.then(() => undefined, (e: Error) => e);
  expect(err, 'expected a failure').to.be.instanceOf(Error);
  expect(err!.message).to.match(message);
}

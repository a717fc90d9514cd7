import { spawn } from 'node:child_process';
import { expect } from 'chai';
import { freshDatabase } from '../helpers/databases.js';

/** Runs memory-corpus.ts in a fresh process and returns what it printed. */
function runCorpus(env: Record<string, string>): Promise<{ tuning: string; idleMB: number; peakMB: number; afterMB: number; outcomes: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--expose-gc', 'test/images/memory-corpus.ts'], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { out += chunk.toString(); });
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (code !== 0 || !line) reject(new Error(`memory-corpus exited ${code}: ${out}`));
      else resolve(JSON.parse(line));
    });
  });
}

describe('memory after a hostile PicProcess corpus', function () {
  this.timeout(180_000);

  it('refuses the issue\'s rules at submit, runs the heaviest admitted ones, and the service\'s RSS comes back within 100 MB of idle', async () => {
    const { databaseUrl, dataDir } = await freshDatabase();
    const report = await runCorpus({ DATABASE_URL: databaseUrl, MEDIAJOBS_DATA_DIR: dataDir });
    if (process.env.MEMORY_REPORT) console.log(JSON.stringify(report));
    expect(report.tuning, 'build/malloc-tune.node is built (make install)').to.equal('tuned');
    expect(report.outcomes.slice(0, 3)).to.deep.equal(['400 InvalidArgument', '400 InvalidArgument', '400 InvalidArgument']);
    expect(report.outcomes.slice(3).filter((o) => o === 'Success').length, report.outcomes.join(', ')).to.be.at.least(3);
    expect(report.afterMB - report.idleMB, JSON.stringify(report)).to.be.below(100);
  });
});

import { expect } from 'chai';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { startTestService } from '../helpers/service.js';

describe('the request log', () => {
  it('logs a request that fails inside the service with its request id and operation, and logs nothing for those that succeed', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({ write(chunk: Buffer, _encoding, done) { lines.push(JSON.parse(chunk.toString())); done(); } });
    const api = await startTestService({ logger: pino({ level: 'info' }, sink) });
    try {
      const ok = await api.request('GET', '/jobs?queueId=p' + '0'.repeat(32));
      expect(ok.status, ok.text).to.equal(200);
      const requestLines = () => lines.filter((line) => line.requestId !== undefined);
      expect(requestLines()).to.deep.equal([]);

      await api.service.db.close(); // every statement now fails inside the service
      const failed = await api.request('GET', '/jobs?queueId=p' + '0'.repeat(32));
      expect(failed.status).to.be.at.least(500);
      expect(failed.text).to.not.match(/at .*\.ts:\d+/);
      const requestId = failed.headers.get('x-ci-request-id');
      expect(requestLines().map((line) => [line.requestId, line.operation, line.msg])).to.deep.equal([[requestId, 'DescribeMediaJobs', 'request failed']]);
    } finally {
      await api.stop().catch(() => undefined);
    }
  });
});

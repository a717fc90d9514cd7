import { expect } from 'chai';
import net from 'node:net';
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

  it('takes a client that hangs up in the middle of its body for the client\'s fault: nothing logged as an error', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({ write(chunk: Buffer, _encoding, done) { lines.push(JSON.parse(chunk.toString())); done(); } });
    const api = await startTestService({ logger: pino({ level: 'info' }, sink) });
    try {
      const socket = net.connect(api.service.port!, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write('POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n<Request>');
      await new Promise((resolve) => setTimeout(resolve, 200));
      socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(lines.filter((line) => Number(line.level) >= 50)).to.deep.equal([]);
      expect((await api.request('GET', '/jobs')).status, 'still serving').to.equal(200);
    } finally {
      await api.stop();
    }
  });
});

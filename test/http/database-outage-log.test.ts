import { expect } from 'chai';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { migratedDatabaseAt } from '../helpers/databases.js';
import { startTestService, waitFor, type TestService } from '../helpers/service.js';
import { POSTGRES_BIN_DIR, startThrowawayCluster, type ThrowawayCluster } from '../helpers/throwaway-cluster.js';

/*
 * What the API logs while PostgreSQL is down: one warning when the outage
 * starts, one when it ends with the number of requests answered 503 — not
 * an error with a stack per request. The server is a throwaway cluster this
 * test made, never the one the suite runs on.
 */

type LogLine = Record<string, any>;

const START = /^database unreachable/;
const END = /^database reachable again/;
const describeOutage = POSTGRES_BIN_DIR !== undefined ? describe : describe.skip;

describeOutage('the log of a database outage', function () {
  this.timeout(60_000);
  let cluster: ThrowawayCluster;
  let api: TestService;
  const lines: LogLine[] = [];

  before(async () => {
    cluster = await startThrowawayCluster(POSTGRES_BIN_DIR!);
    const database = await migratedDatabaseAt(await cluster.createDatabase());
    const sink = new Writable({ write(chunk: Buffer, _encoding, done) { lines.push(JSON.parse(chunk.toString())); done(); } });
    api = await startTestService({ database, logger: pino({ level: 'info' }, sink) });
  });

  // A failed test may leave the server stopped.
  afterEach(async () => { await cluster.start().catch(() => undefined); });

  after(async () => {
    await api?.stop();
    await cluster?.destroy();
  });

  const outageLines = () => lines.filter((line) => START.test(line.msg) || END.test(line.msg));

  async function refusedRequests(count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const res = i % 2 === 0
        ? await api.request('GET', '/jobs')
        : await api.request('POST', '/jobs', { body: '<Request><Tag>MediaInfo</Tag><Input><Object>in/a.mp4</Object></Input></Request>' });
      expect(res.status, res.text).to.equal(503);
      expect(res.xml.Error.Code).to.equal('ServiceUnavailable');
    }
  }

  it('logs one warning when the outage starts and one when it ends, with the count of requests answered 503', async () => {
    expect((await api.request('GET', '/jobs')).status).to.equal(200);
    const before = lines.length;

    await cluster.stop();
    await refusedRequests(20);
    const during = lines.slice(before);
    expect(during.filter((line) => line.requestId !== undefined).map((line) => `${line.level} ${line.msg}`), 'per-request lines').to.deep.equal([]);
    expect(during.filter((line) => Number(line.level) >= 50).map((line) => `${line.level} ${line.msg}`), 'errors').to.deep.equal([]);
    expect(JSON.stringify(during), 'a stack in the log').not.to.match(/\\n\s+at /);
    const [start, ...rest] = outageLines();
    expect(rest).to.deep.equal([]);
    expect(start).to.include({ level: 40 });
    expect(start.err, 'the error').to.be.a('string').and.not.empty;

    await cluster.start();
    const end = await waitFor(async () => outageLines().find((line) => END.test(line.msg)), 10_000, 'the end of the outage to be logged');
    expect(end).to.include({ level: 40, refusedRequests: 20 });
    expect(end.msg).to.include('20 request(s)');
    expect(end.downMs).to.be.a('number').and.at.least(0);

    expect((await api.request('GET', '/jobs')).status, 'serving again').to.equal(200);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(outageLines()).to.have.length(2);
  });

  it('logs the next outage again, counted from zero', async () => {
    lines.length = 0;
    await cluster.stop();
    await refusedRequests(3);
    await cluster.start();
    const end = await waitFor(async () => outageLines().find((line) => END.test(line.msg)), 10_000, 'the end of the outage to be logged');
    expect(outageLines().map((line) => START.test(line.msg) ? 'start' : 'end')).to.deep.equal(['start', 'end']);
    expect(end.refusedRequests).to.equal(3);
  });
});

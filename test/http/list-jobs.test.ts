import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { asArray, startTestService, waitFor, type TestResponse, type TestService } from '../helpers/service.js';

/*
 * DescribeMediaJobs (`GET /jobs`, shared/ci-api.md §1.4). Each test works in a
 * bucket of its own (chosen by the Host header), so the listings never see
 * each other's jobs even though they share one service.
 */

const T0 = Date.parse('2022-06-27T15:23:10+08:00');
const MINUTE = 60_000;

function hostOf(name: string): string {
  return `${name}-1250000000.ci.ap-guangzhou.myqcloud.com`;
}

function mediaInfoBody(object: string, queueId?: string): string {
  return `<Request><Tag>MediaInfo</Tag><Input><Object>${object}</Object></Input><Operation><JobLevel>0</JobLevel></Operation>${queueId ? `<QueueId>${queueId}</QueueId>` : ''}</Request>`;
}

function picBody(object: string, queueId?: string): string {
  return `<Request><Tag>PicProcess</Tag><Input><Object>${object}</Object></Input><Operation><PicProcess><ProcessRule>imageMogr2/rotate/90</ProcessRule></PicProcess><Output><Region>ap-guangzhou</Region><Bucket>out-1250000000</Bucket><Object>out/x.jpg</Object></Output></Operation>${queueId ? `<QueueId>${queueId}</QueueId>` : ''}</Request>`;
}

/** An `/jobs?…` path with each value percent-encoded. */
function listPath(query: Record<string, string | number>): string {
  const qs = Object.entries(query).map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`).join('&');
  return qs ? `/jobs?${qs}` : '/jobs';
}

function jobIds(res: TestResponse): string[] {
  expect(res.status, res.text).to.equal(200);
  return asArray(res.xml.Response.JobsDetail).map((d: any) => d.JobId as string);
}

describe('GET /jobs (DescribeMediaJobs)', () => {
  let api: TestService;
  before(async () => { api = await startTestService(); });
  after(async () => { await api.stop(); });

  async function create(host: string, body: string): Promise<{ jobId: string; queueId: string; state: string }> {
    const res = await api.request('POST', '/jobs', { body, headers: { host } });
    expect(res.status, res.text).to.equal(200);
    const detail = res.xml.Response.JobsDetail;
    return { jobId: detail.JobId, queueId: detail.QueueId, state: detail.State };
  }

  /** Creates `count` MediaInfo jobs, six per multi-Operation request; returns their ids in creation order. */
  async function createMany(host: string, count: number, object = 'in/many.mp4'): Promise<string[]> {
    const ids: string[] = [];
    while (ids.length < count) {
      const n = Math.min(6, count - ids.length);
      const body = `<Request><Input><Object>${object}</Object></Input>${'<Operation><Tag>MediaInfo</Tag></Operation>'.repeat(n)}</Request>`;
      const res = await api.request('POST', '/jobs', { body, headers: { host } });
      expect(res.status, res.text).to.equal(200);
      ids.push(...asArray(res.xml.Response.JobsDetail).map((d: any) => d.JobId as string));
    }
    return ids;
  }

  function list(host: string, query: Record<string, string | number> = {}): Promise<TestResponse> {
    return api.request('GET', listPath(query), { headers: { host } });
  }

  async function expectInvalid(host: string, query: Record<string, string | number>, message: RegExp): Promise<void> {
    const res = await list(host, query);
    expect(res.status, `${JSON.stringify(query)}: ${res.text.slice(0, 200)}`).to.equal(400);
    expect(res.xml.Error.Code).to.equal('InvalidArgument');
    expect(res.xml.Error.Message).to.match(message);
  }

  describe('filters', () => {
    const host = hostOf('filters');
    // j[0..5]: tag, input, queue, state; created_at is set to T0 + i minutes.
    const j: string[] = [];
    let queueA = '';
    const queueB = 'p' + randomBytes(16).toString('hex');

    before(async () => {
      const db = api.service.db.kysely;
      queueA = (await api.request('GET', '/queue', { headers: { host } })).xml.Response.QueueList.QueueId;
      await db.insertInto('queues').values({ queue_id: queueB, bucket: 'filters-1250000000', name: 'second' }).execute();
      j.push((await create(host, mediaInfoBody('in/a.mp4', queueA))).jobId); // j0 Submitted
      j.push((await create(host, picBody('in/b.jpg'))).jobId); // j1 → Cancel
      j.push((await create(host, mediaInfoBody('in/a.mp4', queueB))).jobId); // j2 → Success
      j.push((await create(host, picBody('in/c.jpg', queueB))).jobId); // j3 → Failed
      j.push((await create(host, mediaInfoBody('in/a.mp4'))).jobId); // j4 → Pause
      j.push((await create(host, mediaInfoBody('in/d.mp4', queueB))).jobId); // j5 Submitted
      expect((await api.request('PUT', `/jobs/${j[1]}?cancel`, { headers: { host } })).status).to.equal(200);
      await db.updateTable('jobs').set({ state: 'Success', ended_at: new Date() }).where('job_id', '=', j[2]).execute();
      await db.updateTable('jobs').set({ state: 'Failed', code: 'InternalError', message: 'x', ended_at: new Date() }).where('job_id', '=', j[3]).execute();
      await db.updateTable('jobs').set({ state: 'Pause' }).where('job_id', '=', j[4]).execute();
      for (const [i, id] of j.entries()) {
        await db.updateTable('jobs').set({ created_at: new Date(T0 + i * MINUTE) }).where('job_id', '=', id).execute();
      }
    });

    it('lists every job of the bucket newest first by default, and no job of another bucket', async () => {
      await create(hostOf('elsewhere'), mediaInfoBody('in/a.mp4'));
      const res = await list(host);
      expect(jobIds(res)).to.deep.equal([...j].reverse());
      expect(res.xml.Response.NextToken).to.equal('');
    });

    it('filters by tag', async () => {
      expect(jobIds(await list(host, { tag: 'MediaInfo' }))).to.deep.equal([j[5], j[4], j[2], j[0]]);
      expect(jobIds(await list(host, { tag: 'PicProcess' }))).to.deep.equal([j[3], j[1]]);
      expect(jobIds(await list(host, { tag: 'Transcode' }))).to.deep.equal([]);
      expect(jobIds(await list(host, { tag: 'mediainfo' }))).to.deep.equal([]);
      expect(jobIds(await list(host, { tag: '' }))).to.have.length(6);
    });

    it('filters by queueId', async () => {
      expect(jobIds(await list(host, { queueId: queueA }))).to.deep.equal([j[4], j[1], j[0]]);
      expect(jobIds(await list(host, { queueId: queueB }))).to.deep.equal([j[5], j[3], j[2]]);
      expect(jobIds(await list(host, { queueId: 'p' + '0'.repeat(32) }))).to.deep.equal([]);
      await expectInvalid(host, { queueId: 'not-a-queue' }, /^queueId not-a-queue is not a queue id\.$/);
    });

    it('filters by states, one state or a comma list', async () => {
      expect(jobIds(await list(host, { states: 'Submitted' }))).to.deep.equal([j[5], j[0]]);
      expect(jobIds(await list(host, { states: 'Cancel' }))).to.deep.equal([j[1]]);
      expect(jobIds(await list(host, { states: 'Pause' }))).to.deep.equal([j[4]]);
      expect(jobIds(await list(host, { states: 'Running' }))).to.deep.equal([]);
      expect(jobIds(await list(host, { states: 'Submitted,Cancel' }))).to.deep.equal([j[5], j[1], j[0]]);
      expect(jobIds(await list(host, { states: 'Success,Failed' }))).to.deep.equal([j[3], j[2]]);
      expect(jobIds(await list(host, { states: 'Failed, Pause' }))).to.deep.equal([j[4], j[3]]);
    });

    it('treats All (alone or in a list) and an empty states as every state', async () => {
      for (const states of ['All', 'All,Submitted', 'Cancel,All', '']) {
        expect(jobIds(await list(host, { states })), states).to.deep.equal([...j].reverse());
      }
    });

    it('refuses unknown states, case-sensitively', async () => {
      for (const states of ['Done', 'submitted', 'Submitted,Bogus', 'ALL']) {
        await expectInvalid(host, { states }, /^states value \S+ is not one of All, Submitted, Running, Success, Failed, Pause, Cancel\.$/);
      }
    });

    it('combines filters', async () => {
      expect(jobIds(await list(host, { tag: 'MediaInfo', queueId: queueB, states: 'Success' }))).to.deep.equal([j[2]]);
      expect(jobIds(await list(host, { tag: 'MediaInfo', queueId: queueA, states: 'Submitted,Pause', inputObject: 'in/a.mp4' }))).to.deep.equal([j[4], j[0]]);
    });

    it('orders by creation with orderByTime Asc or Desc, and refuses other values', async () => {
      expect(jobIds(await list(host, { orderByTime: 'Asc' }))).to.deep.equal(j);
      expect(jobIds(await list(host, { orderByTime: 'Desc' }))).to.deep.equal([...j].reverse());
      expect(jobIds(await list(host, { orderByTime: '' }))).to.deep.equal([...j].reverse());
      for (const orderByTime of ['asc', 'DESC', 'Random']) {
        await expectInvalid(host, { orderByTime }, /^orderByTime must be Desc or Asc\.$/);
      }
    });

    it('filters by exact inputObject', async () => {
      expect(jobIds(await list(host, { inputObject: 'in/a.mp4' }))).to.deep.equal([j[4], j[2], j[0]]);
      expect(jobIds(await list(host, { inputObject: 'in/c.jpg' }))).to.deep.equal([j[3]]);
      expect(jobIds(await list(host, { inputObject: 'in/A.mp4' }))).to.deep.equal([]);
      expect(jobIds(await list(host, { inputObject: 'in/a' }))).to.deep.equal([]);
    });

    it('matches an inputObject with spaces, plus signs and non-ASCII characters', async () => {
      const otherHost = hostOf('inputs');
      const key = 'in/a b+c 数据.mp4';
      const id = (await create(otherHost, mediaInfoBody(key))).jobId;
      await create(otherHost, mediaInfoBody('in/a b c 数据.mp4'));
      expect(jobIds(await list(otherHost, { inputObject: key }))).to.deep.equal([id]);
    });

    it('bounds CreationTime inclusively at both ends', async () => {
      const at = (minutes: number, seconds = 0) => new Date(T0 + minutes * MINUTE + seconds * 1000);
      const ci = (d: Date) => fmt(d, '+0800');
      expect(jobIds(await list(host, { startCreationTime: ci(at(2)), orderByTime: 'Asc' }))).to.deep.equal(j.slice(2));
      expect(jobIds(await list(host, { startCreationTime: ci(at(2, 1)), orderByTime: 'Asc' }))).to.deep.equal(j.slice(3));
      expect(jobIds(await list(host, { endCreationTime: ci(at(2)), orderByTime: 'Asc' }))).to.deep.equal(j.slice(0, 3));
      expect(jobIds(await list(host, { endCreationTime: ci(at(1, 59)), orderByTime: 'Asc' }))).to.deep.equal(j.slice(0, 2));
      expect(jobIds(await list(host, { startCreationTime: ci(at(2)), endCreationTime: ci(at(2)) }))).to.deep.equal([j[2]]);
      expect(jobIds(await list(host, { startCreationTime: ci(at(1)), endCreationTime: ci(at(3)) }))).to.deep.equal([j[3], j[2], j[1]]);
      expect(jobIds(await list(host, { startCreationTime: ci(at(4)), endCreationTime: ci(at(1)) }))).to.deep.equal([]);
      expect(jobIds(await list(host, { startCreationTime: '2001-01-01T00:00:00+0800' }))).to.have.length(6);
      expect(jobIds(await list(host, { endCreationTime: '2001-01-01T00:00:00+0800' }))).to.deep.equal([]);
    });

    it('reads the same instant in any offset, and an unencoded + (a space once decoded)', async () => {
      const instant = new Date(T0 + 2 * MINUTE);
      for (const text of [fmt(instant, '+0800'), fmt(instant, '+0000'), fmt(instant, '-0530'), '2022-06-27T07:25:10Z', '2022-06-27T15:25:10+08:00']) {
        expect(jobIds(await list(host, { startCreationTime: text, endCreationTime: text })), text).to.deep.equal([j[2]]);
      }
      const raw = await api.request('GET', '/jobs?startCreationTime=2022-06-27T15:25:10+0800&endCreationTime=2022-06-27T15:25:10+0800', { headers: { host } });
      expect(jobIds(raw)).to.deep.equal([j[2]]);
    });

    it('refuses a malformed startCreationTime or endCreationTime', async () => {
      const malformed = [
        '2022-06-27',
        '2022-06-27T15:23:10',
        '2022-06-27 15:23:10+0800',
        '27/06/2022 15:23:10',
        'yesterday',
        '1656314590',
        '2022-13-01T00:00:00+0800',
        '2022-06-27T25:00:00+0800',
        '2022-06-27T15:60:00+0800',
        '2022-04-31T00:00:00+0800',
        '2022-02-29T00:00:00+0800',
        '2022-06-27T15:23:10+08',
      ];
      for (const value of malformed) {
        await expectInvalid(host, { startCreationTime: value }, /^startCreationTime must look like 2022-06-27T15:23:10\+0800\.$/);
        await expectInvalid(host, { endCreationTime: value }, /^endCreationTime must look like 2022-06-27T15:23:10\+0800\.$/);
      }
    });

    it('refuses a query parameter given twice', async () => {
      const res = await api.request('GET', '/jobs?tag=MediaInfo&tag=PicProcess', { headers: { host } });
      expect(res.status).to.equal(400);
      expect(res.xml.Error.Code).to.equal('InvalidArgument');
      expect(res.xml.Error.Message).to.equal('tag may be given only once.');
    });
  });

  describe('size and nextToken', () => {
    const host = hostOf('sizes');
    let ids: string[] = [];
    before(async () => { ids = await createMany(host, 105); });

    it('returns 10 jobs by default, with a NextToken', async () => {
      const res = await list(host);
      expect(jobIds(res)).to.deep.equal([...ids].reverse().slice(0, 10));
      expect(res.xml.Response.NextToken).to.match(/^[1-9]\d*$/);
    });

    it('returns at most 100 jobs a page, then the rest and an empty NextToken', async () => {
      const first = await list(host, { size: 100, orderByTime: 'Asc' });
      expect(jobIds(first)).to.deep.equal(ids.slice(0, 100));
      const token = first.xml.Response.NextToken;
      expect(token).to.match(/^[1-9]\d*$/);
      const second = await list(host, { size: 100, orderByTime: 'Asc', nextToken: token });
      expect(jobIds(second)).to.deep.equal(ids.slice(100));
      expect(second.xml.Response.NextToken).to.equal('');
      expect(second.text).to.include('<NextToken/>');
    });

    it('ends on a full last page without an extra empty one', async () => {
      const pages: string[][] = [];
      let token = '';
      do {
        const res = await list(host, { size: 35, orderByTime: 'Desc', ...(token ? { nextToken: token } : {}) });
        pages.push(jobIds(res));
        token = res.xml.Response.NextToken;
        expect(pages.length).to.be.at.most(3);
      } while (token);
      expect(pages.map((p) => p.length)).to.deep.equal([35, 35, 35]);
      expect(pages.flat()).to.deep.equal([...ids].reverse());
    });

    it('refuses a size that is not an integer from 1 to 100', async () => {
      for (const size of ['0', '101', '1000', '-1', 'abc', '1.5', '1e2', ' 5', '10 ']) {
        await expectInvalid(host, { size }, /^size must be an integer from 1 to 100\.$/);
      }
    });

    it('treats an empty size as the default 10', async () => {
      expect(jobIds(await list(host, { size: '' }))).to.have.length(10);
      expect(jobIds(await list(host, { size: 1 }))).to.deep.equal([ids.at(-1)]);
    });

    it('treats an empty nextToken as absent, as the Python SDK sends it', async () => {
      const res = await list(host, { tag: 'MediaInfo', orderByTime: 'Desc', states: 'All', size: 10, nextToken: '' });
      expect(jobIds(res)).to.deep.equal([...ids].reverse().slice(0, 10));
    });

    it('refuses a nextToken it never returned', async () => {
      for (const nextToken of ['abc', '0', '-5', '1.5', '9'.repeat(19), 'p' + '0'.repeat(32)]) {
        await expectInvalid(host, { nextToken }, /^nextToken is not a token this service returned\.$/);
      }
    });

    it('answers an empty list with an empty NextToken', async () => {
      const res = await list(hostOf('empty'));
      expect(res.status).to.equal(200);
      expect(res.text).to.equal('<Response><NextToken/></Response>');
    });
  });

  describe('paging while jobs are being created', () => {
    for (const order of ['Desc', 'Asc'] as const) {
      it(`never skips or repeats a job (${order}, size 7)`, async function () {
        this.timeout(120_000);
        const host = hostOf(`paging-${order.toLowerCase()}`);
        const originals = await createMany(host, 46);

        // Two creators, so on PostgreSQL inserts also commit concurrently (and possibly out of seq order).
        const createdDuring: string[] = [];
        let running = true;
        const creator = async () => {
          while (running && createdDuring.length < 400) {
            createdDuring.push((await create(host, mediaInfoBody('in/many.mp4'))).jobId);
          }
        };
        const creators = [creator(), creator()];

        const seen: string[] = [];
        let pages = 0;
        try {
          let token = '';
          do {
            // Let at least one more job be created between two pages.
            const before = createdDuring.length;
            await waitFor(async () => (createdDuring.length > before || createdDuring.length >= 400 ? true : undefined), 20_000, 'a concurrent create');
            const res = await list(host, { tag: 'MediaInfo', orderByTime: order, size: 7, states: 'All', ...(token ? { nextToken: token } : { nextToken: '' }) });
            const page = jobIds(res);
            expect(page.length).to.be.at.most(7);
            seen.push(...page);
            token = res.xml.Response.NextToken;
            pages += 1;
            expect(pages, 'pages').to.be.below(200);
          } while (token);
        } finally {
          running = false;
          await Promise.all(creators);
        }

        expect(createdDuring.length, 'jobs created while paging').to.be.greaterThan(pages - 1);
        expect(new Set(seen).size, 'no id repeats').to.equal(seen.length);
        const originalSet = new Set(originals);
        const seenOriginals = seen.filter((id) => originalSet.has(id));
        // Every original exactly once, in creation order (or its reverse).
        expect(seenOriginals).to.deep.equal(order === 'Asc' ? originals : [...originals].reverse());
        // Jobs created during paging are newer than every original: before them (Desc) or after them (Asc).
        const firstOriginal = seen.indexOf(seenOriginals[0]);
        const lastOriginal = seen.indexOf(seenOriginals.at(-1)!);
        expect(lastOriginal - firstOriginal + 1, 'originals are contiguous').to.equal(originals.length);
        if (order === 'Asc') expect(firstOriginal).to.equal(0);
        else expect(lastOriginal).to.equal(seen.length - 1);
        for (const id of seen) expect(originalSet.has(id) || createdDuring.includes(id), id).to.equal(true);
      });
    }
  });
});

/** CI's `%Y-%m-%dT%H:%M:%S%z` for `date` at the given offset (`+0800`). */
function fmt(date: Date, offset: string): string {
  const sign = offset[0] === '-' ? -1 : 1;
  const minutes = sign * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(3, 5)));
  const shifted = new Date(date.getTime() + minutes * MINUTE);
  return shifted.toISOString().slice(0, 19) + offset;
}

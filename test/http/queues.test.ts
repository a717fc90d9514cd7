import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { asArray, startTestService, type TestResponse, type TestService } from '../helpers/service.js';
import { childNames } from '../helpers/assertions.js';

/*
 * DescribeMediaQueues (`GET /queue`) and UpdateMediaQueue (`PUT /queue/<id>`),
 * shared/ci-api.md §2. Each test uses a bucket of its own, chosen by Host.
 */

const CI_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}$/;
const QUEUE_ID = /^p[0-9a-f]{32}$/;
const NOTIFY_URL = 'http://callback.demo.com/notify';

function bucketOf(name: string): string {
  return `${name}-1250000000`;
}

function hostOf(name: string): string {
  return `${bucketOf(name)}.ci.ap-guangzhou.myqcloud.com`;
}

function newQueueId(): string {
  return 'p' + randomBytes(16).toString('hex');
}

function updateBody(fields: { name?: string; state?: string; maxConcurrent?: string; notify?: string; extra?: string } = {}): string {
  return [
    '<Request>',
    fields.name === undefined ? '<Name>My-Queue-Media</Name>' : fields.name === '' ? '' : `<Name>${fields.name}</Name>`,
    fields.state === undefined ? '<State>Active</State>' : fields.state === '' ? '' : `<State>${fields.state}</State>`,
    fields.maxConcurrent === undefined ? '' : `<MaxConcurrent>${fields.maxConcurrent}</MaxConcurrent>`,
    fields.notify ?? '',
    fields.extra ?? '',
    '</Request>',
  ].join('');
}

function notifyConfig(children: Record<string, string>): string {
  return `<NotifyConfig>${Object.entries(children).map(([k, v]) => `<${k}>${v}</${k}>`).join('')}</NotifyConfig>`;
}

const QUEUE_CHILDREN = ['QueueId', 'Name', 'State', 'NotifyConfig', 'MaxSize', 'MaxConcurrent', 'UpdateTime', 'CreateTime', 'Category'];
const NOTIFY_CHILDREN = ['Url', 'Event', 'Type', 'State', 'ResultFormat'];

describe('media queues', () => {
  let api: TestService;
  before(async () => { api = await startTestService(); });
  after(async () => { await api.stop(); });

  function getQueues(name: string, query = ''): Promise<TestResponse> {
    return api.request('GET', `/queue${query}`, { headers: { host: hostOf(name) } });
  }

  async function defaultQueueId(name: string): Promise<string> {
    const res = await getQueues(name);
    expect(res.status, res.text).to.equal(200);
    return asArray(res.xml.Response.QueueList)[0].QueueId;
  }

  function putQueue(name: string, queueId: string, body: string): Promise<TestResponse> {
    return api.request('PUT', `/queue/${queueId}`, { body, headers: { host: hostOf(name), 'content-type': 'application/xml' } });
  }

  async function createJob(name: string, queueId?: string): Promise<{ JobId: string; State: string; QueueId: string }> {
    const body = `<Request><Tag>MediaInfo</Tag><Input><Object>in/a.mp4</Object></Input>${queueId ? `<QueueId>${queueId}</QueueId>` : ''}</Request>`;
    const res = await api.request('POST', '/jobs', { body, headers: { host: hostOf(name) } });
    expect(res.status, res.text).to.equal(200);
    return res.xml.Response.JobsDetail;
  }

  async function stateOf(name: string, jobId: string): Promise<string> {
    const res = await api.request('GET', `/jobs/${jobId}`, { headers: { host: hostOf(name) } });
    expect(res.status, res.text).to.equal(200);
    return res.xml.Response.JobsDetail.State;
  }

  async function insertQueue(name: string, queueName: string, createdAt: Date): Promise<string> {
    const queueId = newQueueId();
    await api.service.db.kysely.insertInto('queues').values({ queue_id: queueId, bucket: bucketOf(name), name: queueName, created_at: createdAt, updated_at: createdAt }).execute();
    return queueId;
  }

  function expectError(res: TestResponse, status: number, code: string, message: RegExp): void {
    expect(res.status, res.text).to.equal(status);
    expect(res.xml.Error.Code).to.equal(code);
    expect(res.xml.Error.Message).to.match(message);
    for (const field of ['Code', 'Message', 'Resource', 'RequestId', 'TraceId']) expect(res.xml.Error[field], field).to.be.a('string').and.not.empty;
  }

  describe('GET /queue', () => {
    it('creates the bucket default queue on first use, once', async () => {
      const db = api.service.db.kysely;
      const count = async () => (await db.selectFrom('queues').select(db.fn.countAll<string>().as('n')).where('bucket', '=', bucketOf('first')).executeTakeFirstOrThrow()).n;
      expect(Number(await count())).to.equal(0);
      const first = await defaultQueueId('first');
      expect(first).to.match(QUEUE_ID);
      expect(Number(await count())).to.equal(1);
      expect(await defaultQueueId('first')).to.equal(first);
      expect((await createJob('first')).QueueId).to.equal(first);
      expect(Number(await count())).to.equal(1);
    });

    it("answers in DescribeMediaQueues' shape", async () => {
      const res = await getQueues('shape');
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/^application\/xml/);
      expect(childNames(res.text, 'Response')).to.deep.equal(['RequestId', 'TotalCount', 'PageNumber', 'PageSize', 'QueueList']);
      expect(childNames(res.text, 'QueueList')).to.deep.equal(QUEUE_CHILDREN);
      expect(childNames(res.text, 'NotifyConfig')).to.deep.equal(NOTIFY_CHILDREN);
      const body = res.xml.Response;
      expect(body.RequestId).to.equal(res.headers.get('x-ci-request-id'));
      expect(body.TotalCount).to.equal('1');
      expect(body.PageNumber).to.equal('1');
      expect(body.PageSize).to.equal('10');
      const queue = body.QueueList;
      expect(queue).to.include({ Name: 'queue-default', State: 'Active', MaxSize: '10000', MaxConcurrent: '10', Category: 'Transcoding' });
      expect(queue.QueueId).to.match(QUEUE_ID);
      expect(queue.NotifyConfig).to.deep.equal({ Url: '', Event: '', Type: 'Url', State: 'Off', ResultFormat: 'XML' });
      expect(queue.CreateTime).to.match(CI_TIME);
      expect(queue.UpdateTime).to.match(CI_TIME);
    });

    it('repeats QueueList once per queue (no wrapper), oldest first, and pages with pageNumber/pageSize', async () => {
      const first = await defaultQueueId('several');
      const second = await insertQueue('several', 'second', new Date(Date.now() + 1000));
      const third = await insertQueue('several', 'third', new Date(Date.now() + 2000));
      const all = await getQueues('several');
      expect(all.xml.Response.TotalCount).to.equal('3');
      expect(asArray(all.xml.Response.QueueList).map((q: any) => q.QueueId)).to.deep.equal([first, second, third]);
      expect(all.text.match(/<QueueList>/g)).to.have.length(3);
      for (const q of asArray(all.xml.Response.QueueList)) expect(Object.keys(q)).to.deep.equal(QUEUE_CHILDREN);

      const page2 = await getQueues('several', '?pageNumber=2&pageSize=2');
      expect(page2.xml.Response).to.include({ TotalCount: '3', PageNumber: '2', PageSize: '2' });
      expect(page2.xml.Response.QueueList.QueueId).to.equal(third);
      const page3 = await getQueues('several', '?pageNumber=3&pageSize=2');
      expect(page3.status).to.equal(200);
      expect(page3.xml.Response).to.include({ TotalCount: '3', PageNumber: '3', PageSize: '2' });
      expect(page3.xml.Response.QueueList).to.equal(undefined);
    });

    it('treats the empty values the Python SDK sends as defaults', async () => {
      const res = await getQueues('python', '?queueIds=&state=All&pageNumber=&pageSize=');
      expect(res.status, res.text).to.equal(200);
      expect(res.xml.Response).to.include({ TotalCount: '1', PageNumber: '1', PageSize: '10' });
      expect(res.xml.Response.NonExistPIDs).to.equal(undefined);
    });

    it('filters by queueIds, lists unknown ids as NonExistPIDs, and leaves out the paging fields', async () => {
      const mine = await defaultQueueId('byid');
      const other = await defaultQueueId('byid-other');
      const unknown = 'p' + '0'.repeat(32);
      const res = await getQueues('byid', `?queueIds=${unknown},${mine},${other},nonsense`);
      expect(res.status, res.text).to.equal(200);
      expect(childNames(res.text, 'Response')).to.deep.equal(['RequestId', 'QueueList', 'NonExistPIDs', 'NonExistPIDs', 'NonExistPIDs']);
      expect(res.xml.Response.QueueList.QueueId).to.equal(mine);
      expect(res.xml.Response.NonExistPIDs).to.deep.equal([unknown, other, 'nonsense']);

      const known = await getQueues('byid', `?queueIds=${mine}`);
      expect(childNames(known.text, 'Response')).to.deep.equal(['RequestId', 'QueueList']);

      const none = await getQueues('byid', `?queueIds=${unknown}`);
      expect(childNames(none.text, 'Response')).to.deep.equal(['RequestId', 'NonExistPIDs']);
    });

    it('refuses more than 10 queueIds', async () => {
      const ids = Array.from({ length: 11 }, () => newQueueId()).join(',');
      expectError(await getQueues('byid', `?queueIds=${ids}`), 400, 'InvalidArgument', /^At most 10 queueIds may be given at once\.$/);
    });

    it('filters by state and category', async () => {
      const id = await defaultQueueId('filter');
      expect((await getQueues('filter', '?state=Active')).xml.Response.TotalCount).to.equal('1');
      expect((await getQueues('filter', '?state=Paused')).xml.Response.TotalCount).to.equal('0');
      expect((await putQueue('filter', id, updateBody({ state: 'Paused' }))).status).to.equal(200);
      const paused = await getQueues('filter', '?state=Paused');
      expect(paused.xml.Response.TotalCount).to.equal('1');
      expect(paused.xml.Response.QueueList.State).to.equal('Paused');
      expect((await getQueues('filter', '?state=Active')).xml.Response.TotalCount).to.equal('0');
      expect((await getQueues('filter', '?state=All')).xml.Response.TotalCount).to.equal('1');
      for (const category of ['CateAll', 'Transcoding']) expect((await getQueues('filter', `?category=${category}`)).xml.Response.TotalCount).to.equal('1');
      const speed = await getQueues('filter', '?category=SpeedTranscoding');
      expect(speed.xml.Response.TotalCount).to.equal('0');
      expect(speed.xml.Response.QueueList).to.equal(undefined);
    });

    const invalid: Array<[string, RegExp]> = [
      ['?state=Stopped', /^state must be Active or Paused\.$/],
      ['?state=active', /^state must be Active or Paused\.$/],
      ['?category=Foo', /^category must be one of CateAll, Transcoding, SpeedTranscoding\.$/],
      ['?pageNumber=0', /^pageNumber must be an integer from 1 to 1000000\.$/],
      ['?pageNumber=abc', /^pageNumber must be an integer from 1 to 1000000\.$/],
      ['?pageNumber=-1', /^pageNumber must be an integer from 1 to 1000000\.$/],
      ['?pageNumber=1.5', /^pageNumber must be an integer from 1 to 1000000\.$/],
      ['?pageSize=0', /^pageSize must be an integer from 1 to 100\.$/],
      ['?pageSize=101', /^pageSize must be an integer from 1 to 100\.$/],
      ['?pageSize=ten', /^pageSize must be an integer from 1 to 100\.$/],
      ['?state=Active&state=Paused', /^state may be given only once\.$/],
    ];
    for (const [query, message] of invalid) {
      it(`refuses ${query} with 400 InvalidArgument`, async () => {
        expectError(await getQueues('invalid', query), 400, 'InvalidArgument', message);
      });
    }
  });

  describe('PUT /queue/<QueueId>', () => {
    it('updates Name, State, MaxConcurrent and NotifyConfig and answers <Response><RequestId/><Queue/></Response>', async () => {
      const id = await defaultQueueId('update');
      const notify = notifyConfig({ State: 'On', Type: 'Url', Url: NOTIFY_URL, Event: 'TaskFinish,WorkflowFinish', ResultFormat: 'JSON' });
      const res = await putQueue('update', id, updateBody({ name: 'My-Queue-Media', state: 'Active', maxConcurrent: '5', notify, extra: `<QueueID>${id}</QueueID>` }));
      expect(res.status, res.text).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/^application\/xml/);
      expect(childNames(res.text, 'Response')).to.deep.equal(['RequestId', 'Queue']);
      expect(childNames(res.text, 'Queue')).to.deep.equal(QUEUE_CHILDREN);
      expect(childNames(res.text, 'NotifyConfig')).to.deep.equal(NOTIFY_CHILDREN);
      expect(res.xml.Response.RequestId).to.equal(res.headers.get('x-ci-request-id'));
      const queue = res.xml.Response.Queue;
      expect(queue).to.include({ QueueId: id, Name: 'My-Queue-Media', State: 'Active', MaxConcurrent: '5', MaxSize: '10000', Category: 'Transcoding' });
      expect(queue.NotifyConfig).to.deep.equal({ Url: NOTIFY_URL, Event: 'TaskFinish,WorkflowFinish', Type: 'Url', State: 'On', ResultFormat: 'JSON' });
      expect(queue.UpdateTime).to.match(CI_TIME);
      expect(queue.CreateTime).to.match(CI_TIME);

      const listed = (await getQueues('update')).xml.Response.QueueList;
      expect(listed).to.deep.equal(queue);
    });

    it('keeps MaxConcurrent and NotifyConfig when they are left out', async () => {
      const id = await defaultQueueId('keep');
      const notify = notifyConfig({ State: 'On', Url: NOTIFY_URL, Event: 'TaskFinish' });
      expect((await putQueue('keep', id, updateBody({ maxConcurrent: '3', notify }))).status).to.equal(200);
      const res = await putQueue('keep', id, updateBody({ name: 'renamed' }));
      expect(res.status, res.text).to.equal(200);
      expect(res.xml.Response.Queue).to.include({ Name: 'renamed', MaxConcurrent: '3' });
      expect(res.xml.Response.Queue.NotifyConfig).to.deep.equal({ Url: NOTIFY_URL, Event: 'TaskFinish', Type: 'Url', State: 'On', ResultFormat: 'XML' });
    });

    it('accepts the legacy TransCodingFinish event', async () => {
      const id = await defaultQueueId('legacy');
      const notify = notifyConfig({ State: 'On', Type: 'Url', Url: NOTIFY_URL, Event: 'TransCodingFinish' });
      const res = await putQueue('legacy', id, updateBody({ notify }));
      expect(res.status, res.text).to.equal(200);
      expect(res.xml.Response.Queue.NotifyConfig).to.include({ Event: 'TransCodingFinish', State: 'On', Url: NOTIFY_URL });
    });

    it('pauses: Submitted jobs become Pause, Running and finished jobs stay, new jobs start as Pause; resuming makes them Submitted', async () => {
      const name = 'pause';
      const id = await defaultQueueId(name);
      const otherQueue = await insertQueue(name, 'untouched', new Date());
      const waiting = (await createJob(name)).JobId;
      const cancelled = (await createJob(name)).JobId;
      const running = (await createJob(name)).JobId;
      const elsewhere = (await createJob(name, otherQueue)).JobId;
      expect((await api.request('PUT', `/jobs/${cancelled}?cancel`, { headers: { host: hostOf(name) } })).status).to.equal(200);
      await api.service.db.kysely
        .updateTable('jobs')
        .set({ state: 'Running', lease_owner: 'test-worker', lease_expires_at: new Date(Date.now() + 60_000), started_at: new Date() })
        .where('job_id', '=', running)
        .execute();

      const paused = await putQueue(name, id, updateBody({ state: 'Paused' }));
      expect(paused.status, paused.text).to.equal(200);
      expect(paused.xml.Response.Queue.State).to.equal('Paused');
      expect(await stateOf(name, waiting)).to.equal('Pause');
      expect(await stateOf(name, cancelled)).to.equal('Cancel');
      expect(await stateOf(name, running)).to.equal('Running');
      expect(await stateOf(name, elsewhere)).to.equal('Submitted');

      const created = await createJob(name);
      expect(created.State).to.equal('Pause');
      expect(await stateOf(name, created.JobId)).to.equal('Pause');
      const listed = await api.request('GET', `/jobs?queueId=${id}&states=Pause&orderByTime=Asc`, { headers: { host: hostOf(name) } });
      expect(asArray(listed.xml.Response.JobsDetail).map((d: any) => d.JobId)).to.deep.equal([waiting, created.JobId]);

      // Pausing a paused queue again changes nothing.
      expect((await putQueue(name, id, updateBody({ state: 'Paused' }))).status).to.equal(200);
      expect(await stateOf(name, waiting)).to.equal('Pause');

      const resumed = await putQueue(name, id, updateBody({ state: 'Active' }));
      expect(resumed.status, resumed.text).to.equal(200);
      expect(resumed.xml.Response.Queue.State).to.equal('Active');
      expect(await stateOf(name, waiting)).to.equal('Submitted');
      expect(await stateOf(name, created.JobId)).to.equal('Submitted');
      expect(await stateOf(name, cancelled)).to.equal('Cancel');
      expect(await stateOf(name, running)).to.equal('Running');
      expect((await createJob(name)).State).to.equal('Submitted');
    });

    it('lets a paused job be cancelled', async () => {
      const id = await defaultQueueId('pause-cancel');
      expect((await putQueue('pause-cancel', id, updateBody({ state: 'Paused' }))).status).to.equal(200);
      const job = await createJob('pause-cancel');
      expect(job.State).to.equal('Pause');
      expect((await api.request('PUT', `/jobs/${job.JobId}?cancel`, { headers: { host: hostOf('pause-cancel') } })).status).to.equal(200);
      expect(await stateOf('pause-cancel', job.JobId)).to.equal('Cancel');
      expect((await putQueue('pause-cancel', id, updateBody({ state: 'Active' }))).status).to.equal(200);
      expect(await stateOf('pause-cancel', job.JobId)).to.equal('Cancel');
    });

    it('refuses an unknown queue, a queue of another bucket and a malformed id with 400 InvalidArgument', async () => {
      await defaultQueueId('refuse');
      const unknown = 'p' + '0'.repeat(32);
      expectError(await putQueue('refuse', unknown, updateBody()), 400, 'InvalidArgument', new RegExp(`^The queue ${unknown} does not exist\\.$`));
      const foreign = await defaultQueueId('refuse-other');
      expectError(await putQueue('refuse', foreign, updateBody()), 400, 'InvalidArgument', new RegExp(`^The queue ${foreign} does not exist\\.$`));
      expectError(await putQueue('refuse', 'not-a-queue', updateBody()), 400, 'InvalidArgument', /^not-a-queue is not a queue id\.$/);
      expect((await getQueues('refuse-other')).xml.Response.QueueList.Name).to.equal('queue-default');
    });

    const invalid: Array<[string, string, string, RegExp]> = [
      ['a State that is not Active or Paused', updateBody({ state: 'Stopped' }), 'InvalidArgument', /^Request\/State must be Active or Paused\.$/],
      ['a lower-case State', updateBody({ state: 'paused' }), 'InvalidArgument', /^Request\/State must be Active or Paused\.$/],
      ['a missing State', updateBody({ state: '' }), 'InvalidArgument', /^Request\/State is required\.$/],
      ['a missing Name', updateBody({ name: '' }), 'InvalidArgument', /^Request\/Name is required\.$/],
      ['a Name over 128 characters', updateBody({ name: 'n'.repeat(129) }), 'InvalidArgument', /^Request\/Name must be at most 128 characters\.$/],
      ['MaxConcurrent 0', updateBody({ maxConcurrent: '0' }), 'InvalidArgument', /^Request\/MaxConcurrent must be an integer from 1 to 9999\.$/],
      ['MaxConcurrent -1', updateBody({ maxConcurrent: '-1' }), 'InvalidArgument', /^Request\/MaxConcurrent must be an integer from 1 to 9999\.$/],
      ['MaxConcurrent 10000', updateBody({ maxConcurrent: '10000' }), 'InvalidArgument', /^Request\/MaxConcurrent must be an integer from 1 to 9999\.$/],
      ['MaxConcurrent abc', updateBody({ maxConcurrent: 'abc' }), 'InvalidArgument', /^Request\/MaxConcurrent must be an integer from 1 to 9999\.$/],
      ['MaxConcurrent 2.5', updateBody({ maxConcurrent: '2.5' }), 'InvalidArgument', /^Request\/MaxConcurrent must be an integer from 1 to 9999\.$/],
      ['NotifyConfig Type TDMQ', updateBody({ notify: notifyConfig({ State: 'On', Type: 'TDMQ', Url: NOTIFY_URL }) }), 'InvalidArgument', /^Request\/NotifyConfig\/Type must be Url/],
      ['NotifyConfig State Maybe', updateBody({ notify: notifyConfig({ State: 'Maybe', Url: NOTIFY_URL }) }), 'InvalidArgument', /^Request\/NotifyConfig\/State must be On or Off\.$/],
      ['NotifyConfig ResultFormat YAML', updateBody({ notify: notifyConfig({ State: 'On', Url: NOTIFY_URL, ResultFormat: 'YAML' }) }), 'InvalidArgument', /^Request\/NotifyConfig\/ResultFormat must be XML or JSON\.$/],
      ['a NotifyConfig Url that is not http(s)', updateBody({ notify: notifyConfig({ State: 'On', Url: 'ftp://callback.demo.com/x' }) }), 'InvalidArgument', /^Request\/NotifyConfig\/Url /],
      ['an unknown element', updateBody({ extra: '<Foo>1</Foo>' }), 'InvalidArgument', /^Request\/Foo is not a supported element here\.$/],
      ['malformed XML', '<Request><Name>x</Name><State>Active</Request>', 'MalformedXML', /not well-formed/],
      ['a wrong root', '<Queue><Name>x</Name><State>Active</State></Queue>', 'MalformedXML', /^The root element must be <Request>\.$/],
      ['an empty body', '', 'MalformedXML', /^The request body is empty; expected <Request>\.$/],
    ];
    for (const [what, body, code, message] of invalid) {
      it(`refuses ${what} with 400 ${code} and changes nothing`, async () => {
        const id = await defaultQueueId('invalid-put');
        const before = (await getQueues('invalid-put')).xml.Response.QueueList;
        expectError(await putQueue('invalid-put', id, body), 400, code, message);
        expect((await getQueues('invalid-put')).xml.Response.QueueList).to.deep.equal(before);
      });
    }
  });
});

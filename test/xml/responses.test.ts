import { expect } from 'chai';
import { XMLParser } from 'fast-xml-parser';
import { readFileSync } from 'node:fs';
import { CiError } from '../../src/errors.js';
import type { Job } from '../../src/store/jobs.repository.js';
import type { Queue } from '../../src/store/queues.repository.js';
import { buildJobsDetail } from '../../src/xml/jobs-detail.js';
import {
  buildCreateMediaJobsResponse,
  buildDescribeMediaJobResponse,
  buildDescribeMediaJobsResponse,
  buildDescribeMediaQueuesResponse,
  buildErrorResponse,
  buildUpdateMediaQueueResponse,
} from '../../src/xml/responses.js';
import { parseCiTime } from '../../src/xml/time.js';

/*
 * Our response builders against CI's own samples. The fixtures in
 * fixtures/xml/*.sample.xml are copied from the documentation in
 * /work/shared:
 * - describe-media-job.sample.xml: the MediaInfo job response (seeds/001);
 * - describe-media-jobs.sample.xml: the same JobsDetail plus a NextToken as in
 *   ci-api.md §1.4 (sample tokens are short numbers such as `25`);
 * - pic-process-job.sample.xml: the inline PicProcess job response (seeds/003);
 * - describe-media-queues.sample.xml and -by-id.sample.xml: ci-api.md §2.1,
 *   the second as described there for a queueIds query (no paging fields);
 * - update-media-queue.sample.xml: ci-api.md §2.2;
 * - error.sample.xml: ci-api.md §7.1 with the Resource element of §7.1's rule.
 *
 * Times are formatted in the process time zone, so time elements are compared
 * as instants; everything else (names, nesting, order, text) exactly.
 */

interface XmlNode {
  readonly name: string;
  readonly text: string;
  readonly children: readonly XmlNode[];
}

// A neutral parser that keeps document order; comments and the declaration are dropped.
const orderedParser = new XMLParser({ preserveOrder: true, ignoreAttributes: true, ignoreDeclaration: true, ignorePiTags: true, parseTagValue: false, trimValues: true });

type Ordered = Array<Record<string, unknown>>;

/** The element tree of a document: the single root element, with text and children in order. */
function elementTree(xml: string): XmlNode {
  const roots = toNodes(orderedParser.parse(xml) as Ordered);
  expect(roots, 'exactly one root element').to.have.length(1);
  return roots[0];
}

function toNodes(items: Ordered): XmlNode[] {
  const nodes: XmlNode[] = [];
  for (const item of items) {
    const name = Object.keys(item).find((k) => k !== ':@');
    if (name === undefined || name === '#text') continue;
    const content = item[name] as Ordered;
    const text = content.filter((c) => '#text' in c).map((c) => String(c['#text'])).join('');
    nodes.push({ name, text, children: toNodes(content) });
  }
  return nodes;
}

/** Every element as its path from the root, in document order: names, nesting and order in one list. */
function elementPaths(node: XmlNode, prefix = ''): string[] {
  const path = prefix ? `${prefix}/${node.name}` : node.name;
  return [path, ...node.children.flatMap((child) => elementPaths(child, path))];
}

/** `[path, text]` of every leaf element, in document order. */
function leaves(node: XmlNode, prefix = ''): Array<[string, string]> {
  const path = prefix ? `${prefix}/${node.name}` : node.name;
  if (node.children.length === 0) return [[path, node.text]];
  return node.children.flatMap((child) => leaves(child, path));
}

const CI_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}$/;

/** Leaf values with CI times replaced by their instant, so the process time zone does not matter. */
function comparableLeaves(node: XmlNode): Array<[string, string]> {
  return leaves(node).map(([path, text]) => {
    if (!CI_TIME.test(text)) return [path, text];
    return [path, `instant:${parseCiTime(text)!.toISOString()}`];
  });
}

function fixture(name: string): XmlNode {
  return elementTree(readFileSync(`fixtures/xml/${name}`, 'utf8'));
}

/** Names, nesting, order and values of `ours` equal the fixture's (times as instants). */
function expectSameDocument(ours: string, sample: XmlNode): void {
  const tree = elementTree(ours);
  expect(elementPaths(tree)).to.deep.equal(elementPaths(sample));
  expect(comparableLeaves(tree)).to.deep.equal(comparableLeaves(sample));
}

function job(overrides: Partial<Job>): Job {
  return {
    jobId: 'j229ed9e2f60c11ec8525e36307395bf9',
    seq: '1',
    bucket: 'test-123456789',
    region: 'ap-chongqing',
    queueId: 'p2242ab62c7c94486915508540933a2c6',
    tag: 'MediaInfo',
    state: 'Submitted',
    priority: 0,
    inputObject: 'input/demo.mp4',
    operation: { UserData: 'This is my data.', JobLevel: '0' },
    result: null,
    callback: { url: undefined, format: undefined, type: undefined },
    code: 'Success',
    message: '',
    progress: 0,
    attempts: 0,
    maxAttempts: 3,
    createdAt: new Date('2022-06-27T15:23:10+08:00'),
    startedAt: null,
    endedAt: null,
    ...overrides,
  };
}

function queue(overrides: Partial<Queue> = {}): Queue {
  return {
    queueId: 'p2242ab62c7c94486915508540933a2c6',
    bucket: 'test-1250000000',
    name: 'queue-1',
    state: 'Active',
    category: 'Transcoding',
    maxSize: 10000,
    maxConcurrent: 10,
    notifyConfig: { Url: 'http://callback.demo.com', Event: 'TaskFinish,WorkflowFinish', Type: 'Url', State: 'On', ResultFormat: 'JSON' },
    isDefault: false,
    createdAt: new Date('2022-08-09T16:23:11+08:00'),
    updatedAt: new Date('2022-08-09T16:23:11+08:00'),
    ...overrides,
  };
}

const REQUEST_ID = 'NjMxMDJhYTNfMThhYTk0MGFfYmU1OV8zZjc=';

describe('XML response builders against CI doc samples', () => {
  describe('the element-tree helper', () => {
    it('sees names, nesting, order and text, and ignores the declaration, comments and whitespace', () => {
      const tree = elementTree("<?xml version='1.0'?>\n<!-- c --><A>\n  <B>x</B>\n  <C><D/></C>\n  <B>y</B>\n</A>");
      expect(elementPaths(tree)).to.deep.equal(['A', 'A/B', 'A/C', 'A/C/D', 'A/B']);
      expect(leaves(tree)).to.deep.equal([['A/B', 'x'], ['A/C/D', ''], ['A/B', 'y']]);
    });

    it('tells documents apart that differ only in order or nesting', () => {
      expect(elementPaths(elementTree('<A><B/><C/></A>'))).not.to.deep.equal(elementPaths(elementTree('<A><C/><B/></A>')));
      expect(elementPaths(elementTree('<A><B><C/></B></A>'))).not.to.deep.equal(elementPaths(elementTree('<A><B/><C/></A>')));
    });
  });

  describe('JobsDetail', () => {
    const sample = fixture('describe-media-job.sample.xml');

    it('DescribeMediaJob matches the MediaInfo job sample element for element', () => {
      expectSameDocument(buildDescribeMediaJobResponse([job({})], []), sample);
    });

    it('CreateMediaJobs answers with the same document', () => {
      expectSameDocument(buildCreateMediaJobsResponse([job({})]), sample);
    });

    it('writes an empty Message as <Message/> and adds no XML declaration', () => {
      const xml = buildDescribeMediaJobResponse([job({})], []);
      expect(xml.startsWith('<Response><JobsDetail><Code>Success</Code><Message/><JobId>')).to.equal(true);
      expect(xml).to.include('<StartTime>-</StartTime><EndTime>-</EndTime>');
    });

    it('formats CreationTime as CI does, in the process time zone', () => {
      const creation = buildJobsDetail(job({})).CreationTime as string;
      expect(creation).to.match(CI_TIME);
      expect(parseCiTime(creation)!.getTime()).to.equal(Date.parse('2022-06-27T15:23:10+08:00'));
    });

    it('DescribeMediaJobs matches the sample with a NextToken after the jobs', () => {
      expectSameDocument(buildDescribeMediaJobsResponse([job({})], '25'), fixture('describe-media-jobs.sample.xml'));
    });

    it('DescribeMediaJobs on the last page keeps an empty NextToken', () => {
      const tree = elementTree(buildDescribeMediaJobsResponse([job({}), job({ jobId: 'j' + '1'.repeat(32) })], undefined));
      expect(tree.children.map((c) => c.name)).to.deep.equal(['JobsDetail', 'JobsDetail', 'NextToken']);
      expect(tree.children[2].text).to.equal('');
    });

    it('DescribeMediaJob lists unknown ids as repeated NonExistJobIds after the jobs', () => {
      const tree = elementTree(buildDescribeMediaJobResponse([job({})], ['ja', 'jb']));
      expect(tree.children.map((c) => [c.name, c.children.length ? '…' : c.text])).to.deep.equal([['JobsDetail', '…'], ['NonExistJobIds', 'ja'], ['NonExistJobIds', 'jb']]);
      expect(buildDescribeMediaJobResponse([], ['ja'])).to.equal('<Response><NonExistJobIds>ja</NonExistJobIds></Response>');
    });

    it('PicProcess job matches the PicProcess sample in names, nesting and values (the sample orders children differently)', () => {
      // seeds/003 itself puts EndTime before StartTime and Output before PicProcess, while the
      // MediaInfo sample (seeds/001) puts StartTime first; no SDK depends on order (ci-api.md §0),
      // so this sample is compared as a set per element.
      const pic = job({
        jobId: 'c93984788066911ed89ed352d4d9d2084',
        bucket: 'test-1234567890',
        queueId: 'p2911917386e148639319e13c285cc774',
        tag: 'PicProcess',
        inputObject: 'input/deer.jpg',
        createdAt: new Date('2022-07-18T15:16:43+08:00'),
        operation: {
          PicProcess: { IsPicInfo: 'true', ProcessRule: 'imageMogr2/rotate/90' },
          Output: { Region: 'ap-chongqing', Bucket: 'test-1234567890', Object: 'output/out.jpg' },
          UserData: 'This is my data.',
          JobLevel: '0',
        },
      });
      const ours = elementTree(buildDescribeMediaJobResponse([pic], []));
      const sample = fixture('pic-process-job.sample.xml');
      expect([...elementPaths(ours)].sort()).to.deep.equal([...elementPaths(sample)].sort());
      const sortLeaves = (node: XmlNode) => comparableLeaves(node).map(([p, t]) => `${p}=${t}`).sort();
      expect(sortLeaves(ours)).to.deep.equal(sortLeaves(sample));
      // The elements SDK users read first stay where CI puts them.
      expect(ours.children[0].children.slice(0, 4).map((c) => c.name)).to.deep.equal(['Code', 'Message', 'JobId', 'State']);
      expect(ours.children[0].children.at(-1)!.name).to.equal('Operation');
      expect(ours.children[0].children.find((c) => c.name === 'Operation')!.children.slice(-2).map((c) => c.name)).to.deep.equal(['UserData', 'JobLevel']);
    });
  });

  describe('queues', () => {
    it('DescribeMediaQueues matches the §2.1 sample element for element', () => {
      const xml = buildDescribeMediaQueuesResponse({ requestId: REQUEST_ID, queues: [queue()], total: 1, pageNumber: 1, pageSize: 10 });
      expectSameDocument(xml, fixture('describe-media-queues.sample.xml'));
    });

    it('DescribeMediaQueues by queueIds has no paging fields and repeats NonExistPIDs', () => {
      const xml = buildDescribeMediaQueuesResponse({ requestId: REQUEST_ID, queues: [queue()], total: 1, pageNumber: 1, pageSize: 10, missingIds: ['A', 'B'] });
      expectSameDocument(xml, fixture('describe-media-queues-by-id.sample.xml'));
    });

    it('repeats QueueList once per queue, never as a wrapper', () => {
      const second = queue({ queueId: 'p' + '1'.repeat(32), name: 'queue-2' });
      const tree = elementTree(buildDescribeMediaQueuesResponse({ requestId: REQUEST_ID, queues: [queue(), second], total: 2, pageNumber: 1, pageSize: 10 }));
      expect(tree.children.map((c) => c.name)).to.deep.equal(['RequestId', 'TotalCount', 'PageNumber', 'PageSize', 'QueueList', 'QueueList']);
      const sampleQueue = fixture('describe-media-queues.sample.xml').children.find((c) => c.name === 'QueueList')!;
      for (const list of tree.children.filter((c) => c.name === 'QueueList')) {
        expect(elementPaths(list)).to.deep.equal(elementPaths(sampleQueue));
      }
    });

    it('a queue without NotifyConfig still shows every NotifyConfig child', () => {
      const tree = elementTree(buildDescribeMediaQueuesResponse({ requestId: REQUEST_ID, queues: [queue({ notifyConfig: null })], total: 1, pageNumber: 1, pageSize: 10 }));
      const sample = fixture('describe-media-queues.sample.xml');
      expect(elementPaths(tree)).to.deep.equal(elementPaths(sample));
      const notify = tree.children.find((c) => c.name === 'QueueList')!.children.find((c) => c.name === 'NotifyConfig')!;
      expect(notify.children.map((c) => [c.name, c.text])).to.deep.equal([['Url', ''], ['Event', ''], ['Type', 'Url'], ['State', 'Off'], ['ResultFormat', 'XML']]);
    });

    it('UpdateMediaQueue matches the §2.2 response: <Response><RequestId/><Queue>…</Queue></Response>', () => {
      const xml = buildUpdateMediaQueueResponse(REQUEST_ID, queue({ name: 'My-Queue-Media', state: 'Paused' }));
      expectSameDocument(xml, fixture('update-media-queue.sample.xml'));
    });
  });

  describe('errors', () => {
    const sample = fixture('error.sample.xml');
    const traceId = sample.children.find((c) => c.name === 'TraceId')!.text;

    it('matches the §7.1 <Error> sample element for element', () => {
      const xml = buildErrorResponse(new CiError('InvalidArgument', 'size must be an integer from 1 to 100.'), {
        resource: 'test-1250000000.ci.ap-chongqing.myqcloud.com/jobs',
        requestId: REQUEST_ID,
        traceId,
      });
      expectSameDocument(xml, sample);
    });

    it('never leaves Message or Resource empty', () => {
      const error = new CiError('InternalError');
      const tree = elementTree(buildErrorResponse(error, { resource: '', requestId: 'r', traceId: 't' }));
      expect(elementPaths(tree)).to.deep.equal(elementPaths(sample));
      for (const child of tree.children) expect(child.text, child.name).not.to.equal('');
      expect(tree.children.find((c) => c.name === 'Message')!.text).to.equal('We encountered an internal error. Please try again.');
      expect(tree.children.find((c) => c.name === 'Resource')!.text).to.equal('/');
    });

    it('escapes markup in messages', () => {
      const xml = buildErrorResponse(new CiError('MalformedXML', 'The root element must be <Request> & "nothing" else.'), { resource: 'h/jobs', requestId: 'r', traceId: 't' });
      expect(xml).to.include('<Message>The root element must be &lt;Request&gt; &amp; &quot;nothing&quot; else.</Message>');
      expect(elementTree(xml).children.find((c) => c.name === 'Message')!.text).to.equal('The root element must be <Request> & "nothing" else.');
    });
  });
});

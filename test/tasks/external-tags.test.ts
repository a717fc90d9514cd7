import { expect } from 'chai';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { parseXml, startTestService, waitFor, type TestService } from '../helpers/service.js';
import { callTask, okTask } from './helpers.js';

const SPEECH = (callback: string) => `<Request><Tag>SpeechRecognition</Tag><Input><Object>input/talk.mp3</Object></Input>
  <Operation><SpeechRecognition><EngineModelType>16k_zh</EngineModelType><ChannelNum>1</ChannelNum></SpeechRecognition>
    <Output><Region>ap-local</Region><Bucket>local-1250000000</Bucket><Object>output/talk.txt</Object></Output><UserData>u1</UserData></Operation>
  <CallBack>${callback}</CallBack></Request>`;

describe('MEDIAJOBS_EXTERNAL_TAGS: CI Tags run by external workers', function () {
  this.timeout(60_000);
  let api: TestService;
  let receiver: Receiver;
  let key: string;

  before(async () => {
    receiver = await startReceiver();
    // Our own worker runs too: it must leave the external Tag's jobs alone.
    api = await startTestService({ worker: true, env: { MEDIAJOBS_EXTERNAL_TAGS: 'SpeechRecognition,VideoTag', MEDIAJOBS_ALLOW_PRIVATE_CALLBACKS: 'true', MEDIAJOBS_POLL_INTERVAL: '100ms' } });
    key = api.service.app.appKey;
  });
  after(async () => {
    await api.stop();
    await receiver.close();
  });

  it('accepts the Tag at POST /jobs, hands it out through get_next_task, and shows the result as CI would', async () => {
    const created = await api.request('POST', '/jobs', { body: SPEECH(receiver.url) });
    expect(created.status, created.text).to.equal(200);
    const jobId = created.xml.Response.JobsDetail.JobId;
    expect(created.xml.Response.JobsDetail).to.include({ Tag: 'SpeechRecognition', State: 'Submitted' });
    // Our worker polls every 100 ms here; the job stays for an external one.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await api.request('GET', `/jobs/${jobId}`)).xml.Response.JobsDetail.State).to.equal('Submitted');

    const handed = await okTask(api, 'get_next_task', { app_key: key, worker_id: 'asr-1', task_types: ['SpeechRecognition'] });
    expect(handed.task_type).to.equal('SpeechRecognition');
    expect(handed.task_data.Input).to.deep.equal({ Object: 'input/talk.mp3' });
    expect(handed.task_data.Operation.SpeechRecognition).to.deep.equal({ EngineModelType: '16k_zh', ChannelNum: '1' });
    expect(handed.task_data.Operation.UserData).to.equal('u1');
    expect((await api.request('GET', `/jobs/${jobId}`)).xml.Response.JobsDetail.State).to.equal('Running');

    await okTask(api, 'update_progress', { app_key: key, task_id: handed.id, progress: 60, worker_id: 'asr-1' });
    expect((await api.request('GET', `/jobs/${jobId}`)).xml.Response.JobsDetail.Progress).to.equal('60');
    await okTask(api, 'complete_task', { app_key: key, task_id: handed.id, worker_id: 'asr-1', result: { SpeechRecognitionResult: { Result: '你好', Duration: 3.5, Words: [{ Word: '你' }, { Word: '好' }] } } });

    const detail = (await api.request('GET', `/jobs/${jobId}`)).xml.Response.JobsDetail;
    expect(detail).to.include({ State: 'Success', Code: 'Success', Progress: '100' });
    expect(Object.keys(detail.Operation)).to.deep.equal(['SpeechRecognition', 'Output', 'SpeechRecognitionResult', 'UserData', 'JobLevel']);
    expect(detail.Operation.SpeechRecognitionResult).to.deep.equal({ Result: '你好', Duration: '3.5', Words: [{ Word: '你' }, { Word: '好' }] });

    await waitFor(async () => (receiver.received.length > 0 ? true : undefined), 20_000, 'the TaskFinish callback');
    const callback = parseXml(receiver.received[0].body);
    expect(callback.Response.EventName).to.equal('TaskFinish');
    expect(callback.Response.JobsDetail.JobId).to.equal(jobId);
    expect(callback.Response.JobsDetail.Operation.SpeechRecognitionResult.Result).to.equal('你好');
    const task = await okTask(api, 'get_task', { app_key: key, task_id: handed.id });
    expect(task).to.include({ status: 'completed', job_id: jobId, external: true });
  });

  it('fails the CI job when the external worker fails it', async () => {
    const created = await api.request('POST', '/jobs', { body: '<Request><Input><Object>in/v.mp4</Object></Input><Operation><Tag>VideoTag</Tag><VideoTag><Scenario>Stream</Scenario></VideoTag></Operation></Request>' });
    expect(created.status, created.text).to.equal(200);
    const jobId = created.xml.Response.JobsDetail.JobId;
    expect(created.xml.Response.JobsDetail.Operation).to.include({ Tag: 'VideoTag' });
    const handed = await okTask(api, 'get_next_task', { app_key: key, worker_id: 'vt', task_types: ['VideoTag'], wait: 5 });
    await okTask(api, 'fail_task', { app_key: key, task_id: handed.id, error_message: 'model unavailable' });
    const detail = (await api.request('GET', `/jobs/${jobId}`)).xml.Response.JobsDetail;
    expect(detail).to.include({ State: 'Failed', Message: 'model unavailable' });
  });

  it('still refuses a Tag that is neither ours nor external', async () => {
    const res = await api.request('POST', '/jobs', { body: '<Request><Tag>Translation</Tag><Input><Object>a</Object></Input></Request>' });
    expect(res.status).to.equal(400);
    expect(res.xml.Error.Message).to.match(/Translation/);
    expect(await callTask(api, 'get_next_task', { app_key: key, worker_id: 'x' })).to.include({ code: 0, data: null });
  });
});

import { expect } from 'chai';
import { buildTaskFinishBody, xmlTreeToCallbackJson, type CallbackJsonValue } from '../../src/callbacks/notification.js';
import { parseXmlDocument } from '../../src/xml/codec.js';
import { isXmlObject, type XmlObject } from '../../src/xml/tree.js';

/**
 * CI's own TaskFinish sample (Go SDK `JobNotifyCallback`, seeds/002): a
 * workflow-triggered SuperResolution job with repeated CosHeaders and
 * WatermarkTemplateId, and empty Message, Subtitle and ObjectPrefix elements.
 */
const CI_SAMPLE = [
  '<Response><EventName>TaskFinish</EventName><JobsDetail><Code>Success</Code>',
  '<CreationTime>2022-06-30T19:30:20+0800</CreationTime><EndTime>2022-06-30T19:31:56+0800</EndTime><Input>',
  '<BucketId>test-123456789</BucketId><Object>input/demo.mp4</Object><Region>ap-chongqing</Region><CosHeaders>',
  '<Key>Content-Type</Key><Value>video/mp4</Value></CosHeaders><CosHeaders><Key>x-cos-request-id</Key>',
  '<Value>NjJiZDYwYTFfNjUzYTYyNjRfZjEwZl8xMmZhYzY5</Value></CosHeaders><CosHeaders><Key>EventName</Key>',
  '<Value>cos:ObjectCreated:Put</Value></CosHeaders><CosHeaders><Key>Size</Key><Value>1424687</Value>',
  '</CosHeaders></Input><JobId>j06668dc0f86811ecb90d0b03267ce0e5</JobId><Message/><Operation><DigitalWatermark>',
  '<IgnoreError>false</IgnoreError><Message>123456789ab</Message><State>Failed</State><Type>Text</Type>',
  '<Version>V1</Version></DigitalWatermark><MediaInfo><Format><Bitrate>8867.172000</Bitrate><Duration>13.654000',
  '</Duration><FormatLongName>QuickTime / MOV</FormatLongName><FormatName>mov,mp4,m4a,3gp,3g2,mj2</FormatName>',
  '<NumProgram>0</NumProgram><NumStream>2</NumStream><Size>15134046</Size><StartTime>0.000000</StartTime>',
  '</Format><Stream><Audio><Bitrate>128.726000</Bitrate><Channel>2</Channel><ChannelLayout>stereo</ChannelLayout>',
  '<CodecLongName>AAC (Advanced Audio Coding)</CodecLongName><CodecName>aac</CodecName><CodecTag>0x6134706d',
  '</CodecTag><CodecTagString>mp4a</CodecTagString><CodecTimeBase>1/44100</CodecTimeBase><Duration>13.652993',
  '</Duration><Index>1</Index><Language>und</Language><SampleFmt>fltp</SampleFmt><SampleRate>44100</SampleRate>',
  '<StartTime>0.000000</StartTime><Timebase>1/44100</Timebase></Audio><Subtitle/><Video><AvgFps>25.000000',
  '</AvgFps><Bitrate>9197.180000</Bitrate><CodecLongName>H.265 / HEVC (High Efficiency Video Coding)',
  '</CodecLongName><CodecName>hevc</CodecName><CodecTag>0x31766568</CodecTag><CodecTagString>hev1',
  '</CodecTagString><CodecTimeBase>1/12800</CodecTimeBase><ColorPrimaries>bt470bg</ColorPrimaries><ColorRange>tv',
  '</ColorRange><ColorTransfer>smpte170m</ColorTransfer><Duration>12.960000</Duration><FieldOrder>progressive',
  '</FieldOrder><Fps>25.000000</Fps><HasBFrame>2</HasBFrame><Height>1920</Height><Index>0</Index><Language>und',
  '</Language><Level>120</Level><NumFrames>324</NumFrames><PixFormat>yuv420p</PixFormat><Profile>Main</Profile>',
  '<RefFrames>1</RefFrames><Rotation>0.000000</Rotation><StartTime>0.000000</StartTime><Timebase>1/12800',
  '</Timebase><Width>1088</Width></Video></Stream></MediaInfo><MediaResult><OutputFile><Bucket>test-123456789',
  '</Bucket><Md5Info><Md5>852883012a6ba726e6ed8d9b984edfdf</Md5><ObjectName>output/super_resolution.mp4',
  '</ObjectName></Md5Info><ObjectName>output/super_resolution.mp4</ObjectName><ObjectPrefix/><Region>ap-chongqing',
  '</Region></OutputFile></MediaResult><Output><Bucket>test-123456789</Bucket>',
  '<Object>output/super_resolution.${ext}</Object><Region>ap-chongqing</Region></Output>',
  '<TemplateId>t1f1ae1dfsdc9ds41dsb31632d45710642a</TemplateId><TemplateName>template_superresolution',
  '</TemplateName><TranscodeTemplateId>t156c107210e7243c5817354565d81b578</TranscodeTemplateId>',
  '<UserData>This is my SuperResolution job.</UserData><JobLevel>0</JobLevel>',
  '<WatermarkTemplateId>t143ae6e040af6431aa772c9ec3f0a3f36</WatermarkTemplateId>',
  '<WatermarkTemplateId>t12a74d11687d444deba8a6cc52051ac27</WatermarkTemplateId></Operation>',
  '<QueueId>p2242ab62c7c94486915508540933a2c6</QueueId><StartTime>2022-06-30T19:30:21+0800</StartTime>',
  '<State>Success</State><Progress>100</Progress><SubTag>DigitalWatermark</SubTag><Tag>SuperResolution</Tag>',
  '<Workflow><Name>SuperResolution_1581665960537</Name><RunId>ic90edd59f84f11ec9d4f525400a3c59f</RunId>',
  '<WorkflowId>web6ac56c1ef54dbfa44d7f4103203be9</WorkflowId><WorkflowName>workflow-test</WorkflowName>',
  '</Workflow></JobsDetail></Response>',
].join('');

const sampleJobsDetail = (): XmlObject => {
  const jobsDetail = parseXmlDocument(CI_SAMPLE, 'Response').JobsDetail;
  if (!isXmlObject(jobsDetail)) throw new Error('sample has no JobsDetail');
  return jobsDetail;
};

/** The serializer may or may not write a declaration; the callback body is what follows it. */
const withoutDeclaration = (xml: string): string => xml.replace(/^<\?xml[^>]*\?>\s*/, '');

function leaves(value: CallbackJsonValue, path = ''): Array<[string, unknown]> {
  if (Array.isArray(value)) return value.flatMap((item, i) => leaves(item, `${path}[${i}]`));
  if (typeof value === 'object' && value !== null) return Object.entries(value).flatMap(([k, v]) => leaves(v, `${path}.${k}`));
  return [[path, value]];
}

describe('buildTaskFinishBody', () => {
  describe('XML', () => {
    it('reproduces the CI callback sample from its JobsDetail, byte for byte', () => {
      const { body, contentType } = buildTaskFinishBody(sampleJobsDetail(), 'XML');
      expect(contentType).to.equal('application/xml');
      expect(withoutDeclaration(body)).to.equal(CI_SAMPLE);
    });

    it('wraps the JobsDetail in Response after EventName TaskFinish', () => {
      const { body } = buildTaskFinishBody({ JobId: 'j1', State: 'Failed', Message: '' }, 'XML');
      expect(withoutDeclaration(body)).to.equal(
        '<Response><EventName>TaskFinish</EventName><JobsDetail><JobId>j1</JobId><State>Failed</State><Message/></JobsDetail></Response>',
      );
    });

    it('escapes markup in values so the body parses back to the same tree', () => {
      const jobsDetail: XmlObject = { JobId: 'j1', Operation: { UserData: '<b>a & b</b> "q" \'s\' ]]>' } };
      const { body } = buildTaskFinishBody(jobsDetail, 'XML');
      expect(parseXmlDocument(body, 'Response')).to.deep.equal({ EventName: 'TaskFinish', JobsDetail: jobsDetail });
    });
  });

  describe('JSON', () => {
    it('is {EventName, JobsDetail} without a Response wrapper, as application/json', () => {
      const { body, contentType } = buildTaskFinishBody(sampleJobsDetail(), 'JSON');
      expect(contentType).to.equal('application/json');
      const parsed = JSON.parse(body) as Record<string, unknown>;
      expect(Object.keys(parsed)).to.deep.equal(['EventName', 'JobsDetail']);
      expect(parsed.EventName).to.equal('TaskFinish');
    });

    it('has strings for every value of the CI sample, numbers included', () => {
      const { JobsDetail } = JSON.parse(buildTaskFinishBody(sampleJobsDetail(), 'JSON').body) as { JobsDetail: CallbackJsonValue };
      const all = leaves(JobsDetail);
      expect(all.length).to.be.greaterThan(80);
      for (const [path, value] of all) expect(value, path).to.be.a('string').and.not.equal('');
      const video = (JobsDetail as any).Operation.MediaInfo.Stream.Video;
      expect(video.Width).to.equal('1088');
      expect(video.AvgFps).to.equal('25.000000');
      expect((JobsDetail as any).Progress).to.equal('100');
    });

    it('makes repeated elements arrays and single children objects', () => {
      const { JobsDetail: d } = JSON.parse(buildTaskFinishBody(sampleJobsDetail(), 'JSON').body) as { JobsDetail: any };
      expect(d.Input.CosHeaders).to.deep.equal([
        { Key: 'Content-Type', Value: 'video/mp4' },
        { Key: 'x-cos-request-id', Value: 'NjJiZDYwYTFfNjUzYTYyNjRfZjEwZl8xMmZhYzY5' },
        { Key: 'EventName', Value: 'cos:ObjectCreated:Put' },
        { Key: 'Size', Value: '1424687' },
      ]);
      expect(d.Operation.WatermarkTemplateId).to.deep.equal(['t143ae6e040af6431aa772c9ec3f0a3f36', 't12a74d11687d444deba8a6cc52051ac27']);
      expect(d.Operation.MediaResult.OutputFile.Md5Info).to.deep.equal({
        Md5: '852883012a6ba726e6ed8d9b984edfdf',
        ObjectName: 'output/super_resolution.mp4',
      });
      expect(d.Workflow).to.deep.equal({
        Name: 'SuperResolution_1581665960537',
        RunId: 'ic90edd59f84f11ec9d4f525400a3c59f',
        WorkflowId: 'web6ac56c1ef54dbfa44d7f4103203be9',
        WorkflowName: 'workflow-test',
      });
    });

    it('leaves out the empty elements of the CI sample (Message, Subtitle, ObjectPrefix)', () => {
      const { JobsDetail: d } = JSON.parse(buildTaskFinishBody(sampleJobsDetail(), 'JSON').body) as { JobsDetail: any };
      expect(d).to.not.have.property('Message');
      expect(d.Operation.MediaInfo.Stream).to.have.all.keys('Audio', 'Video');
      expect(d.Operation.MediaResult.OutputFile).to.not.have.property('ObjectPrefix');
      // A non-empty element of the same name elsewhere is kept.
      expect(d.Operation.DigitalWatermark.Message).to.equal('123456789ab');
    });
  });
});

describe('xmlTreeToCallbackJson', () => {
  it('keeps element order', () => {
    expect(Object.keys(xmlTreeToCallbackJson({ Z: '1', A: '2', M: { B: '3' } }))).to.deep.equal(['Z', 'A', 'M']);
  });

  it('omits empty strings, empty objects, and containers that hold only empty elements', () => {
    expect(xmlTreeToCallbackJson({ Code: 'Success', Message: '', Subtitle: {}, Stream: { Subtitle: '', Data: { X: '' } } })).to.deep.equal({
      Code: 'Success',
    });
  });

  it('keeps whitespace and "0" values: only the empty string is empty', () => {
    expect(xmlTreeToCallbackJson({ Progress: '0', Space: ' ' })).to.deep.equal({ Progress: '0', Space: ' ' });
  });

  it('keeps a one-item array an array, so list fields have one JSON type', () => {
    expect(xmlTreeToCallbackJson({ CosHeaders: [{ Key: 'Size', Value: '1' }] })).to.deep.equal({ CosHeaders: [{ Key: 'Size', Value: '1' }] });
  });

  it('drops empty items from repeated elements, and the element when none is left', () => {
    expect(xmlTreeToCallbackJson({ Id: ['a', '', 'b'], Empty: ['', {}], Nested: [{ A: '' }, { A: '1' }] })).to.deep.equal({
      Id: ['a', 'b'],
      Nested: [{ A: '1' }],
    });
  });

  it('flattens nested arrays into one list of repetitions', () => {
    expect(xmlTreeToCallbackJson({ Id: ['a', ['b', ['c']]] })).to.deep.equal({ Id: ['a', 'b', 'c'] });
  });

  it('turns an element named __proto__ into a plain key', () => {
    const json = xmlTreeToCallbackJson(JSON.parse('{"__proto__":{"polluted":"yes"},"A":"1"}') as XmlObject);
    expect(Object.getPrototypeOf(json)).to.equal(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    expect(JSON.stringify(json)).to.equal('{"__proto__":{"polluted":"yes"},"A":"1"}');
  });
});

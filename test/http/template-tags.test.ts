import { expect } from 'chai';
import { asArray, parseXml, startTestService, type TestService } from '../helpers/service.js';

/*
 * The template Tags stored as sent (templates/template-tags.ts): each body is
 * what the Go SDK's Create…TemplateOptions marshals (ci_media.go), and each
 * answer is read by the element names of Go's `Template` struct, as
 * xml.Unmarshal would: an element Go has no field for is lost to a Go caller.
 */

/** The `xml:"…"` names of the Go SDK's `Template` struct (ci_media.go), plus Tag, which Go maps to <Code> by mistake. */
const GO_TEMPLATE_FIELDS = new Set([
  'TemplateId', 'Tag', 'Name', 'TransTpl', 'CreateTime', 'UpdateTime', 'BucketId', 'Category', 'Snapshot', 'Animation', 'ConcatTemplate',
  'VideoProcess', 'VideoMontage', 'VoiceSeparate', 'SuperResolution', 'PicProcess', 'Watermark', 'TransProTpl', 'TtsTpl', 'SmartCover',
  'SpeechRecognition', 'NoiseReduction', 'VideoEnhance', 'VideoTargetRec', 'ImageOCR',
]);

interface Case {
  readonly tag: string;
  /** What goes under <Request> beside Tag and Name, as the SDK marshals it. */
  readonly params: string;
  /** The answer's container and what it must hold. */
  readonly container: string;
  readonly inside: string;
}

const CASES: readonly Case[] = [
  {
    tag: 'SuperResolution', container: 'SuperResolution',
    params: '<Resolution>sdtohd</Resolution><EnableScaleUp>true</EnableScaleUp><Version>Enhance</Version>',
    inside: '<Resolution>sdtohd</Resolution><EnableScaleUp>true</EnableScaleUp><Version>Enhance</Version>',
  },
  {
    tag: 'Tts', container: 'TtsTpl',
    params: '<Mode>Sync</Mode><Codec>pcm</Codec><VoiceType>ruxue</VoiceType><Volume>0</Volume><Speed>100</Speed><Emotion>arousal</Emotion>',
    inside: '<Mode>Sync</Mode><Codec>pcm</Codec><VoiceType>ruxue</VoiceType><Volume>0</Volume><Speed>100</Speed><Emotion>arousal</Emotion>',
  },
  {
    tag: 'SpeechRecognition', container: 'SpeechRecognition',
    params: '<SpeechRecognition><EngineModelType>16k_zh</EngineModelType><ChannelNum>1</ChannelNum><FilterDirty>1</FilterDirty><OutputFileType>txt</OutputFileType></SpeechRecognition>',
    inside: '<EngineModelType>16k_zh</EngineModelType><ChannelNum>1</ChannelNum><FilterDirty>1</FilterDirty><OutputFileType>txt</OutputFileType>',
  },
  {
    tag: 'VideoEnhance', container: 'VideoEnhance',
    params: '<VideoEnhance><Transcode><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Width>1280</Width></Video></Transcode>'
      + '<SuperResolution><Resolution>sdtohd</Resolution></SuperResolution><ColorEnhance><Contrast>50</Contrast></ColorEnhance>'
      + '<SDRtoHDR><HdrMode>HDR10</HdrMode></SDRtoHDR><FrameEnhance><FrameDoubling>true</FrameDoubling></FrameEnhance></VideoEnhance>',
    inside: '<Transcode><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec><Width>1280</Width></Video></Transcode>'
      + '<SuperResolution><Resolution>sdtohd</Resolution></SuperResolution><ColorEnhance><Contrast>50</Contrast></ColorEnhance>'
      + '<SDRtoHDR><HdrMode>HDR10</HdrMode></SDRtoHDR><FrameEnhance><FrameDoubling>true</FrameDoubling></FrameEnhance>',
  },
  {
    tag: 'VideoTargetRec', container: 'VideoTargetRec',
    params: '<VideoTargetRec><Body>true</Body><Car>true</Car><ProcessType>Synthesis</ProcessType><TransTpl><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec></Video></TransTpl></VideoTargetRec>',
    inside: '<Body>true</Body><Car>true</Car><ProcessType>Synthesis</ProcessType><TransTpl><Container><Format>mp4</Format></Container><Video><Codec>H.264</Codec></Video></TransTpl>',
  },
  {
    tag: 'HighSpeedHd', container: 'TransTpl',
    params: '<Container><Format>mp4</Format></Container><Video><Codec>H.265</Codec><Width>1280</Width><Fps>30</Fps></Video><Audio><Codec>aac</Codec></Audio>'
      + '<TimeInterval><Start>0</Start><Duration>60</Duration></TimeInterval><TransConfig><IsCheckReso>false</IsCheckReso></TransConfig>',
    inside: '<Container><Format>mp4</Format></Container><Video><Codec>H.265</Codec><Width>1280</Width><Fps>30</Fps></Video><Audio><Codec>aac</Codec></Audio>'
      + '<TimeInterval><Start>0</Start><Duration>60</Duration></TimeInterval><TransConfig><IsCheckReso>false</IsCheckReso></TransConfig>',
  },
  {
    tag: 'ImageOCR', container: 'ImageOCR',
    params: '<ImageOCR><Type>general</Type><LanguageType>zh</LanguageType><IsPdf>false</IsPdf><EnableWordPolygon>false</EnableWordPolygon></ImageOCR>',
    inside: '<Type>general</Type><LanguageType>zh</LanguageType><IsPdf>false</IsPdf><EnableWordPolygon>false</EnableWordPolygon>',
  },
];

describe('templates of every template Tag, stored as sent', () => {
  let api: TestService;
  before(async () => { api = await startTestService(); });
  after(async () => { await api.stop(); });

  /** The children of the answer's <Template>, which must all be fields of Go's Template struct. */
  function goTemplate(text: string): Record<string, any> {
    const template = parseXml(text).Response.Template as Record<string, any>;
    for (const name of Object.keys(template)) expect(GO_TEMPLATE_FIELDS.has(name), `<${name}> is no field of Go's Template`).to.equal(true);
    return template;
  }

  for (const { tag, params, container, inside } of CASES) {
    it(`${tag}: created, listed, updated and deleted, its parameters answered in <${container}>`, async () => {
      const created = await api.request('POST', '/template', { body: `<Request><Tag>${tag}</Tag><Name>${tag}-1</Name>${params}</Request>` });
      expect(created.status, created.text).to.equal(200);
      const template = goTemplate(created.text);
      expect(template).to.include({ Tag: tag, Name: `${tag}-1`, Category: 'Custom' });
      expect(template[container], created.text).to.deep.equal(parseXml(`<x>${inside}</x>`).x);

      const listed = await api.request('GET', `/template?tag=${tag}`);
      expect(asArray(listed.xml.Response.TemplateList).map((t) => [t.TemplateId, Object.keys(t).includes(container)])).to.deep.equal([[template.TemplateId, true]]);

      const updated = await api.request('PUT', `/template/${template.TemplateId as string}`, { body: `<Request><Tag>${tag}</Tag><Name>${tag}-2</Name>${params}</Request>` });
      expect(updated.status, updated.text).to.equal(200);
      expect(goTemplate(updated.text)).to.include({ TemplateId: template.TemplateId, Name: `${tag}-2` });
      const deleted = await api.request('DELETE', `/template/${template.TemplateId as string}`);
      expect(deleted.xml.Response.TemplateId).to.equal(template.TemplateId);
    });
  }

  it('refuses a template without its parameters, naming the container Go sends them in', async () => {
    for (const [tag, message] of [['VideoEnhance', /Request\/VideoEnhance is required/], ['Tts', /parameters of the template are required/], ['ImageOCR', /Request\/ImageOCR is required/]] as const) {
      const res = await api.request('POST', '/template', { body: `<Request><Tag>${tag}</Tag><Name>empty</Name></Request>` });
      expect(res.status, res.text).to.equal(400);
      expect(res.xml.Error).to.include({ Code: 'InvalidArgument' });
      expect(res.xml.Error.Message).to.match(message);
    }
    const unknown = await api.request('POST', '/template', { body: '<Request><Tag>Hologram</Tag><Name>x</Name><Hologram><A>1</A></Hologram></Request>' });
    expect(unknown.status).to.equal(400);
    expect(unknown.xml.Error.Message).to.match(/"Hologram" is not supported; supported template Tags: .*HighSpeedHd.*ImageOCR/);
  });

  it('refuses parameters over 64 KiB, which would be stored as sent and answered a page at a time', async () => {
    const big = await api.request('POST', '/template', { body: `<Request><Tag>VideoTargetRec</Tag><Name>big</Name><VideoTargetRec><Note>${'x'.repeat(70_000)}</Note></VideoTargetRec></Request>` });
    expect(big.status, big.text).to.equal(400);
    expect(big.xml.Error.Message).to.match(/at most 64 KiB/);
    const fits = await api.request('POST', '/template', { body: `<Request><Tag>VideoTargetRec</Tag><Name>fits</Name><VideoTargetRec><Note>${'x'.repeat(60_000)}</Note></VideoTargetRec></Request>` });
    expect(fits.status, fits.text).to.equal(200);
  });

  it('refuses to change a template\'s Tag on update', async () => {
    const created = await api.request('POST', '/template', { body: `<Request><Tag>Tts</Tag><Name>voice</Name>${CASES[1]!.params}</Request>` });
    const id = created.xml.Response.Template.TemplateId as string;
    const res = await api.request('PUT', `/template/${id}`, { body: `<Request><Tag>SuperResolution</Tag><Name>voice</Name>${CASES[0]!.params}</Request>` });
    expect(res.status).to.equal(400);
    expect(res.xml.Error.Message).to.match(/is a Tts template/);
  });
});

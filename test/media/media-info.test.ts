import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { bundledFfprobePath, runFfprobe, type FfprobeReport, type FfprobeStream } from '../../src/media/ffprobe.js';
import { createSpawner, type Spawner } from '../../src/media/spawner.js';
import { clockwiseRotation, toMediaInfo } from '../../src/media/media-info.js';
import { isXmlObject, type XmlObject, type XmlValue } from '../../src/xml/tree.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/media');

/** What ffprobe-static prints for the file, run by hand: the reference the conversion is checked against. */
function referenceReport(name: string): Required<FfprobeReport> {
  const json = execFileSync(
    bundledFfprobePath(),
    ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', path.join(FIXTURES, name)],
    { encoding: 'utf8' },
  );
  return JSON.parse(json) as Required<FfprobeReport>;
}

async function mediaInfoOf(spawner: Spawner, name: string): Promise<XmlObject> {
  return toMediaInfo(await runFfprobe(path.join(FIXTURES, name), { spawner }));
}

function group(info: XmlObject, name: 'Video' | 'Audio' | 'Subtitle'): XmlValue {
  return (info.Stream as XmlObject)[name];
}

function streams(info: XmlObject, name: 'Video' | 'Audio' | 'Subtitle'): XmlObject[] {
  const value = group(info, name);
  expect(value, `${name} is a list of elements`).to.be.an('array');
  return value as XmlObject[];
}

const kbps = (bitRate: string | undefined): string => (Number(bitRate) / 1000).toFixed(6);
const fixed6 = (value: string | undefined): string => Number(value).toFixed(6);

/** Fields every fixture's streams must carry, compared with ffprobe's own values. */
function expectCommonStreamFields(element: XmlObject, raw: FfprobeStream): void {
  expect(element.Index).to.equal(String(raw.index));
  expect(element.CodecName).to.equal(raw.codec_name);
  expect(element.CodecLongName).to.equal(raw.codec_long_name);
  expect(element.CodecTag).to.equal(raw.codec_tag);
  expect(element.CodecTagString).to.equal(raw.codec_tag_string);
  // ffprobe-static 4.0.2 still prints codec_time_base.
  expect(raw.codec_time_base).to.be.a('string');
  expect(element.CodecTimeBase).to.equal(raw.codec_time_base);
  expect(element.Timebase).to.equal(raw.time_base);
  expect(element.Language).to.equal(raw.tags?.language ?? 'und');
  if (raw.bit_rate === undefined) expect(element).not.to.have.property('Bitrate');
  else expect(element.Bitrate).to.equal(kbps(raw.bit_rate));
  if (raw.duration === undefined) expect(element).not.to.have.property('Duration');
  else expect(element.Duration).to.equal(fixed6(raw.duration));
  if (raw.start_time === undefined) expect(element).not.to.have.property('StartTime');
  else expect(element.StartTime).to.equal(fixed6(raw.start_time));
}

function expectVideoFields(element: XmlObject, raw: FfprobeStream): void {
  expectCommonStreamFields(element, raw);
  expect(element.Width).to.equal(String(raw.width));
  expect(element.Height).to.equal(String(raw.height));
  expect(element.Profile).to.equal(raw.profile);
  expect(element.Level).to.equal(String(raw.level));
  expect(element.HasBFrame).to.equal(String(raw.has_b_frames));
  expect(element.RefFrames).to.equal(String(raw.refs));
  expect(element.PixFormat).to.equal(raw.pix_fmt);
  expect(element.Sar).to.equal(raw.sample_aspect_ratio);
  expect(element.Dar).to.equal(raw.display_aspect_ratio);
  const [num, den] = (raw.r_frame_rate ?? '').split('/').map(Number);
  expect(element.Fps).to.equal((num / den).toFixed(6));
  expect(element.ColorRange).to.equal(raw.color_range ?? 'unknown');
  expect(element.ColorTransfer).to.equal(raw.color_transfer ?? 'unknown');
  expect(element.ColorPrimaries).to.equal(raw.color_primaries ?? 'unknown');
  if (raw.nb_frames === undefined) expect(element).not.to.have.property('NumFrames');
  else expect(element.NumFrames).to.equal(String(raw.nb_frames));
  if (raw.field_order === undefined) expect(element).not.to.have.property('FieldOrder');
  else expect(element.FieldOrder).to.equal(raw.field_order);
}

function expectAudioFields(element: XmlObject, raw: FfprobeStream): void {
  expectCommonStreamFields(element, raw);
  expect(element.SampleFmt).to.equal(raw.sample_fmt);
  expect(element.SampleRate).to.equal(String(raw.sample_rate));
  expect(element.Channel).to.equal(String(raw.channels));
  expect(element.ChannelLayout).to.equal(raw.channel_layout);
}

function expectFormatFields(format: XmlObject, raw: Required<FfprobeReport>['format']): void {
  expect(format.NumStream).to.equal(String(raw.nb_streams));
  expect(format.FormatName).to.equal(raw.format_name);
  expect(format.FormatLongName).to.equal(raw.format_long_name);
  expect(format.StartTime).to.equal(fixed6(raw.start_time));
  expect(format.Duration).to.equal(fixed6(raw.duration));
  expect(format.Bitrate).to.equal(kbps(raw.bit_rate));
  expect(format.Size).to.equal(raw.size);
}

function expectSortedKeys(element: XmlObject): void {
  const keys = Object.keys(element);
  expect(keys).to.deep.equal([...keys].sort());
}

describe('toMediaInfo on the fixtures (against ffprobe-static 4.0.2)', () => {
  const spawner = createSpawner();
  after(() => spawner.close());

  it('h264-aac.mp4: H.264 video and AAC audio, every field as ffprobe reports it', async () => {
    const raw = referenceReport('h264-aac.mp4');
    const info = await mediaInfoOf(spawner, 'h264-aac.mp4');
    const format = info.Format as XmlObject;
    expectFormatFields(format, raw.format);
    expect(format).to.include({ NumStream: '2', NumProgram: '0', FormatName: 'mov,mp4,m4a,3gp,3g2,mj2', Size: '53195' });
    expect(format.Bitrate).to.match(/^\d+\.\d{6}$/);

    const [video] = streams(info, 'Video');
    expectVideoFields(video, raw.streams[0]);
    expect(video).to.include({
      Index: '0', CodecName: 'h264', CodecTagString: 'avc1', CodecTag: '0x31637661', Profile: 'High',
      Width: '320', Height: '240', Fps: '25.000000', AvgFps: '25.000000', Duration: '2.000000',
      NumFrames: '50', Language: 'und', Rotation: '0.000000', Sar: '1:1', Dar: '4:3',
      CreationTime: '2024-01-02T03:04:05.000000Z', ColorRange: 'unknown',
    });

    const [audio] = streams(info, 'Audio');
    expectAudioFields(audio, raw.streams[1]);
    expect(audio).to.include({
      Index: '1', CodecName: 'aac', CodecTimeBase: '1/44100', SampleRate: '44100', Channel: '2',
      ChannelLayout: 'stereo', SampleFmt: 'fltp', Language: 'eng',
    });
    expect(group(info, 'Subtitle')).to.equal('');
  });

  it('hevc.mp4: HEVC with colour tags and a 30000/1001 frame rate', async () => {
    const raw = referenceReport('hevc.mp4');
    const info = await mediaInfoOf(spawner, 'hevc.mp4');
    expectFormatFields(info.Format as XmlObject, raw.format);
    const [video] = streams(info, 'Video');
    expectVideoFields(video, raw.streams[0]);
    expect(video).to.include({
      CodecName: 'hevc', CodecTagString: 'hvc1', Profile: 'Main', Fps: '29.970030', AvgFps: '29.970030',
      CodecTimeBase: '1001/30000', ColorRange: 'tv', ColorTransfer: 'bt709', ColorPrimaries: 'bt709',
      FieldOrder: 'progressive',
    });
    expect(group(info, 'Audio')).to.equal('');
    expect(group(info, 'Subtitle')).to.equal('');
  });

  it('audio-only.mp3: one mono MP3 stream, a non-zero start time, empty <Video/> and <Subtitle/>', async () => {
    const raw = referenceReport('audio-only.mp3');
    const info = await mediaInfoOf(spawner, 'audio-only.mp3');
    expectFormatFields(info.Format as XmlObject, raw.format);
    expect(info.Format as XmlObject).to.include({ FormatName: 'mp3', StartTime: '0.025057', NumStream: '1', NumProgram: '0' });
    const [audio] = streams(info, 'Audio');
    expectAudioFields(audio, raw.streams[0]);
    expect(audio).to.include({ CodecName: 'mp3', Channel: '1', ChannelLayout: 'mono', Bitrate: '64.000000', Language: 'und' });
    expect(group(info, 'Video')).to.equal('');
    expect(group(info, 'Subtitle')).to.equal('');
  });

  it('subtitle.mkv: a subtitle stream with its language; absent stream values are left out', async () => {
    const raw = referenceReport('subtitle.mkv');
    const info = await mediaInfoOf(spawner, 'subtitle.mkv');
    expectFormatFields(info.Format as XmlObject, raw.format);
    expect(streams(info, 'Subtitle')).to.deep.equal([{ Index: '1', Language: 'eng' }]);
    const [video] = streams(info, 'Video');
    expectVideoFields(video, raw.streams[0]);
    // Matroska stores no per-stream bitrate or duration; ffprobe omits them and so do we.
    expect(raw.streams[0].bit_rate).to.equal(undefined);
    expect(video).not.to.have.property('Bitrate');
    expect(video).not.to.have.property('Duration');
    expect(video.Language).to.equal('und');
    expect(group(info, 'Audio')).to.equal('');
  });

  it('rotated-phone.mp4: a phone-portrait display matrix is Rotation 90.000000 (clockwise)', async () => {
    const raw = referenceReport('rotated-phone.mp4');
    // What this ffprobe says about the file: the legacy tag (clockwise) and the
    // display matrix (counter-clockwise) describe the same turn.
    expect(raw.streams[0].tags?.rotate).to.equal('90');
    expect(raw.streams[0].side_data_list?.find((sd) => sd.side_data_type === 'Display Matrix')?.rotation).to.equal(-90);
    const [video] = streams(await mediaInfoOf(spawner, 'rotated-phone.mp4'), 'Video');
    expectVideoFields(video, raw.streams[0]);
    expect(video.Rotation).to.equal('90.000000');
    // ffprobe ≥ 5.0 prints the same matrix but no rotate tag: same answer.
    const report = await runFfprobe(path.join(FIXTURES, 'rotated-phone.mp4'), { spawner });
    const withoutTag = (report.streams ?? []).map((stream) => ({
      ...stream,
      tags: Object.fromEntries(Object.entries(stream.tags ?? {}).filter(([name]) => name !== 'rotate')),
    }));
    expect(withoutTag[0].tags).not.to.have.property('rotate');
    const [matrixOnly] = streams(toMediaInfo({ ...report, streams: withoutTag }), 'Video');
    expect(matrixOnly.Rotation).to.equal('90.000000');
    // Width/Height stay the coded size, as ffprobe reports them.
    expect(video).to.include({ Width: '320', Height: '240' });
  });

  it('orders every element alphabetically, as CI\'s callback sample does', async () => {
    const info = await mediaInfoOf(spawner, 'h264-aac.mp4');
    expect(Object.keys(info)).to.deep.equal(['Format', 'Stream']);
    expect(Object.keys(info.Stream as XmlObject)).to.deep.equal(['Audio', 'Subtitle', 'Video']);
    expectSortedKeys(info.Format as XmlObject);
    for (const element of [...streams(info, 'Video'), ...streams(info, 'Audio')]) expectSortedKeys(element);
    // The sample's own Video field order (shared/seeds/002), as a subsequence of ours.
    const sampleOrder = [
      'AvgFps', 'Bitrate', 'CodecLongName', 'CodecName', 'CodecTag', 'CodecTagString', 'CodecTimeBase',
      'ColorPrimaries', 'ColorRange', 'ColorTransfer', 'Duration', 'FieldOrder', 'Fps', 'HasBFrame', 'Height',
      'Index', 'Language', 'Level', 'NumFrames', 'PixFormat', 'Profile', 'RefFrames', 'Rotation', 'StartTime',
      'Timebase', 'Width',
    ];
    const [hevcVideo] = streams(await mediaInfoOf(spawner, 'hevc.mp4'), 'Video');
    expect(Object.keys(hevcVideo).filter((key) => sampleOrder.includes(key))).to.deep.equal(sampleOrder);
  });
});

describe('toMediaInfo on hand-written reports', () => {
  it('gives <Format/>, <Video/>, <Audio/> and <Subtitle/> for an empty report', () => {
    expect(toMediaInfo({})).to.deep.equal({ Format: '', Stream: { Audio: '', Subtitle: '', Video: '' } });
  });

  it('falls back to time_base when codec_time_base is absent (ffprobe ≥ 5.0)', () => {
    const info = toMediaInfo({ streams: [{ index: 0, codec_type: 'audio', time_base: '1/48000' }] });
    const [audio] = (info.Stream as XmlObject).Audio as XmlObject[];
    expect(audio.CodecTimeBase).to.equal('1/48000');
  });

  it('leaves out unknown (0/0) frame rates and defaults language and colour fields', () => {
    const info = toMediaInfo({ streams: [{ index: 3, codec_type: 'video', r_frame_rate: '0/0', avg_frame_rate: '0/0' }] });
    const [video] = (info.Stream as XmlObject).Video as XmlObject[];
    expect(video).to.deep.equal({
      ColorPrimaries: 'unknown', ColorRange: 'unknown', ColorTransfer: 'unknown',
      Index: '3', Language: 'und', Rotation: '0.000000',
    });
  });

  it('lists several streams of a kind in index order, skipping data streams', () => {
    const info = toMediaInfo({
      streams: [
        { index: 2, codec_type: 'audio', tags: { language: 'fra' } },
        { index: 0, codec_type: 'data' },
        { index: 1, codec_type: 'audio', tags: { language: 'eng' } },
      ],
    });
    const audio = (info.Stream as XmlObject).Audio as XmlObject[];
    expect(audio.map((a) => [a.Index, a.Language])).to.deep.equal([['1', 'eng'], ['2', 'fra']]);
    expect(isXmlObject((info.Stream as XmlObject).Video)).to.equal(false);
  });
});

describe('clockwiseRotation', () => {
  const matrix = (rotation: number): FfprobeStream => ({ side_data_list: [{ side_data_type: 'Display Matrix', rotation }] });
  const cases: [string, FfprobeStream, number][] = [
    ['no rotation information', {}, 0],
    ['a phone-portrait matrix as ffprobe ≥ 5.1 reports it (no tag)', matrix(-90), 90],
    ['the opposite matrix', matrix(90), 270],
    ['an upside-down matrix', matrix(180), 180],
    ['an upside-down matrix reported as -180', matrix(-180), 180],
    ['the legacy tag alone', { tags: { rotate: '90' } }, 90],
    ['tag and matrix together, as ffprobe 4.x reports them', { tags: { rotate: '270' }, ...matrix(90) }, 270],
    ['an identity matrix', matrix(0), 0],
  ];
  for (const [what, stream, expected] of cases) {
    it(`is ${expected} for ${what}`, () => {
      expect(clockwiseRotation(stream)).to.equal(expected);
    });
  }
  it('never prints -0.000000', () => {
    const info = toMediaInfo({ streams: [{ codec_type: 'video', ...matrix(0) }] });
    expect(((info.Stream as XmlObject).Video as XmlObject[])[0].Rotation).to.equal('0.000000');
  });
});

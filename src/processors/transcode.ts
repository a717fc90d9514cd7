/**
 * Tag=Transcode (shared/ci-media-tags.md §2, §3): one input, one output
 * (for hls: the playlist and its segments), through ffmpeg.
 *
 * Honoured: Container/Format (mp4, mov, flv, ts, hls with
 * ClipConfig/Duration, mkv, webm, avi, mp3, m4a, aac/adts, flac, wav, gif),
 * Video (Codec H.264/H.265/VP8/VP9/AV1, Width/Height with one side keeping
 * the aspect, LongShortMode, Fps, Bitrate, Crf, Profile, Preset, Gop, Maxrate,
 * Bufsize, Pixfmt, Rotate, Crop, Remove), Audio (Codec aac/mp3/opus/flac/
 * Vorbis/pcm_s16le/amr, Samplerate, Bitrate, Channels, Remove),
 * TimeInterval (Start, Duration), TransConfig (AdjDarMethod, IsCheckReso,
 * IsCheckVideoBitrate, IsCheckAudioBitrate, IsCheckVideoFps with their
 * AdjMethod, DeleteMetadata, HlsEncrypt with hls: the segments AES-128
 * encrypted, the job's key stored beside the playlist, see hls-output.ts;
 * other containers ignore it, as CI's "hls only" says), Subtitle/Remove.
 * Accepted and ignored: TransConfig/IsHdr2Sdr, TranscodeIndex, DashEncrypt
 * with IsEncrypt false, AIGCMetadata; Video/Roi, Interlaced, ColorParam,
 * HlsTsTime, DashSegment, StdExtInfo; Audio's KeepTwoTracks, SwitchTrack,
 * SampleFormat; Operation/FreeTranscode.
 * AudioMix / AudioMixArray (≤ 2 sources, objects of the bucket): MixMode
 * Repeat (looped to the end) or Once, Replace, EffectConfig start fade-in and
 * end fade-out (EnableBgmFade ignored); mixed by `amix`.
 * Watermark (Operation/Watermark[], or the Watermark templates of
 * WatermarkTemplateId[], which win): see watermark.ts.
 * RemoveWatermark{Dx,Dy,Width,Height}: ffmpeg's `delogo` over that box of
 * the input's pixels, before any scaling (not with H.265, as in CI; a box
 * outside the frame fails the job with ffmpeg's reason).
 * Subtitles/Subtitle[]: burned in by the `subtitles` filter, see subtitles.ts.
 * Refused at submit: DigitalWatermark (the schema has no place for it);
 * DashEncrypt/IsEncrypt true (no dash output is produced here, and an
 * encryption request is not to be dropped silently).
 *
 * An absent Video or Audio block keeps that stream with the container's
 * default codec (CI's template doc says an absent block drops the stream, but
 * every SDK example sends both; keeping is the less surprising reading).
 *
 * Result: `MediaInfo` of the output and `MediaResult/OutputFile` with the full
 * key in ObjectName and Md5Info, as seed 002's callback shows.
 */
import path from 'node:path';
import { promises as fs } from 'node:fs';
import type { Config } from '../config.js';
import { inputArgs, runFfmpeg } from '../media/ffmpeg.js';
import { resolveFfmpegPath } from '../media/ffmpeg-capabilities.js';
import { withToolInputs, type ToolInput } from '../media/input-policy.js';
import type { FfprobeReport } from '../media/ffprobe.js';
import type { Spawner } from '../media/spawner.js';
import { isXmlObject, type XmlObject, type XmlValue } from '../xml/tree.js';
import {
  assertFfmpegHas, asSubmitError, child, displayedSize, expandObject, ffmpegFailure, flag, invalid, mediaDuration, number, outputMediaInfo,
  objectKeyOfUrl, probeInput, readOutput, safeKey, storeFiles, text, withInputFile, withLocalFiles, withWorkDir, type OutputTarget, SUBMIT_CHECK_JOB,
} from './media-output.js';
import { parseWatermarks, watermarkFilters, watermarkGraph, watermarkTemplateBodies, type WatermarkSpec, type WatermarkTemplateLookup } from './watermark.js';
import type { Processor, ProcessorContext } from './processor.js';
import { firstSegmentFile, hlsFiles, hlsKeyArgs, parseHlsEncrypt, prepareHlsKey, storeHls, withClearSegment, type HlsEncryption, type HlsKey } from './hls-output.js';
import { parseSubtitles, subtitleConversionArgs, subtitleFilter, type SubtitleSpec } from './subtitles.js';

/** Inputs from this size on are probed before the run, so that progress can be reported (see runTranscode). */
const PROBE_FOR_PROGRESS_BYTES = 8 * 1024 * 1024;

type VideoCodec = 'h.264' | 'h.265' | 'vp8' | 'vp9' | 'av1' | 'gif';
type AudioCodec = 'aac' | 'mp3' | 'opus' | 'flac' | 'vorbis' | 'pcm_s16le' | 'amr';

interface ContainerSpec {
  /** ffmpeg muxer (`-f`). */
  readonly muxer: string;
  readonly ext: string;
  /** Allowed video codecs, the first is the default; empty: audio-only container. */
  readonly video: readonly VideoCodec[];
  /** Allowed audio codecs, the first is the default; empty: no audio (gif). */
  readonly audio: readonly AudioCodec[];
}

/** CI's container → codec table (§2.1), with mkv also taking VP8/VP9/AV1 and opus/flac, which Matroska holds as well. */
const CONTAINERS: Readonly<Record<string, ContainerSpec>> = {
  mp4: { muxer: 'mp4', ext: 'mp4', video: ['h.264', 'h.265', 'av1'], audio: ['aac', 'mp3'] },
  mov: { muxer: 'mov', ext: 'mov', video: ['h.264'], audio: ['aac', 'mp3'] },
  flv: { muxer: 'flv', ext: 'flv', video: ['h.264'], audio: ['aac', 'mp3'] },
  ts: { muxer: 'mpegts', ext: 'ts', video: ['h.264', 'h.265'], audio: ['aac', 'mp3'] },
  avi: { muxer: 'avi', ext: 'avi', video: ['h.264'], audio: ['aac', 'mp3'] },
  hls: { muxer: 'hls', ext: 'm3u8', video: ['h.264', 'h.265'], audio: ['aac', 'mp3'] },
  mkv: { muxer: 'matroska', ext: 'mkv', video: ['h.264', 'h.265', 'vp8', 'vp9', 'av1'], audio: ['aac', 'mp3', 'opus', 'flac', 'vorbis'] },
  webm: { muxer: 'webm', ext: 'webm', video: ['vp8', 'vp9', 'av1'], audio: ['vorbis', 'opus'] },
  mp3: { muxer: 'mp3', ext: 'mp3', video: [], audio: ['mp3'] },
  m4a: { muxer: 'ipod', ext: 'm4a', video: [], audio: ['aac'] },
  aac: { muxer: 'adts', ext: 'aac', video: [], audio: ['aac'] },
  adts: { muxer: 'adts', ext: 'aac', video: [], audio: ['aac'] },
  flac: { muxer: 'flac', ext: 'flac', video: [], audio: ['flac'] },
  wav: { muxer: 'wav', ext: 'wav', video: [], audio: ['pcm_s16le'] },
  amr: { muxer: 'amr', ext: 'amr', video: [], audio: ['amr'] },
  gif: { muxer: 'gif', ext: 'gif', video: ['gif'], audio: [] },
};

/** The Container/Format whose files have this extension (`m3u8`: hls), if one does. */
export function formatOfExtension(extension: string): string | undefined {
  const ext = extension.toLowerCase();
  return Object.keys(CONTAINERS).find((format) => CONTAINERS[format].ext === ext);
}

/** The video and audio codecs a Container/Format holds (CI's names in lower case, the default first). */
export function containerCodecs(format: string): { readonly video: readonly string[]; readonly audio: readonly string[] } | undefined {
  return CONTAINERS[format.toLowerCase()];
}

const VIDEO_ENCODERS: Readonly<Record<VideoCodec, string>> = { 'h.264': 'libx264', 'h.265': 'libx265', vp8: 'libvpx', vp9: 'libvpx-vp9', av1: 'libaom-av1', gif: 'gif' };
const AUDIO_ENCODERS: Readonly<Record<AudioCodec, string>> = { aac: 'aac', mp3: 'libmp3lame', opus: 'libopus', flac: 'flac', vorbis: 'libvorbis', pcm_s16le: 'pcm_s16le', amr: 'libopencore_amrnb' };
const H264_PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow'];
const PIXFMTS = ['yuv420p', 'yuv422p', 'yuv444p', 'yuvj420p', 'yuvj422p', 'yuvj444p', 'yuv420p10le'];

/** What to do when an output value exceeds the source's (TransConfig IsCheck…): 0 use the source's, 1 fail. */
interface Check { readonly on: boolean; readonly fail: boolean }

export interface VideoSpec {
  readonly codec: VideoCodec;
  readonly width?: number;
  readonly height?: number;
  readonly longShort: boolean;
  readonly fps?: number;
  readonly bitrateKbps?: number;
  readonly crf?: number;
  readonly profile?: string;
  readonly preset?: string;
  readonly gop?: number;
  readonly maxrateKbps?: number;
  readonly bufsizeKb?: number;
  readonly pixfmt?: string;
  readonly rotate?: number;
  readonly crop?: string;
}

export interface AudioSpec {
  readonly codec: AudioCodec;
  readonly samplerate?: number;
  readonly bitrateKbps?: number;
  readonly channels?: number;
}

/** A Transcode container, parsed and checked: everything the command line is made from. */
export interface TranscodeSpec {
  readonly format: string;
  readonly container: ContainerSpec;
  /** undefined: no video in the output. */
  readonly video?: VideoSpec;
  readonly audio?: AudioSpec;
  readonly startSec?: number;
  readonly durationSec?: number;
  readonly hlsSegmentSec: number;
  /** TransConfig/HlsEncrypt on an hls output: its segments AES-128 encrypted (hls-output.ts). */
  readonly hlsEncrypt?: HlsEncryption;
  readonly adjDar: 'scale' | 'crop' | 'pad' | 'none';
  readonly checkReso: Check;
  readonly checkVideoBitrate: Check;
  readonly checkAudioBitrate: Check;
  readonly checkFps: Check;
  readonly deleteMetadata: boolean;
  readonly keepSubtitles: boolean;
  /** AudioMix / AudioMixArray: background audio mixed in (or replacing the input's audio). */
  readonly audioMix: readonly AudioMixSpec[];
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], where: string): T | undefined {
  if (value === undefined) return undefined;
  const found = allowed.find((a) => a === value.toLowerCase());
  if (!found) throw invalid(`${where} must be one of ${allowed.join(', ')}, not ${JSON.stringify(value)}.`);
  return found;
}

function check(transConfig: XmlObject, on: string, method: string): Check {
  const enabled = flag(transConfig[on], `TransConfig/${on}`);
  const m = text(transConfig[method]) ?? '0';
  if (m !== '0' && m !== '1') throw invalid(`TransConfig/${method} must be 0 or 1.`);
  return { on: enabled, fail: m === '1' };
}

function evenSide(value: unknown, where: string): number | undefined {
  const n = number(value as string, where, 128, 4096, { integer: true });
  if (n !== undefined && n % 2 !== 0) throw invalid(`${where} must be even, not ${n}.`);
  return n;
}

/** Parses `<Transcode>` (values as CI documents them); throws InvalidArgument naming the element. */
/** One `AudioMix`: an object of the bucket mixed into the output's audio. */
export interface AudioMixSpec {
  readonly key: string;
  /** Repeat (default): the source loops to the end; Once: it plays once. */
  readonly repeat: boolean;
  /** true: the input's own audio is dropped. */
  readonly replace: boolean;
  readonly fadeInSec?: number;
  readonly fadeOutSec?: number;
}

function parseAudioMix(transcode: XmlObject, bucket: string | undefined): AudioMixSpec[] {
  const raw = [transcode.AudioMix, transcode.AudioMixArray].flatMap((v) => (v === undefined || v === '' ? [] : Array.isArray(v) ? v : [v]));
  if (raw.length > 2) throw invalid('AudioMix and AudioMixArray may name at most 2 sources.');
  return raw.map((item) => {
    if (!isXmlObject(item)) throw invalid('AudioMix must contain AudioSource.');
    const url = text(item.AudioSource);
    if (url === undefined) throw invalid('AudioMix/AudioSource is required.');
    const mode = (text(item.MixMode) ?? 'Repeat').toLowerCase();
    if (mode !== 'repeat' && mode !== 'once') throw invalid('AudioMix/MixMode must be Repeat or Once.');
    const effect = child(item, 'EffectConfig');
    const fadeIn = flag(effect.EnableStartFadein, 'AudioMix/EffectConfig/EnableStartFadein');
    const fadeOut = flag(effect.EnableEndFadeout, 'AudioMix/EffectConfig/EnableEndFadeout');
    return {
      key: objectKeyOfUrl(url, bucket, 'AudioMix/AudioSource'),
      repeat: mode === 'repeat',
      replace: flag(item.Replace, 'AudioMix/Replace'),
      fadeInSec: fadeIn ? number(effect.StartFadeinTime, 'AudioMix/EffectConfig/StartFadeinTime', 0, 1e6, { openMin: true }) ?? 1 : undefined,
      fadeOutSec: fadeOut ? number(effect.EndFadeoutTime, 'AudioMix/EffectConfig/EndFadeoutTime', 0, 1e6, { openMin: true }) ?? 1 : undefined,
    };
  });
}

/** Parses `<Transcode>` (values as CI documents them); `bucket` holds AudioMix sources to the job's bucket (undefined: at submit). Throws InvalidArgument naming the element. */
export function parseTranscode(transcode: XmlObject, bucket?: string): TranscodeSpec {
  const containerXml = child(transcode, 'Container');
  const formatText = text(containerXml.Format) ?? 'mp4';
  const format = formatText.toLowerCase();
  const container = CONTAINERS[format];
  if (!container) throw invalid(`Container/Format must be one of ${Object.keys(CONTAINERS).join(', ')}, not ${JSON.stringify(formatText)}.`);
  const videoXml = child(transcode, 'Video');
  const audioXml = child(transcode, 'Audio');

  let video: VideoSpec | undefined;
  if (container.video.length > 0 && !flag(videoXml.Remove, 'Video/Remove')) {
    const codecText = text(videoXml.Codec);
    const codec = codecText === undefined ? container.video[0] : oneOf(codecText, ['h.264', 'h.265', 'vp8', 'vp9', 'av1', 'gif'] as const, 'Video/Codec')!;
    if (!container.video.includes(codec)) throw invalid(`Video/Codec ${codecText} cannot go into Container/Format ${formatText} (allowed: ${container.video.join(', ')}).`);
    const bitrate = text(videoXml.Bitrate)?.toLowerCase() === 'auto' ? undefined : number(videoXml.Bitrate, 'Video/Bitrate', 10, 50000);
    const preset = text(videoXml.Preset);
    if (preset !== undefined) {
      if (codec === 'h.264') oneOf(preset, H264_PRESETS, 'Video/Preset');
      else if (codec === 'vp8') oneOf(preset, ['good', 'realtime'], 'Video/Preset');
      else if (codec === 'av1') number(preset, 'Video/Preset', 0, 8, { integer: true });
    }
    const profile = text(videoXml.Profile);
    if (profile !== undefined) oneOf(profile, ['baseline', 'main', 'high', 'auto'], 'Video/Profile');
    const pixfmt = text(videoXml.Pixfmt);
    if (pixfmt !== undefined && pixfmt.toLowerCase() !== 'auto') oneOf(pixfmt, PIXFMTS, 'Video/Pixfmt');
    const crop = text(videoXml.Crop);
    if (crop !== undefined && !/^\d+:\d+:\d+:\d+$/.test(crop)) throw invalid('Video/Crop must be width:height:left:top in pixels.');
    video = {
      codec,
      width: evenSide(videoXml.Width, 'Video/Width'),
      height: evenSide(videoXml.Height, 'Video/Height'),
      longShort: flag(videoXml.LongShortMode, 'Video/LongShortMode'),
      fps: number(videoXml.Fps, 'Video/Fps', 0, 60, { openMin: true }),
      bitrateKbps: bitrate,
      crf: number(videoXml.Crf, 'Video/Crf', 0, 51, { openMin: true }),
      profile: codec === 'h.264' && profile && profile.toLowerCase() !== 'auto' && pixfmt?.toLowerCase() !== 'auto' ? profile.toLowerCase() : undefined,
      preset: preset?.toLowerCase(),
      gop: number(videoXml.Gop, 'Video/Gop', 1, 100000, { integer: true }),
      maxrateKbps: number(videoXml.Maxrate, 'Video/Maxrate', 10, 50000),
      bufsizeKb: number(videoXml.Bufsize, 'Video/Bufsize', 1000, 128000),
      pixfmt: pixfmt?.toLowerCase() === 'auto' ? undefined : pixfmt?.toLowerCase(),
      rotate: number(videoXml.Rotate, 'Video/Rotate', 0, 359.999),
      crop,
    };
  }

  let audio: AudioSpec | undefined;
  if (container.audio.length > 0 && !flag(audioXml.Remove, 'Audio/Remove')) {
    const codecText = text(audioXml.Codec);
    const codec = codecText === undefined ? container.audio[0] : oneOf(codecText, ['aac', 'mp3', 'opus', 'flac', 'vorbis', 'pcm_s16le', 'amr'] as const, 'Audio/Codec')!;
    if (!container.audio.includes(codec)) throw invalid(`Audio/Codec ${codecText} cannot go into Container/Format ${formatText} (allowed: ${container.audio.join(', ')}).`);
    const samplerate = number(audioXml.Samplerate, 'Audio/Samplerate', 8000, 96000, { integer: true });
    if (samplerate !== undefined && ![8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000].includes(samplerate)) {
      throw invalid(`Audio/Samplerate ${samplerate} is not one of CI's sample rates.`);
    }
    if (codec === 'opus' && samplerate !== undefined && ![8000, 16000, 24000, 48000].includes(samplerate)) throw invalid('Audio/Samplerate must be 8000, 16000, 24000 or 48000 for opus.');
    const channels = number(audioXml.Channels, 'Audio/Channels', 1, 8, { integer: true });
    if (channels !== undefined && ![1, 2, 4, 5, 6, 8].includes(channels)) throw invalid(`Audio/Channels ${channels} is not supported.`);
    audio = { codec, samplerate, bitrateKbps: number(audioXml.Bitrate, 'Audio/Bitrate', 8, 1000), channels };
  }
  if (!video && !audio) throw invalid('Transcode leaves no stream to write: Video and Audio are both removed.');

  const time = child(transcode, 'TimeInterval');
  const transConfig = child(transcode, 'TransConfig');
  const adj = (text(transConfig.AdjDarMethod) ?? 'none').toLowerCase();
  if (!['scale', 'rescale', 'crop', 'pad', 'none'].includes(adj)) throw invalid('TransConfig/AdjDarMethod must be scale, crop, pad or none.');
  const hlsSegmentSec = number(child(containerXml, 'ClipConfig').Duration, 'Container/ClipConfig/Duration', 1, 3600) ?? 5;
  const hlsEncrypt = parseHlsEncrypt(child(transConfig, 'HlsEncrypt'), 'TransConfig/HlsEncrypt', container.muxer === 'hls');
  // Without a dash output there is nothing to encrypt, but a request for encryption is refused rather than ignored.
  if (flag(child(transConfig, 'DashEncrypt').IsEncrypt, 'TransConfig/DashEncrypt/IsEncrypt')) {
    throw invalid('TransConfig/DashEncrypt/IsEncrypt true asks for encrypted DASH, which this service does not produce (no dash Container/Format); use hls with HlsEncrypt, or leave it false.');
  }
  return {
    format,
    container,
    video,
    audio,
    startSec: number(time.Start, 'TimeInterval/Start', 0, 1e7),
    durationSec: number(time.Duration, 'TimeInterval/Duration', 0, 1e7, { openMin: true }),
    hlsSegmentSec,
    hlsEncrypt,
    adjDar: adj === 'rescale' ? 'scale' : (adj as TranscodeSpec['adjDar']),
    checkReso: check(transConfig, 'IsCheckReso', 'ResoAdjMethod'),
    checkVideoBitrate: check(transConfig, 'IsCheckVideoBitrate', 'VideoBitrateAdjMethod'),
    checkAudioBitrate: check(transConfig, 'IsCheckAudioBitrate', 'AudioBitrateAdjMethod'),
    checkFps: check(transConfig, 'IsCheckVideoFps', 'VideoFpsAdjMethod'),
    deleteMetadata: flag(transConfig.DeleteMetadata, 'TransConfig/DeleteMetadata'),
    keepSubtitles: format === 'mkv' && !flag(child(transcode, 'Subtitle').Remove, 'Subtitle/Remove'),
    audioMix: audio ? parseAudioMix(transcode, bucket) : [],
  };
}

/** The source values the TransConfig checks compare with (from an ffprobe report). */
export interface SourceInfo {
  readonly width?: number;
  readonly height?: number;
  readonly fps?: number;
  readonly videoKbps?: number;
  readonly audioKbps?: number;
  readonly durationSec?: number;
}

export function sourceInfo(report: FfprobeReport): SourceInfo {
  const v = report.streams?.find((s) => s.codec_type === 'video');
  const a = report.streams?.find((s) => s.codec_type === 'audio');
  const num = (x: unknown) => (x === undefined || !Number.isFinite(Number(x)) || Number(x) <= 0 ? undefined : Number(x));
  const [fn, fd] = (v?.avg_frame_rate ?? '').split('/').map(Number);
  return {
    ...displayedSize(v),
    fps: fd ? num(fn / fd) : undefined,
    videoKbps: num(v?.bit_rate) !== undefined ? Number(v!.bit_rate) / 1000 : undefined,
    audioKbps: num(a?.bit_rate) !== undefined ? Number(a!.bit_rate) / 1000 : undefined,
    durationSec: mediaDuration(report),
  };
}

/** Applies a TransConfig check: the source's value when the output's exceeds it (method 0), a failure (method 1). */
function capped(value: number | undefined, source: number | undefined, rule: Check, what: string): number | undefined {
  if (value === undefined || source === undefined || !rule.on || value <= source) return value;
  if (rule.fail) throw invalid(`${what} ${value} exceeds the input's ${Math.round(source * 1000) / 1000} (TransConfig check with AdjMethod 1).`);
  return source;
}

/** The encoders and filters a spec needs from the binary. */
export function transcodeNeeds(spec: TranscodeSpec): { encoders: string[]; filters: string[] } {
  const encoders = [...(spec.video ? [VIDEO_ENCODERS[spec.video.codec]] : []), ...(spec.audio ? [AUDIO_ENCODERS[spec.audio.codec]] : [])];
  const filters: string[] = [];
  if (spec.video?.width || spec.video?.height) filters.push('scale');
  if (spec.video?.crop) filters.push('crop');
  if (spec.video?.width && spec.video.height && spec.adjDar === 'pad') filters.push('pad');
  if (spec.video?.width && spec.video.height && spec.adjDar === 'crop') filters.push('crop');
  if (spec.video?.rotate) filters.push(spec.video.rotate % 90 === 0 ? 'transpose' : 'rotate');
  if (spec.audioMix.length) filters.push('amix', 'afade');
  return { encoders, filters: [...new Set(filters)] };
}

/** The `-vf` chain: crop, then size (CI's rules), then rotation. */
function videoFilters(video: VideoSpec, spec: TranscodeSpec, source: SourceInfo): string[] {
  const filters: string[] = [];
  if (video.crop) {
    const [w, h, x, y] = video.crop.split(':');
    filters.push(`crop=${w}:${h}:${x}:${y}`);
  }
  let width = video.width;
  let height = video.height;
  if (spec.checkReso.on && source.width && source.height && ((width ?? 0) > source.width || (height ?? 0) > source.height)) {
    if (spec.checkReso.fail) throw invalid(`Video/Width×Height exceeds the input's ${source.width}x${source.height} (TransConfig/IsCheckReso with ResoAdjMethod 1).`);
    width = undefined;
    height = undefined;
  }
  if (width || height) {
    if (video.longShort) {
      // Width is the long edge and Height the short one, whichever way the picture stands.
      const long = width ?? -2;
      const short = height ?? -2;
      filters.push(`scale=w='if(gte(iw,ih),${long},${short})':h='if(gte(iw,ih),${short},${long})'`);
    } else if (width && height) {
      if (spec.adjDar === 'pad') filters.push(`scale=${width}:${height}:force_original_aspect_ratio=decrease`, `pad=${width}:${height}:(ow-iw)/2:(oh-ih)/2`);
      else if (spec.adjDar === 'crop') filters.push(`scale=${width}:${height}:force_original_aspect_ratio=increase`, `crop=${width}:${height}`);
      else filters.push(`scale=${width}:${height}`);
    } else {
      // One side given: the other keeps the aspect, rounded to an even number (-2), as CI does.
      filters.push(`scale=${width ?? -2}:${height ?? -2}`);
    }
    filters.push('setsar=1');
  }
  if (video.rotate) {
    const r = video.rotate;
    if (r === 90) filters.push('transpose=clock');
    else if (r === 180) filters.push('transpose=clock,transpose=clock');
    else if (r === 270) filters.push('transpose=cclock');
    else filters.push(`rotate=${r}*PI/180`);
  }
  return filters;
}

/**
 * The ffmpeg arguments (after the global ones) for a parsed Transcode:
 * pure, so it is unit-tested as a list. `segmentPattern` is the local name of
 * hls segments (`…/out-%d.ts`), beside the playlist `output`; `hlsKeyInfo` the
 * key info file of an encrypted hls output (hls-output.ts).
 */
export function buildTranscodeArgs(
  spec: TranscodeSpec,
  io: { input: ToolInput; output: string; segmentPattern?: string; hlsKeyInfo?: string; extra?: ExtraFilters; watermarkInputs?: readonly ToolInput[]; audioMixInputs?: readonly ToolInput[]; videoGraphInputs?: readonly ToolInput[] },
  source: SourceInfo = {},
): string[] {
  const args = inputArgs(io.input, spec.startSec ? ['-ss', String(spec.startSec)] : []);
  const { video, audio } = spec;
  const marks = video ? io.extra?.watermarks ?? [] : [];
  const mixes = audio ? spec.audioMix : [];
  // Watermark images are inputs 1, 2, … after the job's input, then the AudioMix sources.
  for (const image of io.watermarkInputs ?? []) args.push(...inputArgs(image));
  const firstMix = 1 + (io.watermarkInputs?.length ?? 0);
  (io.audioMixInputs ?? []).forEach((mix, i) => args.push(...inputArgs(mix, mixes[i]?.repeat ? ['-stream_loop', '-1'] : [])));
  // The video graph's objects come last, so the watermark images and AudioMix sources keep the input numbers their graphs use.
  const graph = video ? io.extra?.videoGraph : undefined;
  const firstGraphInput = firstMix + (io.audioMixInputs?.length ?? 0);
  if (graph) for (const input of io.videoGraphInputs ?? []) args.push(...inputArgs(input, ['-stream_loop', '-1']));
  const complex: string[] = [];
  const maps: string[] = [];
  if (video) {
    const filters = [...(io.extra?.videoFirst ?? []), ...videoFilters(video, spec, source), ...(io.extra?.video ?? [])];
    if (marks.length || graph) {
      complex.push(`[0:v:0]${filters.length ? filters.join(',') : 'null'}[${graph ? 'pre' : 'base'}]`);
      if (graph) complex.push(...graph.build('pre', marks.length ? 'base' : 'vout', firstGraphInput));
      complex.push(...watermarkGraph(marks, 1));
      maps.push('-map', '[vout]');
    } else {
      maps.push('-map', '0:v:0?');
      if (filters.length) maps.push('-vf', filters.join(','));
    }
  }
  if (audio && mixes.length) {
    complex.push(...audioMixGraph(mixes, firstMix, io.extra?.audio ?? [], source, spec));
    maps.push('-map', '[aout]');
    // A Repeat source never ends by itself: the output ends with the input's video (or audio).
    if (mixes.some((m) => m.repeat)) maps.push('-shortest');
  } else if (audio) {
    maps.push('-map', '0:a:0?');
    if (io.extra?.audio?.length) maps.push('-af', io.extra.audio.join(','));
  }
  if (complex.length) args.push('-filter_complex', complex.join(';'));
  args.push(...maps);
  if (spec.keepSubtitles) args.push('-map', '0:s?', '-c:s', 'copy');
  if (spec.durationSec) args.push('-t', String(spec.durationSec));
  args.push(...encodeArgs(spec, io, source));
  return args;
}

/**
 * The audio part of the filter graph for AudioMix: each source (faded in and
 * out as EffectConfig asks; the fade-out needs the output's length, so it is
 * applied only when that is known) mixed with the input's audio by `amix`
 * (duration of the first input), or alone when a source has Replace. Ends in `[aout]`.
 */
export function audioMixGraph(mixes: readonly AudioMixSpec[], firstInput: number, mainFilters: readonly string[], source: SourceInfo, spec: TranscodeSpec, main = '[0:a:0]'): string[] {
  const graph: string[] = [];
  const labels: string[] = [];
  const replace = mixes.some((m) => m.replace);
  if (!replace) {
    graph.push(`${main}${mainFilters.length ? mainFilters.join(',') : 'anull'}[amain]`);
    labels.push('[amain]');
  }
  const length = Math.min(spec.durationSec ?? Infinity, (source.durationSec ?? Infinity) - (spec.startSec ?? 0));
  mixes.forEach((mix, i) => {
    const chain = [
      ...(mix.fadeInSec ? [`afade=t=in:st=0:d=${mix.fadeInSec}`] : []),
      ...(mix.fadeOutSec && Number.isFinite(length) ? [`afade=t=out:st=${Math.max(0, length - mix.fadeOutSec)}:d=${mix.fadeOutSec}`] : []),
    ];
    graph.push(`[${firstInput + i}:a:0]${chain.length ? chain.join(',') : 'anull'}[amix${i}]`);
    labels.push(`[amix${i}]`);
  });
  graph.push(labels.length === 1 ? `${labels[0]}anull[aout]` : `${labels.join('')}amix=inputs=${labels.length}:duration=first:dropout_transition=0[aout]`);
  return graph;
}

/**
 * The output half of a Transcode command: encoders and their settings, the
 * muxer and the output file. Concat puts it after its own inputs and filter graph.
 */
export function encodeArgs(spec: TranscodeSpec, io: { output: string; segmentPattern?: string; hlsKeyInfo?: string }, source: SourceInfo = {}): string[] {
  const args: string[] = [];
  const { video, audio } = spec;
  if (video) {
    args.push('-c:v', VIDEO_ENCODERS[video.codec]);
    const fps = capped(video.fps, source.fps, spec.checkFps, 'Video/Fps');
    if (fps) args.push('-r', String(fps));
    const bitrate = capped(video.bitrateKbps, source.videoKbps, spec.checkVideoBitrate, 'Video/Bitrate');
    switch (video.codec) {
      case 'h.264':
      case 'h.265':
        // Crf wins over Bitrate; neither: CI's default Crf 25.
        if (video.crf !== undefined || bitrate === undefined) args.push('-crf', String(video.crf ?? 25));
        else args.push('-b:v', `${bitrate}k`);
        if (video.codec === 'h.264') args.push('-preset', video.preset ?? 'medium');
        if (video.profile) args.push('-profile:v', video.profile);
        args.push('-pix_fmt', video.pixfmt ?? 'yuv420p');
        if (video.codec === 'h.265') args.push('-x265-params', 'log-level=error');
        break;
      case 'vp8':
      case 'vp9':
        // libvpx's constant quality needs a bitrate ceiling (VP8) or 0 (VP9); Crf maps onto its 4–63 scale as is.
        if (video.crf !== undefined || bitrate === undefined) args.push('-crf', String(Math.max(4, Math.round(video.crf ?? 25))), '-b:v', video.codec === 'vp9' ? '0' : `${bitrate ?? 2000}k`);
        else args.push('-b:v', `${bitrate}k`);
        if (video.codec === 'vp8') args.push('-deadline', video.preset ?? 'good');
        args.push('-pix_fmt', video.pixfmt ?? 'yuv420p');
        break;
      case 'av1':
        args.push('-strict', 'experimental', '-cpu-used', video.preset ?? '5', '-row-mt', '1');
        if (video.crf !== undefined || bitrate === undefined) args.push('-crf', String(Math.round(video.crf ?? 25)), '-b:v', '0');
        else args.push('-b:v', `${bitrate}k`);
        args.push('-pix_fmt', video.pixfmt ?? 'yuv420p');
        break;
      case 'gif':
        break;
    }
    if (video.gop) args.push('-g', String(video.gop));
    if (video.maxrateKbps) args.push('-maxrate', `${video.maxrateKbps}k`);
    if (video.bufsizeKb) args.push('-bufsize', `${video.bufsizeKb}k`);
  } else {
    args.push('-vn');
  }
  if (audio) {
    args.push('-c:a', AUDIO_ENCODERS[audio.codec]);
    if (audio.samplerate) args.push('-ar', String(audio.samplerate));
    else if (audio.codec === 'opus') args.push('-ar', '48000');
    else if (audio.codec === 'amr') args.push('-ar', '8000');
    const bitrate = capped(audio.bitrateKbps, source.audioKbps, spec.checkAudioBitrate, 'Audio/Bitrate');
    if (bitrate) args.push('-b:a', `${bitrate}k`);
    if (audio.channels) args.push('-ac', String(audio.channels));
    else if (audio.codec === 'amr') args.push('-ac', '1');
  } else {
    args.push('-an');
  }
  if (!spec.keepSubtitles) args.push('-sn');
  args.push('-dn');
  if (spec.deleteMetadata) args.push('-map_metadata', '-1');
  if (spec.container.muxer === 'mp4' || spec.container.muxer === 'ipod' || spec.container.muxer === 'mov') args.push('-movflags', '+faststart');
  if (spec.container.muxer === 'hls') {
    // The hls muxer cuts only at key frames: force one at every segment boundary.
    if (video) args.push('-force_key_frames', `expr:gte(t,n_forced*${spec.hlsSegmentSec})`);
    args.push('-hls_time', String(spec.hlsSegmentSec), '-hls_list_size', '0', '-hls_playlist_type', 'vod');
    if (io.segmentPattern) args.push('-hls_segment_filename', io.segmentPattern);
    args.push(...hlsKeyArgs(io.hlsKeyInfo));
  }
  args.push('-f', spec.container.muxer, io.output);
  return args;
}

/** The Operation's Transcode container: the inline one (TemplateId resolved into it by the worker). */
function transcodeOf(operation: XmlObject, bucket?: string): TranscodeSpec {
  const container = operation.Transcode;
  if (!isXmlObject(container) && container !== '') throw invalid('Operation/Transcode (or a TemplateId) is required.');
  return parseTranscode(isXmlObject(container) ? container : {}, bucket);
}

/** Submit-time checks of a Transcode Operation (with an inline container): 400 InvalidArgument on what would fail. */
export function checkTranscodeOperation(operation: XmlObject, config: Config, where: string, bucket: string): void {
  try {
    // Objects named by URL (marks, subtitles, AudioMix) are held to the job's bucket now, as the run holds them.
    const watermarks = parseWatermarks(operation.Watermark, bucket);
    if (operation.Transcode === undefined) return;
    const spec = transcodeOf(operation, bucket);
    if (watermarks.length && !spec.video) throw invalid('Watermark needs a Transcode that keeps the video.');
    const delogo = removeWatermarkFilter(operation.RemoveWatermark, spec) ? ['delogo'] : [];
    const subtitles = parseSubtitles(operation.Subtitles, bucket);
    if (subtitles.length && !spec.video) throw invalid('Subtitles need a Transcode that keeps the video.');
    const needs = transcodeNeeds(spec);
    assertFfmpegHas(config.ffmpegPath, {
      encoders: [...needs.encoders, ...(subtitles.length ? ['ass'] : [])],
      filters: [...needs.filters, ...watermarkFilters(watermarks), ...delogo, ...(subtitles.length ? ['subtitles'] : [])],
    });
    readOutput(operation, SUBMIT_CHECK_JOB, false);
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

/**
 * Submit-time checks of `WatermarkTemplateId`: each names a Watermark template
 * of the bucket whose marks parse and can be drawn by the binary (400
 * InvalidArgument otherwise). `find` looks a template up in the submit's transaction.
 */
export async function checkWatermarkTemplates(operation: XmlObject, find: WatermarkTemplateLookup, config: Config, where: string, bucket: string): Promise<void> {
  try {
    const bodies = await watermarkTemplateBodies(operation.WatermarkTemplateId, find);
    if (!bodies) return;
    const marks = parseWatermarks(bodies, bucket);
    assertFfmpegHas(config.ffmpegPath, { filters: watermarkFilters(marks) });
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export function createTranscodeProcessor(spawner: Spawner): Processor {
  return { tag: 'Transcode', slotsItsTool: true, run: (ctx) => runTranscode(ctx, spawner) };
}

async function runTranscode(ctx: ProcessorContext, spawner: Spawner): Promise<XmlObject> {
  const spec = transcodeOf(ctx.job.operation, ctx.job.bucket);
  const watermarks = parseWatermarks(ctx.job.operation.Watermark, ctx.job.bucket);
  if (watermarks.length && !spec.video) throw invalid('Watermark needs a Transcode that keeps the video.');
  const delogo = removeWatermarkFilter(ctx.job.operation.RemoveWatermark, spec);
  const subtitles = parseSubtitles(ctx.job.operation.Subtitles, ctx.job.bucket);
  if (subtitles.length && !spec.video) throw invalid('Subtitles need a Transcode that keeps the video.');
  return runTranscodeSpec(ctx, spawner, spec, { watermarks, videoFirst: delogo ? [delogo] : [], subtitles });
}

/**
 * `Operation/RemoveWatermark{Dx,Dy,Width,Height}` (each 1–4096 px, all
 * required, ci-media-tags.md §3) as a `delogo` filter over that box of the
 * input's frame; undefined when absent. CI refuses it for H.265 output, and so
 * does this.
 */
export function removeWatermarkFilter(value: XmlValue | undefined, spec: TranscodeSpec): string | undefined {
  if (value === undefined) return undefined;
  const box = isXmlObject(value) ? value : {};
  const [x, y, w, h] = (['Dx', 'Dy', 'Width', 'Height'] as const).map((name) => {
    const n = number(box[name], `RemoveWatermark/${name}`, 1, 4096, { integer: true });
    if (n === undefined) throw invalid(`RemoveWatermark/${name} is required.`);
    return n;
  });
  if (!spec.video) throw invalid('RemoveWatermark needs a Transcode that keeps the video.');
  if (spec.video.codec === 'h.265') throw invalid('RemoveWatermark cannot be used with Video/Codec H.265.');
  return `delogo=x=${x}:y=${y}:w=${w}:h=${h}`;
}

/** Filters other Tags add to a Transcode: VideoProcess's colour and sharpening, NoiseReduction's denoising. */
export interface ExtraFilters {
  /** Put before the `-vf` chain, in the input's pixels (RemoveWatermark's delogo). */
  readonly videoFirst?: readonly string[];
  /** Appended to the `-vf` chain. */
  readonly video?: readonly string[];
  /** The `-af` chain. */
  readonly audio?: readonly string[];
  /** Drawn last, in order (image marks need `watermarkInputs`). */
  readonly watermarks?: readonly WatermarkSpec[];
  /** Burned in after the `-vf` chain, before the watermarks (runTranscodeSpec converts each object to ASS first). */
  readonly subtitles?: readonly SubtitleSpec[];
  /** A graph of several streams after the `-vf` chain, before the watermarks (SegmentVideoBody's keying and background). */
  readonly videoGraph?: VideoGraph;
}

/**
 * A part of the `-filter_complex` graph that turns `[from]` (the video after
 * its `-vf` chain) into `[to]`, reading objects of the job's bucket as further
 * inputs: `[n:v]` from `firstInput` on, in the order of `inputs`.
 */
export interface VideoGraph {
  /** Each object is read as the input policy allows and looped (`-stream_loop -1`), so that it lasts as long as the input; the graph ends it. */
  readonly inputs: ReadonlyArray<{ readonly key: string; readonly where: string }>;
  build(from: string, to: string, firstInput: number): string[];
}

/** A Transcode run of `spec` (with `extra` filters) on the job's input into its Output: Transcode, VideoProcess and NoiseReduction share it. */
export async function runTranscodeSpec(ctx: ProcessorContext, spawner: Spawner, spec: TranscodeSpec, extra: ExtraFilters = {}): Promise<XmlObject> {
  const { job, signal } = ctx;
  const target = readOutput(job.operation, job, false);
  const key = safeKey(expandObject(target.object, { inputObject: job.inputObject, extension: spec.container.ext, jobId: job.jobId }));
  signal.throwIfAborted();
  ctx.setProgress(0);
  const imageKeys = (extra.watermarks ?? []).flatMap((mark) => (mark.image ? [safeKey(mark.image.key, 'Watermark/Image/Url')] : []));
  const mixKeys = (spec.audio ? spec.audioMix : []).map((mix) => safeKey(mix.key, 'AudioMix/AudioSource'));
  const subtitles = spec.video ? extra.subtitles ?? [] : [];
  const subtitleKeys = subtitles.map((sub) => safeKey(sub.key, 'Subtitles/Subtitle/Url'));
  const graphKeys = (spec.video ? extra.videoGraph?.inputs ?? [] : []).map((input) => safeKey(input.key, input.where));
  return withInputFile(ctx, (input) => withLocalFiles(ctx, [...imageKeys, ...mixKeys, ...subtitleKeys, ...graphKeys], (others) => withWorkDir(ctx, async (dir) => {
    const images = others.slice(0, imageKeys.length);
    const mixFiles = others.slice(imageKeys.length, imageKeys.length + mixKeys.length);
    const subtitleFiles = others.slice(imageKeys.length + mixKeys.length, imageKeys.length + mixKeys.length + subtitleKeys.length);
    const graphFiles = others.slice(imageKeys.length + mixKeys.length + subtitleKeys.length);
    const assFiles = subtitleFiles.map((_, i) => path.join(dir, `sub-${i}.ass`));
    const runExtra: ExtraFilters = subtitles.length ? { ...extra, video: [...(extra.video ?? []), ...subtitles.map((sub, i) => subtitleFilter(sub, assFiles[i]))] } : extra;
    const base = path.posix.basename(key).replace(/\.[^.]*$/, '') || 'out';
    const output = path.join(dir, spec.container.muxer === 'hls' ? `${base}.m3u8` : `out.${spec.container.ext}`);
    const segmentPattern = spec.container.muxer === 'hls' ? path.join(dir, `${base}-%d.ts`) : undefined;
    const hlsKey = spec.hlsEncrypt ? await prepareHlsKey(dir, base, spec.hlsEncrypt) : undefined;
    // The input is probed first only when something needs its values: a TransConfig check, or
    // progress worth reporting (a file large enough to take more than a few seconds). A probe costs
    // ~20 ms of CPU, a tenth of a small transcode on a busy machine; without it, ffmpeg's own
    // failure says what is wrong with the input. It runs before the tool slot is taken, so a job
    // waiting for a slot reads its input while the others' ffmpeg runs.
    const needsSource = spec.checkReso.on || spec.checkFps.on || spec.checkVideoBitrate.on || spec.checkAudioBitrate.on || spec.audioMix.some((m) => m.fadeOutSec)
      || (await fs.stat(input)).size >= PROBE_FOR_PROGRESS_BYTES;
    const source = needsSource ? sourceInfo(await probeInput(ctx, spawner, input)) : {};
    if (spec.startSec !== undefined && source.durationSec !== undefined && spec.startSec >= source.durationSec) {
      throw invalid(`TimeInterval/Start ${spec.startSec} is past the end of the input (${source.durationSec.toFixed(3)} s).`);
    }
    const length = Math.min(spec.durationSec ?? Infinity, (source.durationSec ?? Infinity) - (spec.startSec ?? 0));
    await withToolInputs([input, ...images, ...mixFiles, ...subtitleFiles, ...graphFiles], ([tool, ...more]) => {
      const watermarkInputs = more.slice(0, images.length);
      const audioMixInputs = more.slice(images.length, images.length + mixFiles.length);
      const subtitleInputs = more.slice(images.length + mixFiles.length, images.length + mixFiles.length + subtitleFiles.length);
      const videoGraphInputs = more.slice(images.length + mixFiles.length + subtitleFiles.length);
      const args = buildTranscodeArgs(spec, { input: tool, output, segmentPattern, hlsKeyInfo: hlsKey?.infoFile, extra: runExtra, watermarkInputs, audioMixInputs, videoGraphInputs }, source);
      const otherKeys = [...imageKeys, ...mixKeys, ...subtitleKeys, ...graphKeys];
      const replacements = [...inputReplacements(tool, job.inputObject, dir), ...more.flatMap((w, i) => inputReplacements(w, otherKeys[i], dir))];
      return ctx.withToolSlot(async () => {
        // Each subtitle object read as the input policy allows, into an ASS file of ours for the subtitles filter.
        for (const [i, sub] of subtitleInputs.entries()) {
          await runTranscodeFfmpeg(ctx, spawner, subtitleConversionArgs(inputArgs(sub), assFiles[i]), dir, undefined, replacements);
        }
        await runTranscodeFfmpeg(ctx, spawner, args, dir, Number.isFinite(length) && length > 0 ? length : undefined, replacements);
      });
    });
    ctx.setProgress(92);
    const hls = segmentPattern ? await hlsFiles(dir, base, key) : undefined;
    const mediaInfo = hls ? await hlsMediaInfo(ctx, spawner, dir, output, firstSegmentFile(hls), hlsKey) : await outputMediaInfo(ctx, spawner, output);
    if (!isXmlObject(mediaInfo.Stream) || (mediaInfo.Stream.Video === '' && mediaInfo.Stream.Audio === '')) {
      // ffmpeg wrote a file without a single frame: TimeInterval/Start lies past the input's end.
      throw invalid('The output holds no audio or video: TimeInterval/Start is past the end of the input.');
    }
    const stored = hls ? await storeHls(ctx, target.bucket, hls, hlsKey) : await storeFiles(ctx, target.bucket, [{ key, file: output }]);
    ctx.setProgress(100);
    return { MediaInfo: mediaInfo, MediaResult: mediaResult(target, stored) };
  })));
}

/**
 * MediaInfo of an hls output: ffprobe reads no playlist (input-policy.ts
 * refuses the demuxer, rightly for user input), so the streams are those of
 * the first segment (decrypted when encrypted) and Format/Duration is the
 * playlist's total.
 */
async function hlsMediaInfo(ctx: ProcessorContext, spawner: Spawner, dir: string, playlist: string, firstSegment: string | undefined, hlsKey: HlsKey | undefined): Promise<XmlObject> {
  const info = firstSegment
    ? await withClearSegment(dir, playlist, firstSegment, hlsKey, (file) => outputMediaInfo(ctx, spawner, file))
    : await outputMediaInfo(ctx, spawner, path.join(dir, 'none'));
  const total = [...(await fs.readFile(playlist, 'utf8')).matchAll(/^#EXTINF:([\d.]+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
  return isXmlObject(info.Format) ? { ...info, Format: { ...info.Format, Duration: total.toFixed(6) } } : info;
}

/** What to show instead of our local paths in ffmpeg's messages: the input's key, and `output` for the work folder. */
export function inputReplacements(input: ToolInput, key: string, dir: string): Array<[string, string]> {
  return [[input.url.slice('file:'.length), key], [input.filePath, key], [dir, 'output']];
}

/** Runs a prepared command with progress into [5, 90] %, mapping ffmpeg's failures to job outcomes. */
export async function runTranscodeFfmpeg(ctx: ProcessorContext, spawner: Spawner, args: string[], dir: string, lengthSec: number | undefined, replacements: ReadonlyArray<readonly [string, string]>): Promise<void> {
  ctx.setProgress(5);
  try {
    await runFfmpeg(args, {
      spawner,
      binary: resolveFfmpegPath(ctx.config.ffmpegPath),
      signal: ctx.signal,
      timeoutMs: ctx.config.ffmpegTimeoutMs,
      progressFile: path.join(dir, 'progress.txt'),
      durationSec: lengthSec,
      onProgress: (fraction) => ctx.setProgress(5 + fraction * 85),
    });
  } catch (err) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw ffmpegFailure(err, ctx, replacements);
  }
}

/** One output file: seed 002's shape; hls: the playlist then its segments, all full keys. */
function mediaResult(target: OutputTarget, stored: ReadonlyArray<{ key: string; md5: string }>): XmlObject {
  const one = stored.length === 1;
  return {
    OutputFile: {
      Bucket: target.bucket,
      Md5Info: one ? { Md5: stored[0].md5, ObjectName: stored[0].key } : stored.map((s) => ({ Md5: s.md5, ObjectName: s.key })),
      ObjectName: one ? stored[0].key : stored.map((s) => s.key),
      ObjectPrefix: '',
      Region: target.region,
    },
  };
}

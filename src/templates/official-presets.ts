import type { Executor } from '../store/jobs.repository.js';
import { findTemplate, type Template } from '../store/templates.repository.js';
import type { XmlObject } from '../xml/tree.js';
import type { TemplateTag } from './template-tags.js';

/**
 * CI's Official (system preset) templates: ids `t0…` that every bucket can
 * name in a job's TemplateId, listed by `GET /template?category=Official`,
 * never changed or deleted. Only presets whose parameters CI publishes are
 * here, with those parameters and no others (the rest is each Tag's default).
 *
 * Sources, both in tencentyun/intlcloud-documents:
 * - LEGACY: the COS console guide's Template page, "System templates"
 *   (MP4-/FLV-/HLS- FLU, SD, HD, FHD, 2K); the ids the Python and PHP SDK
 *   demos hard-code (t04e1ab86554984f1aa17c062fbf6c007c, t02db40900dc1c…).
 * - CURRENT: yehe_doc/基础存储服务/数据万象/控制台指南/存储桶管理/媒体处理/模板_intl_en.md,
 *   "Preset templates" (H264-MP4-/HLS-/FLV- LD-360P … 2K); the ids the Java
 *   SDK demos (t0e2b9f4cd25184c6ab73d0c85a6ee9cb5) and the Go inventory
 *   example (t00daf332ba39049f8bfb899c1ed0134b0) hard-code. Its FLV rows give
 *   the container as M3U8, against their names; they are taken as FLV.
 * Both pages carry the same 3 Snapshot and 18 Animation presets. Resolutions
 * are "<width> * proportionally scaled": Width only. The names are the
 * pages' own, spaces around `*` included.
 */
export interface OfficialTemplate {
  readonly templateId: string;
  readonly tag: TemplateTag;
  readonly name: string;
  /** The Tag's container, as a job's inline one. */
  readonly body: XmlObject;
}

function transcode(templateId: string, name: string, format: 'mp4' | 'flv' | 'hls', width: number, videoKbps: number): OfficialTemplate {
  return {
    templateId,
    tag: 'Transcode',
    name,
    body: {
      Container: { Format: format },
      Video: { Codec: 'H.264', Width: String(width), Bitrate: String(videoKbps) },
      Audio: { Codec: 'aac', Bitrate: '128' },
    },
  };
}

/** Snapshot presets: from 0 s every `interval` seconds, at most 5 frames, JPEG (the Snapshot default). */
function snapshot(templateId: string, name: string, width: number, height: number, interval: number): OfficialTemplate {
  return {
    templateId,
    tag: 'Snapshot',
    name,
    body: { Mode: 'Interval', Start: '0', TimeInterval: String(interval), Count: '5', Width: String(width), Height: String(height) },
  };
}

/** How an Animation preset picks frames: key frames only, one every 10 s, or ten a second. */
type Sampling = 'keyframes' | 'every-10s' | '10-per-second';

const SAMPLING: Readonly<Record<Sampling, XmlObject>> = {
  'keyframes': { AnimateOnlyKeepKeyFrame: 'true' },
  'every-10s': { AnimateTimeIntervalOfFrame: '10' },
  '10-per-second': { AnimateFramesPerSecond: '10' },
};

function animation(templateId: string, name: string, format: 'gif' | 'webp', width: number, height: number, sampling: Sampling, seconds: number): OfficialTemplate {
  return {
    templateId,
    tag: 'Animation',
    name,
    body: {
      Container: { Format: format },
      Video: { Codec: format, Width: String(width), Height: String(height), ...SAMPLING[sampling], ...(format === 'webp' ? { Quality: '75' } : {}) },
      TimeInterval: { Start: '0', Duration: String(seconds) },
    },
  };
}

export const OFFICIAL_TEMPLATES: readonly OfficialTemplate[] = [
  // LEGACY transcoding presets.
  transcode('t02db40900dc1c43ad9bdbd8acec6075c5', 'MP4-FLU', 'mp4', 640, 512),
  transcode('t04e1ab86554984f1aa17c062fbf6c007c', 'MP4-SD', 'mp4', 720, 1024),
  transcode('t02d06d8ad881648e69f9ca95b2e7e4b6a', 'MP4-HD', 'mp4', 1280, 2000),
  transcode('t064fb9214850f49aaac44b5561a7b0b3b', 'MP4-FHD', 'mp4', 1920, 3500),
  transcode('t077211ea3e0e74168b8ed921fcb2d5a6b', 'MP4-2K', 'mp4', 2048, 4800),
  transcode('t0c9cfaffb5055467691b85eed1242cd03', 'FLV-FLU', 'flv', 640, 512),
  transcode('t0b612860a293f410785b3e672465dca38', 'FLV-SD', 'flv', 720, 1024),
  transcode('t0b6a845f5e42847bd810ee9cbf337f83c', 'FLV-HD', 'flv', 1280, 2000),
  transcode('t08571e1f229094eb79817f8474987a479', 'FLV-FHD', 'flv', 1920, 3500),
  transcode('t0f52244b7f3c743eb9f9080b15e5fe2f8', 'FLV-2K', 'flv', 2048, 4800),
  transcode('t06e5246d8bf694c88b16ae7512e83962a', 'HLS-FLU', 'hls', 640, 512),
  transcode('t03ed6a4e1b374429eadec266bd6859347', 'HLS-SD', 'hls', 720, 1024),
  transcode('t0e09a9456d4124542b1f0e44d501d7182', 'HLS-HD', 'hls', 1280, 2000),
  transcode('t088613dea8d564a9ba7e6b02cbd5de877', 'HLS-FHD', 'hls', 1920, 3500),
  transcode('t08e7237a0975c427cabfa3d958f29aa58', 'HLS-2K', 'hls', 2048, 4800),
  // CURRENT transcoding presets.
  transcode('t0e2b9f4cd25184c6ab73d0c85a6ee9cb5', 'H264-MP4-LD-360P', 'mp4', 640, 512),
  transcode('t0876739cd865042d1957d73c78f0484fb', 'H264-MP4-SD-480P', 'mp4', 720, 1024),
  transcode('t0852e7ff4acd4484e99ba104f3840d3cb', 'H264-MP4-HD-720P', 'mp4', 1280, 2000),
  transcode('t04df9eb0c373c4a8780ec894ce05469a7', 'H264-MP4-FHD-1080P', 'mp4', 1920, 3500),
  transcode('t09d027135634d47048e5a30dc1e19ee90', 'H264-MP4-2K', 'mp4', 2048, 4800),
  transcode('t0e634622e8dfb49339ba478d60ddc7188', 'H264-HLS-LD-360P', 'hls', 640, 512),
  transcode('t0fa5bdbf58bb348e88bf73fae5d674fdf', 'H264-HLS-SD-480P', 'hls', 720, 1024),
  transcode('t09d0f419921e44ed98190f355ec9fd629', 'H264-HLS-HD-720P', 'hls', 1280, 2000),
  transcode('t080ae8a06f9074f3daa46201078f8d4b1', 'H264-HLS-FHD-1080P', 'hls', 1920, 3500),
  transcode('t0ab68939cef0f40d19c4a135df540239f', 'H264-HLS-2K', 'hls', 2048, 4800),
  transcode('t0e165bef65ed24d568eeecc8661248af6', 'H264-FLV-LD-360P', 'flv', 640, 512),
  transcode('t057d0410c32444e48b9220f9571e6097a', 'H264-FLV-SD-480P', 'flv', 720, 1024),
  transcode('t00daf332ba39049f8bfb899c1ed0134b0', 'H264-FLV-HD-720P', 'flv', 1280, 2000),
  transcode('t0d41905a814434c8a81897ecb54d53a32', 'H264-FLV-FHD-1080P', 'flv', 1920, 3500),
  transcode('t0e287e59454b94a8983ba78a6a30ee864', 'H264-FLV-2K', 'flv', 2048, 4800),
  // Snapshot presets (both pages).
  snapshot('t01d40e440761448fc8c538fb8d5a5b81e', 'snapshot_320 * 180_1', 320, 180, 2),
  snapshot('t0a60a2bc71a4b40c7b3d7f7e8a2779a81', 'snapshot_640 * 360_2', 640, 360, 10),
  snapshot('t07740e32081b44ad7a0aea03adcffd54a', 'snapshot_1280 * 720_3', 1280, 720, 10),
  // Animation presets (both pages). The webp _3, _6 and _9 rows say "one frame every 10s" beside "10 FPS";
  // the frame rate, and the gif rows of the same numbers, say ten a second.
  animation('t04373959a69c04d47b62fd214dd13d8e9', 'gif_320 * 180_1', 'gif', 320, 180, 'keyframes', 600),
  animation('t0341b0ab2b8a340ff826e9cb4f3a7baea', 'gif_320 * 180_2', 'gif', 320, 180, 'every-10s', 600),
  animation('t046b1d8e5bdf842c6a58d8028b48eafee', 'gif_320 * 180_3', 'gif', 320, 180, '10-per-second', 600),
  animation('t0ef2077f215864c018a2fca73614ceca6', 'gif_640 * 360_4', 'gif', 640, 360, 'keyframes', 600),
  animation('t0d21406ca737a40869973a37a5daa349a', 'gif_640 * 360_5', 'gif', 640, 360, 'every-10s', 600),
  animation('t0878a9c9c1f054cb5bca68b8b06e556c2', 'gif_640 * 360_6', 'gif', 640, 360, '10-per-second', 600),
  animation('t0dae821708cea4ba5b3e271810ac80a21', 'gif_1280 * 720_7', 'gif', 1280, 720, 'keyframes', 600),
  animation('t03fef67ad94d2466b9c0c89252ed72e87', 'gif_1280 * 720_8', 'gif', 1280, 720, 'every-10s', 600),
  animation('t030a64e9f9f5a4f53a9ef64bb7ce490b5', 'gif_1280 * 720_9', 'gif', 1280, 720, '10-per-second', 600),
  animation('t03b0e9eca4fc34e2cba9da89d9c7c13a2', 'webp_320 * 180_1', 'webp', 320, 180, 'keyframes', 60),
  animation('t016fcddf6bc3c44b793e9b7b07119b4ee', 'webp_320 * 180_2', 'webp', 320, 180, 'every-10s', 600),
  animation('t0bf1f1ce6d2404b258c0f81fbb9aaece1', 'webp_320 * 180_3', 'webp', 320, 180, '10-per-second', 600),
  animation('t098d6d3fcfd2c45309a408594a42559f6', 'webp_640 * 360_4', 'webp', 640, 360, 'keyframes', 60),
  animation('t0169a6a9c2eec4b51972eb63bafcbf08d', 'webp_640 * 360_5', 'webp', 640, 360, 'every-10s', 600),
  animation('t0ef9ba537011e4876b8777aebc19d10a5', 'webp_640 * 360_6', 'webp', 640, 360, '10-per-second', 600),
  animation('t02743d344b5e74c579e50e9e135b432b8', 'webp_1280 * 720_7', 'webp', 1280, 720, 'keyframes', 60),
  animation('t0dd27c136ff2741538bec96981e058868', 'webp_1280 * 720_8', 'webp', 1280, 720, 'every-10s', 600),
  animation('t00ad05235d67a45a9a697b553052b7346', 'webp_1280 * 720_9', 'webp', 1280, 720, '10-per-second', 600),
];

const BY_ID: ReadonlyMap<string, OfficialTemplate> = new Map(OFFICIAL_TEMPLATES.map((t) => [t.templateId, t]));

export function findOfficialTemplate(templateId: string): OfficialTemplate | undefined {
  return BY_ID.get(templateId);
}

export interface OfficialTemplateFilter {
  readonly tag?: string;
  readonly ids?: readonly string[];
  /** A name prefix, as for the bucket's own templates. */
  readonly name?: string;
  readonly pageNumber: number;
  readonly pageSize: number;
}

/** `GET /template?category=Official`: the presets matching every filter given, in the order above, one page of them. */
export function listOfficialTemplates(filter: OfficialTemplateFilter): { templates: OfficialTemplate[]; total: number } {
  const matching = OFFICIAL_TEMPLATES.filter((t) => (!filter.tag || t.tag === filter.tag)
    && (!filter.ids || filter.ids.includes(t.templateId))
    && (!filter.name || t.name.startsWith(filter.name)));
  const start = (filter.pageNumber - 1) * filter.pageSize;
  return { templates: matching.slice(start, start + filter.pageSize), total: matching.length };
}

/** The template a job's TemplateId (or WatermarkTemplateId, TranscodeTemplateId) names: an Official preset, or one of the bucket's own. */
export async function findTemplateOrPreset(db: Executor, bucket: string, templateId: string): Promise<Template | OfficialTemplate | undefined> {
  return findOfficialTemplate(templateId) ?? findTemplate(db, bucket, templateId);
}

/**
 * Image and text watermarks (shared/ci-media-tags.md §2.7), drawn by the Tags
 * that encode video (Transcode; `Operation/Watermark[]`, at most 3).
 *
 * Honoured: Type Image (the image is an object of the job's bucket, named by
 * its URL or key, read as `media/input-policy.ts` allows; Mode Original,
 * Proportion (Width % of the video's width), Fixed (Width/Height px, one may
 * be left out); Transparency 1–100 = opacity in %) and Type Text (Text,
 * FontSize, FontColor `0xRRGGBB` or `#RRGGBB`, Transparency; drawn in the
 * default sans-serif font fontconfig finds); Pos (the nine positions), LocMode
 * Absolute (Dx/Dy in px) or Relativity (% of the video's width/height),
 * StartTime/EndTime. Accepted, ignored: Text/FontType, Image/Background,
 * SlideConfig.
 */
import type { XmlObject, XmlValue } from '../xml/tree.js';
import { isXmlObject } from '../xml/tree.js';
import { child, invalid, number, objectKeyOfUrl, text } from './media-output.js';

const POSITIONS = ['TopLeft', 'Top', 'TopRight', 'Left', 'Center', 'Right', 'BottomLeft', 'Bottom', 'BottomRight'] as const;
type Position = (typeof POSITIONS)[number];

export interface WatermarkSpec {
  readonly pos: Position;
  readonly relative: boolean;
  readonly dx: number;
  readonly dy: number;
  readonly startSec?: number;
  readonly endSec?: number;
  /** 0–1. */
  readonly opacity: number;
  readonly image?: { readonly key: string; readonly mode: 'original' | 'proportion' | 'fixed'; readonly width?: number; readonly height?: number };
  readonly text?: { readonly text: string; readonly fontSize: number; readonly color: string };
}

/** `Operation/Watermark` (one or several); `bucket` undefined at submit, where image URLs are not yet held to the job's bucket. */
export function parseWatermarks(value: XmlValue | undefined, bucket: string | undefined): WatermarkSpec[] {
  if (value === undefined || value === '') return [];
  const list = Array.isArray(value) ? value : [value];
  if (list.length > 3) throw invalid('Watermark may appear at most 3 times.');
  return list.map((item) => {
    if (!isXmlObject(item)) throw invalid('Watermark must contain Type, Pos, LocMode and an Image or a Text.');
    return parseWatermark(item, bucket);
  });
}

function parseWatermark(w: XmlObject, bucket: string | undefined): WatermarkSpec {
  const type = text(w.Type)?.toLowerCase();
  if (type !== 'image' && type !== 'text') throw invalid('Watermark/Type must be Image or Text.');
  const posText = text(w.Pos) ?? '';
  const pos = POSITIONS.find((p) => p.toLowerCase() === posText.toLowerCase());
  if (!pos) throw invalid(`Watermark/Pos must be one of ${POSITIONS.join(', ')}.`);
  const locMode = (text(w.LocMode) ?? '').toLowerCase();
  if (locMode !== 'absolute' && locMode !== 'relativity') throw invalid('Watermark/LocMode must be Absolute or Relativity.');
  const relative = locMode === 'relativity';
  const max = relative ? 100 : 4096;
  const startSec = number(w.StartTime, 'Watermark/StartTime', 0, 1e7);
  const endSec = number(w.EndTime, 'Watermark/EndTime', 0, 1e7, { openMin: true });
  if (startSec !== undefined && endSec !== undefined && endSec <= startSec) throw invalid('Watermark/EndTime must be after StartTime.');
  const base = { pos, relative, dx: number(w.Dx, 'Watermark/Dx', 0, max) ?? 0, dy: number(w.Dy, 'Watermark/Dy', 0, max) ?? 0, startSec, endSec };
  if (type === 'image') {
    const image = child(w, 'Image');
    const url = text(image.Url);
    if (url === undefined) throw invalid('Watermark/Image/Url is required.');
    const modeText = (text(image.Mode) ?? 'Original').toLowerCase();
    if (modeText !== 'original' && modeText !== 'proportion' && modeText !== 'fixed') throw invalid('Watermark/Image/Mode must be Original, Proportion or Fixed.');
    const limit = modeText === 'proportion' ? 100 : 4096;
    const width = number(image.Width, 'Watermark/Image/Width', modeText === 'proportion' ? 1 : 8, limit);
    const height = number(image.Height, 'Watermark/Image/Height', modeText === 'proportion' ? 1 : 8, limit);
    if (modeText === 'proportion' && width === undefined) throw invalid('Watermark/Image/Width is required with Mode Proportion.');
    if (modeText === 'fixed' && width === undefined && height === undefined) throw invalid('Watermark/Image/Width or Height is required with Mode Fixed.');
    return {
      ...base,
      opacity: (number(image.Transparency, 'Watermark/Image/Transparency', 1, 100) ?? 100) / 100,
      image: { key: objectKeyOfUrl(url, bucket, 'Watermark/Image/Url'), mode: modeText, width, height },
    };
  }
  const t = child(w, 'Text');
  const content = text(t.Text);
  if (content === undefined || !/^[\p{Script=Han}A-Za-z0-9_*\- ]{1,64}$/u.test(content)) {
    throw invalid('Watermark/Text/Text must be 1 to 64 Chinese characters, letters, digits, spaces, _, - or *.');
  }
  const colour = (text(t.FontColor) ?? '0xFFFFFF').replace(/^#/, '0x');
  if (!/^0x[0-9A-Fa-f]{6}$/.test(colour)) throw invalid('Watermark/Text/FontColor must be 0xRRGGBB.');
  return {
    ...base,
    opacity: (number(t.Transparency, 'Watermark/Text/Transparency', 1, 100) ?? 100) / 100,
    text: { text: content, fontSize: number(t.FontSize, 'Watermark/Text/FontSize', 5, 100, { integer: true }) ?? 24, color: colour },
  };
}

/** x and y of a mark of size (w, h) on a picture of size (W, H): CI's nine positions, Dx ignored at the centre column, Dy at the middle row. */
function position(mark: WatermarkSpec, names: { W: string; H: string; w: string; h: string }): { x: string; y: string } {
  const dx = mark.relative ? `${names.W}*${mark.dx / 100}` : String(mark.dx);
  const dy = mark.relative ? `${names.H}*${mark.dy / 100}` : String(mark.dy);
  const column = mark.pos.endsWith('Left') || mark.pos === 'Left' ? 'left' : mark.pos.endsWith('Right') || mark.pos === 'Right' ? 'right' : 'centre';
  const row = mark.pos.startsWith('Top') ? 'top' : mark.pos.startsWith('Bottom') ? 'bottom' : 'middle';
  const x = column === 'left' ? dx : column === 'right' ? `${names.W}-${names.w}-${dx}` : `(${names.W}-${names.w})/2`;
  const y = row === 'top' ? dy : row === 'bottom' ? `${names.H}-${names.h}-${dy}` : `(${names.H}-${names.h})/2`;
  return { x, y };
}

function enable(mark: WatermarkSpec): string {
  if (mark.startSec === undefined && mark.endSec === undefined) return '';
  return `:enable='between(t,${mark.startSec ?? 0},${mark.endSec ?? 1e9})'`;
}

/**
 * The `-filter_complex` graph drawing `marks` on `[base]` (the video after its
 * own filters); image marks are inputs `firstImageInput`, +1, … in order.
 * Ends in `[vout]`.
 */
export function watermarkGraph(marks: readonly WatermarkSpec[], firstImageInput: number): string[] {
  const graph: string[] = [];
  let current = 'base';
  let imageInput = firstImageInput;
  marks.forEach((mark, i) => {
    const next = i === marks.length - 1 ? 'vout' : `wm${i}`;
    if (mark.image) {
      const label = `img${i}`;
      const alpha = `format=rgba,colorchannelmixer=aa=${mark.opacity}`;
      if (mark.image.mode === 'proportion') {
        // In scale2ref iw/ih are the reference's (the video's) and main_*/mdar the scaled input's (the image's).
        graph.push(`[${imageInput}:v]${alpha}[${label}raw]`, `[${label}raw][${current}]scale2ref=w=iw*${mark.image.width! / 100}:h=ow/mdar[${label}][${current}ref]`);
        current = `${current}ref`;
      } else if (mark.image.mode === 'fixed') {
        graph.push(`[${imageInput}:v]scale=${mark.image.width ?? -1}:${mark.image.height ?? -1},${alpha}[${label}]`);
      } else {
        graph.push(`[${imageInput}:v]${alpha}[${label}]`);
      }
      const { x, y } = position(mark, { W: 'main_w', H: 'main_h', w: 'overlay_w', h: 'overlay_h' });
      graph.push(`[${current}][${label}]overlay=x=${x}:y=${y}${enable(mark)}[${next}]`);
      imageInput++;
    } else {
      const t = mark.text!;
      const { x, y } = position(mark, { W: 'w', H: 'h', w: 'text_w', h: 'text_h' });
      graph.push(`[${current}]drawtext=text='${t.text}':fontsize=${t.fontSize}:fontcolor=${t.color}@${mark.opacity}:x=${x}:y=${y}${enable(mark)}[${next}]`);
    }
    current = next;
  });
  return graph;
}

/** The filters the marks need from the binary. */
export function watermarkFilters(marks: readonly WatermarkSpec[]): string[] {
  const filters = new Set<string>();
  for (const mark of marks) {
    if (mark.text) filters.add('drawtext');
    else {
      filters.add('overlay').add('colorchannelmixer');
      if (mark.image?.mode === 'proportion') filters.add('scale2ref');
    }
  }
  return [...filters];
}

/** A stored template as the Watermark helpers need it. */
export type WatermarkTemplateLookup = (templateId: string) => Promise<{ readonly tag: string; readonly body: XmlObject } | undefined>;

/**
 * The `<Watermark>` bodies of the templates `WatermarkTemplateId` names (one
 * or several, at most 3), in order; undefined when there are none. A missing
 * id, or a template of another Tag, is InvalidArgument. Read again when the
 * job runs, as TemplateId is, so an updated template applies to jobs waiting.
 */
export async function watermarkTemplateBodies(value: XmlValue | undefined, find: WatermarkTemplateLookup): Promise<XmlObject[] | undefined> {
  if (value === undefined || value === '') return undefined;
  const ids = (Array.isArray(value) ? value : [value]).map((id) => (typeof id === 'string' ? id.trim() : ''));
  if (ids.length > 3) throw invalid('WatermarkTemplateId may appear at most 3 times.');
  return Promise.all(ids.map(async (id) => {
    const template = id === '' ? undefined : await find(id);
    if (!template || template.tag !== 'Watermark') throw invalid(`WatermarkTemplateId ${id} is not a Watermark template of this bucket.`);
    return template.body;
  }));
}

/**
 * The Operation a Transcode runs with: the marks of its WatermarkTemplateIds
 * in place of any inline Watermark (template ids win, ci-media-tags.md §2.7).
 */
export async function withWatermarkTemplates(operation: XmlObject, find: WatermarkTemplateLookup): Promise<XmlObject> {
  const bodies = await watermarkTemplateBodies(operation.WatermarkTemplateId, find);
  return bodies ? { ...operation, Watermark: bodies } : operation;
}

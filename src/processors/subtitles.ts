/**
 * Burned-in subtitles for Transcode: `Operation/Subtitles/Subtitle[]`
 * (shared/ci-media-tags.md §3 lists Url, Embed, FontType, FontSize,
 * FontColor, OutlineColor, VMargin; CI's documentation of their values was
 * not found, so what follows is this service's reading, said in the README).
 *
 * - `Url`: a subtitle object of the job's bucket (an object URL or a key),
 *   SubRip, ASS/SSA, WebVTT or any text subtitle format the input policy's
 *   demuxers read; required.
 * - `FontSize` (1–200, libass's size at the video's height), `FontType` (a
 *   font family fontconfig knows: letters, digits, space, `_` and `-`),
 *   `FontColor` and `OutlineColor` (`0xRRGGBB` or `#RRGGBB`), `VMargin`
 *   (0–4096 px from the bottom): libass style overrides.
 * - `Embed`: accepted and ignored; every Subtitle is burned into the picture.
 *
 * How: each object is first converted by its own ffmpeg run, reading it as
 * `media/input-policy.ts` allows, into an ASS file of the job's work folder;
 * the `subtitles` filter then reads only that file of ours. (The filter opens
 * its file itself, without the input policy's whitelists, so it never sees a
 * user's object directly.)
 */
import path from 'node:path';
import { isXmlObject, type XmlValue } from '../xml/tree.js';
import { invalid, number, objectKeyOfUrl, text } from './media-output.js';

export interface SubtitleSpec {
  /** The object key (at submit, when the bucket is not known yet: the Url's path). */
  readonly key: string;
  readonly fontSize?: number;
  readonly fontName?: string;
  /** ASS colours, `&H00BBGGRR`. */
  readonly primaryColour?: string;
  readonly outlineColour?: string;
  readonly marginV?: number;
}

const MAX_SUBTITLES = 5;

function assColour(value: XmlValue | undefined, where: string): string | undefined {
  const raw = text(value);
  if (raw === undefined) return undefined;
  const match = /^(?:0x|#)([0-9a-f]{6})$/i.exec(raw);
  if (!match) throw invalid(`${where} must be a colour 0xRRGGBB or #RRGGBB, not ${JSON.stringify(raw)}.`);
  const [r, g, b] = [0, 2, 4].map((i) => match[1].slice(i, i + 2).toUpperCase());
  return `&H00${b}${g}${r}`;
}

/** `Operation/Subtitles` (undefined or empty: none); `bucket` undefined at submit, where Urls are not yet held to the job's bucket. */
export function parseSubtitles(value: XmlValue | undefined, bucket: string | undefined): SubtitleSpec[] {
  if (value === undefined || value === '') return [];
  if (!isXmlObject(value)) throw invalid('Subtitles must contain Subtitle elements.');
  const items = value.Subtitle === undefined ? [] : Array.isArray(value.Subtitle) ? value.Subtitle : [value.Subtitle];
  if (items.length === 0) throw invalid('Subtitles must contain at least one Subtitle.');
  if (items.length > MAX_SUBTITLES) throw invalid(`Subtitles/Subtitle may appear at most ${MAX_SUBTITLES} times.`);
  return items.map((item) => {
    if (!isXmlObject(item)) throw invalid('Subtitles/Subtitle must contain a Url.');
    const url = text(item.Url);
    if (url === undefined) throw invalid('Subtitles/Subtitle/Url is required.');
    const fontName = text(item.FontType);
    if (fontName !== undefined && !/^[A-Za-z0-9 _-]{1,64}$/.test(fontName)) throw invalid('Subtitles/Subtitle/FontType must be a font family of letters, digits, spaces, _ and -.');
    return {
      key: objectKeyOfUrl(url, bucket, 'Subtitles/Subtitle/Url'),
      fontSize: number(item.FontSize, 'Subtitles/Subtitle/FontSize', 1, 200),
      fontName,
      primaryColour: assColour(item.FontColor, 'Subtitles/Subtitle/FontColor'),
      outlineColour: assColour(item.OutlineColor, 'Subtitles/Subtitle/OutlineColor'),
      marginV: number(item.VMargin, 'Subtitles/Subtitle/VMargin', 0, 4096, { integer: true }),
    };
  });
}

/** ffmpeg arguments converting one subtitle input (after its input options) into our own ASS file. Pure. */
export function subtitleConversionArgs(inputArgs: readonly string[], output: string): string[] {
  return [...inputArgs, '-map', '0:s:0', '-c:s', 'ass', '-f', 'ass', output];
}

/**
 * A path as the value of a filter option inside a filter graph: escaped for
 * the option parser (`\`, `'`, `:`), then for the graph parser (`\`, `'`,
 * `[`, `]`, `,`, `;`), as ffmpeg-filters' "Notes on filtergraph escaping" says.
 */
export function filterGraphPath(file: string): string {
  const option = file.replace(/[\\':]/g, (c) => `\\${c}`);
  return option.replace(/[\\'[\],;]/g, (c) => `\\${c}`);
}

/** The `subtitles` filter drawing `assFile` (ours) with the spec's style overrides. Pure. */
export function subtitleFilter(spec: SubtitleSpec, assFile: string): string {
  const style = [
    spec.fontName !== undefined ? `FontName=${spec.fontName}` : undefined,
    spec.fontSize !== undefined ? `FontSize=${spec.fontSize}` : undefined,
    spec.primaryColour !== undefined ? `PrimaryColour=${spec.primaryColour}` : undefined,
    spec.outlineColour !== undefined ? `OutlineColour=${spec.outlineColour}` : undefined,
    spec.marginV !== undefined ? `MarginV=${spec.marginV}` : undefined,
  ].filter((s): s is string => s !== undefined);
  // The style's values are checked above to hold no quote, colon, bracket or semicolon; its commas are inside quotes.
  return `subtitles=filename=${filterGraphPath(path.resolve(assFile))}${style.length ? `:force_style='${style.join(',')}'` : ''}`;
}

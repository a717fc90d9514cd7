/**
 * Tag=NoiseReduction (shared/ci-media-tags.md §12): the input's audio with
 * its noise reduced, as ffmpeg filters: `highpass=f=80` (rumble) and `afftdn` (FFT
 * denoising with a -25 dB noise floor). CI's model is
 * not public; this is an approximation of what it does.
 *
 * `NoiseReduction{Format mp3|m4a|wav, Samplerate}`; CI's job examples send
 * only an Output, so the format then comes from the Output object's
 * extension (mp3, m4a or wav), else mp3, and the sample rate is kept.
 *
 * Result: as Transcode's (MediaInfo of the output, MediaResult with Md5Info).
 */
import type { Config } from '../config.js';
import type { Spawner } from '../media/spawner.js';
import { isXmlObject, type XmlObject } from '../xml/tree.js';
import { asSubmitError, assertFfmpegHas, invalid, keyExtension, number, readOutput, text, SUBMIT_CHECK_JOB } from './media-output.js';
import type { Processor } from './processor.js';
import { parseTranscode, runTranscodeSpec, transcodeNeeds, type TranscodeSpec } from './transcode.js';

export const NOISE_FILTERS: readonly string[] = ['highpass=f=80', 'afftdn=nf=-25'];
const SAMPLERATES = [8000, 12000, 16000, 24000, 32000, 44100, 48000];
const CODECS: Readonly<Record<string, string>> = { mp3: 'mp3', m4a: 'aac', wav: 'pcm_s16le' };

/** The Transcode a NoiseReduction Operation amounts to; throws InvalidArgument naming the element. */
export function noiseReductionSpec(operation: XmlObject): TranscodeSpec {
  const params = isXmlObject(operation.NoiseReduction) ? operation.NoiseReduction : {};
  const objectExt = keyExtension(typeof (operation.Output as XmlObject | undefined)?.Object === 'string' ? (operation.Output as XmlObject).Object as string : '');
  const formatText = text(params.Format);
  const format = formatText?.toLowerCase() ?? (objectExt && objectExt in CODECS ? objectExt : 'mp3');
  if (!(format in CODECS)) throw invalid(`NoiseReduction/Format must be mp3, m4a or wav, not ${JSON.stringify(formatText)}.`);
  const samplerate = number(params.Samplerate, 'NoiseReduction/Samplerate', 8000, 48000, { integer: true });
  if (samplerate !== undefined && !SAMPLERATES.includes(samplerate)) throw invalid(`NoiseReduction/Samplerate must be one of ${SAMPLERATES.join(', ')}.`);
  return parseTranscode({ Container: { Format: format }, Audio: { Codec: CODECS[format], ...(samplerate ? { Samplerate: String(samplerate) } : {}) } });
}

/** Submit-time checks of a NoiseReduction Operation. */
export function checkNoiseReductionOperation(operation: XmlObject, config: Config, where: string): void {
  try {
    const spec = noiseReductionSpec(operation);
    readOutput(operation, SUBMIT_CHECK_JOB, false);
    assertFfmpegHas(config.ffmpegPath, { encoders: transcodeNeeds(spec).encoders, filters: NOISE_FILTERS.map((f) => f.split('=')[0]) });
  } catch (err) {
    throw asSubmitError(err, where);
  }
}

export function createNoiseReductionProcessor(spawner: Spawner): Processor {
  return { tag: 'NoiseReduction', slotsItsTool: true, run: (ctx) => runTranscodeSpec(ctx, spawner, noiseReductionSpec(ctx.job.operation), { audio: NOISE_FILTERS }) };
}

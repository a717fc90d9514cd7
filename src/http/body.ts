import { CiError } from '../errors.js';
import { parseXmlDocument } from '../xml/codec.js';
import type { XmlObject } from '../xml/tree.js';
import type { AppContext } from './context.js';

/**
 * Reads the request body as UTF-8, refusing it (EntityTooLarge) as soon as it
 * is known to exceed `maxBytes`: from Content-Length before reading anything,
 * or while streaming when the length is not declared.
 */
export async function readBody(ctx: AppContext, maxBytes: number): Promise<string> {
  const declared = Number(ctx.get('content-length') || NaN);
  if (declared > maxBytes) throw new CiError('EntityTooLarge', `The request body is larger than ${maxBytes} bytes.`);
  const req = ctx.req;
  const chunks: Buffer[] = [];
  let total = 0;
  // Event-based rather than `for await`: leaving an async iterator early destroys
  // the socket, and the client would never see the error response.
  await new Promise<void>((resolve, reject) => {
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > maxBytes) {
        cleanup();
        req.pause();
        reject(new CiError('EntityTooLarge', `The request body is larger than ${maxBytes} bytes.`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => { cleanup(); resolve(); };
    // The client hung up, or the server timed it out, before the body was complete: its fault, and
    // nobody is left to read the answer.
    const onError = () => { cleanup(); reject(new CiError('InvalidRequest', 'The request body ended before it was complete.')); };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
  try {
    // fatal: invalid UTF-8 is refused, not turned into U+FFFD inside an object key.
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new CiError('MalformedXML', 'The request body is not valid UTF-8.');
  }
}

/** Reads and parses an XML request body whose root must be `root`. */
export async function readXmlBody(ctx: AppContext, maxBytes: number, root = 'Request'): Promise<XmlObject> {
  const text = await readBody(ctx, maxBytes);
  if (text.trim() === '') throw new CiError('MalformedXML', `The request body is empty; expected <${root}>.`);
  return parseXmlDocument(text, root);
}

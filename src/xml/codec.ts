import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import { CiError } from '../errors.js';
import { isXmlObject, type XmlObject, type XmlValue } from './tree.js';

/*
 * The one door for XML in and the one door for XML out.
 *
 * In: DTDs are refused outright rather than "processed safely": CI bodies never
 * carry one, and refusing them removes entity expansion (billion laughs,
 * external entities) as a class. The five predefined entities and numeric
 * character references are decoded here, in one pass, so `&amp;lt;` stays
 * `&lt;` (a double decode would be a bug).
 */

const parser = new XMLParser({
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: false,
  htmlEntities: false,
  tagValueProcessor: (_name, value) => decodeEntities(value),
});

/**
 * Characters outside XML 1.0's `Char` production (NUL and other C0 controls
 * but tab/LF/CR, lone surrogates, U+FFFE/U+FFFF). A document containing one,
 * raw or as a character reference, is not well-formed.
 */
const NON_XML_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
const NON_XML_CHARS = new RegExp(NON_XML_CHAR.source, 'gu');

/** Longest parser diagnostic quoted back: an unclosed 100 000-deep document must not get a multi-MB error body. */
const MAX_DIAGNOSTIC_CHARS = 200;

const builder = new XMLBuilder({
  format: false,
  suppressEmptyNode: true,
  processEntities: true,
  // Echoed input (an unknown job id from the path, a message quoting a query value) may hold
  // characters XML cannot carry; they become U+FFFD so every response stays well-formed.
  tagValueProcessor: (_name: string, value: unknown) => (typeof value === 'string' ? value.replace(NON_XML_CHARS, '\uFFFD') : value),
});

const PREDEFINED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decodeEntities(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&([a-zA-Z]+|#[0-9]+|#x[0-9a-fA-F]+);|&/g, (match, name: string | undefined) => {
    if (name === undefined) throw new CiError('MalformedXML', 'The XML contains a bare "&".');
    if (name.startsWith('#')) {
      const codePoint = name[1] === 'x' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      const char = codePoint <= 0x10ffff ? String.fromCodePoint(codePoint) : '';
      if (char === '' || NON_XML_CHAR.test(char)) throw new CiError('MalformedXML', `Invalid character reference ${match}.`);
      return char;
    }
    const replacement = PREDEFINED[name];
    if (replacement === undefined) throw new CiError('MalformedXML', `Undefined entity ${match}.`);
    return replacement;
  });
}

/**
 * Parses a request body and returns the children of its root, which must be
 * `expectedRoot`. Every failure is a `MalformedXML` CiError.
 */
export function parseXmlDocument(text: string, expectedRoot: string): XmlObject {
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw new CiError('MalformedXML', 'DTDs and entity declarations are not allowed.');
  if (NON_XML_CHAR.test(text)) throw new CiError('MalformedXML', 'The XML contains a character that XML does not allow (such as NUL or a control character).');
  const validation = XMLValidator.validate(text);
  if (validation !== true) {
    const msg = validation.err.msg.length > MAX_DIAGNOSTIC_CHARS ? `${validation.err.msg.slice(0, MAX_DIAGNOSTIC_CHARS)}…` : validation.err.msg;
    throw new CiError('MalformedXML', `The XML is not well-formed: ${msg} (line ${validation.err.line}).`);
  }
  let parsed: Record<string, unknown>;
  try {
    parsed = parser.parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof CiError) throw err;
    throw new CiError('MalformedXML', 'The XML is not well-formed.');
  }
  const roots = Object.keys(parsed);
  if (roots.length !== 1 || roots[0] !== expectedRoot) {
    throw new CiError('MalformedXML', `The root element must be <${expectedRoot}>.`);
  }
  const root = parsed[expectedRoot] as XmlValue;
  if (root === '') return {};
  if (!isXmlObject(root)) throw new CiError('MalformedXML', `<${expectedRoot}> must contain elements.`);
  return root;
}

/** Serialises a document: `<root>…</root>`, no declaration, no whitespace, `<X/>` for empty elements. */
export function encodeXml(rootName: string, content: XmlObject): string {
  return builder.build({ [rootName]: content }) as string;
}

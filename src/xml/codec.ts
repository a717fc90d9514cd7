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

const builder = new XMLBuilder({
  format: false,
  suppressEmptyNode: true,
  processEntities: true,
});

const PREDEFINED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decodeEntities(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&([a-zA-Z]+|#[0-9]+|#x[0-9a-fA-F]+);|&/g, (match, name: string | undefined) => {
    if (name === undefined) throw new CiError('MalformedXML', 'The XML contains a bare "&".');
    if (name.startsWith('#')) {
      const codePoint = name[1] === 'x' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      if (codePoint > 0x10ffff || codePoint === 0) throw new CiError('MalformedXML', `Invalid character reference ${match}.`);
      return String.fromCodePoint(codePoint);
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
  const validation = XMLValidator.validate(text);
  if (validation !== true) {
    throw new CiError('MalformedXML', `The XML is not well-formed: ${validation.err.msg} (line ${validation.err.line}).`);
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

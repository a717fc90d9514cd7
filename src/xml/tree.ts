/**
 * The in-memory form of a CI XML document, shared by the parser, the
 * builders and the JSON callback encoder.
 *
 * - a string is an element's text (`''` is an empty element, `<Message/>`);
 * - an object is an element with children, in insertion order;
 * - an array is the same element repeated (`<Video/>` twice), never a wrapper.
 */
export type XmlValue = string | XmlObject | XmlValue[];
export interface XmlObject {
  [name: string]: XmlValue;
}

export function isXmlObject(value: XmlValue | undefined): value is XmlObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The tree with every text passed through `map`; element names are kept.
 * What `map` leaves unchanged is shared, not copied, so an unchanged tree
 * comes back as itself.
 */
export function mapXmlText(tree: XmlObject, map: (text: string) => string): XmlObject {
  let copy: XmlObject | undefined;
  for (const name of Object.keys(tree)) {
    const mapped = mapXmlValue(tree[name], map);
    if (mapped !== tree[name]) (copy ??= { ...tree })[name] = mapped;
  }
  return copy ?? tree;
}

function mapXmlValue(value: XmlValue, map: (text: string) => string): XmlValue {
  if (typeof value === 'string') return map(value);
  if (!Array.isArray(value)) return mapXmlText(value, map);
  let copy: XmlValue[] | undefined;
  value.forEach((item, i) => {
    const mapped = mapXmlValue(item, map);
    if (mapped !== item) (copy ??= [...value])[i] = mapped;
  });
  return copy ?? value;
}

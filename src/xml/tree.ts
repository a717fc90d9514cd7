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

import { encodeXml } from '../xml/codec.js';
import { isXmlObject, type XmlObject, type XmlValue } from '../xml/tree.js';

/*
 * The body of a TaskFinish callback, in the job's CallBackFormat
 * (shared/ci-api.md §6.2, §6.3). The JobsDetail itself comes ready-made from
 * `src/xml/jobs-detail.ts`, the same tree DescribeMediaJob answers with; this
 * file only wraps it and picks the encoding.
 */

/** CI's `CallBackFormat` / queue `ResultFormat`; XML when unset. */
export type CallbackFormat = 'XML' | 'JSON';

/** A ready-to-POST callback body and its Content-Type. */
export interface NotificationBody {
  readonly body: string;
  readonly contentType: string;
}

/** A JobsDetail as CI's JSON callbacks show it: strings, objects and arrays only. */
export type CallbackJsonValue = string | CallbackJsonObject | CallbackJsonValue[];
export interface CallbackJsonObject {
  [name: string]: CallbackJsonValue;
}

/**
 * Builds a TaskFinish notification for one job.
 *
 * - XML: `<Response><EventName>TaskFinish</EventName><JobsDetail>…</JobsDetail></Response>`
 *   through the one XML serializer, as `application/xml`.
 * - JSON: `{"EventName":"TaskFinish","JobsDetail":{…}}` with no `Response`
 *   wrapper, shaped by `xmlTreeToCallbackJson`, as `application/json`.
 */
export function buildTaskFinishBody(jobsDetail: XmlObject, format: CallbackFormat): NotificationBody {
  if (format === 'JSON') {
    const body = { EventName: 'TaskFinish', JobsDetail: xmlTreeToCallbackJson(jobsDetail) };
    return { body: JSON.stringify(body), contentType: 'application/json' };
  }
  return { body: encodeXml('Response', { EventName: 'TaskFinish', JobsDetail: jobsDetail }), contentType: 'application/xml' };
}

/**
 * Converts an XML tree to the JSON CI sends when CallBackFormat=JSON (§6.3):
 * every value a string (`"Width":"544"`), one child element an object,
 * repeated elements an array, empty elements (`<Message/>`, an empty
 * `<Subtitle/>`) left out, and so are containers left with no content.
 *
 * An array in the tree stays an array in JSON even with one item, so a
 * builder that knows a field is a list (CosHeaders) gets the same JSON type
 * for one header as for three; XML cannot tell the two apart, JSON readers can.
 *
 * @example
 * xmlTreeToCallbackJson({ Code: 'Success', Message: '', Input: { Object: 'a.mp4' }, Id: ['1', '2'] })
 * // { Code: 'Success', Input: { Object: 'a.mp4' }, Id: ['1', '2'] }
 */
export function xmlTreeToCallbackJson(tree: XmlObject): CallbackJsonObject {
  // fromEntries, not assignment: an element named `__proto__` must become a
  // key, not the object's prototype.
  return Object.fromEntries(
    Object.entries(tree).flatMap(([name, value]) => {
      const converted = convert(value);
      return converted === undefined ? [] : [[name, converted]];
    }),
  );
}

/** undefined for anything that is empty once converted, so the caller leaves it out. */
function convert(value: XmlValue): CallbackJsonValue | undefined {
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (isXmlObject(value)) {
    const object = xmlTreeToCallbackJson(value);
    return Object.keys(object).length === 0 ? undefined : object;
  }
  const items = value.flatMap((item) => {
    const converted = convert(item);
    // A nested array is still just more repetitions of the same element.
    return converted === undefined ? [] : Array.isArray(converted) ? converted : [converted];
  });
  return items.length === 0 ? undefined : items;
}

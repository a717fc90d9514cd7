/*
 * complete_task's `result` for a CI job (an external Tag through POST /jobs)
 * becomes XML elements of its Operation (jsonToXml), shown by GET /jobs, the
 * listing and the TaskFinish callback. A key that is no XML name
 * (`"1 bad<"`, `""`, an array index) wrote malformed XML into every one of
 * them, and nesting past the XML builder's 100 levels made GET /jobs and the
 * whole listing answer 500. Such a result is refused (400) before the job ends.
 */

/** How deep a result may nest below its Operation (CI's own result elements go about five deep). */
export const MAX_CI_RESULT_DEPTH = 32;

/** An element name every XML reader takes: ASCII letters, digits, `_`, `-`, `.`, not starting with a digit, `-`, `.` or `xml`. */
const ELEMENT_NAME = /^(?!xml)[A-Za-z_][A-Za-z0-9_.-]{0,127}$/i;

/** What keeps `result` from becoming XML elements, in words for the client; undefined when it can. */
export function ciResultProblem(result: Record<string, unknown>): string | undefined {
  const walk = (value: unknown, path: string, depth: number, inArray: boolean): string | undefined => {
    if (value === null || typeof value !== 'object') return undefined;
    if (depth > MAX_CI_RESULT_DEPTH) return `result nests deeper than ${MAX_CI_RESULT_DEPTH} levels at ${path}`;
    if (Array.isArray(value)) {
      if (inArray) return `result has an array directly inside an array at ${path}: XML repeats an element, it cannot nest lists`;
      for (const item of value) {
        const problem = walk(item, path, depth, true);
        if (problem) return problem;
      }
      return undefined;
    }
    for (const [key, child] of Object.entries(value)) {
      const at = path ? `${path}.${key}` : key;
      if (!ELEMENT_NAME.test(key)) return `result key ${JSON.stringify(key.slice(0, 64))} is not an XML element name (letters, digits, _ - . , not starting with a digit or "xml")`;
      const problem = walk(child, at, depth + 1, false);
      if (problem) return problem;
    }
    return undefined;
  };
  return walk(result, '', 0, false);
}

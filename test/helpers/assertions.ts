import { expect } from 'chai';
/** Resolves to what `promise` rejected with; fails when it resolves instead. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** The names of `element`'s children, in document order, from the first `<element>` in `text`. */
export function childNames(text: string, element: string): string[] {
  const start = text.indexOf(`<${element}>`);
  expect(start, `<${element}> in ${text}`).to.be.at.least(0);
  const names: string[] = [];
  let depth = 0;
  const tag = /<(\/?)([A-Za-z][\w-]*)[^>]*?(\/?)>/g;
  tag.lastIndex = start + element.length + 2;
  for (let m = tag.exec(text); m; m = tag.exec(text)) {
    const [, closing, name, selfClosing] = m;
    if (closing) {
      if (depth === 0) break;
      depth -= 1;
    } else {
      if (depth === 0) names.push(name);
      if (!selfClosing) depth += 1;
    }
  }
  return names;
}

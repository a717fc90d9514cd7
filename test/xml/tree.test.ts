import { expect } from 'chai';
import { mapXmlText, type XmlObject } from '../../src/xml/tree.js';

describe('mapXmlText', () => {
  const upper = (text: string) => text.toUpperCase();

  it('maps every text, in nested elements and repeated ones, keeping names and order', () => {
    const tree: XmlObject = { A: 'a', B: { C: 'c', D: ['d1', { E: 'e' }] } };
    expect(mapXmlText(tree, upper)).to.deep.equal({ A: 'A', B: { C: 'C', D: ['D1', { E: 'E' }] } });
    expect(Object.keys(mapXmlText(tree, upper))).to.deep.equal(['A', 'B']);
    expect(tree.A, 'the input is left as it was').to.equal('a');
  });

  it('gives back an unchanged tree as itself and shares unchanged branches', () => {
    const tree: XmlObject = { A: 'A', B: { C: 'c' }, D: ['D', { E: 'E' }] };
    const mapped = mapXmlText(tree, upper);
    expect(mapped).to.not.equal(tree);
    expect(mapped.D).to.equal(tree.D);
    expect(mapXmlText(tree.D as unknown as XmlObject, upper)).to.equal(tree.D);
    const same: XmlObject = { A: 'A', B: ['B'] };
    expect(mapXmlText(same, upper)).to.equal(same);
  });
});

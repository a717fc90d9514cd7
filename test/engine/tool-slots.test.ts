import { expect } from 'chai';
import { ToolSlots } from '../../src/engine/tool-slots.js';

/** A promise and the function that settles it. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('ToolSlots', () => {
  const never = new AbortController().signal;

  it('runs at most `size` works at once, and the waiting ones in the order they asked', async () => {
    const slots = new ToolSlots(2);
    const order: number[] = [];
    let atOnce = 0;
    let most = 0;
    const gates = [0, 1, 2, 3, 4].map(() => deferred());
    const runs = gates.map((gate, i) => slots.run(never, async () => {
      order.push(i);
      most = Math.max(most, ++atOnce);
      await gate.promise;
      atOnce--;
      return i;
    }));
    await tick();
    expect(order).to.deep.equal([0, 1]);
    gates[1].resolve();
    await tick();
    expect(order).to.deep.equal([0, 1, 2]);
    for (const gate of gates) gate.resolve();
    expect(await Promise.all(runs)).to.deep.equal([0, 1, 2, 3, 4]);
    expect(order).to.deep.equal([0, 1, 2, 3, 4]);
    expect(most).to.equal(2);
  });

  it('an abort while waiting rejects with the reason, runs nothing, and takes no slot', async () => {
    const slots = new ToolSlots(1);
    const busy = deferred();
    const first = slots.run(never, () => busy.promise);
    const controller = new AbortController();
    let ran = false;
    const waiting = slots.run(controller.signal, async () => { ran = true; });
    controller.abort(new Error('job cancelled'));
    let rejected: unknown;
    await waiting.catch((err: unknown) => { rejected = err; });
    expect((rejected as Error).message).to.equal('job cancelled');
    busy.resolve();
    await first;
    // The slot is free again: the next run starts at once.
    let next = false;
    await slots.run(never, async () => { next = true; });
    expect(next).to.equal(true);
    expect(ran).to.equal(false);
  });

  it('an already aborted signal rejects before taking a slot', async () => {
    const slots = new ToolSlots(1);
    const controller = new AbortController();
    controller.abort(new Error('stopped'));
    let rejected: unknown;
    await slots.run(controller.signal, async () => undefined).catch((err: unknown) => { rejected = err; });
    expect((rejected as Error).message).to.equal('stopped');
    await slots.run(never, async () => undefined);
  });

  it('frees the slot when the work throws', async () => {
    const slots = new ToolSlots(1);
    let rejected: unknown;
    await slots.run(never, async () => { throw new Error('tool crashed'); }).catch((err: unknown) => { rejected = err; });
    expect((rejected as Error).message).to.equal('tool crashed');
    expect(await slots.run(never, async () => 'ran')).to.equal('ran');
  });
});

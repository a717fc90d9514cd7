import { expect } from 'chai';
import { nextAttemptAt, nextRetryDelayMs, RETRY_BASE_MS, RETRY_CAP_MS } from '../../src/callbacks/backoff.js';

const HOUR = 3_600_000;

/** A small deterministic generator (mulberry32), so the simulation is the same on every run. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('nextRetryDelayMs', () => {
  it('doubles the ceiling from 1 s per attempt up to the 30 min cap', () => {
    const almostOne = (): number => 0.999999;
    const ceilings = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 50].map((attempt) => Math.round(nextRetryDelayMs(attempt, almostOne) / 1000));
    expect(ceilings).to.deep.equal([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1800, 1800, 1800]);
  });

  it('spreads the wait uniformly below the ceiling (full jitter)', () => {
    expect(nextRetryDelayMs(5, () => 0.5)).to.equal(8000);
    expect(nextRetryDelayMs(5, () => 0.25)).to.equal(4000);
    expect(nextRetryDelayMs(40, () => 0.5)).to.equal(RETRY_CAP_MS / 2);
  });

  it('never waits less than 1 s or more than 30 min', () => {
    for (const attempt of [1, 2, 10, 12, 100, 1e6]) {
      for (const r of [0, 1e-9, 0.5, 0.999999, 1]) {
        const delay = nextRetryDelayMs(attempt, () => r);
        expect(delay, `attempt ${attempt}, random ${r}`).to.be.at.least(RETRY_BASE_MS).and.at.most(RETRY_CAP_MS);
      }
    }
  });

  it('treats a missing, zero or nonsense attempt count as the first', () => {
    for (const attempt of [0, -3, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(nextRetryDelayMs(attempt, () => 0.999999), String(attempt)).to.equal(nextRetryDelayMs(1, () => 0.999999));
    }
  });

  it('uses Math.random by default', () => {
    const delay = nextRetryDelayMs(20);
    expect(delay).to.be.at.least(RETRY_BASE_MS).and.at.most(RETRY_CAP_MS);
  });
});

describe('nextAttemptAt', () => {
  const first = new Date('2024-01-01T00:00:00Z');

  it('schedules the next attempt one backoff delay from now', () => {
    const now = new Date(first.getTime() + 10_000);
    expect(nextAttemptAt({ attempt: 5, firstAttemptAt: first, retryForMs: 24 * HOUR, now, random: () => 0.5 })).to.deep.equal(new Date(now.getTime() + 8000));
  });

  it('cuts the last wait short so the final attempt lands at the end of the window', () => {
    const now = new Date(first.getTime() + 24 * HOUR - 60_000);
    expect(nextAttemptAt({ attempt: 30, firstAttemptAt: first, retryForMs: 24 * HOUR, now, random: () => 0.5 })).to.deep.equal(
      new Date(first.getTime() + 24 * HOUR),
    );
  });

  it('gives up once the window has passed', () => {
    const now = new Date(first.getTime() + 24 * HOUR);
    expect(nextAttemptAt({ attempt: 30, firstAttemptAt: first, retryForMs: 24 * HOUR, now })).to.equal(null);
  });

  it('keeps a dead receiver tried for the whole 24 h, about a hundred times, at most 30 min apart', () => {
    const random = seeded(42);
    let now = first;
    let attempts = 1;
    let longestGap = 0;
    for (;;) {
      const next = nextAttemptAt({ attempt: attempts, firstAttemptAt: first, retryForMs: 24 * HOUR, now, random });
      if (next === null) break;
      longestGap = Math.max(longestGap, next.getTime() - now.getTime());
      now = next;
      attempts += 1;
    }
    expect(now.getTime() - first.getTime()).to.equal(24 * HOUR);
    expect(attempts).to.be.within(70, 150);
    expect(longestGap).to.be.at.most(RETRY_CAP_MS);
  });
});

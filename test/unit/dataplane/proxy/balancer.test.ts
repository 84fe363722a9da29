import { describe, expect, it } from 'vitest';
import { WeightedRoundRobin } from '../../../../src/dataplane/proxy/balancer.ts';

describe('WeightedRoundRobin', () => {
  it('picks each item exactly weight times per cycle, interleaved', () => {
    const wrr = new WeightedRoundRobin(['a', 'b', 'c'], [5, 1, 1]);
    const picks = Array.from({ length: 7 }, () => wrr.pick());
    expect(picks.filter((p) => p === 'a')).toHaveLength(5);
    expect(picks.filter((p) => p === 'b')).toHaveLength(1);
    // smooth: never five a's in a row
    expect(picks.join('')).not.toContain('aaaaa');
  });

  it('holds a 90/10 split exactly over 1,000 picks', () => {
    const wrr = new WeightedRoundRobin(['v1', 'v2'], [90, 10]);
    const counts = { v1: 0, v2: 0 };
    for (let i = 0; i < 1000; i++) counts[wrr.pick() as 'v1' | 'v2']++;
    expect(counts).toEqual({ v1: 900, v2: 100 });
  });

  it('skips excluded items and returns undefined when all are excluded', () => {
    const wrr = new WeightedRoundRobin(['a', 'b'], [1, 1]);
    for (let i = 0; i < 10; i++) expect(wrr.pick((x) => x === 'a')).toBe('b');
    expect(wrr.pick(() => true)).toBeUndefined();
    expect(new WeightedRoundRobin([], []).pick()).toBeUndefined();
  });
});

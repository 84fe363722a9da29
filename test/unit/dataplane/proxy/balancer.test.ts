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

describe('WeightedRoundRobin edge cases', () => {
  it('pickWith skipping one item keeps the others’ exact ratio, interleaved', () => {
    const wrr = new WeightedRoundRobin(['a', 'b', 'c'], [5, 3, 2]);
    const skipA = (x: string, _: undefined) => x === 'a';
    const picks = Array.from({ length: 50 }, () => wrr.pickWith(skipA, undefined));
    expect(picks.filter((p) => p === 'b')).toHaveLength(30);
    expect(picks.filter((p) => p === 'c')).toHaveLength(20);
    expect(picks.join('')).not.toContain('bbbb');
  });

  it('pickWith passes its argument to the predicate (the excluded item)', () => {
    const wrr = new WeightedRoundRobin(['a', 'b', 'c'], [1, 1, 1]);
    const notArg = (x: string, arg: string) => x === arg;
    for (let i = 0; i < 9; i++) expect(wrr.pickWith(notArg, 'b')).not.toBe('b');
  });

  it('a single item: returned unless skipped, by both pick and pickWith', () => {
    const wrr = new WeightedRoundRobin(['only'], [3]);
    expect(wrr.pick()).toBe('only');
    expect(wrr.pick(() => false)).toBe('only');
    expect(wrr.pick(() => true)).toBeUndefined();
    expect(wrr.pickWith((_x, skip: boolean) => skip, false)).toBe('only');
    expect(wrr.pickWith((_x, skip: boolean) => skip, true)).toBeUndefined();
    expect(wrr.size).toBe(1);
  });

  it('a skip that skips nothing leaves the exact split intact', () => {
    const wrr = new WeightedRoundRobin(['v1', 'v2'], [3, 1]);
    const picks = Array.from({ length: 400 }, (_, i) => (i % 2 ? wrr.pick(() => false) : wrr.pick()));
    expect(picks.filter((p) => p === 'v1')).toHaveLength(300);
  });

  it('an item of weight 0 is never picked while another has weight', () => {
    const wrr = new WeightedRoundRobin(['zero', 'one'], [0, 1]);
    for (let i = 0; i < 10; i++) expect(wrr.pick()).toBe('one');
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InFlight, type InFlightEntry } from '../../../../src/dataplane/proxy/in-flight.ts';

describe('InFlight', () => {
  it('counts, iterates and forgets like a Set', () => {
    const list = new InFlight<{ id: number }>();
    const a = { id: 1 };
    const b = { id: 2 };
    const c = { id: 3 };
    const ea = list.add(a);
    const eb = list.add(b);
    list.add(c);
    expect(list.size).toBe(3);
    expect(new Set(list)).toEqual(new Set([a, b, c]));
    list.delete(eb);
    expect(list.size).toBe(2);
    expect(new Set(list)).toEqual(new Set([a, c]));
    list.delete(ea);
    list.delete(ea);
    expect(list.size).toBe(1);
    expect([...list]).toEqual([c]);
  });

  it('leaves a deleted entry pointing at nothing (no finished request kept reachable through it)', () => {
    const list = new InFlight<object>();
    const entries = [list.add({}), list.add({}), list.add({})];
    const middle = entries[1]!;
    list.delete(middle);
    expect(middle).toEqual({ value: undefined, prev: undefined, next: undefined });
    // Its neighbours now skip it.
    expect(entries[0]!.prev).toBe(entries[2]);
    expect(entries[2]!.next).toBe(entries[0]);
  });

  it('lets the walker delete the entry it is on', () => {
    const list = new InFlight<{ n: number }>();
    const byValue = new Map<object, InFlightEntry<{ n: number }>>();
    for (let n = 0; n < 5; n++) {
      const v = { n };
      byValue.set(v, list.add(v));
    }
    const seen: number[] = [];
    for (const v of list) {
      seen.push(v.n);
      list.delete(byValue.get(v)!);
    }
    expect(seen.sort()).toEqual([0, 1, 2, 3, 4]);
    expect(list.size).toBe(0);
    expect([...list]).toEqual([]);
  });

  it('matches a Set over any sequence of adds and deletes', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(20)), { maxLength: 200 }), (ops) => {
        const list = new InFlight<{ k: number }>();
        const model = new Set<{ k: number }>();
        const live: { v: { k: number }; e: InFlightEntry<{ k: number }> }[] = [];
        for (const [add, k] of ops) {
          if (add || live.length === 0) {
            const v = { k };
            live.push({ v, e: list.add(v) });
            model.add(v);
          } else {
            const [gone] = live.splice(k % live.length, 1);
            list.delete(gone!.e);
            model.delete(gone!.v);
          }
          expect(list.size).toBe(model.size);
        }
        expect(new Set(list)).toEqual(model);
      }),
    );
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  GATEWAY_REQUEST_HEADERS,
  HOP_BY_HOP_HEADERS,
  isGatewayRequestHeader,
  isHopByHop,
} from '../../../src/api/reserved-headers.ts';

/** Names of the same lengths as the members, one letter off: what a test by length must still tell apart. */
function nearMisses(names: Iterable<string>): string[] {
  const out: string[] = [];
  for (const n of names)
    for (let i = 0; i < n.length; i++) out.push(n.slice(0, i) + (n[i] === 'x' ? 'y' : 'x') + n.slice(i + 1));
  return out;
}

describe('the data path’s header predicates agree with the sets validation uses', () => {
  const cases: [string, (n: string) => boolean, ReadonlySet<string>][] = [
    ['isHopByHop', isHopByHop, HOP_BY_HOP_HEADERS],
    ['isGatewayRequestHeader', isGatewayRequestHeader, GATEWAY_REQUEST_HEADERS],
  ];
  it.each(cases)('%s: every member, every near miss, the other set', (_name, predicate, set) => {
    for (const n of set) expect(predicate(n), n).toBe(true);
    for (const n of nearMisses(set)) expect(predicate(n), n).toBe(set.has(n));
    for (const n of [
      ...HOP_BY_HOP_HEADERS,
      ...GATEWAY_REQUEST_HEADERS,
      'content-length',
      'x-edgegate-attempt',
      '',
    ])
      expect(predicate(n), n).toBe(set.has(n));
  });

  it.each(cases)('%s: generated lower-case names', (_name, predicate, set) => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z-]{0,24}$/), (n) => predicate(n) === set.has(n)),
      { numRuns: 2000 },
    );
  });
});

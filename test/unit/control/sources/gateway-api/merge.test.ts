/** Two Service endpoint snapshots as one (src/control/sources/gateway-api/merge.ts). */
import { describe, expect, it } from 'vitest';
import type { KubeServiceSnapshot } from '../../../../../src/api/catalog.ts';
import { mergeKubeSnapshots } from '../../../../../src/control/sources/gateway-api/merge.ts';

describe('mergeKubeSnapshots', () => {
  it('keeps the services of both; one in both is the same data, the first wins', () => {
    const a = {
      services: { 'shop/a': { marker: 'a' }, 'shop/both': { marker: 'from a' } },
    } as unknown as KubeServiceSnapshot;
    const b = {
      services: { 'shop/b': { marker: 'b' }, 'shop/both': { marker: 'from b' } },
    } as unknown as KubeServiceSnapshot;
    const m = mergeKubeSnapshots(a, b);
    expect(Object.keys(m.services).sort()).toEqual(['shop/a', 'shop/b', 'shop/both']);
    expect(m.services['shop/both']).toEqual({ marker: 'from a' });
    // Inputs untouched.
    expect(Object.keys(a.services)).toHaveLength(2);
    expect(Object.keys(b.services)).toHaveLength(2);
  });
});

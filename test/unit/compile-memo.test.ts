// The validation memo (CompileInput.memo): the same route object is validated once across compiles, and the
// results are exactly those of a compile without it (tables byte for byte, statuses equal, nothing shared that a
// caller could change).
import { describe, expect, it } from 'vitest';
import type { RouteSource } from '../../src/api/route-source.ts';
import { type CompileMemo, compile } from '../../src/compile/compile.ts';
import { tableWire } from '../../src/table/wire.ts';

const route = (name: string, spec: unknown): RouteSource => ({
  raw: {
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name, namespace: 'ns' },
    spec,
  },
  origin: 'kube',
});
const catalog = { localDatacenter: 'dc1', datacenters: {} };
const routes = [
  route('ok', { hostnames: ['a.example.com'], rules: [{ backends: [{ consul: { service: 'echo' } }] }] }),
  route('bad', {
    rules: [{ matches: [{ path: { value: '/a//b' } }], backends: [{ consul: { service: 'x' } }] }],
  }),
];

describe('compile memo', () => {
  it('gives the same table and statuses as a compile without it, and remembers each route object', () => {
    const memo: CompileMemo = new WeakMap();
    const plain = compile({ routes, catalog });
    const first = compile({ routes, catalog, memo });
    const second = compile({ routes, catalog, memo });
    for (const r of [first, second]) {
      expect(tableWire(r.table).json).toBe(tableWire(plain.table).json);
      expect(r.statuses).toEqual(plain.statuses);
    }
    for (const r of routes) expect(memo.has(r.raw as object)).toBe(true);
    // A caller changing one compile's statuses does not change the next one's.
    second.statuses.find((s) => !s.accepted)!.errors.push({ path: ['x'], message: 'added by a caller' });
    expect(compile({ routes, catalog, memo }).statuses).toEqual(plain.statuses);
  });
});

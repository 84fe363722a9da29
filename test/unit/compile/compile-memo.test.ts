// The compile memo (CompileInput.memo): the same route object is validated once, and compiled once for as long as
// the catalog, Services and certificate snapshots are the same objects; the results are exactly those of a compile
// without it (tables byte for byte, statuses equal, nothing shared that a caller could change), and a new snapshot
// compiles again.
import { describe, expect, it } from 'vitest';
import type { CatalogSnapshot } from '../../../src/api/catalog.ts';
import type { RouteSource } from '../../../src/api/route-source.ts';
import { type CompileMemo, compile } from '../../../src/compile/compile.ts';
import { tableWire } from '../../../src/table/wire.ts';

const route = (name: string, spec: unknown): RouteSource => ({
  raw: {
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name, namespace: 'ns' },
    spec,
  },
  origin: 'kube',
});
const catalog = (ports: number[]): CatalogSnapshot => ({
  localDatacenter: 'dc1',
  datacenters: {
    dc1: {
      services: {
        echo: ports.map((port) => ({
          id: `e${port}`,
          address: '127.0.0.1',
          port,
          tags: [],
          meta: {},
          health: 'passing' as const,
          weight: 1,
        })),
      },
    },
  },
});
const kube = {
  services: { 'ns/web': { ports: [{ name: 'http', port: 80, targetPort: 8080 }], endpoints: [] } },
};
const routes = [
  route('ok', { hostnames: ['a.example.com'], rules: [{ backends: [{ consul: { service: 'echo' } }] }] }),
  // A zero-weight backend: its cluster is in the table though no entry sends to it.
  route('weights', {
    rules: [
      {
        matches: [{ path: { value: '/w' } }],
        backends: [{ consul: { service: 'echo' } }, { service: { name: 'web', port: 80 }, weight: 0 }],
      },
    ],
  }),
  route('missing', {
    rules: [{ matches: [{ path: { value: '/m' } }], backends: [{ consul: { service: 'nope' } }] }],
  }),
  route('bad', {
    rules: [{ matches: [{ path: { value: '/a//b' } }], backends: [{ consul: { service: 'x' } }] }],
  }),
];

describe('compile memo', () => {
  it('gives the same table and statuses as a compile without it, and remembers each route object', () => {
    const memo: CompileMemo = new WeakMap();
    const cat = catalog([9001]);
    const plain = compile({ routes, catalog: cat, kube });
    const first = compile({ routes, catalog: cat, kube, memo });
    const second = compile({ routes, catalog: cat, kube, memo }); // every route from the memo
    for (const r of [first, second]) {
      expect(tableWire(r.table).json).toBe(tableWire(plain.table).json);
      expect(r.statuses).toEqual(plain.statuses);
    }
    expect(second.table.clusters.map((c) => c.id)).toEqual(plain.table.clusters.map((c) => c.id));
    for (const r of routes) expect(memo.has(r.raw as object)).toBe(true);
    // A caller changing one compile's statuses does not change the next one's.
    second.statuses.find((s) => !s.accepted)!.errors.push({ path: ['x'], message: 'added by a caller' });
    second.statuses.find((s) => s.route === 'ns/missing')!.unresolved.push('added by a caller');
    second.statuses.find((s) => s.route === 'ns/ok')!.backends[0]!.healthy.dc1 = 99;
    expect(compile({ routes, catalog: cat, kube, memo }).statuses).toEqual(plain.statuses);
  });

  it('compiles again against a new snapshot: new endpoints are in the table and in the statuses', () => {
    const memo: CompileMemo = new WeakMap();
    compile({ routes, catalog: catalog([9001]), kube, memo });
    const next = compile({ routes, catalog: catalog([9001, 9002]), kube, memo });
    const plain = compile({ routes, catalog: catalog([9001, 9002]), kube });
    expect(tableWire(next.table).json).toBe(tableWire(plain.table).json);
    expect(next.statuses).toEqual(plain.statuses);
    expect(next.statuses.find((s) => s.route === 'ns/ok')!.backends[0]!.healthy).toEqual({ dc1: 2 });
  });
});

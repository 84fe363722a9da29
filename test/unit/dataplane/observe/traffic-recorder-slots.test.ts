// A worker's recording slots follow the table it serves: a route that stays keeps counting where it was; the slots
// of routes (and Services) that left the table go, so deleting thousands of routes gives their memory back.
import { describe, expect, it } from 'vitest';
import type { RouteSource } from '../../../../src/api/route-source.ts';
import { compile } from '../../../../src/compile/compile.ts';
import { TrafficRecorder } from '../../../../src/dataplane/observe/traffic-recorder.ts';

const catalog = {
  localDatacenter: 'dc1',
  datacenters: {
    dc1: {
      services: Object.fromEntries(
        Array.from({ length: 10 }, (_, s) => [
          `s${s}`,
          [
            {
              id: `s${s}`,
              address: '127.0.0.1',
              port: 9000 + s,
              tags: [],
              meta: {},
              health: 'passing' as const,
              weight: 1,
            },
          ],
        ]),
      ),
    },
  },
};
const routes = (n: number): RouteSource[] =>
  Array.from({ length: n }, (_, i) => ({
    raw: {
      apiVersion: 'edgegate.io/v1alpha1',
      kind: 'GatewayRoute',
      metadata: { name: `r${i}`, namespace: 'ns' },
      spec: {
        rules: [
          { matches: [{ path: { value: `/r${i}` } }], backends: [{ consul: { service: `s${i % 10}` } }] },
        ],
      },
    },
    origin: 'test',
  }));

describe('TrafficRecorder slots', () => {
  it('follow the installed table: kept for routes that stay, dropped for routes that left', () => {
    const rec = new TrafficRecorder();
    const big = compile({ routes: routes(1000), catalog }).table;
    rec.install(big);
    expect(rec.size).toEqual({ traffic: 1 + 2 * 1000, upstream: 10 });
    const entry = big.entries.find((e) => e.route === 'ns/r1')!;
    const cluster = big.clusters.find((c) => c.id === entry.backends![0]!.cluster)!;
    rec.routeSlots(entry).forCluster(cluster).add(1, 0.01, 10, 20, 0);

    const small = compile({ routes: routes(2), catalog }).table;
    rec.install(small);
    expect(rec.size).toEqual({ traffic: 1 + 2 * 2, upstream: 2 });
    // r1 stayed: its count carries on, from the same slot.
    const again = small.entries.find((e) => e.route === 'ns/r1')!;
    rec.routeSlots(again).forCluster(cluster).add(1, 0.01, 10, 20, 0);
    expect(rec.snapshot().traffic.find((t) => t.route === 'ns/r1' && t.service === 's1')?.codes[1]).toBe(2);

    rec.install(compile({ routes: [], catalog }).table);
    expect(rec.size).toEqual({ traffic: 1, upstream: 0 });
    expect(rec.snapshot().traffic).toEqual([]);
  });
});

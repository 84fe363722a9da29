/** Coalescing in the controller: a burst of reports makes one table; an unchanged result publishes nothing. */
import { describe, expect, it } from 'vitest';
import type { CatalogSnapshot } from '../../../src/api/catalog.ts';
import { Controller } from '../../../src/control/controller.ts';
import type { TableData } from '../../../src/table/types.ts';
import { waitFor } from '../../support/wait.ts';

const routes = [
  {
    raw: {
      apiVersion: 'edgegate.io/v1alpha1',
      kind: 'GatewayRoute',
      metadata: { name: 'r', namespace: 't' },
      spec: { rules: [{ backends: [{ consul: { service: 'billing' } }] }] },
    },
    origin: 'r.yaml:1',
  },
];

const catalog = (ports: number[]): CatalogSnapshot => ({
  localDatacenter: 'dc1',
  datacenters: {
    dc1: {
      services: {
        billing: ports.map((port) => ({
          id: `b-${port}`,
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

describe('Controller coalescing', () => {
  it('publishes a burst once, an equal snapshot never, and a real change once', async () => {
    const published: TableData[] = [];
    let compiles = 0;
    const c = new Controller({
      expect: ['routes', 'catalog'],
      publish: (t) => {
        published.push(t);
      },
      onCompiled: () => compiles++,
    });
    c.setRoutes(routes);
    for (let i = 0; i < 10; i++) c.setCatalog(catalog([9000 + i]));
    await waitFor(() => published.length === 1, { timeoutMs: 5000 });
    await c.idle();
    expect(published).toHaveLength(1);
    expect(published[0]!.clusters[0]!.endpoints.map((e) => e.port)).toEqual([9009]);
    // Equal content (a fresh object): compiled, hash equal, nothing published.
    c.setCatalog(catalog([9009]));
    await waitFor(() => compiles === 2, { timeoutMs: 5000 });
    await c.idle();
    expect(published).toHaveLength(1);
    c.setCatalog(catalog([9009, 9010]));
    await waitFor(() => published.length === 2, { timeoutMs: 5000 });
    expect(published[1]!.version).toBe(2);
    c.stop();
  });
});

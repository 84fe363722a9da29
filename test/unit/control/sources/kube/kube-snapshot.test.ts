import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { compile } from '../../../../../src/compile/compile.ts';
import {
  buildKubeSnapshot,
  type GatewayRouteObject,
  referencedServices,
  routeSourceOf,
} from '../../../../../src/control/sources/kube/kube-source.ts';

const svc: V1Service = {
  metadata: { name: 'web', namespace: 'shop' },
  spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
};
const slice = (name: string, endpoints: V1EndpointSlice['endpoints'], port = 8080): V1EndpointSlice => ({
  metadata: { name, namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
  addressType: 'IPv4',
  ports: [{ name: 'http', port, protocol: 'TCP' }],
  endpoints,
});
const route = (port: number | string): GatewayRouteObject => ({
  apiVersion: 'edgegate.io/v1alpha1',
  kind: 'GatewayRoute',
  metadata: {
    name: 'r',
    namespace: 'shop',
    generation: 2,
    creationTimestamp: '2026-01-01T00:00:00Z' as unknown as Date,
  },
  spec: {
    rules: [{ backends: [{ service: { name: 'web', port } }, { service: { name: 'missing', port: 80 } }] }],
  },
});

describe('Kubernetes Service snapshot', () => {
  it('keeps only ready endpoints of referenced Services; a port by number or by name resolves', () => {
    const routes = [route(80)];
    const wanted = referencedServices(routes);
    expect([...wanted]).toEqual(['shop/web', 'shop/missing']);
    const snap = buildKubeSnapshot(
      wanted,
      [svc, { metadata: { name: 'other', namespace: 'shop' }, spec: { ports: [{ port: 1 }] } }],
      [
        slice('web-1', [
          { addresses: ['192.0.2.2'], conditions: { ready: true } },
          { addresses: ['192.0.2.3'], conditions: { ready: false } },
          { addresses: ['192.0.2.4'] }, // ready unset means ready
        ]),
      ],
    );
    expect(Object.keys(snap.services)).toEqual(['shop/web']);
    expect(snap.services['shop/web']!.endpoints.map((e) => e.address)).toEqual(['192.0.2.2', '192.0.2.4']);
    for (const port of [80, 'http'] as const) {
      const { table, statuses } = compile({
        routes: [routeSourceOf(route(port))],
        catalog: { localDatacenter: 'dc1', datacenters: {} },
        kube: snap,
      });
      const cluster = table.clusters.find((c) => c.service === 'shop/web')!;
      expect(cluster.endpoints.map((e) => `${e.address}:${e.port}`)).toEqual([
        '192.0.2.2:8080',
        '192.0.2.4:8080',
      ]);
      expect(statuses[0]!.unresolved).toEqual(['Service shop/missing not found']);
      expect(statuses[0]!.generation).toBe(2);
    }
  });

  it('a Service without a Service object still resolves through its EndpointSlices', () => {
    const snap = buildKubeSnapshot(
      new Set(['shop/web']),
      [],
      [slice('web-1', [{ addresses: ['192.0.2.9'] }], 9000)],
    );
    expect(snap.services['shop/web']).toEqual({
      ports: [{ name: 'http', port: 9000, targetPort: 9000 }],
      endpoints: [{ address: '192.0.2.9', ports: { http: 9000 }, ready: true }],
    });
  });
});

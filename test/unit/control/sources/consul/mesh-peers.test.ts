import { describe, expect, it } from 'vitest';
import type { GatewayRoute } from '../../../../../src/api/gateway-route.ts';
import { validateRoute } from '../../../../../src/api/validate.ts';
import { consulOption } from '../../../../../src/control/sources/consul/cli.ts';
import { peerServiceList, serviceList } from '../../../../../src/control/sources/consul/service-lists.ts';
import { consulSettingsFromEnv } from '../../../../../src/control/sources/consul/settings.ts';
import { deriveWatchSet, peerOf, watchKey } from '../../../../../src/control/sources/consul/watch-set.ts';

const parse = (spec: unknown): GatewayRoute => {
  const v = validateRoute({
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name: 'r' },
    spec,
  });
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  return v.route;
};

const view = {
  localDatacenter: 'dc1',
  datacenters: ['dc1', 'dc2'],
  services: { dc1: { web: ['edge'] }, 'peer:west': { billing: ['edge'], db: [] } },
};

describe('deriveWatchSet: peers and mesh', () => {
  it('watches a peer like a datacenter under peer:<name>, whether or not Consul lists it as a datacenter', () => {
    const ws = deriveWatchSet(
      [parse({ rules: [{ backends: [{ consul: { service: 'billing', peer: 'east' } }] }] })],
      view,
    );
    expect(ws).toEqual({
      datacenters: ['peer:east'],
      services: [{ datacenter: 'peer:east', service: 'billing' }],
    });
    expect(peerOf('peer:east')).toBe('east');
    expect(peerOf('dc1')).toBeUndefined();
  });

  it('a catalog route’s peers add the peer’s tagged services', () => {
    const ws = deriveWatchSet(
      [parse({ catalog: { requiredTags: ['edge'], datacenters: ['dc1'], peers: ['west'] } })],
      view,
    );
    expect(ws.datacenters).toEqual(['dc1', 'peer:west']);
    expect(ws.services).toEqual([
      { datacenter: 'dc1', service: 'web' },
      { datacenter: 'peer:west', service: 'billing' },
    ]);
  });

  it('a mesh backend is its own watch (mesh addresses), beside the plain one', () => {
    const ws = deriveWatchSet(
      [
        parse({
          rules: [{ backends: [{ consul: { service: 'web', mesh: true } }, { consul: { service: 'web' } }] }],
        }),
      ],
      view,
    );
    expect(ws.services).toEqual([
      { datacenter: 'dc1', service: 'web' },
      { datacenter: 'dc1', service: 'web', mesh: true },
    ]);
    expect(ws.services.map(watchKey)).toEqual(['dc1/web', 'dc1/web#mesh']);
  });
});

describe('service lists', () => {
  it('a peer’s imported services (/v1/internal/ui/services?peer=) → service → union of tags', () => {
    expect(
      peerServiceList([
        { Name: 'billing', Tags: ['edge', 'v1'], PeerName: 'west' },
        { Name: 'billing', Tags: ['v2'], PeerName: 'west' },
        { Name: 'db', Tags: null },
        { Tags: ['x'] },
      ]),
    ).toEqual({ billing: ['edge', 'v1', 'v2'], db: [] });
    expect(() => peerServiceList({})).toThrow('expected a list of services');
    expect(serviceList({ web: ['a', 1], db: null })).toEqual({ web: ['a'], db: [] });
    expect(() => serviceList([])).toThrow('expected an object');
  });
});

describe('--consul-mesh-service / EDGEGATE_CONSUL_MESH_SERVICE', () => {
  it('is read from the environment, the flag wins, and a bad name is refused naming its source', () => {
    expect(consulSettingsFromEnv({}).meshService).toBeUndefined();
    expect(consulSettingsFromEnv({ EDGEGATE_CONSUL_MESH_SERVICE: 'edgegate' }).meshService).toBe('edgegate');
    expect(
      consulOption(
        { consul: true, consulMeshService: 'edge-gw' },
        { EDGEGATE_CONSUL_MESH_SERVICE: 'edgegate' },
      )?.meshService,
    ).toBe('edge-gw');
    expect(() => consulSettingsFromEnv({ EDGEGATE_CONSUL_MESH_SERVICE: 'a/b' })).toThrow(
      /^EDGEGATE_CONSUL_MESH_SERVICE: "a\/b" is not a Consul service name/,
    );
    expect(() => consulOption({ consul: true, consulMeshService: '../x' }, {})).toThrow(
      /^--consul-mesh-service:/,
    );
  });
});

import { describe, expect, it } from 'vitest';
import type { CatalogSnapshot, Instance } from '../../../src/api/catalog.ts';
import type { RouteSource } from '../../../src/api/route-source.ts';
import { compile } from '../../../src/compile/compile.ts';
import { RoutingTable } from '../../../src/table/index.ts';

const route = (name: string, spec: unknown): RouteSource => ({
  raw: {
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name, namespace: 'ns' },
    spec,
  },
  origin: `${name}.yaml:1`,
});

const inst = (port: number, tags: string[] = [], health: Instance['health'] = 'passing'): Instance => ({
  id: `i${port}`,
  address: '127.0.0.1',
  port,
  tags,
  meta: {},
  health,
  weight: 1,
});

const base: CatalogSnapshot = {
  localDatacenter: 'dc1',
  datacenters: { dc1: { services: { web: [inst(80)], peer: [inst(81, ['edge'])] } } },
  peers: {
    west: { services: { billing: [inst(90, ['edge']), inst(91, ['edge'], 'critical')], db: [inst(92)] } },
  },
  mesh: {
    gatewayService: 'edgegate',
    namespace: 'default',
    services: { 'dc1/web': [inst(21000)], 'dc1/pay': [inst(21001)] },
    intentions: {
      web: { allowed: true, reason: 'Default behavior configured by ACLs' },
      pay: { allowed: false, reason: 'Matched L4 intention: default/edgegate => default/pay (Action: DENY)' },
    },
  },
};

const rules = (consul: Record<string, unknown>) => ({
  hostnames: ['a.test'],
  rules: [{ backends: [{ consul }] }],
});

describe('compile: Consul mesh backends', () => {
  it('takes the mesh addresses, and the pool expects the SPIFFE identity of the service', () => {
    const { table, statuses } = compile({
      routes: [route('m', rules({ service: 'web', mesh: true }))],
      catalog: base,
    });
    expect(table.clusters).toHaveLength(1);
    const c = table.clusters[0]!;
    expect(c.endpoints.map((e) => e.port)).toEqual([21000]);
    expect(c.pool.mesh).toEqual({ service: 'web', namespace: 'default', datacenter: 'dc1' });
    expect(c.pool.tls).toEqual({});
    expect(c.meshDenied).toBeUndefined();
    expect(statuses[0]!.unresolved).toEqual([]);
    expect(statuses[0]!.backends).toEqual([{ ref: 'consul:web@dc1~mesh', healthy: { dc1: 1 } }]);
  });

  it('the same service without mesh is a different cluster, at its plain address', () => {
    const { table } = compile({
      routes: [
        route('m', rules({ service: 'web', mesh: true })),
        route('p', { ...rules({ service: 'web' }), hostnames: ['b.test'] }),
      ],
      catalog: base,
    });
    const ports = table.clusters.map((c) => [c.pool.mesh !== undefined, c.endpoints[0]!.port]).sort();
    expect(ports).toEqual([
      [false, 80],
      [true, 21000],
    ]);
  });

  it('a destination the intentions deny carries the reason', () => {
    const { table } = compile({ routes: [route('m', rules({ service: 'pay', mesh: true }))], catalog: base });
    expect(table.clusters[0]!.meshDenied).toBe(
      'intentions deny edgegate → pay: Matched L4 intention: default/edgegate => default/pay (Action: DENY)',
    );
  });

  it('without a mesh identity (no --consul-mesh-service) a mesh backend has no endpoints and is unresolved', () => {
    const { mesh: _, ...noMesh } = base;
    const { table, statuses } = compile({
      routes: [route('m', rules({ service: 'web', mesh: true }))],
      catalog: noMesh,
    });
    expect(table.clusters[0]!.endpoints).toEqual([]);
    expect(statuses[0]!.unresolved[0]).toMatch(/no mesh identity \(--consul-mesh-service\)/);
  });

  it('refuses mesh with tls, mesh with peer, and peer with datacenter, naming the field', () => {
    const bad = [
      { hostnames: ['a.test'], rules: [{ backends: [{ consul: { service: 'web', mesh: true }, tls: {} }] }] },
      rules({ service: 'web', mesh: true, peer: 'west' }),
      rules({ service: 'web', peer: 'west', datacenter: 'dc2' }),
      rules({ service: 'web', peer: 'West_1' }),
    ];
    const { statuses } = compile({ routes: bad.map((s, i) => route(`b${i}`, s)), catalog: base });
    const errs = statuses.map((s) => s.errors.map((e) => `${e.path.join('.')}: ${e.message}`).join(' | '));
    expect(statuses.every((s) => !s.accepted)).toBe(true);
    expect(errs[0]).toContain('tls: a mesh backend gets its TLS from Consul Connect');
    expect(errs[1]).toContain('consul.mesh: mesh to a peered service is not supported');
    expect(errs[2]).toContain('consul.peer: peer and datacenter are exclusive');
    expect(errs[3]).toContain('peer');
  });
});

describe('compile: Consul cluster peers', () => {
  it('a backend peer takes the peer’s instances and is labelled peer:<name>', () => {
    const { table, statuses } = compile({
      routes: [route('p', rules({ service: 'billing', peer: 'west' }))],
      catalog: base,
    });
    const c = table.clusters[0]!;
    expect(c.datacenter).toBe('peer:west');
    expect(c.endpoints.map((e) => e.port)).toEqual([90]);
    expect(statuses[0]!.backends).toEqual([{ ref: 'consul:billing@peer:west', healthy: { 'peer:west': 1 } }]);
    expect(statuses[0]!.unresolved).toEqual([]);
  });

  it('a service the peer does not export, or an unknown peer, is unresolved', () => {
    const { statuses } = compile({
      routes: [
        route('a', rules({ service: 'nope', peer: 'west' })),
        route('b', rules({ service: 'billing', peer: 'north' })),
      ],
      catalog: base,
    });
    expect(statuses.map((s) => s.unresolved)).toEqual([
      ['Consul service nope in peer west not found'],
      ['Consul service billing in peer north not found'],
    ]);
  });

  it('a catalog route with peers serves /peer/{peer}/{service}/… with the required tags; peer hides a datacenter named peer', () => {
    const { table, statuses } = compile({
      routes: [route('c', { catalog: { requiredTags: ['edge'], peers: ['west', 'north'] } })],
      catalog: { ...base, datacenters: { ...base.datacenters, peer: { services: {} } } },
    });
    const entry = new RoutingTable(table).match({
      host: 'x',
      path: '/peer/west/billing/a',
      method: 'GET',
      rawQuery: '',
      header: () => undefined,
    })!.data;
    expect(Object.keys(entry.catalog!.peers!)).toEqual(['north', 'west']);
    expect(Object.keys(entry.catalog!.peers!.west!)).toEqual(['billing']); // db lacks the edge tag
    expect(entry.catalog!.peers!.north).toEqual({});
    const cluster = table.clusters.find((c) => c.id === entry.catalog!.peers!.west!.billing)!;
    expect(cluster.datacenter).toBe('peer:west');
    expect(statuses[0]!.backends).toContainEqual({ ref: 'catalog:peer:west', healthy: { 'peer:west': 1 } });
    expect(statuses[0]!.unresolved).toContain(
      'datacenter peer is hidden by the peers of this catalog route (/peer/{peer}/…)',
    );
  });

  it('a catalog route without peers keeps the table as before (no peers field)', () => {
    const { table } = compile({
      routes: [route('c', { catalog: { requiredTags: ['edge'] } })],
      catalog: base,
    });
    const e = table.entries[0]!;
    expect(e.catalog!.peers).toBeUndefined();
    expect(Object.keys(e.catalog!.services)).toEqual(['dc1']);
  });
});

// The pure Gateway API translation (src/compile/gateway-api/): hostname intersection, attachment (sectionName,
// port, allowedRoutes namespaces and kinds), listener validity, backendRefs (kinds, ReferenceGrants, not found →
// a 500 stand-in), and the translated routes compiling into one table with GatewayRoutes.
import { describe, expect, it } from 'vitest';
import { emptyCatalog } from '../../../../src/api/catalog.ts';
import {
  emptyGatewayApiSnapshot,
  type GatewayApiSnapshot,
  type HTTPRouteObject,
} from '../../../../src/api/gateway-api.ts';
import { compile } from '../../../../src/compile/compile.ts';
import { routeConflicts } from '../../../../src/compile/gateway-api/conflicts.ts';
import { gatewayApiStatuses } from '../../../../src/compile/gateway-api/status.ts';
import {
  INVALID_BACKEND_SERVICE,
  intersectHostname,
  translateGatewayApi,
} from '../../../../src/compile/gateway-api/translate.ts';
import { RoutingTable } from '../../../../src/table/index.ts';

const settings = { httpPort: 80, httpsPort: 443, addresses: ['192.0.2.1'], secretNamespaces: ['infra'] };

function snap(routes: HTTPRouteObject[], extra: Partial<GatewayApiSnapshot> = {}): GatewayApiSnapshot {
  return {
    ...emptyGatewayApiSnapshot(),
    classes: [{ metadata: { name: 'eg', generation: 1 }, spec: { controllerName: 'edgegate.io/gateway' } }],
    gateways: [
      {
        metadata: { name: 'gw', namespace: 'infra', generation: 2 },
        spec: {
          gatewayClassName: 'eg',
          listeners: [
            { name: 'http', port: 80, protocol: 'HTTP', hostname: '*.example.com' },
            {
              name: 'any',
              port: 80,
              protocol: 'HTTP',
              allowedRoutes: { namespaces: { from: 'Selector', selector: { matchLabels: { team: 'a' } } } },
            },
          ],
        },
      },
    ],
    namespaces: [{ metadata: { name: 'apps', labels: { team: 'a' } } }, { metadata: { name: 'infra' } }],
    services: { 'infra/web': [80], 'apps/web': [80], 'other/web': [80] },
    routes,
    ...extra,
  };
}

function route(ns: string, name: string, spec: HTTPRouteObject['spec']): HTTPRouteObject {
  return { metadata: { name, namespace: ns, generation: 3 }, spec };
}

const parentsOf = (r: ReturnType<typeof translateGatewayApi>, key: string) =>
  r.routeStatuses
    .get(key)
    ?.parents.map((p) => Object.fromEntries(p.conditions.map((c) => [c.type, c.reason])));

describe('intersectHostname', () => {
  it('keeps the more specific of two matching names and refuses the rest', () => {
    expect(intersectHostname('a.example.com', '*.example.com')).toBe('a.example.com');
    expect(intersectHostname('*.example.com', 'a.example.com')).toBe('a.example.com');
    expect(intersectHostname('*.a.example.com', '*.example.com')).toBe('*.a.example.com');
    expect(intersectHostname('example.com', '*.example.com')).toBeUndefined();
    expect(intersectHostname('a.example.org', '*.example.com')).toBeUndefined();
    expect(intersectHostname('a.example.org', undefined)).toBe('a.example.org');
  });
});

describe('translateGatewayApi', () => {
  it('attaches by namespace rules and hostnames; the union of intersections is served', () => {
    const r = translateGatewayApi(
      snap([
        route('infra', 'same', {
          parentRefs: [{ name: 'gw' }],
          hostnames: ['a.example.com', 'b.example.org'],
          rules: [{ backendRefs: [{ name: 'web', port: 80 }] }],
        }),
        route('apps', 'selected', {
          parentRefs: [{ name: 'gw', namespace: 'infra' }],
          rules: [{ backendRefs: [{ name: 'web', port: 80 }] }],
        }),
        route('other', 'refused', {
          parentRefs: [{ name: 'gw', namespace: 'infra' }],
          rules: [{ backendRefs: [{ name: 'web', port: 80 }] }],
        }),
        route('infra', 'nosection', {
          parentRefs: [{ name: 'gw', sectionName: 'nope' }],
          rules: [{ backendRefs: [{ name: 'web', port: 80 }] }],
        }),
      ]),
      settings,
      {},
    );
    // "same" attaches to "http" only: "any" selects namespaces labelled team=a.
    const same = r.routes.find((x) => x.httpRoute === 'infra/same')!;
    expect((same.source.raw as { spec: { hostnames?: string[] } }).spec.hostnames).toEqual(['a.example.com']);
    // "selected" has no hostnames and attaches to the catch-all listener: every host.
    const selected = r.routes.find((x) => x.httpRoute === 'apps/selected')!;
    expect((selected.source.raw as { spec: { hostnames?: string[] } }).spec.hostnames).toBeUndefined();
    expect(parentsOf(r, 'other/refused')).toEqual([
      { Accepted: 'NotAllowedByListeners', ResolvedRefs: 'ResolvedRefs' },
    ]);
    expect(parentsOf(r, 'infra/nosection')![0]!.Accepted).toBe('NoMatchingParent');
    expect(r.routes.some((x) => x.httpRoute === 'other/refused')).toBe(false);
    const listeners = r.gatewayStatuses.get('infra/gw')!.status.listeners;
    expect(listeners.map((l) => [l.name, l.attachedRoutes])).toEqual([
      ['http', 1],
      ['any', 1],
    ]);
  });

  it('refuses listeners edgegate cannot serve, naming why', () => {
    const base = snap([]);
    base.gateways[0]!.spec.listeners = [
      { name: 'port', port: 8080, protocol: 'HTTP' },
      { name: 'udp', port: 80, protocol: 'UDP' },
      { name: 'kinds', port: 80, protocol: 'HTTP', allowedRoutes: { kinds: [{ kind: 'TCPRoute' }] } },
      {
        name: 'tls',
        port: 443,
        protocol: 'HTTPS',
        tls: { certificateRefs: [{ name: 'c', namespace: 'x' }] },
      },
    ];
    const st = translateGatewayApi(base, settings, {}).gatewayStatuses.get('infra/gw')!.status;
    const reason = (name: string, type: string) =>
      st.listeners.find((l) => l.name === name)!.conditions.find((c) => c.type === type)!.reason;
    expect(reason('port', 'Accepted')).toBe('PortUnavailable');
    expect(reason('udp', 'Accepted')).toBe('UnsupportedProtocol');
    expect(reason('kinds', 'ResolvedRefs')).toBe('InvalidRouteKinds');
    expect(st.listeners.find((l) => l.name === 'kinds')!.supportedKinds).toEqual([]);
    expect(reason('tls', 'ResolvedRefs')).toBe('RefNotPermitted');
  });

  it('backendRefs: unknown kind, missing grant, missing Service → 500 stand-in and the spec reasons', () => {
    const backend = (b: object) =>
      route('infra', `r${JSON.stringify(b).length}`, {
        parentRefs: [{ name: 'gw' }],
        hostnames: ['a.example.com'],
        rules: [{ backendRefs: [{ port: 80, ...b } as never] }],
      });
    const cases: [object, string][] = [
      [{ name: 'web', kind: 'Pod' }, 'InvalidKind'],
      [{ name: 'web', namespace: 'other' }, 'RefNotPermitted'],
      [{ name: 'missing' }, 'BackendNotFound'],
    ];
    for (const [b, reason] of cases) {
      const rt = backend(b);
      const r = translateGatewayApi(snap([rt]), settings, {});
      const key = `infra/${rt.metadata.name}`;
      expect(parentsOf(r, key)![0]!.ResolvedRefs).toBe(reason);
      const raw = r.routes[0]!.source.raw as {
        spec: { rules: { backends: { service: { name: string } }[] }[] };
      };
      expect(raw.spec.rules[0]!.backends[0]!.service.name).toBe(INVALID_BACKEND_SERVICE);
    }
    // With a ReferenceGrant the cross-namespace Service is used, namespace and all.
    const granted = snap([backend({ name: 'web', namespace: 'other' })], {
      grants: [
        {
          metadata: { name: 'g', namespace: 'other' },
          spec: {
            from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'infra' }],
            to: [{ group: '', kind: 'Service' }],
          },
        },
      ],
    });
    const r = translateGatewayApi(granted, settings, {});
    const raw = r.routes[0]!.source.raw as { spec: { rules: { backends: unknown[] }[] } };
    expect(raw.spec.rules[0]!.backends[0]).toEqual({
      service: { name: 'web', port: 80, namespace: 'other' },
      weight: 1,
    });
  });

  it('compiles with GatewayRoutes into one table; an identical match is a conflict for both', () => {
    const r = translateGatewayApi(
      snap([
        route('infra', 'h', {
          parentRefs: [{ name: 'gw' }],
          hostnames: ['a.example.com'],
          rules: [{ backendRefs: [{ name: 'web', port: 80 }] }],
        }),
      ]),
      settings,
      {},
    );
    const gatewayRoute = {
      raw: {
        apiVersion: 'edgegate.io/v1alpha1',
        kind: 'GatewayRoute',
        metadata: { name: 'g', namespace: 'infra', creationTimestamp: '2020-01-01T00:00:00Z' },
        spec: {
          hostnames: ['a.example.com'],
          rules: [{ backends: [{ service: { name: 'web', port: 80 } }] }],
        },
      },
      origin: 'kube',
    };
    const out = compile({
      routes: [gatewayRoute, ...r.routes.map((x) => ({ ...x.source, crossNamespaceBackends: true }))],
      catalog: emptyCatalog(),
    });
    expect(out.statuses.every((s) => s.accepted)).toBe(true);
    const conflicts = routeConflicts(out.table);
    expect(conflicts.get('infra/g')?.[0]).toContain('shadows route infra/h..httproute');
    expect(conflicts.get('infra/h..httproute')?.[0]).toContain('shadowed by route infra/g');
    const desired = gatewayApiStatuses(r, out.statuses);
    const hr = desired.find((d) => d.kind === 'httproutes')!;
    const conds = (hr.status.parents as { conditions: { type: string; status: string }[] }[])[0]!.conditions;
    expect(conds.find((c) => c.type === 'edgegate.io/Conflicted')?.status).toBe('True');
  });

  it('refuses service.namespace in a route that is not a translated HTTPRoute', () => {
    const out = compile({
      routes: [
        {
          raw: {
            apiVersion: 'edgegate.io/v1alpha1',
            kind: 'GatewayRoute',
            metadata: { name: 'sneaky', namespace: 'a' },
            spec: { rules: [{ backends: [{ service: { name: 'web', port: 80, namespace: 'b' } }] }] },
          },
          origin: 'kube',
        },
      ],
      catalog: emptyCatalog(),
    });
    expect(out.statuses[0]!.accepted).toBe(false);
    expect(out.statuses[0]!.errors[0]!.path).toEqual([
      'spec',
      'rules',
      0,
      'backends',
      0,
      'service',
      'namespace',
    ]);
    expect(out.table.entries).toHaveLength(0);
  });

  it('isolates Gateways by address when the pool has several: one address each, routes served only there', () => {
    const base = snap([
      route('infra', 'one', {
        parentRefs: [{ name: 'gw' }],
        rules: [{ backendRefs: [{ name: 'web', port: 80 }] }],
      }),
      route('infra', 'two', {
        parentRefs: [{ name: 'gw2' }],
        rules: [{ backendRefs: [{ name: 'web', port: 80 }] }],
      }),
    ]);
    base.gateways[0]!.spec.listeners = [{ name: 'http', port: 80, protocol: 'HTTP' }];
    base.gateways.push({
      metadata: { name: 'gw2', namespace: 'infra', creationTimestamp: '2030-01-01T00:00:00Z' },
      spec: { gatewayClassName: 'eg', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
    });
    const r = translateGatewayApi(base, { ...settings, addresses: ['192.0.2.1', '192.0.2.7'] }, {});
    expect(r.gatewayStatuses.get('infra/gw')!.status.addresses).toEqual([
      { type: 'IPAddress', value: '192.0.2.1' },
    ]);
    expect(r.gatewayStatuses.get('infra/gw2')!.status.addresses).toEqual([
      { type: 'IPAddress', value: '192.0.2.7' },
    ]);
    const out = compile({
      routes: r.routes.map((x) => ({
        ...x.source,
        crossNamespaceBackends: true,
        listenerAddresses: x.listenerAddresses!,
      })),
      catalog: emptyCatalog(),
    });
    const rt = new RoutingTable(out.table);
    expect(rt.scoped).toBe(true);
    const req = (localAddress: string | undefined) => ({
      host: 'x.test',
      path: '/',
      method: 'GET',
      rawQuery: '',
      header: () => undefined,
      localAddress,
    });
    expect(rt.match(req('192.0.2.1'))?.data.route).toBe('infra/one..httproute');
    expect(rt.match(req('192.0.2.7'))?.data.route).toBe('infra/two..httproute');
    expect(rt.match(req('192.0.2.9'))).toBeUndefined();
    // A third Gateway finds the pool empty: no address, not Programmed, its routes not served.
    base.gateways.push({
      metadata: { name: 'gw3', namespace: 'infra', creationTimestamp: '2031-01-01T00:00:00Z' },
      spec: { gatewayClassName: 'eg', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
    });
    const third = translateGatewayApi(base, { ...settings, addresses: ['192.0.2.1', '192.0.2.7'] }, {});
    const st = third.gatewayStatuses.get('infra/gw3')!.status;
    expect(st.addresses).toBeUndefined();
    expect(st.conditions.find((c) => c.type === 'Programmed')?.reason).toBe('AddressNotAssigned');
  });
});

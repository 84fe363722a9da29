/**
 * Synthetic but realistic inputs for the control-plane benchmarks: N GatewayRoutes (exact hosts, wildcard hosts,
 * catch-all; Exact / PathPrefix / RegularExpression paths; some header matches, rewrites, weighted backends) over
 * a Consul catalog of D datacenters and E instances, plus one resty-gate catalog route.
 */
import type { CatalogSnapshot, Instance } from '../../src/api/catalog.ts';
import type { RouteSource } from '../../src/api/route-source.ts';

export interface ScenarioSize {
  routes: number;
  endpoints: number;
  datacenters: number;
  /** Services per datacenter (endpoints are spread evenly over datacenters × services). */
  servicesPerDc: number;
}

export const LARGE: ScenarioSize = { routes: 10_000, endpoints: 50_000, datacenters: 20, servicesPerDc: 250 };

export function makeCatalog(size: ScenarioSize): CatalogSnapshot {
  const perService = Math.max(1, Math.round(size.endpoints / (size.datacenters * size.servicesPerDc)));
  const datacenters: CatalogSnapshot['datacenters'] = {};
  let n = 0;
  for (let d = 0; d < size.datacenters; d++) {
    const services: Record<string, Instance[]> = {};
    for (let s = 0; s < size.servicesPerDc; s++) {
      const list: Instance[] = [];
      for (let k = 0; k < perService; k++, n++) {
        list.push({
          id: `svc${s}-${d}-${k}`,
          address: `10.${d}.${(n >> 8) & 255}.${n & 255}`,
          port: 8000 + (k % 50),
          tags: k % 3 === 0 ? ['edge', 'v2'] : ['edge', 'v1'],
          meta: { version: k % 3 === 0 ? '2' : '1' },
          // One instance in 20 is failing: filtered out by compile, like a real catalog.
          health: k % 20 === 19 ? 'critical' : 'passing',
          weight: 1,
        });
      }
      services[`svc${s}`] = list;
    }
    datacenters[`dc${d}`] = { services };
  }
  return { localDatacenter: 'dc0', datacenters };
}

/** Route i of the mix. Kind by i % 10: 0 exact path, 9 regex (catch-all host), 3 header match, 8 catch-all prefix. */
export function makeRoute(i: number, size: ScenarioSize): RouteSource {
  const kind = i % 10;
  const hostnames =
    kind < 6 ? [`svc${i % 2000}.example.com`] : kind < 8 ? [`*.zone${i % 50}.example.com`] : [];
  const path =
    kind === 0
      ? { type: 'Exact', value: `/api/v1/items/${i}` }
      : kind === 9
        ? { type: 'RegularExpression', value: `/re${i}/[0-9]+` }
        : { type: 'PathPrefix', value: `/api/v${i % 3}/svc${i}` };
  const service = `svc${i % size.servicesPerDc}`;
  const datacenter = `dc${i % size.datacenters}`;
  const backends =
    kind === 4
      ? [
          { consul: { service, datacenter, tags: ['v1'] }, weight: 95 },
          { consul: { service, datacenter, tags: ['v2'] }, weight: 5 },
        ]
      : [{ consul: { service, datacenter } }];
  return {
    raw: {
      apiVersion: 'edgegate.io/v1alpha1',
      kind: 'GatewayRoute',
      metadata: {
        name: `r${i}`,
        namespace: `ns${i % 20}`,
        creationTimestamp: new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString(),
      },
      spec: {
        ...(hostnames.length ? { hostnames } : {}),
        rules: [
          {
            matches: [kind === 3 ? { path, headers: [{ name: 'x-canary', value: '1' }] } : { path }],
            ...(kind === 5
              ? {
                  filters: [
                    {
                      type: 'URLRewrite',
                      urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } },
                    },
                    {
                      type: 'RequestHeaderModifier',
                      requestHeaderModifier: { set: [{ name: 'x-route', value: `r${i}` }] },
                    },
                  ],
                }
              : {}),
            backends,
          },
        ],
      },
    },
    origin: `routes/r${i}.yaml:1`,
  };
}

/** The resty-gate catalog route: every `edge`-tagged service of every datacenter under /{dc}/{service}/. */
export function catalogRoute(): RouteSource {
  return {
    raw: {
      apiVersion: 'edgegate.io/v1alpha1',
      kind: 'GatewayRoute',
      metadata: { name: 'edge-catalog', namespace: 'edge' },
      spec: { hostnames: ['catalog.example.com'], catalog: { pathPrefix: '/', requiredTags: ['edge'] } },
    },
    origin: 'routes/edge-catalog.yaml:1',
  };
}

export function makeRoutes(size: ScenarioSize): RouteSource[] {
  const routes = Array.from({ length: size.routes }, (_, i) => makeRoute(i, size));
  routes.push(catalogRoute());
  return routes;
}

/** A request that route i serves (host, normalized path, header getter), for the match benchmark. */
export function requestFor(i: number): {
  host: string;
  path: string;
  method: string;
  rawQuery: string;
  header: (name: string) => string | undefined;
} {
  const kind = i % 10;
  const host =
    kind < 6 ? `svc${i % 2000}.example.com` : kind < 8 ? `a.zone${i % 50}.example.com` : 'edge.example.com';
  const path =
    kind === 0 ? `/api/v1/items/${i}` : kind === 9 ? `/re${i}/123` : `/api/v${i % 3}/svc${i}/orders/42`;
  const headers: Record<string, string> = kind === 3 ? { 'x-canary': '1' } : {};
  return { host, path, method: 'GET', rawQuery: '', header: (n: string) => headers[n] };
}

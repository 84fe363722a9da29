/**
 * Gateway API benchmark: 10,000 HTTPRoutes (the same hostnames, matches, filters and Consul backends as the
 * GatewayRoutes of bench/lib/scenario.ts, as HTTPRoutes with ConsulService backendRefs, attached to one Gateway)
 * through the translation (compile/gateway-api/translate.ts) and compile, next to the same 10,000 as GatewayRoutes;
 * then the hot-path match over each table. Prints translate ms, compile ms (median of runs), ns per match (median
 * of 7 rounds of 200,000, wall and CPU).
 *   node bench/gateway-api.bench.ts [--routes N] [--json]
 */
import { parseArgs } from 'node:util';
import type { GatewayApiSnapshot, HTTPRouteObject } from '../src/api/gateway-api.ts';
import type { RouteSource } from '../src/api/route-source.ts';
import { compile } from '../src/compile/compile.ts';
import { translateGatewayApi } from '../src/compile/gateway-api/translate.ts';
import { RoutingTable } from '../src/table/index.ts';
import { makeRoute, requestFor } from './lib/scenario.ts';

const { values } = parseArgs({
  options: {
    routes: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
  },
});
const N = Number(values.routes);
const size = { routes: N, endpoints: 0, datacenters: 20, servicesPerDc: 500 };
const gatewayRoutes = Array.from({ length: N }, (_, i) => makeRoute(i, size));

interface Spec {
  hostnames?: string[];
  rules: {
    matches: unknown[];
    filters?: unknown[];
    backends: { consul: { service: string; datacenter: string; tags?: string[] }; weight?: number }[];
  }[];
}

/** The GatewayRoute as an HTTPRoute, its Consul backends as ConsulServices. */
function toHttpRoute(src: RouteSource, consul: GatewayApiSnapshot['consulServices']): HTTPRouteObject {
  const raw = src.raw as {
    metadata: { name: string; namespace: string; creationTimestamp: string };
    spec: Spec;
  };
  const ns = raw.metadata.namespace;
  return {
    metadata: { ...raw.metadata, generation: 1 },
    spec: {
      parentRefs: [{ name: 'edge', namespace: 'infra' }],
      ...(raw.spec.hostnames ? { hostnames: raw.spec.hostnames } : {}),
      rules: raw.spec.rules.map((r) => ({
        matches: r.matches as never,
        ...(r.filters ? { filters: r.filters as never } : {}),
        backendRefs: r.backends.map((b, j) => {
          const name = `${raw.metadata.name}-${j}`;
          consul.push({ metadata: { name, namespace: ns }, spec: b.consul });
          return { group: 'edgegate.io', kind: 'ConsulService', name, weight: b.weight ?? 1 };
        }),
      })),
    },
  };
}

const consulServices: GatewayApiSnapshot['consulServices'] = [];
const httpRoutes = gatewayRoutes.map((r) => toHttpRoute(r, consulServices));
const snapshot: GatewayApiSnapshot = {
  classes: [{ metadata: { name: 'eg' }, spec: { controllerName: 'edgegate.io/gateway' } }],
  gateways: [
    {
      metadata: { name: 'edge', namespace: 'infra', generation: 1 },
      spec: {
        gatewayClassName: 'eg',
        listeners: [
          { name: 'http', port: 80, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'All' } } },
        ],
      },
    },
  ],
  routes: httpRoutes,
  grants: [],
  consulServices,
  namespaces: [],
  services: {},
};
const settings = { httpPort: 80, httpsPort: undefined, addresses: ['192.0.2.1'], secretNamespaces: [] };
const catalog = { localDatacenter: 'dc0', datacenters: {} };
const median = (l: number[]) => [...l].sort((a, b) => a - b)[Math.floor(l.length / 2)]!;

const translateMs: number[] = [];
let translated = translateGatewayApi(snapshot, settings, {});
for (let r = 0; r < Number(values.runs); r++) {
  const t0 = performance.now();
  translated = translateGatewayApi(snapshot, settings, {});
  translateMs.push(performance.now() - t0);
}
const fromHttp = translated.routes.map((t) => ({ ...t.source, crossNamespaceBackends: true }));

function timeCompile(routes: RouteSource[]) {
  const ms: number[] = [];
  let out = compile({ routes, catalog });
  for (let r = 0; r < Number(values.runs); r++) {
    const t0 = performance.now();
    out = compile({ routes, catalog });
    ms.push(performance.now() - t0);
  }
  return { ms: median(ms), table: out.table, accepted: out.statuses.filter((s) => s.accepted).length };
}

function timeMatch(rt: RoutingTable) {
  const requests = Array.from({ length: 1000 }, (_, j) => requestFor((j * 7919) % N));
  const wall: number[] = [];
  const cpu: number[] = [];
  let matched = 0;
  const iterations = 200_000;
  for (let round = 0; round < 7; round++) {
    const c0 = process.cpuUsage();
    const start = process.hrtime.bigint();
    for (let k = 0; k < iterations; k++) if (rt.match(requests[k % requests.length]!)) matched++;
    wall.push(Number(process.hrtime.bigint() - start) / iterations);
    const c = process.cpuUsage(c0);
    cpu.push(((c.user + c.system) * 1000) / iterations);
  }
  return { wallNs: Math.round(median(wall)), cpuNs: Math.round(median(cpu)), matched: matched / 7 };
}

const httpCompile = timeCompile(fromHttp);
const grCompile = timeCompile(gatewayRoutes);
const out = {
  routes: N,
  translateMs: Math.round(median(translateMs) * 10) / 10,
  compileMs: { httpRoutes: Math.round(httpCompile.ms), gatewayRoutes: Math.round(grCompile.ms) },
  accepted: { httpRoutes: httpCompile.accepted, gatewayRoutes: grCompile.accepted },
  matchNs: {
    httpRoutes: timeMatch(new RoutingTable(httpCompile.table)),
    gatewayRoutes: timeMatch(new RoutingTable(grCompile.table)),
  },
};
if (values.json) console.log(JSON.stringify(out));
else {
  console.log(
    `${N} HTTPRoutes: translate ${out.translateMs} ms, compile ${out.compileMs.httpRoutes} ms (GatewayRoutes: ${out.compileMs.gatewayRoutes} ms)`,
  );
  console.log(`accepted: ${out.accepted.httpRoutes} HTTPRoutes, ${out.accepted.gatewayRoutes} GatewayRoutes`);
  console.log(
    `match ns/op (wall / cpu): HTTPRoutes ${out.matchNs.httpRoutes.wallNs} / ${out.matchNs.httpRoutes.cpuNs}, GatewayRoutes ${out.matchNs.gatewayRoutes.wallNs} / ${out.matchNs.gatewayRoutes.cpuNs}`,
  );
}

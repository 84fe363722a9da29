/**
 * Micro-benchmark of the hot-path route match: 10,000 routes (exact hosts, wildcard hosts, exact / prefix / regex
 * paths, header matches) and a realistic request mix. Prints ns per match (median of rounds).
 *   node bench/match.bench.ts [routes]
 */
import type { RouteSource } from '../src/api/route-source.ts';
import { compile } from '../src/compile/compile.ts';
import { RoutingTable } from '../src/table/index.ts';

const N = Number(process.argv[2] ?? 10_000);
const routes: RouteSource[] = [];
for (let i = 0; i < N; i++) {
  const kind = i % 10;
  const hostnames =
    kind < 6 ? [`svc${i % 2000}.example.com`] : kind < 8 ? [`*.zone${i % 50}.example.com`] : [];
  const path =
    kind === 0
      ? { type: 'Exact', value: `/api/v1/items/${i}` }
      : kind === 9
        ? { type: 'RegularExpression', value: `/re${i}/[0-9]+` }
        : { type: 'PathPrefix', value: `/api/v${i % 3}/svc${i}` };
  routes.push({
    raw: {
      apiVersion: 'edgegate.io/v1alpha1',
      kind: 'GatewayRoute',
      metadata: { name: `r${i}`, namespace: `ns${i % 20}` },
      spec: {
        ...(hostnames.length ? { hostnames } : {}),
        rules: [
          {
            matches: [kind === 3 ? { path, headers: [{ name: 'x-canary', value: '1' }] } : { path }],
            backends: [{ consul: { service: `svc${i % 500}`, datacenter: `dc${i % 20}` } }],
          },
        ],
      },
    },
    origin: `r${i}`,
  });
}
const t0 = performance.now();
const { table } = compile({ routes, catalog: { localDatacenter: 'dc0', datacenters: {} } });
const compileMs = performance.now() - t0;
const rt = new RoutingTable(table);

const requests = Array.from({ length: 1000 }, (_, j) => {
  const i = (j * 7919) % N;
  const kind = i % 10;
  const host =
    kind < 6 ? `svc${i % 2000}.example.com` : kind < 8 ? `a.zone${i % 50}.example.com` : 'edge.example.com';
  const path =
    kind === 0 ? `/api/v1/items/${i}` : kind === 9 ? `/re${i}/123` : `/api/v${i % 3}/svc${i}/orders/42`;
  const headers: Record<string, string> = kind === 3 ? { 'x-canary': '1' } : {};
  return { host, path, method: 'GET', rawQuery: '', header: (n: string) => headers[n] };
});

let sink = 0;
const rounds: number[] = [];
for (let round = 0; round < 7; round++) {
  const iterations = 200_000;
  const start = process.hrtime.bigint();
  for (let k = 0; k < iterations; k++) {
    const m = rt.match(requests[k % requests.length]!);
    if (m) sink++;
  }
  rounds.push(Number(process.hrtime.bigint() - start) / iterations);
}
rounds.sort((a, b) => a - b);
console.log(
  JSON.stringify({
    routes: N,
    entries: table.entries.length,
    compileMs: Math.round(compileMs),
    matchNsMedian: Math.round(rounds[3]!),
    matchNsMin: Math.round(rounds[0]!),
    matched: sink > 0,
  }),
);

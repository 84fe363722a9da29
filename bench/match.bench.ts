/**
 * Micro-benchmark of the hot-path route match: 10,000 routes (exact hosts, wildcard hosts, catch-all; exact /
 * prefix / regex paths; header matches, from bench/lib/scenario.ts) and 1,000 requests spread over them. Prints ns
 * per match, median of 7 rounds of 200,000, both wall-clock and CPU time (process.cpuUsage): on a shared machine
 * wall time includes the time the process was not scheduled, CPU time does not.
 *   node bench/match.bench.ts [routes]
 */
import { compile } from '../src/compile/compile.ts';
import { RoutingTable } from '../src/table/index.ts';
import { makeRoute, requestFor } from './lib/scenario.ts';

const N = Number(process.argv[2] ?? 10_000);
const size = { routes: N, endpoints: 0, datacenters: 20, servicesPerDc: 500 };
const routes = Array.from({ length: N }, (_, i) => makeRoute(i, size));
const t0 = performance.now();
const { table } = compile({ routes, catalog: { localDatacenter: 'dc0', datacenters: {} } });
const compileMs = performance.now() - t0;
const rt = new RoutingTable(table);

const requests = Array.from({ length: 1000 }, (_, j) => requestFor((j * 7919) % N));

let matched = 0;
const wall: number[] = [];
const cpu: number[] = [];
const iterations = 200_000;
for (let round = 0; round < 7; round++) {
  const c0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let k = 0; k < iterations; k++) if (rt.match(requests[k % requests.length]!)) matched++;
  wall.push(Number(process.hrtime.bigint() - start) / iterations);
  const c = process.cpuUsage(c0);
  cpu.push(((c.user + c.system) * 1000) / iterations);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
console.log(
  JSON.stringify({
    routes: N,
    entries: table.entries.length,
    compileMs: Math.round(compileMs),
    matchNsMedian: Math.round(median(wall)),
    matchNsMin: Math.round(Math.min(...wall)),
    matchCpuNsMedian: Math.round(median(cpu)),
    matchedShare: Math.round((matched / (7 * iterations)) * 1000) / 1000,
  }),
);

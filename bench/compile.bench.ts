/**
 * Control-plane benchmark: compile time and memory for 10,000 GatewayRoutes over 50,000 Consul endpoints in 20
 * datacenters (plus one catalog route exposing every service). Run in a fresh process with --expose-gc so the
 * heap numbers are the table's, not leftovers:
 *   node --expose-gc bench/compile.bench.ts [--json] [--routes N] [--endpoints N] [--datacenters N]
 * Prints compile ms (median of runs), heap retained by inputs + table, RSS, peak RSS.
 */
import { parseArgs } from 'node:util';
import { compile } from '../src/compile/compile.ts';
import { RoutingTable } from '../src/table/index.ts';
import { LARGE, makeCatalog, makeRoutes } from './lib/scenario.ts';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    routes: { type: 'string' },
    endpoints: { type: 'string' },
    datacenters: { type: 'string' },
    runs: { type: 'string', default: '5' },
  },
});
const size = {
  ...LARGE,
  ...(values.routes ? { routes: Number(values.routes) } : {}),
  ...(values.endpoints ? { endpoints: Number(values.endpoints) } : {}),
  ...(values.datacenters ? { datacenters: Number(values.datacenters) } : {}),
};
const gc = (globalThis as { gc?: () => void }).gc;
const mb = (n: number) => Math.round((n / 1024 / 1024) * 10) / 10;

gc?.();
const heapBase = process.memoryUsage().heapUsed;
const rssBase = process.memoryUsage().rss;
const catalog = makeCatalog(size);
const routes = makeRoutes(size);
gc?.();
const heapInputs = process.memoryUsage().heapUsed;

// Memory of one cold compile first (max RSS is a high-water mark), then the timed runs.
let result = compile({ routes, catalog });
const firstCompilePeakRss = process.resourceUsage().maxRSS * 1024;
const times: number[] = [];
for (let r = 0; r < Number(values.runs); r++) {
  const t0 = performance.now();
  result = compile({ routes, catalog });
  times.push(performance.now() - t0);
}
gc?.();
const heapWithTable = process.memoryUsage().heapUsed;
const t1 = performance.now();
const index = new RoutingTable(result.table);
const indexMs = performance.now() - t1;
const jsonBytes = Buffer.byteLength(JSON.stringify(result.table));
gc?.();
const mem = process.memoryUsage();
times.sort((a, b) => a - b);
const out = {
  routes: size.routes + 1,
  endpoints: Object.values(catalog.datacenters).reduce(
    (n, dc) => n + Object.values(dc.services).reduce((m, l) => m + l.length, 0),
    0,
  ),
  datacenters: size.datacenters,
  entries: result.table.entries.length,
  clusters: result.table.clusters.length,
  accepted: result.statuses.filter((s) => s.accepted).length,
  runs: Number(values.runs) + 1,
  compileMsMedian: Math.round(times[Math.floor(times.length / 2)]!),
  compileMsMin: Math.round(times[0]!),
  indexBuildMs: Math.round(indexMs),
  tableJsonMB: mb(jsonBytes),
  heapInputsMB: mb(heapInputs - heapBase),
  heapTableMB: mb(heapWithTable - heapInputs),
  heapTotalUsedMB: mb(mem.heapUsed),
  rssMB: mb(mem.rss),
  rssGrowthMB: mb(mem.rss - rssBase),
  peakRssFirstCompileMB: mb(firstCompilePeakRss),
  peakRssMB: mb(process.resourceUsage().maxRSS * 1024),
  gcExposed: gc !== undefined,
  indexReady: index.version === 0,
};
console.log(values.json ? JSON.stringify(out) : out);

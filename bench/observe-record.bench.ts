/**
 * Micro-benchmark of the per-request observability cost in a proxy process: RequestObserver.begin + finish
 * (slot resolution, counters, histogram bucket, byte accounting) with the access log off, sampled at 1 %, and on
 * for every request (the real access log: winston, batched writes to stdout). Fake request/response objects stand in
 * for node:http; the baseline is the same fake objects without observing. Prints ns per request (median of rounds)
 * on stderr; send stdout (the access log lines) where the logs would go:
 *   node bench/observe-record.bench.ts [routes] > /dev/null
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AccessLog } from '../src/dataplane/observe/access-log.ts';
import { RequestObserver } from '../src/dataplane/observe/request-observer.ts';
import { TrafficRecorder } from '../src/dataplane/observe/traffic-recorder.ts';
import type { TableData } from '../src/table/types.ts';

const ROUTES = Number(process.argv[2] ?? 1000);
const pool = {
  maxConnections: 8,
  keepAliveTimeoutMs: 4000,
  pipelining: 1,
  connectTimeoutMs: 1000,
  maxPendingRequests: 1024,
};
const table: TableData = {
  hash: 'bench',
  version: 1,
  hosts: [],
  clusters: Array.from({ length: ROUTES }, (_, i) => ({
    id: `c${i}`,
    kind: 'consul' as const,
    service: `svc${i}`,
    datacenter: `dc${i % 3}`,
    pool,
    endpoints: [{ address: '10.0.0.1', port: 8000 + i, weight: 1, id: `e${i}` }],
  })),
  entries: Array.from({ length: ROUTES }, (_, i) => ({
    route: `ns/r${i}`,
    rule: 0,
    match: 0,
    ruleId: `ns/r${i}#0`,
    created: 0,
    matchData: { path: { type: 'PathPrefix' as const, value: `/r${i}` }, headers: [], queryParams: [] },
    backends: [{ cluster: `c${i}`, weight: 1 }],
  })),
};

const socket = { bytesRead: 0, bytesWritten: 0, remoteAddress: '::ffff:10.1.2.3' };
const headers = { host: 'api.example.com', 'user-agent': 'bench/1.0', authorization: 'Bearer x' };
function fakeExchange(): { req: IncomingMessage; res: ServerResponse } {
  const req = { socket, headers, url: '/r1/items?id=3', method: 'GET' } as unknown as IncomingMessage;
  const res = new EventEmitter() as unknown as ServerResponse;
  (res as unknown as { headersSent: boolean }).headersSent = true;
  (res as unknown as { statusCode: number }).statusCode = 200;
  return { req, res };
}

type Variant = { name: string; observer: RequestObserver | undefined };
const variants: Variant[] = [{ name: 'baseline (fake req/res only)', observer: undefined }];
for (const [name, rate, enabled] of [
  ['metrics, access log off', 1, false],
  ['metrics + access log 1 %', 0.01, true],
  ['metrics + access log 100 %', 1, true],
] as const) {
  const recorder = new TrafficRecorder();
  recorder.install(table);
  const log = new AccessLog({ enabled, sampleRate: rate, headers: ['user-agent'] });
  variants.push({ name, observer: new RequestObserver(recorder, log) });
}

const N = 200_000;
async function round(v: Variant): Promise<number> {
  const entries = table.entries;
  const clusters = table.clusters;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const { req, res } = fakeExchange();
    const k = i % ROUTES;
    if (v.observer) {
      const rec = v.observer.begin(req, res);
      rec.requestId = 'req-1';
      rec.entry = entries[k];
      rec.cluster = clusters[k];
      rec.dispatched(clusters[k]!.endpoints[0]!);
      rec.answered();
    }
    socket.bytesRead += 120;
    socket.bytesWritten += 300;
    res.emit('close');
  }
  // Let the batched access log reach stdout: its writes are part of the cost.
  await new Promise((r) => setImmediate(r));
  return ((performance.now() - t0) * 1e6) / N;
}

const results: Record<string, number> = {};
for (const v of variants) {
  const rounds: number[] = [];
  for (let r = 0; r < 7; r++) rounds.push(await round(v));
  rounds.sort((a, b) => a - b);
  results[v.name] = rounds[3]!;
}
const base = results[variants[0]!.name]!;
for (const [name, ns] of Object.entries(results))
  console.error(
    `${name.padEnd(32)} ${ns.toFixed(0).padStart(6)} ns/request${name.startsWith('baseline') ? '' : `  (+${(ns - base).toFixed(0)} ns)`}`,
  );
console.error(`(${ROUTES} routes, ${N} requests per round, median of 7 rounds, node ${process.version})`);

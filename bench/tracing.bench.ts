/**
 * Micro-benchmark of the per-request tracing cost in a proxy process: the request path the tracing hooks sit on
 * (RequestObserver.begin, the policy span, one try with its traceparent header rewrite, its answer and end, and
 * finish with the server span and the bucket exemplar), with tracing off (no Tracing object: the path checks one
 * undefined field), sampled at 1 % and at 100 %. Half of the requests carry a client traceparent (sampled at the same
 * ratio upstream, so parent-based sampling keeps the share). Spans are exported for real: by the OTLP/HTTP protobuf
 * exporter to the real collector when scripts/test-deps.sh built it (the export runs in this process, so its CPU is
 * counted), else to an exporter that discards them (and says so). Fake request/response objects as in
 * observe-record.bench.ts. Prints CPU ns per request (this process: user + system; median of rounds) on stderr:
 *   node bench/tracing.bench.ts [requests-per-round]
 */
import { EventEmitter } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { ExportResultCode } from '@opentelemetry/core';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import { RequestObserver } from '../src/dataplane/observe/request-observer.ts';
import type { Tracing } from '../src/dataplane/observe/tracing.ts';
import { TrafficRecorder } from '../src/dataplane/observe/traffic-recorder.ts';
import type { TableData } from '../src/table/types.ts';
import { binDir, pinnedVersions } from '../test/support/bins.ts';
import { freePort } from '../test/support/ports.ts';
import { startProcess } from '../test/support/proc.ts';
import { waitFor } from '../test/support/wait.ts';

const N = Number(process.argv[2] ?? 100_000);
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
  clusters: [
    {
      id: 'c0',
      kind: 'consul',
      service: 'shop',
      datacenter: 'dc1',
      pool,
      endpoints: [{ address: '10.0.0.1', port: 8080, weight: 1, id: 'shop-1' }],
    },
  ],
  entries: [
    {
      route: 'ns/shop',
      rule: 0,
      match: 0,
      ruleId: 'ns/shop#0',
      created: 0,
      matchData: { path: { type: 'PathPrefix', value: '/shop' }, headers: [], queryParams: [] },
      backends: [{ cluster: 'c0', weight: 1 }],
    },
  ],
};
const socket = { bytesRead: 0, bytesWritten: 0, remoteAddress: '10.1.2.3' };
const UPSTREAM_HEADERS = [
  'host',
  'shop.example.com',
  'user-agent',
  'bench/1.0',
  'accept',
  '*/*',
  'x-forwarded-for',
  '10.1.2.3',
  'x-forwarded-proto',
  'http',
  'x-request-id',
  'req-1',
];

function hex(n: number): string {
  let s = '';
  while (s.length < n)
    s += Math.floor(Math.random() * 0xffffffff)
      .toString(16)
      .padStart(8, '0');
  return s.slice(0, n);
}

/** Client traceparents: half the requests bring one, sampled at `ratio` like a caller with the same setting. */
function parents(ratio: number): (string | undefined)[] {
  return Array.from({ length: 1024 }, (_, i) =>
    i % 2 === 0 ? undefined : `00-${hex(32)}-${hex(16)}-${Math.random() < ratio ? '01' : '00'}`,
  );
}

class DiscardExporter implements SpanExporter {
  export(_spans: unknown[], done: (r: { code: ExportResultCode }) => void): void {
    done({ code: ExportResultCode.SUCCESS });
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** The real collector (file exporter to /dev/null) when built, for a real OTLP export; else undefined. */
async function collector(): Promise<{ url: string; stop: () => Promise<unknown> } | undefined> {
  const bin = join(binDir(), `otelcol-${pinnedVersions().otelcol}`);
  if (!existsSync(bin)) return undefined;
  const port = await freePort({ udp: false });
  const config = join(tmpdir(), `edgegate-bench-otelcol-${process.pid}.yaml`);
  writeFileSync(
    config,
    `receivers: {otlp: {protocols: {http: {endpoint: "127.0.0.1:${port}"}}}}\n` +
      'exporters: {file: {path: /dev/null}}\n' +
      'service: {telemetry: {metrics: {level: none}}, pipelines: {traces: {receivers: [otlp], exporters: [file]}}}\n',
  );
  const logPath = join(tmpdir(), `edgegate-bench-otelcol-${process.pid}.log`);
  const p = startProcess({ name: 'otelcol', command: bin, args: [`--config=${config}`], logPath });
  await waitFor(() => p.tail(50).includes('Everything is ready'), { timeoutMs: 30_000, message: 'otelcol' });
  return { url: `http://127.0.0.1:${port}/v1/traces`, stop: () => p.stop() };
}

type Variant = {
  name: string;
  observer: RequestObserver;
  tracing?: Tracing;
  parents: (string | undefined)[];
};

// OFF_ONLY=1: only the tracing-off variant, without loading the tracing modules: the same file runs on a checkout
// from before tracing existed (copy it there), for the before/after comparison of the path with tracing off.
const offOnly = process.env.OFF_ONLY === '1';
const sink = offOnly ? undefined : await collector();
const variants: Variant[] = [];
{
  const recorder = new TrafficRecorder();
  recorder.install(table);
  variants.push({ name: 'tracing off', observer: new RequestObserver(recorder), parents: parents(0.01) });
}
const { Tracing: TracingClass } = offOnly
  ? { Tracing: undefined }
  : await import('../src/dataplane/observe/tracing.ts');
const { TRACING_OFF } = offOnly
  ? { TRACING_OFF: undefined }
  : await import('../src/dataplane/observe/tracing-settings.ts');
for (const [name, ratio] of offOnly
  ? []
  : ([
      ['tracing on, 1 % sampled', 0.01],
      ['tracing on, 100 % sampled', 1],
    ] as const)) {
  const recorder = new TrafficRecorder();
  recorder.install(table);
  const tracing = new TracingClass!(
    {
      ...TRACING_OFF!,
      enabled: true,
      url: sink?.url ?? 'http://127.0.0.1:9/v1/traces',
      ratio,
      maxQueueSize: 8192,
    },
    undefined,
    sink === undefined ? new DiscardExporter() : undefined,
  );
  variants.push({
    name,
    observer: new RequestObserver(recorder, undefined, tracing),
    tracing,
    parents: parents(ratio),
  });
}

/** CPU ns and heap bytes allocated per request in one round. */
async function round(v: Variant): Promise<{ ns: number; bytes: number }> {
  const entry = table.entries[0]!;
  const cluster = table.clusters[0]!;
  const endpoint = cluster.endpoints[0]!;
  const ps = v.parents;
  const c0 = process.cpuUsage();
  const a0 = getHeapStatistics().total_allocated_bytes;
  for (let i = 0; i < N; i++) {
    const p = ps[i & 1023];
    const headers: Record<string, string> = { host: 'shop.example.com', 'user-agent': 'bench/1.0' };
    if (p !== undefined) headers.traceparent = p;
    const req = {
      socket,
      headers,
      url: '/shop/items?id=3',
      method: 'GET',
      httpVersion: '1.1',
    } as unknown as IncomingMessage;
    const res = new EventEmitter() as unknown as ServerResponse;
    (res as unknown as { headersSent: boolean }).headersSent = true;
    (res as unknown as { statusCode: number }).statusCode = 200;
    const rec = v.observer.begin(req, res);
    rec.requestId = 'req-1';
    rec.entry = entry;
    rec.cluster = cluster;
    // What the pipeline does per request (proxy.ts, exchange.ts), with the same guards.
    const trace = rec.trace;
    trace?.policiesStart();
    if (trace !== undefined) trace.policiesEnd(true);
    rec.dispatched(endpoint);
    let h = UPSTREAM_HEADERS;
    const t = rec.trace;
    if (t !== undefined) h = t.startTry(h, endpoint, cluster, '/shop/items?id=3');
    if (h.length === 0) throw new Error('unreachable');
    rec.answered();
    rec.trace?.tryAnswered(200);
    rec.trace?.endTry(undefined);
    socket.bytesRead += 120;
    socket.bytesWritten += 300;
    res.emit('close');
    // Export what the last 1,024 requests produced before going on (a worker's event loop interleaves it with the
    // requests; here the bound of held spans would otherwise drop most of them at 100 %).
    if ((i & 1023) === 1023) await v.tracing?.flush();
  }
  // The spans of this round exported (their serialization and sending is part of the cost).
  await v.tracing?.flush();
  const c = process.cpuUsage(c0);
  const bytes = (getHeapStatistics().total_allocated_bytes - a0) / N;
  return { ns: ((c.user + c.system) * 1e3) / N, bytes };
}

const results: Record<string, { ns: number; bytes: number }> = {};
for (const v of variants) {
  const rounds: { ns: number; bytes: number }[] = [];
  for (let r = 0; r < 7; r++) rounds.push(await round(v));
  const ns = rounds.map((x) => x.ns).sort((a, b) => a - b);
  const bytes = rounds.map((x) => x.bytes).sort((a, b) => a - b);
  results[v.name] = { ns: ns[3]!, bytes: bytes[3]! };
}
const base = results[variants[0]!.name]!;
for (const [name, r] of Object.entries(results))
  console.error(
    `${name.padEnd(28)} ${r.ns.toFixed(0).padStart(6)} ns CPU/request${name === variants[0]!.name ? '' : ` (+${(r.ns - base.ns).toFixed(0)})`}  ${r.bytes.toFixed(0).padStart(6)} B allocated/request${name === variants[0]!.name ? '' : ` (+${(r.bytes - base.bytes).toFixed(0)})`}`,
  );
for (const v of variants)
  if (v.tracing) console.error(`${v.name}: ${JSON.stringify(v.tracing.counterValues())}`);
console.error(
  `(${N} requests per round, median of 7 rounds, export ${sink ? 'OTLP/HTTP protobuf to the real collector' : 'discarded (no collector built)'}, node ${process.version})`,
);
for (const v of variants) await v.tracing?.shutdown();
await sink?.stop();

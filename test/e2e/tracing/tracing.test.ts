/**
 * Tracing against a real OpenTelemetry Collector (OTLP/HTTP receiver, file exporter) and real `edgegate run`
 * processes with two workers: the spans of a request, their parent ids end to end (client traceparent → server span
 * → try span → the traceparent the upstream sees), their attributes, a retry as two try spans, the policy span of a
 * denial, malformed traceparents starting a new trace, sampling ratio 0 (no spans, traceparent still sent), trace
 * exemplars on the request-duration buckets in OpenMetrics only, and a collector that is down (requests unaffected,
 * drops counted).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binPath } from '../../support/bins.ts';
import {
  type EchoUpstream,
  type GatewayProcess,
  routeYaml,
  startEcho,
  startGateway,
  writeLoopbackCatalog,
} from '../../support/gateway.ts';
import {
  type CollectedSpan,
  type OtelCollector,
  SPAN_KIND,
  startOtelCollector,
} from '../../support/otel-collector.ts';
import { freePort } from '../../support/ports.ts';
import { startProcess } from '../../support/proc.ts';
import { parsePromText, sumOf } from '../../support/prom-text.ts';
import { promtoolCheckMetrics } from '../../support/promtool.ts';
import { logPathFor, makeTempDir, removeDir } from '../../support/tmp.ts';
import { waitFor } from '../../support/wait.ts';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

let collector: OtelCollector;
let alpha: EchoUpstream;
/** Answers 503 to the first request of each `id`, 200 to the next; keeps the headers of every request. */
let flaky: Server;
const flakySeen = new Map<string, IncomingHttpHeaders[]>();
let gw: GatewayProcess;
let dir: string;
let seq = 0;

function randomHex(n: number): string {
  let s = '';
  while (s.length < n)
    s += Math.floor(Math.random() * 0xffffffff)
      .toString(16)
      .padStart(8, '0');
  return s.slice(0, n);
}

interface Answer {
  status: number;
  body: string;
}

/** One request on a new connection (so the kernel spreads them over the workers). */
function send(base: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { agent: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** What the echo upstream received (its JSON answer). */
function echoed(a: Answer): IncomingHttpHeaders {
  expect(a.status).toBe(200);
  return (JSON.parse(a.body) as { headers: IncomingHttpHeaders }).headers;
}

function spansOf(c: OtelCollector, traceId: string): CollectedSpan[] {
  return c.spans().filter((s) => s.traceId === traceId);
}

/** Waits until the collector holds at least `n` spans of the trace. */
async function traceSpans(c: OtelCollector, traceId: string, n: number): Promise<CollectedSpan[]> {
  return waitFor(
    () => {
      const s = spansOf(c, traceId);
      return s.length >= n ? s : undefined;
    },
    {
      timeoutMs: 20_000,
      message: `${n} spans of trace ${traceId}`,
      diagnostics: () => gw.output().slice(-3000),
    },
  );
}

function only(spans: CollectedSpan[], kind: number, name?: string): CollectedSpan[] {
  return spans.filter((s) => s.kind === kind && (name === undefined || s.name === name));
}

function writeRoutes(
  target: string,
  flakyPort: number,
  alphaPort: number,
): { routes: string; catalog: string } {
  const catalog = join(target, 'catalog.yaml');
  writeLoopbackCatalog(catalog, { alpha: [alphaPort], flaky: [flakyPort] });
  const routes = join(target, 'routes');
  mkdirSync(routes, { recursive: true });
  writeFileSync(
    join(routes, 'a.yaml'),
    routeYaml(
      'route-a',
      {
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/a' } }],
            backends: [{ consul: { service: 'alpha' } }],
          },
        ],
      },
      'trace',
    ),
  );
  writeFileSync(
    join(routes, 'retry.yaml'),
    routeYaml(
      'route-retry',
      {
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/retry' } }],
            backends: [{ consul: { service: 'flaky' } }],
            retry: { attempts: 1, retryOn: ['503'] },
          },
        ],
      },
      'trace',
    ),
  );
  writeFileSync(
    join(routes, 'limited.yaml'),
    routeYaml(
      'route-limited',
      {
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/limited' } }],
            backends: [{ consul: { service: 'alpha' } }],
            policies: { rateLimit: { requests: 1, period: '1h', burst: 1 } },
          },
        ],
      },
      'trace',
    ),
  );
  return { routes, catalog };
}

beforeAll(async () => {
  collector = await startOtelCollector('otelcol-tracing');
  alpha = await startEcho('alpha');
  flaky = createServer((req, res) => {
    const id = new URL(req.url ?? '/', 'http://x').searchParams.get('id') ?? '';
    const seen = flakySeen.get(id) ?? [];
    seen.push(req.headers);
    flakySeen.set(id, seen);
    res.writeHead(seen.length === 1 ? 503 : 200, { 'content-type': 'text/plain' });
    res.end(seen.length === 1 ? 'not yet' : 'ok');
  });
  flaky.listen(0, '127.0.0.1');
  await new Promise((r) => flaky.once('listening', r));
  dir = makeTempDir('tracing');
  const { routes, catalog } = writeRoutes(dir, (flaky.address() as AddressInfo).port, alpha.port);
  gw = await startGateway(
    ['--routes', routes, '--catalog', catalog, '--workers', '2', '--otlp-endpoint', collector.endpoint],
    {
      env: {
        OTEL_SERVICE_NAME: 'edge-test',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=e2e,k8s.pod.name=gw-0',
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '1',
      },
    },
  );
});

afterAll(async () => {
  await gw?.stop();
  await collector?.stop();
  await alpha?.close();
  flaky?.closeAllConnections();
  await new Promise((r) => (flaky ? flaky.close(r) : r(undefined)));
  if (dir) removeDir(dir);
});

describe('spans of a proxied request', () => {
  it('continue the client trace: server span under the client span, try span under it, upstream parent = try span', async () => {
    const traceId = randomHex(32);
    const clientSpan = randomHex(16);
    const upstream = echoed(
      await send(gw.url, '/a/items?secret=1', {
        traceparent: `00-${traceId}-${clientSpan}-01`,
        tracestate: 'vendor=abc,other=x',
        'user-agent': 'trace-test/1',
      }),
    );
    const spans = await traceSpans(collector, traceId, 2);
    const [server] = only(spans, SPAN_KIND.SERVER);
    const [tryS] = only(spans, SPAN_KIND.CLIENT);
    expect(server, JSON.stringify(spans)).toBeDefined();
    expect(tryS).toBeDefined();
    expect(server!.parentSpanId).toBe(clientSpan);
    expect(tryS!.parentSpanId).toBe(server!.spanId);
    // The upstream's traceparent: same trace, parent = the try span, sampled; the client's tracestate follows it.
    const m = TRACEPARENT.exec(String(upstream.traceparent));
    expect(m).not.toBeNull();
    expect(m![1]).toBe(traceId);
    expect(m![2]).toBe(tryS!.spanId);
    expect(m![3]).toBe('01');
    expect(upstream.tracestate).toBe('vendor=abc,other=x');

    expect(server!.name).toBe('GET trace/route-a');
    expect(server!.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/a/items',
      'url.scheme': 'http',
      'http.response.status_code': 200,
      'user_agent.original': 'trace-test/1',
      'edgegate.route': 'trace/route-a',
      'edgegate.service': 'alpha',
      'edgegate.datacenter': 'dc1',
      'edgegate.endpoint.address': `127.0.0.1:${alpha.port}`,
    });
    // The query is never recorded (it may carry credentials).
    expect(JSON.stringify(server!.attributes)).not.toContain('secret');
    expect(tryS!.attributes).toMatchObject({
      'http.request.method': 'GET',
      'server.address': '127.0.0.1',
      'server.port': alpha.port,
      'url.full': `http://127.0.0.1:${alpha.port}/a/items`,
      'http.response.status_code': 200,
      'edgegate.service': 'alpha',
      'edgegate.datacenter': 'dc1',
    });
    expect(tryS!.attributes['http.request.resend_count']).toBeUndefined();
    expect(server!.resource).toMatchObject({
      'service.name': 'edge-test',
      'deployment.environment.name': 'e2e',
      'k8s.pod.name': 'gw-0',
    });
  });

  it('are exported by both workers, each request its own trace with the right parents', async () => {
    const traces: { traceId: string; parent: string; upstream: string }[] = [];
    for (let i = 0; i < 16; i++) {
      const traceId = randomHex(32);
      const parent = randomHex(16);
      const h = echoed(await send(gw.url, `/a/w${i}`, { traceparent: `00-${traceId}-${parent}-01` }));
      traces.push({ traceId, parent, upstream: String(h.traceparent) });
    }
    const pids = new Set<unknown>();
    for (const t of traces) {
      const spans = await traceSpans(collector, t.traceId, 2);
      const server = only(spans, SPAN_KIND.SERVER)[0]!;
      const tryS = only(spans, SPAN_KIND.CLIENT)[0]!;
      expect(server.parentSpanId).toBe(t.parent);
      expect(tryS.parentSpanId).toBe(server.spanId);
      expect(t.upstream).toBe(`00-${t.traceId}-${tryS.spanId}-01`);
      pids.add(server.resource['process.pid']);
    }
    expect(pids.size).toBe(2);
  });

  it('shows a retry as two try spans under the server span, each the parent the upstream saw', async () => {
    const traceId = randomHex(32);
    const id = `r${++seq}`;
    const a = await send(gw.url, `/retry/x?id=${id}`, { traceparent: `00-${traceId}-${randomHex(16)}-01` });
    expect(a.status).toBe(200);
    const spans = await traceSpans(collector, traceId, 3);
    const server = only(spans, SPAN_KIND.SERVER)[0]!;
    const tries = only(spans, SPAN_KIND.CLIENT);
    expect(tries).toHaveLength(2);
    for (const t of tries) expect(t.parentSpanId).toBe(server.spanId);
    const first = tries.find((t) => t.attributes['http.request.resend_count'] === undefined)!;
    const second = tries.find((t) => t.attributes['http.request.resend_count'] === 1)!;
    expect(first.attributes['http.response.status_code']).toBe(503);
    expect(first.status.code).toBe(2); // ERROR
    expect(second.attributes['http.response.status_code']).toBe(200);
    const seen = flakySeen.get(id)!.map((h) => String(h.traceparent));
    expect(seen).toEqual([`00-${traceId}-${first.spanId}-01`, `00-${traceId}-${second.spanId}-01`]);
    expect(server.attributes['edgegate.retries']).toBe(1);
    expect(server.attributes['http.response.status_code']).toBe(200);
  });

  it('records the policy gate as an internal span, and a denial with its code and no try', async () => {
    const pass = randomHex(32);
    const deny = randomHex(32);
    expect((await send(gw.url, '/limited', { traceparent: `00-${pass}-${randomHex(16)}-01` })).status).toBe(
      200,
    );
    // The pod-wide bucket holds 1 request an hour: the next one is limited, whichever worker takes it.
    expect((await send(gw.url, '/limited', { traceparent: `00-${deny}-${randomHex(16)}-01` })).status).toBe(
      429,
    );
    const passSpans = await traceSpans(collector, pass, 3);
    const passServer = only(passSpans, SPAN_KIND.SERVER)[0]!;
    const passPolicy = only(passSpans, SPAN_KIND.INTERNAL, 'edgegate.policies')[0]!;
    expect(passPolicy.parentSpanId).toBe(passServer.spanId);
    expect(passPolicy.attributes['edgegate.policy.outcome']).toBe('pass');

    const denySpans = await traceSpans(collector, deny, 2);
    const denyPolicy = only(denySpans, SPAN_KIND.INTERNAL, 'edgegate.policies')[0]!;
    expect(denyPolicy.attributes).toMatchObject({
      'edgegate.policy.outcome': 'deny',
      'edgegate.policy.code': 'EDGEGATE_RATE_LIMITED',
    });
    expect(only(denySpans, SPAN_KIND.CLIENT)).toHaveLength(0);
    const denyServer = only(denySpans, SPAN_KIND.SERVER)[0]!;
    expect(denyServer.attributes).toMatchObject({
      'http.response.status_code': 429,
      'edgegate.error_code': 'EDGEGATE_RATE_LIMITED',
    });
  });

  it.each([
    ['uppercase hex', (t: string, s: string) => `00-${t.toUpperCase()}-${s}-01`],
    ['all-zero trace id', (_t: string, s: string) => `00-${'0'.repeat(32)}-${s}-01`],
    ['all-zero parent id', (t: string) => `00-${t}-${'0'.repeat(16)}-01`],
    ['version ff', (t: string, s: string) => `ff-${t}-${s}-01`],
    ['extra field on version 00', (t: string, s: string) => `00-${t}-${s}-01-extra`],
    ['short trace id', (t: string, s: string) => `00-${t.slice(2)}-${s}-01`],
  ])('starts a new trace for a malformed traceparent (%s) and drops its tracestate', async (_name, make) => {
    const sent = randomHex(32);
    const h = echoed(
      await send(gw.url, '/a/bad', { traceparent: make(sent, randomHex(16)), tracestate: 'vendor=leak' }),
    );
    const m = TRACEPARENT.exec(String(h.traceparent));
    expect(m).not.toBeNull();
    expect(m![1]).not.toBe(sent);
    expect(h.tracestate).toBeUndefined();
    const spans = await traceSpans(collector, m![1]!, 2);
    const server = only(spans, SPAN_KIND.SERVER)[0]!;
    expect(server.parentSpanId).toBe('');
    expect(m![2]).toBe(only(spans, SPAN_KIND.CLIENT)[0]!.spanId);
  });
});

describe('exemplars on the request-duration histogram', () => {
  it('serves OpenMetrics with a trace_id exemplar per bucket when asked, the Prometheus text format otherwise', async () => {
    const traceId = randomHex(32);
    echoed(await send(gw.url, '/a/exemplar', { traceparent: `00-${traceId}-${randomHex(16)}-01` }));
    await traceSpans(collector, traceId, 2);
    const om = await waitFor(
      async () => {
        const r = await fetch(`${gw.adminUrl}/metrics`, {
          headers: { accept: 'application/openmetrics-text;version=1.0.0;q=0.5,text/plain;q=0.3' },
        });
        expect(r.headers.get('content-type')).toContain('application/openmetrics-text');
        const text = await r.text();
        return text.includes(`trace_id="${traceId}"`) ? text : undefined;
      },
      { timeoutMs: 10_000, message: 'an exemplar of the trace' },
    );
    expect(om.endsWith('# EOF\n')).toBe(true);
    const line = om.split('\n').find((l) => l.includes(`trace_id="${traceId}"`))!;
    // A bucket of the route's request-duration histogram: `…_bucket{route,le} N # {trace_id,span_id} value ts`.
    expect(line).toMatch(
      /^edgegate_request_duration_seconds_bucket\{route="trace\/route-a",le="[^"]+"\} \d+ # \{trace_id="[0-9a-f]{32}",span_id="[0-9a-f]{16}"\} [0-9.e-]+ [0-9.]+$/,
    );
    // Counters keep their _total samples in OpenMetrics.
    expect(om).toMatch(/^# TYPE edgegate_requests counter$/m);
    expect(om).toMatch(/^edgegate_requests_total\{/m);

    const plain = await fetch(`${gw.adminUrl}/metrics`);
    expect(plain.headers.get('content-type')).toContain('text/plain');
    const text = await plain.text();
    expect(text).not.toContain('trace_id=');
    expect(text).not.toContain('# EOF');
    const check = promtoolCheckMetrics(text);
    expect(check.output).not.toMatch(/error/i);
    expect(check.status).toBe(0);
    // Still the Prometheus names after an OpenMetrics scrape (the families are not renamed in place).
    expect(text).toMatch(/^# TYPE edgegate_requests_total counter$/m);
  });
});

describe('a real Prometheus with exemplar storage', () => {
  it('scrapes /metrics as OpenMetrics and stores the trace_id exemplar of the bucket', async () => {
    const traceId = randomHex(32);
    echoed(await send(gw.url, '/a/prometheus', { traceparent: `00-${traceId}-${randomHex(16)}-01` }));
    const pdir = makeTempDir('tracing-prometheus');
    const port = await freePort({ udp: false });
    writeFileSync(
      join(pdir, 'prometheus.yml'),
      JSON.stringify({
        global: { scrape_interval: '1s', scrape_timeout: '1s' },
        scrape_configs: [
          {
            job_name: 'edgegate',
            // Prometheus's default list prefers OpenMetrics too; pinned so a fallback to the text format fails here.
            scrape_protocols: ['OpenMetricsText1.0.0'],
            static_configs: [{ targets: [`127.0.0.1:${gw.adminPort}`] }],
          },
        ],
      }),
    );
    const prom = startProcess({
      name: 'prometheus-exemplars',
      command: binPath('prometheus'),
      args: [
        `--config.file=${join(pdir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(pdir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--enable-feature=exemplar-storage',
      ],
      logPath: logPathFor('prometheus-exemplars'),
    });
    const api = `http://127.0.0.1:${port}/api/v1`;
    try {
      const targets = async () => JSON.stringify(await (await fetch(`${api}/targets`)).json());
      const found = await waitFor(
        async () => {
          const now = Date.now() / 1000;
          const q = encodeURIComponent('edgegate_request_duration_seconds_bucket{route="trace/route-a"}');
          const r = await fetch(`${api}/query_exemplars?query=${q}&start=${now - 600}&end=${now + 60}`).catch(
            () => undefined,
          );
          if (!r?.ok) return undefined;
          const body = (await r.json()) as {
            data: { seriesLabels: Record<string, string>; exemplars: { labels: Record<string, string> }[] }[];
          };
          for (const series of body.data)
            for (const e of series.exemplars) if (e.labels.trace_id === traceId) return series.seriesLabels;
          return undefined;
        },
        { timeoutMs: 60_000, message: 'the exemplar in Prometheus', diagnostics: targets },
      );
      expect(found.__name__).toBe('edgegate_request_duration_seconds_bucket');
      expect(found.le).toBeDefined();
      // The scrape itself is healthy (an OpenMetrics body Prometheus could not parse would leave up = 0).
      const up = (await (await fetch(`${api}/query?query=up`)).json()) as {
        data: { result: { value: [number, string] }[] };
      };
      expect(up.data.result[0]!.value[1]).toBe('1');
    } finally {
      await prom.stop();
      removeDir(pdir);
    }
  });
});

describe('sampling ratio 0', () => {
  let zero: GatewayProcess;
  let zdir: string;
  beforeAll(async () => {
    zdir = makeTempDir('tracing-zero');
    const { routes, catalog } = writeRoutes(zdir, (flaky.address() as AddressInfo).port, alpha.port);
    zero = await startGateway([
      '--routes',
      routes,
      '--catalog',
      catalog,
      '--workers',
      '2',
      '--otlp-endpoint',
      collector.endpoint,
      '--tracing-sample-ratio',
      '0',
    ]);
  });
  afterAll(async () => {
    await zero?.stop();
    if (zdir) removeDir(zdir);
  });

  it('records no span for a request without a parent, but sends a fresh unsampled traceparent upstream', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const h = echoed(await send(zero.url, `/a/zero${i}`));
      const m = TRACEPARENT.exec(String(h.traceparent));
      expect(m).not.toBeNull();
      expect(m![3]).toBe('00');
      ids.push(m![1]!);
    }
    expect(new Set(ids).size).toBe(5);
    // A sampled parent is followed (parent-based): its spans arrive, so the unsampled ones had their chance too.
    const followed = randomHex(32);
    const parent = randomHex(16);
    const h = echoed(await send(zero.url, '/a/followed', { traceparent: `00-${followed}-${parent}-01` }));
    expect(String(h.traceparent)).toMatch(new RegExp(`^00-${followed}-[0-9a-f]{16}-01$`));
    const spans = await traceSpans(collector, followed, 2);
    expect(only(spans, SPAN_KIND.SERVER)[0]!.parentSpanId).toBe(parent);
    for (const id of ids) expect(spansOf(collector, id)).toEqual([]);
    // An unsampled parent keeps its trace id and stays unsampled.
    const quiet = randomHex(32);
    const q = echoed(await send(zero.url, '/a/quiet', { traceparent: `00-${quiet}-${randomHex(16)}-00` }));
    expect(String(q.traceparent)).toMatch(new RegExp(`^00-${quiet}-[0-9a-f]{16}-00$`));
  });
});

describe('single process (--workers 0)', () => {
  it('traces in the primary process too, and flushes on stop', async () => {
    const sdir = makeTempDir('tracing-single');
    const { routes, catalog } = writeRoutes(sdir, (flaky.address() as AddressInfo).port, alpha.port);
    const g = await startGateway(
      ['--routes', routes, '--catalog', catalog, '--workers', '0', '--otlp-endpoint', collector.endpoint],
      { env: { OTEL_BSP_SCHEDULE_DELAY: '3600000' } },
    );
    const traceId = randomHex(32);
    const parent = randomHex(16);
    let upstream: IncomingHttpHeaders;
    try {
      upstream = echoed(await send(g.url, '/a/single', { traceparent: `00-${traceId}-${parent}-01` }));
    } finally {
      expect(await g.stop()).toBe(0);
      removeDir(sdir);
    }
    const spans = await traceSpans(collector, traceId, 2);
    const server = only(spans, SPAN_KIND.SERVER)[0]!;
    const tryS = only(spans, SPAN_KIND.CLIENT)[0]!;
    expect(server.parentSpanId).toBe(parent);
    expect(String(upstream.traceparent)).toBe(`00-${traceId}-${tryS.spanId}-01`);
  });
});

describe('drain', () => {
  it('exports the spans a worker still holds before it exits', async () => {
    const ddir = makeTempDir('tracing-drain');
    const { routes, catalog } = writeRoutes(ddir, (flaky.address() as AddressInfo).port, alpha.port);
    const g = await startGateway(
      [
        '--routes',
        routes,
        '--catalog',
        catalog,
        '--workers',
        '2',
        '--otlp-endpoint',
        collector.endpoint,
        '--drain-delay',
        '0s',
      ],
      // Nothing is exported on the timer within the test: only the drain's flush can deliver these spans.
      { env: { OTEL_BSP_SCHEDULE_DELAY: '3600000' } },
    );
    const traces: string[] = [];
    try {
      for (let i = 0; i < 6; i++) {
        const t = randomHex(32);
        traces.push(t);
        echoed(await send(g.url, `/a/drain${i}`, { traceparent: `00-${t}-${randomHex(16)}-01` }));
      }
      expect(traces.flatMap((t) => spansOf(collector, t))).toEqual([]);
    } finally {
      expect(await g.stop()).toBe(0);
      removeDir(ddir);
    }
    for (const t of traces) await traceSpans(collector, t, 2);
  });
});

describe('collector down', () => {
  it('leaves requests unaffected and counts the spans it drops', async () => {
    const dead = await freePort({ udp: false });
    const ddir = makeTempDir('tracing-down');
    const { routes, catalog } = writeRoutes(ddir, (flaky.address() as AddressInfo).port, alpha.port);
    const down = await startGateway(
      [
        '--routes',
        routes,
        '--catalog',
        catalog,
        '--workers',
        '2',
        '--otlp-endpoint',
        `http://127.0.0.1:${dead}`,
        '--tracing-queue-size',
        '4',
      ],
      { env: { OTEL_EXPORTER_OTLP_TIMEOUT: '1000' } },
    );
    try {
      for (let i = 0; i < 40; i++) {
        const a = await send(down.url, `/a/down${i}`);
        expect(a.status).toBe(200);
        expect(String(echoed(a).traceparent)).toMatch(TRACEPARENT);
      }
      const prom = await waitFor(
        async () => {
          const p = parsePromText(await (await fetch(`${down.adminUrl}/metrics`)).text());
          const failed = sumOf(p, 'edgegate_tracing_spans_dropped_total', { reason: 'export_failed' });
          const full = sumOf(p, 'edgegate_tracing_spans_dropped_total', { reason: 'queue_full' });
          return failed > 0 && full > 0 ? p : undefined;
        },
        { timeoutMs: 30_000, message: 'drops counted', diagnostics: () => down.output().slice(-2000) },
      );
      expect(sumOf(prom, 'edgegate_tracing_spans_exported_total', {})).toBe(0);
      expect(sumOf(prom, 'edgegate_requests_total', { route: 'trace/route-a', code: '2xx' })).toBe(40);
    } finally {
      await down.stop();
      removeDir(ddir);
    }
  });
});

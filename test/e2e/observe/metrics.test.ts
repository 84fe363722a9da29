/**
 * Metrics and access log against a real `edgegate run` process and real upstreams: exact request counts per route
 * and code (forwarded answers by status class, gateway answers by error code), pool gauges that match the
 * connections the upstream actually holds, an exposition that passes `promtool check metrics` with HELP on every
 * metric, one access log line per request with its fields, and no trace of Authorization / Cookie / query tokens.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EchoUpstream,
  type GatewayProcess,
  routeYaml,
  startEcho,
  startGateway,
  writeLoopbackCatalog,
} from '../../support/gateway.ts';
import { freePort } from '../../support/ports.ts';
import { familyOf, type PromText, parsePromText, sumOf } from '../../support/prom-text.ts';
import { promtoolCheckMetrics } from '../../support/promtool.ts';
import { waitFor } from '../../support/wait.ts';

/** Proxy worker processes: the counts must be exact whatever the process model. */
const WORKER_ARGS = ['--workers', '2'];

let alpha: EchoUpstream;
let beta: EchoUpstream;
let pooled: EchoUpstream;
let gw: GatewayProcess;
let dir: string;
const sent = new Map<string, { path: string; status: number }>();
let seq = 0;

const rule = (path: string, service: string, pool?: Record<string, unknown>) => ({
  matches: [{ path: { type: 'PathPrefix', value: path } }],
  backends: [{ consul: { service }, ...(pool ? { pool } : {}) }],
});

/** One request on a new connection (so the kernel spreads them over the workers); returns the status. */
function get(path: string, headers: Record<string, string> = {}): Promise<number> {
  const requestId = `obs-test-${++seq}`;
  return new Promise((resolve, reject) => {
    const req = request(
      `${gw.url}${path}`,
      { agent: false, headers: { 'x-request-id': requestId, ...headers } },
      (res) => {
        res.resume();
        res.on('end', () => {
          sent.set(requestId, { path: path.split('?')[0]!, status: res.statusCode! });
          resolve(res.statusCode!);
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

interface WorkerView {
  workers: { pid?: number; version: number; state: string; stats?: { requests: number } }[];
  restarts: number;
}
async function workersView(): Promise<WorkerView> {
  return (await (await fetch(`${gw.adminUrl}/debug/workers`)).json()) as WorkerView;
}

async function scrape(): Promise<{ text: string; prom: PromText }> {
  const r = await fetch(`${gw.adminUrl}/metrics`);
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toContain('text/plain');
  const text = await r.text();
  return { text, prom: parsePromText(text) };
}

beforeAll(async () => {
  alpha = await startEcho('alpha');
  beta = await startEcho('beta');
  pooled = await startEcho('pooled');
  const dead = await freePort({ udp: false });
  const deadToo = await freePort({ udp: false });
  dir = mkdtempSync(join(tmpdir(), 'edgegate-observe-'));
  writeLoopbackCatalog(join(dir, 'catalog.yaml'), {
    alpha: [alpha.port],
    beta: [beta.port],
    pooled: [pooled.port],
    gone: [dead],
    flaky: [alpha.port, deadToo],
  });
  const routes = join(dir, 'routes');
  mkdirSync(routes);
  writeFileSync(join(routes, 'a.yaml'), routeYaml('route-a', { rules: [rule('/a', 'alpha')] }, 'obs'));
  writeFileSync(join(routes, 'b.yaml'), routeYaml('route-b', { rules: [rule('/b', 'beta')] }, 'obs'));
  writeFileSync(
    join(routes, 'gone.yaml'),
    routeYaml('route-gone', { rules: [rule('/gone', 'gone')] }, 'obs'),
  );
  writeFileSync(
    join(routes, 'flaky.yaml'),
    routeYaml('route-flaky', { rules: [rule('/flaky', 'flaky')] }, 'obs'),
  );
  writeFileSync(
    join(routes, 'p.yaml'),
    routeYaml('route-pooled', { rules: [rule('/p', 'pooled', { keepAliveTimeout: '60s' })] }, 'obs'),
  );
  gw = await startGateway(['--routes', routes, '--catalog', join(dir, 'catalog.yaml'), ...WORKER_ARGS]);
});

afterAll(async () => {
  await gw?.stop();
  await Promise.all([alpha?.close(), beta?.close(), pooled?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('request metrics', () => {
  it('counts N requests to route A and M to route B exactly, with codes right', async () => {
    // Route A: 7 OK, 3 answered 503 by the upstream. Route B: 4 OK, 2 answered 404 by the upstream.
    const a = [...Array(7).fill('/a/ok'), ...Array(3).fill('/a/fail?status=503')];
    const b = [...Array(4).fill('/b/ok'), ...Array(2).fill('/b/missing?status=404')];
    for (const p of [...a, ...b]) await get(p);
    // Gateway-generated: 3 unmatched (404 EDGEGATE_NO_ROUTE), 2 to a dead endpoint (502 EDGEGATE_UPSTREAM_CONNECT).
    for (let i = 0; i < 3; i++) expect(await get('/nowhere')).toBe(404);
    for (let i = 0; i < 2; i++) expect(await get('/gone/x')).toBe(502);

    const { prom } = await scrape();
    const req = (labels: Record<string, string>) => sumOf(prom, 'edgegate_requests_total', labels);
    expect(req({ route: 'obs/route-a' })).toBe(10);
    expect(req({ route: 'obs/route-a', service: 'alpha', datacenter: 'dc1', code: '2xx' })).toBe(7);
    expect(req({ route: 'obs/route-a', code: '5xx' })).toBe(3);
    expect(req({ route: 'obs/route-b' })).toBe(6);
    expect(req({ route: 'obs/route-b', service: 'beta', code: '2xx' })).toBe(4);
    expect(req({ route: 'obs/route-b', code: '4xx' })).toBe(2);
    expect(req({ route: '', code: 'EDGEGATE_NO_ROUTE' })).toBe(3);
    expect(req({ route: 'obs/route-gone', service: 'gone', code: 'EDGEGATE_UPSTREAM_CONNECT' })).toBe(2);
    expect(sumOf(prom, 'edgegate_gateway_errors_total', { code: 'EDGEGATE_NO_ROUTE' })).toBe(3);
    expect(sumOf(prom, 'edgegate_gateway_errors_total', { code: 'EDGEGATE_UPSTREAM_CONNECT' })).toBe(2);
    expect(
      sumOf(prom, 'edgegate_upstream_connection_failures_total', { service: 'gone' }),
    ).toBeGreaterThanOrEqual(2);
    // The duration histogram saw every request of the route; upstream header times only forwarded answers.
    expect(sumOf(prom, 'edgegate_request_duration_seconds_count', { route: 'obs/route-a' })).toBe(10);
    expect(
      sumOf(prom, 'edgegate_request_duration_seconds_bucket', { route: 'obs/route-a', le: '+Inf' }),
    ).toBe(10);
    expect(sumOf(prom, 'edgegate_upstream_response_header_seconds_count', { service: 'alpha' })).toBe(10);
    expect(sumOf(prom, 'edgegate_response_bytes_total', { route: 'obs/route-a' })).toBeGreaterThan(10 * 100);
    expect(sumOf(prom, 'edgegate_active_requests')).toBe(0);
    // Both workers served part of it, and the sums above are exact all the same.
    const served = (await workersView()).workers.map((w) => w.stats?.requests ?? 0);
    expect(served).toHaveLength(2);
    for (const n of served) expect(n).toBeGreaterThan(0);
    // Labels stay bounded: no path or host ever becomes a label value.
    for (const s of prom.samples)
      for (const v of Object.values(s.labels)) expect(v.includes('/a/') || v.includes('nowhere')).toBe(false);
  });

  it('counts request bodies in edgegate_request_bytes_total', async () => {
    const before = sumOf((await scrape()).prom, 'edgegate_request_bytes_total', { route: 'obs/route-b' });
    const r = await fetch(`${gw.url}/b/upload`, { method: 'POST', body: 'x'.repeat(5000) });
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    const after = sumOf((await scrape()).prom, 'edgegate_request_bytes_total', { route: 'obs/route-b' });
    expect(after - before).toBeGreaterThanOrEqual(5000);
    expect(after - before).toBeLessThan(5000 + 1024);
  });
});

describe('worker restarts', () => {
  it('keeps counters exact when a worker is killed and replaced', async () => {
    const total = async () =>
      sumOf((await scrape()).prom, 'edgegate_requests_total', { route: 'obs/route-b' });
    for (let i = 0; i < 6; i++) expect(await get('/b/before')).toBe(200);
    const before = await total();
    const view = await workersView();
    const victim = view.workers.find((w) => w.pid !== undefined)!.pid!;
    process.kill(victim, 'SIGKILL');
    await waitFor(
      async () => {
        const v = await workersView();
        return (
          v.restarts > view.restarts &&
          v.workers.every((w) => w.pid !== undefined && w.pid !== victim && w.state === 'listening')
        );
      },
      { timeoutMs: 20_000, message: 'the killed worker replaced' },
    );
    // The dead worker's last scraped counts stay in the total; new requests add exactly.
    expect(await total()).toBe(before);
    for (let i = 0; i < 5; i++) expect(await get('/b/after')).toBe(200);
    expect(await total()).toBe(before + 5);
    expect(sumOf((await scrape()).prom, 'edgegate_worker_restarts_total')).toBeGreaterThanOrEqual(1);
  });
});

describe('pool gauges', () => {
  it('shows K connected when K keep-alive connections are held open to an upstream', async () => {
    const K = 3;
    // K concurrent slow requests need K upstream connections; they stay open (keep-alive 60 s) afterwards.
    const slow = Array.from({ length: K }, () => get('/p/slow?delay=400'));
    const during = await waitFor(
      async () => {
        const { prom } = await scrape();
        return sumOf(prom, 'edgegate_upstream_pool_running', { service: 'pooled' }) === K && prom;
      },
      { timeoutMs: 10_000, intervalMs: 20, message: `${K} requests running on the pooled upstream` },
    );
    expect(sumOf(during, 'edgegate_upstream_pool_connected', { service: 'pooled' })).toBe(K);
    expect(sumOf(during, 'edgegate_upstream_in_flight', { service: 'pooled' })).toBe(K);
    expect(await Promise.all(slow)).toEqual(Array(K).fill(200));

    const { prom } = await scrape();
    const upstreamHolds = await new Promise<number>((resolve, reject) =>
      pooled.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
    );
    expect(upstreamHolds).toBe(K);
    expect(sumOf(prom, 'edgegate_upstream_pool_connected', { service: 'pooled', datacenter: 'dc1' })).toBe(K);
    expect(sumOf(prom, 'edgegate_upstream_pool_free', { service: 'pooled' })).toBe(K);
    expect(sumOf(prom, 'edgegate_upstream_pool_running', { service: 'pooled' })).toBe(0);
    expect(sumOf(prom, 'edgegate_upstream_connections_opened_total', { service: 'pooled' })).toBe(K);

    const up = (await (await fetch(`${gw.adminUrl}/debug/upstreams`)).json()) as {
      clusters: {
        service: string;
        endpoints: { port: number; pool: { connected: number }; ejected: boolean }[];
      }[];
    };
    const c = up.clusters.find((x) => x.service === 'pooled')!;
    expect(c.endpoints).toHaveLength(1);
    expect(c.endpoints[0]!.port).toBe(pooled.port);
    expect(c.endpoints[0]!.pool.connected).toBe(K);
    expect(c.endpoints[0]!.ejected).toBe(false);
  });

  it('reports endpoints per service and datacenter', async () => {
    const { prom } = await scrape();
    expect(sumOf(prom, 'edgegate_upstream_endpoints', { service: 'alpha', state: 'healthy' })).toBe(1);
    expect(sumOf(prom, 'edgegate_upstream_endpoints', { service: 'alpha', state: 'total' })).toBe(1);
    expect(sumOf(prom, 'edgegate_upstream_endpoints', { service: 'alpha', state: 'ejected' })).toBe(0);
    expect(sumOf(prom, 'edgegate_table_version')).toBeGreaterThanOrEqual(1);
    expect(sumOf(prom, 'edgegate_source_up', { source: 'routes' })).toBe(1);
    expect(sumOf(prom, 'edgegate_source_up', { source: 'catalog' })).toBe(1);
    expect(sumOf(prom, 'edgegate_compile_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(sumOf(prom, 'edgegate_table_last_publish_timestamp_seconds')).toBeGreaterThan(1.7e9);
  });
});

describe('exposition', () => {
  it('counts outlier ejections, and ejections refused by the cap, per service and datacenter', async () => {
    // flaky: one live and one dead endpoint; connect failures are retried on the live one (200) until the dead
    // one is ejected in each worker. gone: its only endpoint is dead, and the cap (50 %) refuses to eject it.
    for (let i = 0; i < 30; i++) expect(await get('/flaky/x')).toBe(200);
    for (let i = 0; i < 12; i++) expect(await get('/gone/x')).toBe(502);
    const { prom } = await scrape();
    const flaky = { service: 'flaky', datacenter: 'dc1' };
    const gone = { service: 'gone', datacenter: 'dc1' };
    expect(sumOf(prom, 'edgegate_outlier_ejections_total', flaky)).toBeGreaterThanOrEqual(1);
    expect(sumOf(prom, 'edgegate_outlier_ejections_total', flaky)).toBeLessThanOrEqual(2);
    expect(sumOf(prom, 'edgegate_outlier_ejections_refused_total', gone)).toBeGreaterThanOrEqual(1);
    expect(sumOf(prom, 'edgegate_outlier_ejections_total', gone)).toBe(0);
    expect(sumOf(prom, 'edgegate_outlier_ejections_total', { service: 'alpha' })).toBe(0);
    // Every failed try on flaky's dead endpoint was retried on the live one: as many retries as connect failures,
    // at least the 5 failures in a row that ejected it in one worker, at most 5 per worker.
    const retries = sumOf(prom, 'edgegate_retries_total', { route: 'obs/route-flaky', service: 'flaky' });
    expect(retries).toBe(sumOf(prom, 'edgegate_upstream_connection_failures_total', flaky));
    expect(retries).toBeGreaterThanOrEqual(5);
    expect(retries).toBeLessThanOrEqual(10);
  });

  it('passes promtool check metrics and every metric family has HELP', async () => {
    const { text, prom } = await scrape();
    const r = promtoolCheckMetrics(text);
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
    const families = new Set<string>();
    for (const s of prom.samples) families.add(familyOf(s.name, prom.type));
    for (const f of families) {
      expect(prom.type.has(f), `TYPE for ${f}`).toBe(true);
      expect(prom.help.get(f)?.length ?? 0, `HELP for ${f}`).toBeGreaterThan(10);
    }
    for (const f of prom.type.keys()) expect(prom.help.has(f), `HELP for ${f}`).toBe(true);
    // Node's default metrics of the process(es), labelled by worker.
    expect(
      prom.samples.some((s) => s.name === 'process_resident_memory_bytes' && s.labels.worker === 'primary'),
    ).toBe(true);
  });
});

describe('access log', () => {
  it('writes one JSON line per request with its fields', async () => {
    const lines = () =>
      gw
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{"time"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    await waitFor(() => lines().filter((l) => sent.has(l.requestId as string)).length >= sent.size, {
      timeoutMs: 10_000,
      message: 'an access log line for every request',
    });
    const byId = new Map<string, Record<string, unknown>[]>();
    for (const l of lines()) {
      const list = byId.get(l.requestId as string) ?? [];
      list.push(l);
      byId.set(l.requestId as string, list);
    }
    for (const [id, want] of sent) {
      const got = byId.get(id);
      expect(got, id).toHaveLength(1);
      const l = got![0]!;
      expect(l.status).toBe(want.status);
      expect(l.path).toBe(want.path);
      for (const field of [
        'time',
        'requestId',
        'client',
        'method',
        'host',
        'path',
        'status',
        'bytesIn',
        'bytesOut',
        'durationMs',
        'upstream',
        'upstreamMs',
        'route',
        'service',
        'datacenter',
        'retries',
      ])
        expect(l, `${field} in ${JSON.stringify(l)}`).toHaveProperty(field);
      expect(Number.isNaN(Date.parse(l.time as string))).toBe(false);
      expect(l.client).toBe('127.0.0.1');
      expect(l.method).toBe('GET');
    }
    const ok = byId.get([...sent].find(([, v]) => v.path === '/a/ok')![0])![0]!;
    expect(ok).toMatchObject({ route: 'obs/route-a', service: 'alpha', datacenter: 'dc1', retries: 0 });
    expect(ok.upstream).toBe(`127.0.0.1:${alpha.port}`);
    expect(ok.upstreamMs as number).toBeGreaterThanOrEqual(0);
    const noRoute = byId.get([...sent].find(([, v]) => v.path === '/nowhere')![0])![0]!;
    expect(noRoute).toMatchObject({ status: 404, code: 'EDGEGATE_NO_ROUTE', route: '', upstream: '' });
  });

  it('leaves no trace of Authorization, Cookie or query tokens', async () => {
    const secrets = [
      'Bearer sk-LEAKCHECK-auth-7f3a',
      'session=LEAKCHECK-cookie-91c2',
      'LEAKCHECK-query-55d1',
    ];
    const status = await get(`/a/private?access_token=${secrets[2]}`, {
      authorization: secrets[0]!,
      cookie: secrets[1]!,
      'proxy-authorization': 'Basic LEAKCHECK-proxy-auth',
    });
    expect(status).toBe(200);
    const id = `obs-test-${seq}`;
    await waitFor(() => gw.output().includes(`"requestId":"${id}"`), {
      timeoutMs: 10_000,
      message: 'the access log line of the request with credentials',
    });
    expect(gw.output()).not.toContain('LEAKCHECK');
    const line = gw
      .output()
      .split('\n')
      .find((l) => l.includes(`"requestId":"${id}"`))!;
    expect(JSON.parse(line).path).toBe('/a/private');
  });
});

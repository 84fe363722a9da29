/**
 * Metrics checked by value against what the test did, on a real `edgegate run --workers 2` with real upstreams:
 * the worker gauges, source updates and data age after a route file changes, tries and retries refused by a zero
 * retry budget, whole-request and per-try timeouts, and a stopped worker reported as stale at scrape time (its last
 * counts kept) until it answers again.
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
import { scrapeMetrics, sumOf } from '../../support/prom-text.ts';
import { waitFor } from '../../support/wait.ts';

let echo: EchoUpstream;
let gw: GatewayProcess;
let dir: string;
let routes: string;

const rule = (path: string, service: string, extra: Record<string, unknown> = {}) => ({
  matches: [{ path: { type: 'PathPrefix', value: path } }],
  backends: [{ consul: { service } }],
  ...extra,
});

/** One GET on a new connection (so the kernel spreads them over both workers); returns the status. */
function get(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request(`${gw.url}${path}`, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    })
      .on('error', reject)
      .end();
  });
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  return sumOf(await scrapeMetrics(gw.adminUrl), name, labels);
}

beforeAll(async () => {
  echo = await startEcho('values');
  const dead = await freePort({ udp: false });
  dir = mkdtempSync(join(tmpdir(), 'edgegate-metric-values-'));
  writeLoopbackCatalog(join(dir, 'catalog.yaml'), {
    live: [echo.port],
    capped: [echo.port],
    half: [echo.port, dead],
  });
  routes = join(dir, 'routes');
  mkdirSync(routes);
  writeFileSync(
    join(routes, 'values.yaml'),
    routeYaml(
      'values',
      {
        rules: [
          rule('/half', 'half', { retry: { attempts: 1, retryOn: ['connect-failure'] } }),
          rule('/whole', 'live', { timeouts: { request: '300ms' } }),
          rule('/try', 'live', { timeouts: { responseHeaders: '300ms' }, retry: { attempts: 0 } }),
          rule('/live', 'live'),
          {
            matches: [{ path: { type: 'PathPrefix', value: '/capped' } }],
            backends: [{ consul: { service: 'capped' }, pool: { maxConnections: 1 } }],
          },
        ],
      },
      'values',
    ),
  );
  // A zero retry budget refuses every retry; outlier detection off keeps the dead endpoint in rotation.
  gw = await startGateway([
    '--routes',
    routes,
    '--catalog',
    join(dir, 'catalog.yaml'),
    '--workers',
    '2',
    '--retry-budget-percent',
    '0',
    '--retry-budget-min',
    '0',
    '--outlier-consecutive-failures',
    '0',
  ]);
});

afterAll(async () => {
  await gw?.stop();
  await echo?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('metric values', () => {
  it('edgegate_workers and edgegate_workers_current count the live workers on the current table', async () => {
    expect(await metric('edgegate_workers')).toBe(2);
    expect(await metric('edgegate_workers_current')).toBe(2);
  });

  it('has Node process series for the primary and each worker, labelled by worker', async () => {
    const prom = await scrapeMetrics(gw.adminUrl);
    const view = (await (await fetch(`${gw.adminUrl}/debug/workers`)).json()) as {
      workers: { pid?: number }[];
    };
    const rss = prom.samples.filter((x) => x.name === 'process_resident_memory_bytes');
    const workers = rss.map((x) => x.labels.worker).sort();
    // One series per worker slot (stable across worker restarts, so the label set stays bounded) and the primary.
    expect(view.workers).toHaveLength(2);
    expect(workers).toEqual(['0', '1', 'primary']);
    for (const w of rss) expect(w.value).toBeGreaterThan(10 * 1024 * 1024);
  });

  it('the admin API is read-only: writes get 405', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH'])
      for (const path of ['/metrics', '/debug/routes', '/readyz']) {
        const r = await fetch(`${gw.adminUrl}${path}`, { method });
        expect(r.status, `${method} ${path}`).toBe(405);
        await r.arrayBuffer();
      }
  });

  it('counts tries, and retries refused by the budget, exactly', async () => {
    const before = {
      tries: await metric('edgegate_upstream_tries_total'),
      refused: await metric('edgegate_retries_refused_total'),
    };
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push(await get('/half/x'));
    const failed = statuses.filter((s) => s === 502).length;
    // Round robin over a live and a dead endpoint: both answers occur, nothing else.
    expect(failed).toBeGreaterThan(0);
    expect(failed).toBeLessThan(20);
    expect(statuses.filter((s) => s === 200).length).toBe(20 - failed);
    expect((await metric('edgegate_upstream_tries_total')) - before.tries).toBe(20);
    expect((await metric('edgegate_retries_refused_total')) - before.refused).toBe(failed);
    expect(await metric('edgegate_retries_total', { route: 'values/values' })).toBe(0);
  });

  it('counts whole-request and per-try timeouts', async () => {
    expect(await get('/whole/x?delay=5000')).toBe(504);
    expect(await metric('edgegate_request_timeouts_total')).toBe(1);
    expect(await metric('edgegate_upstream_try_timeouts_total')).toBe(0);
    expect(await get('/try/x?delay=5000')).toBe(504);
    expect(await metric('edgegate_upstream_try_timeouts_total')).toBe(1);
    expect(await metric('edgegate_request_timeouts_total')).toBe(1);
  });

  it('pool gauges: with one connection per endpoint, the requests beyond it wait as pending', async () => {
    const pool = async () => {
      const prom = await scrapeMetrics(gw.adminUrl);
      const figure = (f: string) => sumOf(prom, `edgegate_upstream_pool_${f}`, { service: 'capped' });
      return {
        connected: figure('connected'),
        running: figure('running'),
        pending: figure('pending'),
        size: figure('size'),
      };
    };
    // Four slow requests over two workers, one connection per worker's pool: one or two run, the rest wait.
    const held = Array.from({ length: 4 }, () => get('/capped/x?delay=1500'));
    const during = await waitFor(
      async () => {
        const p = await pool();
        // Until a connection is open all four are pending; wait for one to run.
        return p.running >= 1 && p.running + p.pending === 4 && p;
      },
      { timeoutMs: 10_000, intervalMs: 20, message: 'four requests in the capped pools' },
    );
    expect(during.running).toBeLessThanOrEqual(2);
    expect(during.connected).toBe(during.running);
    expect(during.pending).toBe(4 - during.running);
    expect(during.size).toBe(4);
    expect(await Promise.all(held)).toEqual([200, 200, 200, 200]);
    await waitFor(
      async () => {
        const p = await pool();
        return p.running === 0 && p.pending === 0 && p.size === 0;
      },
      { timeoutMs: 10_000, message: 'the capped pools empty again' },
    );
  });

  it('counts source updates and resets the data age when a route file changes', async () => {
    const routesSource = { source: 'routes' };
    expect(await metric('edgegate_source_data_age_seconds', { source: 'catalog' })).toBeGreaterThanOrEqual(0);
    const updates = await metric('edgegate_source_updates_total', routesSource);
    expect(updates).toBeGreaterThanOrEqual(1);
    // Let the data age grow past a second, so a reset is visible.
    const age = await waitFor(
      async () => {
        const a = await metric('edgegate_source_data_age_seconds', routesSource);
        return a >= 1 && a;
      },
      { timeoutMs: 10_000, message: 'routes data older than 1 s' },
    );
    writeFileSync(join(routes, 'more.yaml'), routeYaml('more', { rules: [rule('/more', 'live')] }, 'values'));
    await waitFor(async () => (await get('/more/x')) === 200, {
      timeoutMs: 10_000,
      message: 'new route served',
    });
    expect(await metric('edgegate_source_updates_total', routesSource)).toBeGreaterThan(updates);
    const fresh = await metric('edgegate_source_data_age_seconds', routesSource);
    expect(fresh).toBeGreaterThanOrEqual(0);
    expect(fresh).toBeLessThan(age);
  });

  it('reports a stopped worker as stale with its last counts kept, until it answers again', async () => {
    for (let i = 0; i < 10; i++) expect(await get('/live/x')).toBe(200);
    const requests = await metric('edgegate_requests_total');
    expect(await metric('edgegate_metrics_stale_workers')).toBe(0);
    const missed = await metric('edgegate_metrics_missed_answers_total');
    const view = (await (await fetch(`${gw.adminUrl}/debug/workers`)).json()) as {
      workers: { pid?: number }[];
    };
    const pid = view.workers.find((w) => w.pid !== undefined)!.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      // No proxied request while it is stopped: the kernel could hand it to the stopped worker.
      // The scrape still answers 200 (scrapeMetrics throws otherwise).
      const prom = await scrapeMetrics(gw.adminUrl);
      expect(sumOf(prom, 'edgegate_metrics_stale_workers')).toBe(1);
      expect(sumOf(prom, 'edgegate_metrics_missed_answers_total')).toBe(missed + 1);
      expect(sumOf(prom, 'edgegate_requests_total')).toBe(requests);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await waitFor(async () => (await metric('edgegate_metrics_stale_workers')) === 0, {
      timeoutMs: 10_000,
      message: 'the worker answers scrapes again',
    });
    expect(await get('/live/x')).toBe(200);
    expect(await metric('edgegate_requests_total')).toBe(requests + 1);
  });
});

/**
 * The Consul source against real agents (dc1 + dc2, joined over WAN) and edgegate as a real process
 * (`edgegate run --consul --routes … --state-dir …`). Instances are `edgegate echo` servers on loopback,
 * registered with the dc2 (or dc1) agent with an HTTP check on the echo (`/?status=NNN`, every second) and, where
 * the test flips health on purpose, a TTL check passed or failed through the agent API.
 * The tests run in order and share the pair and the gateway.
 */
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConsulPair, startConsulPair } from '../../support/consul.ts';
import { consulLogs, printLogsOnFailure } from '../../support/logs.ts';
import { waitFor } from '../../support/wait.ts';
import {
  CATALOG_ROUTE_YAML,
  deregister,
  type Echo,
  type Gateway,
  healthOf,
  percentile,
  register,
  setHttpCheck,
  startEcho,
  startGateway,
  stopEcho,
  ttl,
  writeRoutes,
} from './helpers.ts';

const ROUTES = {
  'catalog.yaml': CATALOG_ROUTE_YAML,
  'canary.yaml': `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: shop, namespace: edge }
spec:
  hostnames: [canary.test]
  rules:
    - backends:
        - consul: { service: shop, datacenter: dc2, tags: [v1] }
          weight: 95
        - consul: { service: shop, datacenter: dc2, tags: [v2] }
          weight: 5
`,
};

let pair: ConsulPair | undefined;
let gw: Gateway | undefined;
const echoes: Echo[] = [];
const routesDir = mkdtempSync(join(tmpdir(), 'edgegate-consul-routes-'));
const stateDir = mkdtempSync(join(tmpdir(), 'edgegate-consul-state-'));

printLogsOnFailure(() => [
  ...consulLogs(pair?.dc1, pair?.dc2),
  ...(gw ? [{ name: 'edgegate', logPath: gw.proc.logPath }] : []),
]);

async function echo(name: string): Promise<Echo> {
  const e = await startEcho(name);
  echoes.push(e);
  return e;
}

interface SourceStats {
  consul: { up: number; synced: boolean; dataAgeSeconds: number; serviceWatches: number; failing: object };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ port, host: '127.0.0.1' });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

beforeAll(async () => {
  writeRoutes(routesDir, ROUTES);
  pair = await startConsulPair();
  gw = await startGateway({ routesDir, stateDir, consulAddr: pair.dc1.httpAddr });
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  for (const e of echoes) await stopEcho(e);
  await pair?.stop();
});

describe('edgegate run --consul (dc1 + dc2)', () => {
  const billing: Echo[] = [];

  it('spreads /dc2/billing/x across three healthy instances, forwarding /x with the query', async () => {
    const { dc2 } = pair!;
    for (const i of [1, 2, 3]) {
      const e = await echo(`billing-${i}`);
      billing.push(e);
      await register(dc2, {
        id: `billing-${i}`,
        service: 'billing',
        tags: ['edge', 'v1'],
        port: e.port,
        httpStatus: 200,
        ttl: 'passing',
      });
    }
    const c = gw!.client;
    await waitFor(async () => Object.keys(await c.spread('/dc2/billing/x?q=1', 6)).length === 3, {
      timeoutMs: 30_000,
      message: 'all three billing instances to serve',
    });
    const counts = await c.spread('/dc2/billing/x?q=1', 300);
    console.log('300 requests to /dc2/billing/x:', counts);
    expect(counts).toEqual({ 'billing-1': 100, 'billing-2': 100, 'billing-3': 100 });
    const one = await c.get('/dc2/billing/x?q=1');
    expect(JSON.parse(one.body)).toMatchObject({ path: '/x', query: { q: '1' } });

    const wrongDc = await c.get('/dc1/billing/x');
    expect(wrongDc.status).toBe(404);
    expect(JSON.parse(wrongDc.body)).toMatchObject({ error: 'EDGEGATE_CATALOG_UNKNOWN_SERVICE' });
    const unknownDc = await c.get('/dc9/billing/x');
    expect(unknownDc.status).toBe(404);
    expect(JSON.parse(unknownDc.body)).toMatchObject({ error: 'EDGEGATE_CATALOG_UNKNOWN_DATACENTER' });
    const sources = await gw!.admin<SourceStats>('/debug/sources');
    expect(sources.consul).toMatchObject({ up: 1, synced: true, dataAgeSeconds: 0 });
  });

  it('a failed check takes an instance out, a passing one brings it back (delay measured over 40 changes)', async () => {
    const { dc2 } = pair!;
    const c = gw!.client;
    const failDelays: number[] = [];
    const passDelays: number[] = [];
    let requests = 0;
    for (let round = 0; round < 20; round++) {
      // fail: the new table is served from the request after the last one billing-1 answered
      let t0 = performance.now();
      await ttl(dc2, 'billing-1', 'fail');
      let lastX = t0;
      let clean = 0;
      const deadline = performance.now() + 10_000;
      while (clean < 12 && performance.now() < deadline) {
        const a = await c.get('/dc2/billing/x');
        requests++;
        expect(a.status).toBe(200);
        if (a.name === 'billing-1') {
          lastX = a.at;
          clean = 0;
        } else clean++;
      }
      expect(clean).toBe(12);
      failDelays.push(lastX - t0);
      // pass: the first answer from billing-1 is served by the new table
      t0 = performance.now();
      await ttl(dc2, 'billing-1', 'pass');
      const back = await waitFor(
        async () => {
          const a = await c.get('/dc2/billing/x');
          requests++;
          return a.name === 'billing-1' ? a : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 0, message: 'billing-1 back in rotation' },
      );
      passDelays.push(back.at - t0);
    }
    const all = [...failDelays, ...passDelays].sort((a, b) => a - b);
    const f = (xs: number[]) => {
      const s = [...xs].sort((a, b) => a - b);
      return `p50 ${percentile(s, 50).toFixed(1)} ms, p99 ${percentile(s, 99).toFixed(1)} ms, max ${s.at(-1)!.toFixed(1)} ms`;
    };
    console.log(
      `Consul change → first request served by the new table (hold-off 50 ms, max 250 ms; ${requests} requests):\n` +
        `  check fails (n=${failDelays.length}): ${f(failDelays)}\n` +
        `  check passes (n=${passDelays.length}): ${f(passDelays)}\n` +
        `  all (n=${all.length}): ${f(all)}`,
    );
    // generous correctness bound, not a performance assertion
    expect(percentile(all, 50)).toBeLessThan(2000);
    // Every change woke the billing health watch: its blocking queries are in the histogram, mostly short ones.
    const text = await (await fetch(`http://127.0.0.1:${gw!.adminPort}/metrics`)).text();
    const sample = (name: string) =>
      Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    const count = sample('edgegate_consul_blocking_query_seconds_count');
    expect(count).toBeGreaterThanOrEqual(all.length);
    // Watches: billing, ledger and shop health + the service lists of dc1 and dc2; none left out by the cap.
    expect(sample('edgegate_consul_watches')).toBeGreaterThanOrEqual(3);
    expect(sample('edgegate_consul_watch_limit')).toBeGreaterThan(0);
    expect(sample('edgegate_consul_watches_over_limit')).toBe(0);
    expect(sample('edgegate_consul_blocking_query_seconds_bucket\\{le="1"\\}')).toBeGreaterThanOrEqual(
      all.length,
    );
  });

  it('the HTTP check on the echo decides too: 500 is critical, 429 is warning (not served), 200 brings it back', async () => {
    const { dc2 } = pair!;
    const c = gw!.client;
    const b3 = billing[2]!;
    await setHttpCheck(dc2, 'billing-3', b3.port, 500);
    await waitFor(async () => (await healthOf(dc2, 'dc2', 'billing', 'billing-3')) === 'critical', {
      timeoutMs: 15_000,
    });
    await waitFor(async () => !(await c.spread('/dc2/billing/x', 6))['billing-3'], { timeoutMs: 5000 });
    expect(await c.spread('/dc2/billing/x', 60)).toEqual({ 'billing-1': 30, 'billing-2': 30 });
    await setHttpCheck(dc2, 'billing-3', b3.port, 429);
    await waitFor(async () => (await healthOf(dc2, 'dc2', 'billing', 'billing-3')) === 'warning', {
      timeoutMs: 15_000,
    });
    expect((await c.spread('/dc2/billing/x', 60))['billing-3']).toBeUndefined();
    await setHttpCheck(dc2, 'billing-3', b3.port, 200);
    await waitFor(async () => (await c.spread('/dc2/billing/x', 6))['billing-3'], { timeoutMs: 15_000 });
  });

  it('deregistering an instance removes it; maintenance mode counts as critical', async () => {
    const { dc2 } = pair!;
    const c = gw!.client;
    await deregister(dc2, 'billing-2');
    await waitFor(async () => !(await c.spread('/dc2/billing/x', 6))['billing-2'], { timeoutMs: 5000 });
    expect(await c.spread('/dc2/billing/x', 40)).toEqual({ 'billing-1': 20, 'billing-3': 20 });
    await dc2.json('/v1/agent/service/maintenance/billing-3?enable=true&reason=e2e', { method: 'PUT' });
    await waitFor(async () => !(await c.spread('/dc2/billing/x', 6))['billing-3'], { timeoutMs: 5000 });
    await dc2.json('/v1/agent/service/maintenance/billing-3?enable=false', { method: 'PUT' });
    await waitFor(async () => (await c.spread('/dc2/billing/x', 6))['billing-3'], { timeoutMs: 5000 });
  });

  it('a service without the required tag is not exposed; adding the tag exposes it without a restart', async () => {
    const { dc2 } = pair!;
    const c = gw!.client;
    const e = await echo('ledger-1');
    await register(dc2, {
      id: 'ledger-1',
      service: 'ledger',
      tags: ['internal'],
      port: e.port,
      ttl: 'passing',
    });
    await waitFor(async () => (await healthOf(dc2, 'dc2', 'ledger', 'ledger-1')) === 'passing', {
      timeoutMs: 5000,
    });
    const hidden = await c.get('/dc2/ledger/');
    expect(hidden.status).toBe(404);
    expect(hidden.name).toBe('EDGEGATE_CATALOG_UNKNOWN_SERVICE');
    await register(dc2, {
      id: 'ledger-1',
      service: 'ledger',
      tags: ['internal', 'edge'],
      port: e.port,
      ttl: 'passing',
    });
    const shown = await waitFor(
      async () => {
        const a = await c.get('/dc2/ledger/');
        return a.status === 200 ? a : undefined;
      },
      { timeoutMs: 5000, message: 'ledger exposed' },
    );
    expect(shown.name).toBe('ledger-1');
    // exposed but no healthy instance: 503, not 404
    await ttl(dc2, 'ledger-1', 'fail');
    const down = await waitFor(
      async () => {
        const a = await c.get('/dc2/ledger/');
        return a.status === 503 ? a : undefined;
      },
      { timeoutMs: 5000, message: 'ledger 503' },
    );
    expect(down.name).toBe('EDGEGATE_NO_HEALTHY_UPSTREAM');
  });

  it('a canary split by tags (95 v1 / 5 v2) lands within ±3 points over 2,000 requests', async () => {
    const { dc2 } = pair!;
    const c = gw!.client;
    for (const [id, tags] of [
      ['shop-v1-a', ['v1']],
      ['shop-v1-b', ['v1']],
      ['shop-v2-a', ['v2']],
    ] as const) {
      const e = await echo(id);
      await register(dc2, { id, service: 'shop', tags: [...tags], port: e.port, ttl: 'passing' });
    }
    await waitFor(async () => Object.keys(await c.spread('/', 60, 'canary.test')).length === 3, {
      timeoutMs: 10_000,
      message: 'all shop instances to serve',
    });
    const counts = await c.spread('/', 2000, 'canary.test');
    const v2 = ((counts['shop-v2-a'] ?? 0) / 2000) * 100;
    const v1 = (((counts['shop-v1-a'] ?? 0) + (counts['shop-v1-b'] ?? 0)) / 2000) * 100;
    console.log(
      `canary over 2000 requests: v1 ${v1.toFixed(2)} % (want 95), v2 ${v2.toFixed(2)} % (want 5)`,
      counts,
    );
    expect(Math.abs(v1 - 95)).toBeLessThanOrEqual(3);
    expect(Math.abs(v2 - 5)).toBeLessThanOrEqual(3);
    expect(v1 + v2).toBe(100);
  });

  it('killing the dc1 agent keeps traffic flowing from the last state (up 0); restarting resumes the watches', async () => {
    const { dc1 } = pair!;
    const c = gw!.client;
    await dc1.kill();
    const down = await waitFor(
      async () => {
        const s = await gw!.admin<SourceStats>('/debug/sources');
        return s.consul.up === 0 ? s : undefined;
      },
      { timeoutMs: 30_000, message: 'consul up to drop to 0' },
    );
    console.log('after killing dc1:', JSON.stringify(down.consul));
    expect(await c.spread('/dc2/billing/x', 40)).toEqual({ 'billing-1': 20, 'billing-3': 20 });
    expect((await c.get('/', 'canary.test')).status).toBe(200);
    await waitFor(async () => (await gw!.admin<SourceStats>('/debug/sources')).consul.dataAgeSeconds >= 1, {
      timeoutMs: 10_000,
      message: 'the data age to grow',
    });

    await dc1.start();
    await pair!.waitForWan();
    await waitFor(async () => (await gw!.admin<SourceStats>('/debug/sources')).consul.up === 1, {
      timeoutMs: 30_000,
      message: 'consul up back to 1',
    });
    const e = await echo('fresh-1');
    await register(dc1, { id: 'fresh-1', service: 'fresh', tags: ['edge'], port: e.port, ttl: 'passing' });
    const a = await waitFor(
      async () => {
        const r = await c.get('/dc1/fresh/hello');
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 15_000, message: 'a service registered after the restart to be served' },
    );
    expect(a.name).toBe('fresh-1');
    expect((await gw!.admin<SourceStats>('/debug/sources')).consul).toMatchObject({
      up: 1,
      dataAgeSeconds: 0,
    });
  });

  it('restarted while Consul is down, edgegate serves the last-known-good table at once', async () => {
    const { dc1 } = pair!;
    await gw!.stop();
    await dc1.kill();
    const t0 = performance.now();
    gw = await startGateway({ routesDir, stateDir, consulAddr: pair!.dc1.httpAddr });
    // A proxy worker listens only once it holds a table (here: the last-known-good one), so the very first
    // request on an accepting port is served.
    await waitFor(() => canConnect(gw!.port), { timeoutMs: 30_000, message: 'the proxy port to accept' });
    const first = await gw.client.get('/dc2/billing/x');
    console.log(
      `restart with Consul down: first request served ${Math.round(first.at - t0)} ms after the process started`,
    );
    expect(first.status).toBe(200);
    expect(['billing-1', 'billing-3']).toContain(first.name);
    expect(await gw.client.spread('/dc2/billing/x', 20)).toEqual({ 'billing-1': 10, 'billing-3': 10 });
    const s = await gw.admin<SourceStats>('/debug/sources');
    expect(s.consul).toMatchObject({ up: 0, synced: false });
    await dc1.start();
    await pair!.waitForWan();
    await waitFor(async () => (await gw!.admin<SourceStats>('/debug/sources')).consul.synced, {
      timeoutMs: 30_000,
      message: 'the source to sync once dc1 is back',
    });
  });
});

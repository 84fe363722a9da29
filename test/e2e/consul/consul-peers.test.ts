/**
 * Consul cluster peering against two real, separate Consul clusters (`east` and `west`: two standalone dev-mode
 * datacenters, NOT joined over WAN) peered with `/v1/peering/token` + `/v1/peering/establish`; `west` exports
 * `billing` to `east` with an `exported-services` config entry. edgegate talks to the east agent only and serves
 * west's instances through a backend's `peer` and through a catalog route's `peers` (`/peer/{peer}/{service}/…`).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConsulAgent, startConsulAgent } from '../../support/consul.ts';
import { consulLogs, printLogsOnFailure } from '../../support/logs.ts';
import { scrapeMetrics, sumOf } from '../../support/prom-text.ts';
import { waitFor } from '../../support/wait.ts';
import {
  type Echo,
  type Gateway,
  register,
  startEcho,
  startGateway,
  stopEcho,
  ttl,
  writeRoutes,
} from './helpers.ts';

const ROUTES = {
  'peer.yaml': `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: peer-billing, namespace: edge }
spec:
  hostnames: [peer.test]
  rules:
    - backends:
        - consul: { service: billing, peer: west }
`,
  'catalog.yaml': `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: edge-catalog, namespace: edge }
spec:
  hostnames: [catalog.test]
  catalog: { pathPrefix: /, requiredTags: [edge], peers: [west] }
`,
};

let east: ConsulAgent | undefined;
let west: ConsulAgent | undefined;
let gw: Gateway | undefined;
const echoes: Echo[] = [];
const routesDir = mkdtempSync(join(tmpdir(), 'edgegate-peer-routes-'));
const stateDir = mkdtempSync(join(tmpdir(), 'edgegate-peer-state-'));

printLogsOnFailure(() => [
  ...consulLogs(east, west),
  ...(gw ? [{ name: 'edgegate', logPath: gw.proc.logPath }] : []),
]);

async function peeringState(agent: ConsulAgent, peer: string): Promise<string> {
  const res = await agent.fetch(`/v1/peering/${peer}`);
  if (!res.ok) return `HTTP ${res.status}`;
  return ((await res.json()) as { State: string }).State;
}

beforeAll(async () => {
  writeRoutes(routesDir, ROUTES);
  [east, west] = await Promise.all([
    startConsulAgent({ datacenter: 'east' }),
    startConsulAgent({ datacenter: 'west' }),
  ]);
  // Not WAN-federated: each cluster knows only itself.
  expect(await east.datacenters()).toEqual(['east']);
  expect(await west.datacenters()).toEqual(['west']);
  const { PeeringToken } = await east.json<{ PeeringToken: string }>('/v1/peering/token', {
    method: 'POST',
    body: JSON.stringify({ PeerName: 'west' }),
  });
  await west.json('/v1/peering/establish', {
    method: 'POST',
    body: JSON.stringify({ PeerName: 'east', PeeringToken }),
  });
  await waitFor(
    async () =>
      (await peeringState(east!, 'west')) === 'ACTIVE' && (await peeringState(west!, 'east')) === 'ACTIVE',
    { timeoutMs: 60_000, message: 'the east–west peering to become ACTIVE' },
  );
  for (const i of [1, 2]) {
    const e = await startEcho(`billing-${i}`);
    echoes.push(e);
    await register(west, {
      id: `billing-${i}`,
      service: 'billing',
      tags: ['edge'],
      port: e.port,
      ttl: 'passing',
    });
  }
  await west.json('/v1/config', {
    method: 'PUT',
    body: JSON.stringify({
      Kind: 'exported-services',
      Name: 'default',
      Services: [{ Name: 'billing', Consumers: [{ Peer: 'east' }] }],
    }),
  });
  gw = await startGateway({ routesDir, stateDir, consulAddr: east.httpAddr });
}, 180_000);

afterAll(async () => {
  await gw?.stop();
  for (const e of echoes) await stopEcho(e);
  await Promise.all([east?.stop(), west?.stop()]);
});

describe('Consul cluster peering (two separate clusters, east imports billing from west)', () => {
  it('serves a peered service through a backend peer and the catalog route /peer/{peer}/{service}/…', async () => {
    const c = gw!.client;
    await waitFor(async () => Object.keys(await c.spread('/x', 4, 'peer.test')).length === 2, {
      timeoutMs: 60_000,
      message: 'both west billing instances to serve through peer.test',
    });
    expect(await c.spread('/x', 20, 'peer.test')).toEqual({ 'billing-1': 10, 'billing-2': 10 });
    const viaCatalog = await c.spread('/peer/west/billing/v1/invoices?limit=2', 20);
    expect(viaCatalog).toEqual({ 'billing-1': 10, 'billing-2': 10 });
    const one = await c.get('/peer/west/billing/v1/invoices?limit=2');
    expect(JSON.parse(one.body)).toMatchObject({ path: '/v1/invoices', query: { limit: '2' } });

    // Neighbours: unknown service of the peer, unknown peer, missing segments, the service in the local cluster.
    const cases: [string, number, string][] = [
      ['/peer/west/ledger/x', 404, 'EDGEGATE_CATALOG_UNKNOWN_SERVICE'],
      ['/peer/north/billing/x', 404, 'EDGEGATE_CATALOG_UNKNOWN_DATACENTER'],
      ['/peer/west', 404, 'EDGEGATE_NO_ROUTE'],
      ['/peer/west/', 404, 'EDGEGATE_NO_ROUTE'],
      ['/east/billing/x', 404, 'EDGEGATE_CATALOG_UNKNOWN_SERVICE'],
    ];
    for (const [path, status, code] of cases) {
      const a = await c.get(path);
      expect([path, a.status, a.name]).toEqual([path, status, code]);
    }
    const routes = await gw!.admin<unknown>('/debug/routes');
    expect(JSON.stringify(routes)).toContain('"peer:west":2');
  });

  it('every peered instance failing → 503 on both routes; status and metrics name the peer; passing → served', async () => {
    const c = gw!.client;
    for (const i of [1, 2]) await ttl(west!, `billing-${i}`, 'fail');
    await waitFor(
      async () =>
        (await c.get('/x', 'peer.test')).status === 503 &&
        (await c.get('/peer/west/billing/x')).status === 503,
      { timeoutMs: 60_000, message: 'both routes to answer 503 once the west instances fail' },
    );
    expect((await c.get('/x', 'peer.test')).name).toBe('EDGEGATE_NO_HEALTHY_UPSTREAM');
    const routes = await gw!.admin<unknown>('/debug/routes');
    expect(JSON.stringify(routes)).toContain('"peer:west":0');
    const m = await scrapeMetrics(`http://127.0.0.1:${gw!.adminPort}`);
    expect(
      sumOf(m, 'edgegate_requests_total', {
        service: 'billing',
        datacenter: 'peer:west',
        code: 'EDGEGATE_NO_HEALTHY_UPSTREAM',
      }),
    ).toBeGreaterThanOrEqual(2);
    expect(
      sumOf(m, 'edgegate_requests_total', { service: 'billing', datacenter: 'peer:west', code: '2xx' }),
    ).toBeGreaterThan(0);

    await ttl(west!, 'billing-2', 'pass');
    await waitFor(async () => (await c.get('/x', 'peer.test')).name === 'billing-2', {
      timeoutMs: 60_000,
      message: 'billing-2 to serve again',
    });
    expect(await c.spread('/peer/west/billing/x', 4)).toEqual({ 'billing-2': 4 });
  });
});

/**
 * Freshness you can see, against the two real Consul datacenters and edgegate as a real process talking to the dc1
 * agent: the dc2 agent (dc2's only server) is stopped → routes using dc2 show ServingStale (SourceDown, since when,
 * the age growing in /debug/routes and /metrics) while dc1-only routes stay current and the last dc2 data keeps
 * serving; dc2 back → current again. Then cold starts from an old last-known-good file with Consul unreachable:
 * refused (not ready, said in the readiness notes, the log and the metric) or served as stale, as configured.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConsulPair, startConsulPair } from '../../support/consul.ts';
import { consulLogs, printLogsOnFailure } from '../../support/logs.ts';
import { freePorts } from '../../support/ports.ts';
import { parsePromText } from '../../support/prom-text.ts';
import { waitFor } from '../../support/wait.ts';
import {
  type Echo,
  type Gateway,
  register,
  startEcho,
  startGateway,
  stopEcho,
  writeRoutes,
} from './helpers.ts';

const ROUTES = {
  'pay.yaml': `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: pay, namespace: edge }
spec:
  hostnames: [pay.test]
  rules:
    - backends:
        - consul: { service: pay, datacenter: dc1, failover: { datacenters: [dc2] } }
`,
  'local.yaml': `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: local, namespace: edge }
spec:
  hostnames: [local.test]
  rules:
    - backends:
        - consul: { service: pay, datacenter: dc1 }
`,
};

let pair: ConsulPair | undefined;
let gw: Gateway | undefined;
const others: Gateway[] = [];
const echoes: Echo[] = [];
const routesDir = mkdtempSync(join(tmpdir(), 'edgegate-fresh-routes-'));
const stateDir = mkdtempSync(join(tmpdir(), 'edgegate-fresh-state-'));

printLogsOnFailure(() => [
  ...consulLogs(pair?.dc1, pair?.dc2),
  ...[gw, ...others]
    .filter((g) => g !== undefined)
    .map((g) => ({ name: 'edgegate', logPath: g.proc.logPath })),
]);

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}
interface RouteView {
  route: string;
  datacenters?: Record<string, { indexAgeSeconds: number; stale: boolean; reason?: string }>;
  status: { conditions: Condition[]; backends: { staleSince?: Record<string, string> }[] };
}

async function routeView(g: Gateway, route: string): Promise<RouteView> {
  const v = await g.admin<{ statuses: RouteView[] }>('/debug/routes');
  const r = v.statuses.find((s) => s.route === route);
  if (!r) throw new Error(`route ${route} not in /debug/routes`);
  return r;
}

const servingStale = (r: RouteView) => r.status.conditions.find((c) => c.type === 'ServingStale');

async function metric(
  g: Gateway,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${g.adminPort}/metrics`)).text();
  return parsePromText(text).samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;
}

beforeAll(async () => {
  writeRoutes(routesDir, ROUTES);
  pair = await startConsulPair();
  gw = await startGateway({ routesDir, stateDir, consulAddr: pair.dc1.httpAddr });
}, 120_000);

afterAll(async () => {
  for (const g of others) await g.stop();
  await gw?.stop();
  for (const e of echoes) await stopEcho(e);
  await pair?.stop();
});

describe('freshness of the Consul data', () => {
  it('a datacenter whose servers are down: ServingStale with the age on the routes using it; back: current', async () => {
    const { dc1, dc2 } = pair!;
    for (const [agent, name] of [
      [dc1, 'pay-dc1'],
      [dc2, 'pay-dc2'],
    ] as const) {
      const e = await startEcho(name);
      echoes.push(e);
      await register(agent, { id: name, service: 'pay', tags: [], port: e.port, ttl: 'passing' });
    }
    const g = gw!;
    await waitFor(async () => (await g.client.get('/x', 'pay.test')).name === 'pay-dc1', {
      timeoutMs: 30_000,
      message: 'pay to be served',
    });
    let seen: RouteView | undefined;
    await waitFor(
      async () => {
        seen = await routeView(g, 'edge/pay');
        return servingStale(seen)?.status === 'False';
      },
      {
        timeoutMs: 10_000,
        message: 'ServingStale=False while every datacenter answers',
        diagnostics: () =>
          JSON.stringify({ conditions: seen?.status.conditions, datacenters: seen?.datacenters }),
      },
    );
    expect(servingStale(await routeView(g, 'edge/pay'))).toMatchObject({ reason: 'Current' });
    // X-Consul-KnownLeader as the last answer said it (the first answers after the servers start may say false).
    expect([0, 1]).toContain(await metric(g, 'edgegate_consul_known_leader', { datacenter: 'dc2' }));
    expect(await metric(g, 'edgegate_consul_stale', { datacenter: 'dc2' })).toBe(0);
    expect(
      await metric(g, 'edgegate_consul_last_contact_seconds', { datacenter: 'dc1' }),
    ).toBeGreaterThanOrEqual(0);

    await dc2.stop();
    await waitFor(async () => servingStale(await routeView(g, 'edge/pay'))?.status === 'True', {
      timeoutMs: 30_000,
      message: 'ServingStale=True on the route using dc2',
    });
    const stale = await routeView(g, 'edge/pay');
    expect(servingStale(stale)).toMatchObject({ reason: 'SourceDown' });
    expect(servingStale(stale)!.message).toContain('datacenter dc2: Consul does not answer for it, since ');
    expect(Object.keys(stale.status.backends[0]!.staleSince ?? {})).toEqual(['dc2']);
    expect(stale.datacenters!.dc2).toMatchObject({ stale: true, reason: 'SourceDown' });
    expect(stale.datacenters!.dc1).toMatchObject({ stale: false });
    // A route that uses dc1 only stays current.
    expect(servingStale(await routeView(g, 'edge/local'))).toMatchObject({ status: 'False' });
    // The age grows, in /debug/routes and in the metric; the gauge says stale.
    const age1 = (await metric(g, 'edgegate_consul_index_age_seconds', { datacenter: 'dc2' }))!;
    await waitFor(
      async () => (await metric(g, 'edgegate_consul_index_age_seconds', { datacenter: 'dc2' }))! > age1 + 1,
      { timeoutMs: 10_000, message: 'the dc2 index age to grow' },
    );
    expect((await routeView(g, 'edge/pay')).datacenters!.dc2!.indexAgeSeconds).toBeGreaterThan(1);
    expect(await metric(g, 'edgegate_consul_stale', { datacenter: 'dc2' })).toBe(1);
    expect(await metric(g, 'edgegate_consul_stale', { datacenter: 'dc1' })).toBe(0);
    // Serving goes on from dc1.
    expect((await g.client.get('/x', 'pay.test')).name).toBe('pay-dc1');

    await dc2.start();
    await pair!.waitForWan();
    await waitFor(async () => servingStale(await routeView(g, 'edge/pay'))?.status === 'False', {
      timeoutMs: 60_000,
      message: 'ServingStale=False once dc2 answers again',
    });
    expect(await metric(g, 'edgegate_consul_stale', { datacenter: 'dc2' })).toBe(0);
  }, 150_000);

  it('a cold start from an old last-known-good table with Consul unreachable: refused, or served as stale', async () => {
    await gw!.stop();
    gw = undefined;
    const file = join(stateDir, 'table.json');
    const text = readFileSync(file, 'utf8');
    const nl = text.indexOf('\n');
    const header = JSON.parse(text.slice(0, nl)) as { savedAt: string };
    header.savedAt = new Date(Date.now() - 2 * 86_400_000).toISOString();
    writeFileSync(file, `${JSON.stringify(header)}\n${text.slice(nl + 1)}`);
    const [deadPort] = await freePorts(1);
    const start = (whenStale: string) =>
      startGateway({
        routesDir,
        stateDir,
        consulAddr: `127.0.0.1:${deadPort}`,
        env: { EDGEGATE_LAST_KNOWN_GOOD_MAX_AGE: '1h', EDGEGATE_LAST_KNOWN_GOOD_WHEN_STALE: whenStale },
      });

    const refusing = await start('refuse');
    others.push(refusing);
    const ready = await fetch(`http://127.0.0.1:${refusing.adminPort}/readyz`);
    const body = (await ready.json()) as { ready: boolean; notes: string[] };
    expect(ready.status).toBe(503);
    expect(body.notes.join('\n')).toMatch(/last-known-good table is 17\d{4} s old .* not served/);
    expect(await metric(refusing, 'edgegate_last_known_good_stale', { action: 'refused' })).toBe(1);
    expect(await metric(refusing, 'edgegate_last_known_good_age_seconds')).toBeGreaterThan(172_000);
    expect(readFileSync(refusing.proc.logPath, 'utf8')).toContain('--last-known-good-when-stale refuse');
    // Nothing is served: the proxy port is not even open before a worker holds a table.
    const answer = await refusing.client.get('/x', 'pay.test').catch((err: Error) => err);
    expect(answer instanceof Error || answer.status !== 200).toBe(true);
    await refusing.stop();
    others.splice(others.indexOf(refusing), 1);

    const serving = await start('serve');
    others.push(serving);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${serving.adminPort}/readyz`)).status === 200, {
      timeoutMs: 30_000,
      message: 'the stale last-known-good table to be served',
    });
    const r = (await (await fetch(`http://127.0.0.1:${serving.adminPort}/readyz`)).json()) as {
      notes: string[];
    };
    expect(r.notes.join('\n')).toContain('STALE');
    expect((await serving.client.get('/x', 'pay.test')).name).toBe('pay-dc1');
    expect(await metric(serving, 'edgegate_last_known_good_stale', { action: 'served' })).toBe(1);
    const sources = await serving.admin<{ lastKnownGood: { stale: boolean; refused: boolean } }>(
      '/debug/sources',
    );
    expect(sources.lastKnownGood).toMatchObject({ stale: true, refused: false });
    expect(readFileSync(serving.proc.logPath, 'utf8')).toContain('serving it as stale');
  }, 120_000);
});

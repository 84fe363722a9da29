/**
 * Cross-datacenter failover against the two real Consul datacenters (dc1 + dc2, WAN-joined) and edgegate as a real
 * process (primary + workers) talking to the dc1 agent. Instances are `edgegate echo` servers on loopback with a TTL
 * check the test passes or fails through the agent API. Under a bounded load (4 concurrent keep-alive loops on
 * loopback): every dc1 instance killed in Consul (one deregistered, one failing its check) → served from dc2 with
 * no failed request, status and metric say dc2; restored → back to dc1. Then: instances healthy in Consul but
 * all failing → outlier ejection → dc2; and no fallback with an instance → 503 as without failover.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ConsulPair, startConsulPair } from '../../support/consul.ts';
import { consulLogs, printLogsOnFailure } from '../../support/logs.ts';
import { parsePromText } from '../../support/prom-text.ts';
import { promtoolCheckMetrics } from '../../support/promtool.ts';
import { waitFor } from '../../support/wait.ts';
import {
  type Answer,
  deregister,
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
  'pay.yaml': `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: pay, namespace: edge }
spec:
  hostnames: [pay.test]
  rules:
    - backends:
        - consul: { service: pay, datacenter: dc1, failover: { datacenters: [dc3, dc2] } }
`,
  'flaky.yaml': `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: flaky, namespace: edge }
spec:
  hostnames: [flaky.test]
  rules:
    - backends:
        - consul: { service: flaky, datacenter: dc1, failover: { datacenters: [dc2] } }
`,
  'lonely.yaml': `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: lonely, namespace: edge }
spec:
  hostnames: [lonely.test]
  rules:
    - backends:
        - consul: { service: lonely, datacenter: dc1, failover: { datacenters: [dc2] } }
`,
  'catalog.yaml': `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: catalog, namespace: edge }
spec:
  hostnames: [catalog.test]
  catalog: { requiredTags: [edge], datacenters: [dc1], failover: { datacenters: [dc2] } }
`,
};

let pair: ConsulPair | undefined;
let gw: Gateway | undefined;
const echoes: Echo[] = [];
const routesDir = mkdtempSync(join(tmpdir(), 'edgegate-failover-routes-'));
const stateDir = mkdtempSync(join(tmpdir(), 'edgegate-failover-state-'));

printLogsOnFailure(() => [
  ...consulLogs(pair?.dc1, pair?.dc2),
  ...(gw ? [{ name: 'edgegate', logPath: gw.proc.logPath }] : []),
]);

async function echo(name: string): Promise<Echo> {
  const e = await startEcho(name);
  echoes.push(e);
  return e;
}

interface RouteView {
  route: string;
  backends: { ref: string; healthy: Record<string, number>; serving?: string; servingSince?: string }[];
  status: {
    backends: { ref: string; servingDatacenter?: string; servingSince?: string }[];
  };
}

async function routeView(route: string): Promise<RouteView> {
  const v = await gw!.admin<{ statuses: RouteView[] }>('/debug/routes');
  const r = v.statuses.find((s) => s.route === route);
  if (!r) throw new Error(`route ${route} not in /debug/routes`);
  return r;
}

async function metrics() {
  const res = await fetch(`http://127.0.0.1:${gw!.adminPort}/metrics`);
  return parsePromText(await res.text()).samples;
}

async function servingShare(route: string, backend: string, datacenter: string): Promise<number> {
  const s = (await metrics()).find(
    (m) =>
      m.name === 'edgegate_backend_serving_datacenter' &&
      m.labels.route === route &&
      m.labels.backend === backend &&
      m.labels.datacenter === datacenter,
  );
  return s?.value ?? 0;
}

/**
 * A bounded load: `concurrency` loops of sequential requests until stopped (at most 60 s and 30,000 requests
 * whatever happens; a failed test's load is stopped in afterEach), every answer recorded.
 */
function load(host: string, concurrency: number) {
  const answers: Answer[] = [];
  let stopped = false;
  const deadline = performance.now() + 60_000;
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stopped && performance.now() < deadline && answers.length < 30_000) {
      try {
        answers.push(await gw!.client.get('/x', host));
      } catch (err) {
        answers.push({ status: 0, name: String(err), body: '', at: performance.now() });
      }
    }
  });
  const run = {
    answers,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
  running = run;
  return run;
}

let running: { stop(): Promise<void> } | undefined;

afterEach(async () => {
  await running?.stop();
  running = undefined;
});

beforeAll(async () => {
  writeRoutes(routesDir, ROUTES);
  pair = await startConsulPair();
  gw = await startGateway({
    routesDir,
    stateDir,
    consulAddr: pair.dc1.httpAddr,
    // Ejection-driven failover within the test's time: 3 failures eject, for 2 s.
    env: { EDGEGATE_OUTLIER_CONSECUTIVE_FAILURES: '3', EDGEGATE_OUTLIER_BASE_EJECTION: '2s' },
  });
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  for (const e of echoes) await stopEcho(e);
  await pair?.stop();
});

describe('failover across datacenters (dc1 → dc2)', () => {
  it('kill every dc1 instance under load: served from dc2 with no failed request; restore: back to dc1', async () => {
    const { dc1, dc2 } = pair!;
    for (const [agent, name] of [
      [dc1, 'pay-dc1-a'],
      [dc1, 'pay-dc1-b'],
      [dc2, 'pay-dc2-a'],
    ] as const) {
      const e = await echo(name);
      await register(agent, { id: name, service: 'pay', tags: ['edge'], port: e.port, ttl: 'passing' });
    }
    const c = gw!.client;
    await waitFor(async () => (await c.get('/x', 'pay.test')).name.startsWith('pay-dc1'), {
      timeoutMs: 30_000,
      message: 'pay to be served from dc1',
    });
    await waitFor(async () => (await routeView('edge/pay')).backends[0]?.healthy.dc2 === 1, {
      timeoutMs: 30_000,
      message: 'the dc2 instance to be known (the fallback datacenter is watched)',
    });
    let view = await routeView('edge/pay');
    expect(view.backends[0]).toMatchObject({
      ref: 'consul:pay@dc1',
      healthy: { dc1: 2, dc2: 1, dc3: 0 },
      serving: 'dc1',
    });
    expect(await servingShare('edge/pay', 'consul:pay@dc1', 'dc1')).toBe(1);

    const CONCURRENCY = 4;
    const run = load('pay.test', CONCURRENCY);
    await waitFor(() => run.answers.length > 50, { timeoutMs: 10_000, message: 'load to run' });
    // Kill: one instance leaves the catalog, the other fails its check (the echo servers stay up, so a request
    // already sent to them completes).
    const killedAt = performance.now();
    await deregister(dc1, 'pay-dc1-a');
    await ttl(dc1, 'pay-dc1-b', 'fail');
    await waitFor(() => run.answers.some((a) => a.at > killedAt && a.name === 'pay-dc2-a'), {
      timeoutMs: 15_000,
      message: 'requests to reach dc2',
    });
    const switchedAt = performance.now();
    await waitFor(() => run.answers.filter((a) => a.at > switchedAt + 1000).length > 100, {
      timeoutMs: 20_000,
    });
    // Once dc2 serves, nothing goes to dc1 any more.
    const settled = run.answers.filter((a) => a.at > switchedAt + 1000);
    expect(settled.length).toBeGreaterThan(0);
    expect(settled.every((a) => a.name === 'pay-dc2-a')).toBe(true);

    view = await routeView('edge/pay');
    expect(view.backends[0]).toMatchObject({ healthy: { dc1: 0, dc2: 1 }, serving: 'dc2' });
    expect(view.status.backends[0]).toMatchObject({ servingDatacenter: 'dc2' });
    expect(Date.parse(view.status.backends[0]!.servingSince!)).toBeGreaterThan(Date.now() - 60_000);
    await waitFor(async () => (await servingShare('edge/pay', 'consul:pay@dc1', 'dc2')) === 1, {
      timeoutMs: 5000,
      message: 'the metric to say dc2',
    });
    // The catalog route fails over too (/dc1/pay/… from dc2).
    expect((await c.get('/dc1/pay/x', 'catalog.test')).name).toBe('pay-dc2-a');

    // Restore: back to dc1 as soon as it is healthy again.
    const restoredAt = performance.now();
    await register(dc1, {
      id: 'pay-dc1-a',
      service: 'pay',
      tags: ['edge'],
      port: echoes.find((e) => e.name === 'pay-dc1-a')!.port,
      ttl: 'passing',
    });
    await ttl(dc1, 'pay-dc1-b', 'pass');
    await waitFor(() => run.answers.some((a) => a.at > restoredAt && a.name.startsWith('pay-dc1')), {
      timeoutMs: 15_000,
      message: 'requests to come back to dc1',
    });
    const backAt = performance.now();
    await waitFor(() => run.answers.filter((a) => a.at > backAt + 1000).length > 100, { timeoutMs: 20_000 });
    await run.stop();
    expect(run.answers.filter((a) => a.at > backAt + 1000).every((a) => a.name.startsWith('pay-dc1'))).toBe(
      true,
    );

    const failed = run.answers.filter((a) => a.status !== 200);
    console.log(
      `failover under load: ${run.answers.length} requests (${CONCURRENCY} concurrent), ${failed.length} failed; ` +
        `dc1→dc2 ${(switchedAt - killedAt).toFixed(0)} ms after the kill, dc2→dc1 ${(backAt - restoredAt).toFixed(0)} ms after the restore`,
    );
    // Killing in Consul leaves the in-flight requests to finish on dc1: none fails.
    expect(failed).toEqual([]);

    view = await routeView('edge/pay');
    expect(view.backends[0]).toMatchObject({ serving: 'dc1', healthy: { dc1: 2, dc2: 1 } });
    await waitFor(async () => (await servingShare('edge/pay', 'consul:pay@dc1', 'dc1')) === 1, {
      timeoutMs: 5000,
      message: 'the metric to say dc1 again',
    });
    const transitions = (await metrics()).filter(
      (m) => m.name === 'edgegate_backend_failover_transitions_total' && m.labels.route === 'edge/pay',
    );
    // The exposition with the failover and Consul freshness families filled passes promtool.
    const text = await (await fetch(`http://127.0.0.1:${gw!.adminPort}/metrics`)).text();
    expect(text).toContain('edgegate_consul_index_age_seconds{datacenter="dc2"}');
    const checked = promtoolCheckMetrics(text);
    expect(checked.output).toBe('');
    expect(checked.status).toBe(0);
    // Each worker moved to dc2 and back.
    expect(transitions.length).toBe(1);
    expect(transitions[0]!.value).toBeGreaterThanOrEqual(2);
    expect(transitions[0]!.value % 2).toBe(0);
  }, 120_000);

  it('instances healthy in Consul but all failing: outlier ejection sends the requests to dc2, then back', async () => {
    const { dc1, dc2 } = pair!;
    for (const [agent, name] of [
      [dc1, 'flaky-dc1-a'],
      [dc1, 'flaky-dc1-b'],
      [dc2, 'flaky-dc2-a'],
    ] as const) {
      const e = await echo(name);
      await register(agent, { id: name, service: 'flaky', tags: [], port: e.port, ttl: 'passing' });
    }
    const c = gw!.client;
    await waitFor(
      async () =>
        (await routeView('edge/flaky')).backends[0]?.healthy.dc2 === 1 &&
        (await c.get('/x', 'flaky.test')).name.startsWith('flaky-dc1'),
      { timeoutMs: 30_000, message: 'flaky to be served from dc1 with dc2 known' },
    );
    // The dc1 instances answer 500 (their Consul checks stay passing): 3 failures in a row eject each of them,
    // in every worker; with a fallback datacenter, all of them may be ejected (no 50 % cap).
    await waitFor(
      async () => {
        const names = new Set<string>();
        for (let i = 0; i < 12; i++) names.add((await c.get('/x?status=500', 'flaky.test')).name);
        return names.size === 1 && names.has('flaky-dc2-a');
      },
      { timeoutMs: 20_000, message: 'every request to go to dc2 once the dc1 instances are ejected' },
    );
    const share = await servingShare('edge/flaky', 'consul:flaky@dc1', 'dc2');
    expect(share).toBeGreaterThan(0);
    // Consul still says dc1 is healthy: the status's serving datacenter is the catalog's view.
    expect((await routeView('edge/flaky')).backends[0]).toMatchObject({
      healthy: { dc1: 2 },
      serving: 'dc1',
    });
    // The ejection ends (2 s): healthy answers from dc1 again.
    await waitFor(async () => (await c.get('/x', 'flaky.test')).name.startsWith('flaky-dc1'), {
      timeoutMs: 20_000,
      message: 'dc1 to serve again after the ejection',
    });
  }, 90_000);

  it('no fallback has an instance: 503 no healthy upstream, as without failover', async () => {
    const { dc1 } = pair!;
    const e = await echo('lonely-dc1');
    await register(dc1, { id: 'lonely-dc1', service: 'lonely', tags: [], port: e.port, ttl: 'passing' });
    const c = gw!.client;
    await waitFor(async () => (await c.get('/x', 'lonely.test')).name === 'lonely-dc1', {
      timeoutMs: 30_000,
      message: 'lonely to be served',
    });
    await ttl(dc1, 'lonely-dc1', 'fail');
    await waitFor(async () => (await c.get('/x', 'lonely.test')).status === 503, {
      timeoutMs: 15_000,
      message: 'lonely to answer 503',
    });
    const a = await c.get('/x', 'lonely.test');
    expect(a).toMatchObject({ status: 503, name: 'EDGEGATE_NO_HEALTHY_UPSTREAM' });
    expect((await routeView('edge/lonely')).backends[0]).toMatchObject({
      healthy: { dc1: 0 },
      serving: 'dc1',
    });
  }, 60_000);
});

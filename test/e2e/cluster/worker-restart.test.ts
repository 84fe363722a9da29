/**
 * SIGKILL of one worker under load: only that worker's in-flight requests may fail (at most one per client
 * connection it held), the primary replaces it, the replacement holds the CURRENT table before it listens, and
 * readiness comes back.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, expect, test } from 'vitest';
import {
  catalogYaml,
  type Echo,
  type Gateway,
  startEcho,
  startGateway,
  startLoad,
  tempDir,
  waitFor,
} from './helpers.ts';

const tmp = tempDir('edgegate-restart-');
const routesDir = join(tmp.dir, 'routes');
const catalogFile = join(tmp.dir, 'catalog', 'catalog.yaml');
const echoes: Echo[] = [];
let gw: Gateway | undefined;

function route(tag: string): string {
  return `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: svc, namespace: t }
spec:
  rules:
    - matches: [{ path: { type: PathPrefix, value: /svc } }]
      backends: [{ consul: { service: echo, datacenter: dc1 } }]
    - matches: [{ path: { type: Exact, value: /only-${tag} } }]
      backends: [{ consul: { service: echo, datacenter: dc1 } }]
`;
}

beforeAll(async () => {
  mkdirSync(routesDir, { recursive: true });
  mkdirSync(join(tmp.dir, 'catalog'), { recursive: true });
  for (let i = 1; i <= 2; i++) echoes.push(await startEcho(`e${i}`));
  writeFileSync(join(routesDir, 'svc.yaml'), route('first'));
  writeFileSync(catalogFile, catalogYaml(echoes));
  gw = await startGateway({ routes: routesDir, catalog: catalogFile, workers: 2 });
});

afterAll(async () => {
  await gw?.stop();
  await Promise.all(echoes.map((e) => e.stop()));
  tmp.remove();
});

test('a killed worker is replaced and the replacement serves the current table', async () => {
  const g = gw!;
  // A table version the replacement can only know from the primary's hand-off.
  const before = (await g.workers()).version;
  writeFileSync(join(routesDir, 'svc.yaml'), route('second'));
  const current = await g.waitForVersion(before);

  const CLIENTS = 6;
  const load = startLoad({
    origin: g.url(''),
    clients: CLIENTS,
    maxRequests: 20_000,
    paceMs: 10,
    // Some slow requests so the victim has requests in flight when it dies.
    paths: (n) => ({ path: `/svc/x${n % 3 === 0 ? '?delay=50' : ''}` }),
  });
  await waitFor('load to be running', () => load.result.ok > 200);

  const view = await g.workers();
  const victim = view.workers.find((w) => (w.stats?.inFlight ?? 0) > 0) ?? view.workers[0]!;
  const victimPid = victim.pid!;
  process.kill(victimPid, 'SIGKILL');

  const after = await waitFor('the replacement to listen with the current table', async () => {
    const w = await g.workers();
    const fresh = w.workers.find((x) => x.slot === victim.slot);
    return w.restarts === 1 &&
      fresh?.pid !== undefined &&
      fresh.pid !== victimPid &&
      fresh.state === 'listening' &&
      fresh.version === current
      ? w
      : undefined;
  });
  await waitFor('ready again', async () => (await g.readyz()).status === 200);
  const okAtRestart = load.result.ok;
  await waitFor('load to go on after the restart', () => load.result.ok > okAtRestart + 300);
  const result = await load.stop();

  // New connections (one per request) spread over both workers by the kernel; the replacement must answer the
  // route that exists only in the current version.
  const replacement = after.workers.find((x) => x.slot === victim.slot)!;
  const requestsBefore = replacement.stats?.requests ?? 0;
  const fresh = new Agent({ pipelining: 0 });
  const statuses: number[] = [];
  for (let i = 0; i < 60; i++) {
    const r = await request(g.url('/only-second'), { dispatcher: fresh, headers: { connection: 'close' } });
    await r.body.dump();
    statuses.push(r.statusCode);
  }
  await fresh.close();
  const served = (await g.workers()).workers.find((x) => x.pid === replacement.pid)?.stats?.requests ?? 0;

  console.log(
    `worker kill: ${result.ok} ok, ${result.failed.length} failed (${JSON.stringify(result.failed.map((f) => f.error))}); replacement pid ${replacement.pid} served ${served - requestsBefore} of 60 fresh-connection requests; restarts ${after.restarts}`,
  );
  // Each client holds one connection with at most one request in flight: at most CLIENTS can be lost.
  expect(result.failed.length).toBeLessThanOrEqual(CLIENTS);
  expect(statuses.every((s) => s === 200)).toBe(true);
  expect(served - requestsBefore).toBeGreaterThan(0);
  expect(g.output()).toMatch(/worker exited; restarting/);
});

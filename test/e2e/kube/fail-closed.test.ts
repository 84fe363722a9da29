/**
 * Security regression "a route that turns invalid falls open", against a real kube-apiserver: `kubectl apply` of an
 * update with a typo in one ipAllow CIDR (the API server accepts it: the CRD checks the characters, edgegate the
 * address) used to drop the route, and its paths went to the catch-all route without the allow list. Now the last
 * valid generation keeps serving and the status says so (Accepted=False for the new generation, naming the
 * generation served; Programmed=True for that one; status.servedGeneration), also after a restart of the gateway
 * (last-known-good), and a deleted route is gone.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/lib/log.ts';
import { type RunningGateway, runGateway } from '../../../src/run.ts';
import { createEchoServer } from '../../../src/tools/echo-server.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { sharedKube } from '../../support/shared.ts';
import { makeTempDir } from '../../support/tmp.ts';
import { waitFor } from '../../support/wait.ts';
import {
  apply,
  catalogFile,
  condition,
  ensureNamespace,
  get,
  getRoute,
  installCrd,
  rand,
  routeYaml,
} from './helpers.ts';

const kube = sharedKube();
printLogsOnFailure(() => kubeLogs(kube));
const ns = `eg-failclosed-${rand()}`;
const echo = createEchoServer({ name: 'backend' });
const stateDir = makeTempDir('eg-kube-fail-closed');
let catalog: string;
let gw: RunningGateway | undefined;

const backends = [{ consul: { service: 'echo', datacenter: 'dc1' } }];
/** Only 10.0.0.0/8 (and `extra`) may call /admin; the test calls from 127.0.0.1: 403 while the policy holds. */
const adminRoute = (extra: string) =>
  routeYaml(ns, 'admin', {
    hostnames: ['shop.example.com'],
    rules: [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/admin' } }],
        policies: { ipAllow: ['10.0.0.0/8', extra] },
        backends,
      },
    ],
  });

function start(): Promise<RunningGateway> {
  return runGateway({
    listen: '127.0.0.1:0',
    admin: '127.0.0.1:0',
    logLevel: 'warn',
    logger: createLogger(process.env.EDGEGATE_TEST_LOG_LEVEL ?? 'warn'),
    catalog,
    stateDir,
    policy: { overloadDelayMs: 0 },
    kube: {
      kubeconfig: kube.kubeconfigPath,
      namespaces: [ns],
      leaseNamespace: ns,
      identity: `fail-closed-${rand()}`,
      retryPeriodMs: 500,
      renewDeadlineMs: 3000,
      leaseDurationMs: 4000,
    },
  });
}

const admin = () => get(gw!.proxyAddress.port, 'shop.example.com', '/admin/users');

beforeAll(async () => {
  await installCrd(kube);
  await ensureNamespace(kube, ns);
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  catalog = catalogFile((echo.address() as AddressInfo).port);
  await apply(kube, routeYaml(ns, 'web', { hostnames: ['shop.example.com'], rules: [{ backends }] }));
  await apply(kube, adminRoute('192.168.0.0/16'));
  gw = await start();
  await waitFor(async () => (await admin()).status === 403, { timeoutMs: 20_000 });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  echo.close();
  await kube.kubectl(['delete', 'namespace', ns, '--wait=false'], { allowFailure: true });
});

/** Waits until the route's status describes the fall-back from `current` to `served`. */
async function waitForFallbackStatus(current: number, served: number) {
  return waitFor(
    async () => {
      const obj = await getRoute(kube, ns, 'admin');
      const accepted = condition(obj, 'Accepted');
      return obj?.metadata.generation === current &&
        accepted?.status === 'False' &&
        accepted.observedGeneration === current &&
        (obj.status as { servedGeneration?: number } | undefined)?.servedGeneration === served
        ? obj
        : undefined;
    },
    { timeoutMs: 20_000, message: `admin: Accepted=False at generation ${current}, serving ${served}` },
  );
}

describe('fail closed with Kubernetes', () => {
  it('kubectl apply of a broken update: the policy stays enforced and the status names the generation served', async () => {
    const first = await getRoute(kube, ns, 'admin');
    const good = first!.metadata.generation;
    const r = await apply(kube, adminRoute('192.168.0.300/16'));
    expect(r.code, r.stderr).toBe(0); // the API server accepts it
    const obj = await waitForFallbackStatus(good + 1, good);
    const accepted = condition(obj, 'Accepted')!;
    expect(accepted.reason).toBe('Invalid');
    expect(accepted.message).toMatch(
      new RegExp(`^Fall Back: generation ${good}, the last valid version, is still served; `),
    );
    expect(accepted.message).toContain('spec.rules[0].policies.ipAllow[1]');
    const programmed = await waitFor(
      async () => {
        const c = condition(await getRoute(kube, ns, 'admin'), 'Programmed');
        return c?.status === 'True' ? c : undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(programmed.observedGeneration).toBe(good);
    expect(programmed.message).toContain(`generation ${good} (the last valid version) is served`);
    // Enforced: the catch-all route does not take /admin.
    for (let i = 0; i < 10; i++) {
      const a = await admin();
      expect(a.status).toBe(403);
      expect(a.body).toContain('EDGEGATE_IP_DENIED');
    }
    expect((await get(gw!.proxyAddress.port, 'shop.example.com', '/shop')).status).toBe(200);
    const debug = (await (await fetch(`http://127.0.0.1:${gw!.adminAddress.port}/debug/routes`)).json()) as {
      statuses: { route: string; accepted: boolean; fallback?: { generation?: number } }[];
    };
    expect(debug.statuses.find((s) => s.route === `${ns}/admin`)).toMatchObject({
      accepted: false,
      fallback: { generation: good },
    });
  });

  it('after a restart with the broken version still applied, the last valid generation is served', async () => {
    await gw!.stop();
    gw = await start();
    await waitFor(
      async () => (await get(gw!.proxyAddress.port, 'shop.example.com', '/shop')).status === 200,
      {
        timeoutMs: 20_000,
      },
    );
    expect((await admin()).status).toBe(403);
  }, 60_000);

  it('a deleted route is gone, not kept', async () => {
    await kube.kubectl(['delete', 'gatewayroute', 'admin', '-n', ns]);
    await waitFor(async () => (await admin()).status === 200, { timeoutMs: 20_000 });
  });
});

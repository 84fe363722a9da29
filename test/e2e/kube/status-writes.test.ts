// Status at scale, in small: a real gateway process (primary + 2 proxy workers) against the real API server.
// A change to one route writes that route's status and no other's (the table version is not in a route's status),
// and a route nobody touched never leaves Programmed=True while other routes change and the workers take the new
// tables. Every status change is observed through a watch on the routes, so a write that happened and was undone
// before anyone polled still counts.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Condition } from '../../../src/api/gateway-route-status.ts';
import { clientNodeStatusApi } from '../../../src/control/status/status-writer.ts';
import { createEchoServer } from '../../../src/tools/echo-server.ts';
import { REPO_ROOT } from '../../support/bins.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { freePorts } from '../../support/ports.ts';
import { type ManagedProcess, startProcess } from '../../support/proc.ts';
import { scrapeMetrics } from '../../support/prom-text.ts';
import { sharedKube } from '../../support/shared.ts';
import { logPathFor } from '../../support/tmp.ts';
import { waitFor } from '../../support/wait.ts';
import {
  apply,
  catalogFile,
  ensureNamespace,
  getRoute,
  installCrd,
  rand,
  routeYaml,
  waitForCondition,
} from './helpers.ts';

const kube = sharedKube();
const ns = `eg-status-${rand()}`;
const echo = createEchoServer({ name: 'status-echo' });
let gw: ManagedProcess | undefined;
let adminPort = 0;
printLogsOnFailure(() => [...kubeLogs(kube), ...(gw ? [{ name: 'edgegate', logPath: gw.logPath }] : [])]);

// `a-steady` sorts first: a writer that rewrites every route after a publish writes it first, before the workers
// could acknowledge the new table.
const NAMES = ['a-steady', 'r0', 'r1', 'r2'];
const spec = (name: string, path: string) => ({
  hostnames: [`${name}.example.com`],
  rules: [
    { matches: [{ path: { value: path } }], backends: [{ consul: { service: 'echo', datacenter: 'dc1' } }] },
  ],
});

interface Seen {
  type: string;
  name: string;
  resourceVersion: string;
  programmed: Condition | undefined;
}

/** Every event of the routes in `ns` from now on, with the Programmed condition each carried. */
async function watchRoutes(): Promise<{ seen: Seen[]; stop: () => void }> {
  const list = await kube.request('GET', `/apis/edgegate.io/v1alpha1/namespaces/${ns}/gatewayroutes`);
  const resourceVersion = list.json<{ metadata: { resourceVersion: string } }>().metadata.resourceVersion;
  const kc = new KubeConfig();
  kc.loadFromFile(kube.kubeconfigPath);
  const seen: Seen[] = [];
  const req = await new Watch(kc).watch(
    `/apis/edgegate.io/v1alpha1/namespaces/${ns}/gatewayroutes`,
    { resourceVersion, allowWatchBookmarks: false },
    (
      type,
      obj: { metadata: { name: string; resourceVersion: string }; status?: { conditions?: Condition[] } },
    ) =>
      seen.push({
        type,
        name: obj.metadata.name,
        resourceVersion: obj.metadata.resourceVersion,
        programmed: obj.status?.conditions?.find((c) => c.type === 'Programmed'),
      }),
    () => {},
  );
  return { seen, stop: () => req.abort() };
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const prom = await scrapeMetrics(`http://127.0.0.1:${adminPort}`);
  return prom.samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;
}

/** The gateway has nothing left to write: every route's current form is served and the status queue is empty. */
async function settled(): Promise<void> {
  await waitFor(
    async () =>
      (await metric('edgegate_kube_status_queue')) === 0 &&
      (await metric('edgegate_routes_awaiting_workers')) === 0,
    {
      timeoutMs: 15_000,
      message: 'status queue empty and every route served',
      diagnostics: () => gw!.tail(20),
    },
  );
}

beforeAll(async () => {
  await installCrd(kube);
  await ensureNamespace(kube, ns);
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const catalog = catalogFile((echo.address() as { port: number }).port);
  for (const n of NAMES) await apply(kube, routeYaml(ns, n, spec(n, '/v1')));
  const [listen, admin] = await freePorts(2);
  adminPort = admin!;
  gw = startProcess({
    name: 'edgegate-status',
    command: process.execPath,
    args: [
      `${REPO_ROOT}/cmd/edgegate.ts`,
      'run',
      '--kube',
      '--kubeconfig',
      kube.kubeconfigPath,
      '--watch-namespaces',
      ns,
      '--lease-namespace',
      ns,
      '--retry-period',
      '500ms',
      '--catalog',
      catalog,
      '--workers',
      '2',
      '--drain-delay',
      '0s',
      '--listen',
      `127.0.0.1:${listen}`,
      '--admin',
      `127.0.0.1:${admin}`,
      '--log-level',
      'info',
    ],
    env: { ...process.env, POD_NAME: 'status-test' },
    logPath: logPathFor('edgegate-status'),
  });
  for (const n of NAMES) await waitForCondition(kube, ns, n, 'Programmed', 'True', 30_000);
  await settled();
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  echo.close();
  for (const n of [ns, `${ns}-probe`])
    await kube.kubectl(['delete', 'namespace', n, '--wait=false'], { allowFailure: true });
});

it('a change to one route writes that route’s status and no other’s', async () => {
  const before = new Map<string, string>();
  for (const n of NAMES) before.set(n, (await getRoute(kube, ns, n))!.metadata.resourceVersion);
  const writesBefore = (await metric('edgegate_kube_status_writes_total', { result: 'ok' })) ?? 0;
  const watch = await watchRoutes();
  try {
    await apply(kube, routeYaml(ns, 'r0', spec('r0', '/v2')));
    const r0 = await waitForCondition(kube, ns, 'r0', 'Programmed', 'True');
    expect(r0.observedGeneration).toBe(2);
    // By the time r0 is programmed, a writer that rewrites everything has already written the others.
    expect(watch.seen.filter((e) => e.name !== 'r0')).toEqual([]);
    await settled();
    expect(watch.seen.filter((e) => e.name !== 'r0')).toEqual([]);
    for (const n of NAMES.filter((x) => x !== 'r0'))
      expect((await getRoute(kube, ns, n))!.metadata.resourceVersion).toBe(before.get(n));
    // r0 only: one write when the workers took the table within the grace period, Pending and then True if not.
    const writes =
      ((await metric('edgegate_kube_status_writes_total', { result: 'ok' })) ?? 0) - writesBefore;
    expect(writes).toBeGreaterThanOrEqual(1);
    expect(writes).toBeLessThanOrEqual(2);
    expect(watch.seen.filter((e) => e.name === 'r0').at(-1)?.programmed).toMatchObject({
      status: 'True',
      observedGeneration: 2,
    });
    // Which table version serves each route is in /debug/routes: r0's form is newer than the untouched ones'.
    const debug = (await (await fetch(`http://127.0.0.1:${adminPort}/debug/routes`)).json()) as {
      servedVersion: number;
      statuses: { route: string; tableVersion?: number; programmed: boolean }[];
    };
    const of = (name: string) => debug.statuses.find((x) => x.route === `${ns}/${name}`)!;
    expect(of('r0').tableVersion).toBeGreaterThan(of('a-steady').tableVersion!);
    expect(of('r0').programmed && of('a-steady').programmed).toBe(true);
    expect(debug.servedVersion).toBeGreaterThanOrEqual(of('r0').tableVersion!);
    // The 404s of writes to deleted routes have a series of their own (none here).
    expect(await metric('edgegate_kube_status_writes_total', { result: 'not_found' })).toBe(0);
  } finally {
    watch.stop();
  }
});

it('a route nobody touched never leaves Programmed=True while others change', async () => {
  const watch = await watchRoutes();
  try {
    // Ten changes in quick succession: new paths for r0 and r1 (four each), a new route, a deleted one.
    for (let i = 0; i < 4; i++) {
      await apply(kube, routeYaml(ns, 'r0', spec('r0', `/a${i}`)));
      await apply(kube, routeYaml(ns, 'r1', spec('r1', `/b${i}`)));
    }
    await apply(kube, routeYaml(ns, 'r4', spec('r4', '/new')));
    await kube.kubectl(['delete', 'gr', 'r2', '-n', ns]);
    await waitForCondition(kube, ns, 'r4', 'Programmed', 'True');
    await waitForCondition(kube, ns, 'r1', 'Programmed', 'True');
    await settled();
    // a-steady never showed anything but Programmed=True (a writer that follows the table version shows it
    // Pending between a publish and the workers' acknowledgement)…
    expect(watch.seen.filter((e) => e.name === 'a-steady' && e.programmed?.status !== 'True')).toEqual([]);
    // …because it was not written at all.
    expect(watch.seen.filter((e) => e.name === 'a-steady')).toEqual([]);
    expect(
      (await getRoute(kube, ns, 'a-steady'))!.status?.conditions?.find((c) => c.type === 'Programmed'),
    ).toMatchObject({
      status: 'True',
    });
    expect((await metric('edgegate_kube_status_writes_total', { result: 'error' })) ?? 0).toBe(0);
  } finally {
    watch.stop();
  }
});

it('status writes share keep-alive connections to the API server instead of one TLS connection per write', async () => {
  // A route the gateway does not watch, written to directly through the API the status writer uses.
  const probeNs = `${ns}-probe`;
  await ensureNamespace(kube, probeNs);
  await apply(kube, routeYaml(probeNs, 'probe', spec('probe', '/p')));
  const kc = new KubeConfig();
  kc.loadFromFile(kube.kubeconfigPath);
  const api = clientNodeStatusApi(kc, 'connections-test');
  const port = new URL(kube.url).port;
  let opened = 0;
  const onConnected = (m: unknown) => {
    if (String((m as { connectParams?: { port?: unknown } }).connectParams?.port) === port) opened++;
  };
  subscribe('undici:client:connected', onConnected);
  try {
    for (let i = 1; i <= 30; i++) await api.patchStatus(probeNs, 'probe', { observedGeneration: i });
  } finally {
    unsubscribe('undici:client:connected', onConnected);
  }
  expect((await getRoute(kube, probeNs, 'probe'))!.status?.observedGeneration).toBe(30);
  // One connection for 30 writes made one after the other (client-node alone opens 30).
  expect(opened).toBeGreaterThanOrEqual(1);
  expect(opened).toBeLessThanOrEqual(2);
});

// The API server goes away (SIGKILL): edgegate keeps serving its table, its informers fail and restart with
// backoff, and once the API server is back it resyncs — including a route created before its watches returned.
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningGateway } from '../../../src/run.ts';
import { createEchoServer } from '../../../src/tools/echo-server.ts';
import { type KubeServer, startKube } from '../../support/kube.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { waitFor } from '../../support/wait.ts';
import {
  apply,
  catalogFile,
  ensureNamespace,
  get,
  installCrd,
  routeYaml,
  startGateway,
  waitForCondition,
} from './helpers.ts';

let kube: KubeServer | undefined;
let gw: RunningGateway | undefined;
const echo = createEchoServer({ name: 'echo' });
const ns = 'outage';
const backends = [{ consul: { service: 'echo', datacenter: 'dc1' } }];
printLogsOnFailure(() => kubeLogs(kube));

beforeAll(async () => {
  kube = await startKube();
  await installCrd(kube);
  await ensureNamespace(kube, ns);
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  await apply(kube, routeYaml(ns, 'before', { hostnames: ['before.example.com'], rules: [{ backends }] }));
  gw = await startGateway(
    kube.kubeconfigPath,
    { namespaces: [ns], leaseNamespace: ns, identity: 'outage-test' },
    catalogFile((echo.address() as AddressInfo).port),
  );
  await waitFor(async () => (await get(gw!.proxyAddress.port, 'before.example.com')).status === 200, {
    timeoutMs: 15_000,
  });
}, 180_000);

afterAll(async () => {
  await gw?.stop();
  echo.close();
  await kube?.stop();
});

it('keeps serving while the API server is down, then resyncs and picks up a route created meanwhile', async () => {
  const port = gw!.proxyAddress.port;
  const stats = () => gw!.kube!.stats();
  const errorsBefore = Number(stats().informerErrors);
  await kube!.killApiServer();
  // The informers notice (connection reset / refused) and back off.
  await waitFor(() => Number(stats().informerErrors) > errorsBefore, { timeoutMs: 40_000 });
  for (let i = 0; i < 20; i++) expect((await get(port, 'before.example.com')).status).toBe(200);
  expect(gw!.controller.synced).toBe(true);

  await kube!.startApiServer();
  // Created right after the restart: edgegate's watches are still backing off, so it learns of it by resync.
  await apply(kube!, routeYaml(ns, 'during', { hostnames: ['during.example.com'], rules: [{ backends }] }));
  const restartsAtCreate = Number(stats().informerRestarts);
  await waitFor(async () => (await get(port, 'during.example.com')).status === 200, { timeoutMs: 60_000 });
  console.log(
    `API server outage: ${stats().informerErrors} informer errors, ${stats().informerRestarts} restarts (${restartsAtCreate} when the route was created)`,
  );
  expect((await get(port, 'before.example.com')).status).toBe(200);
  // Status writing works again too.
  await waitForCondition(kube!, ns, 'during', 'Programmed', 'True', 30_000);
}, 180_000);

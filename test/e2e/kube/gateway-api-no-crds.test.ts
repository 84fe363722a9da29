// --gateway-api against an API server without the Gateway API CRDs: GatewayRoutes are served all the same (a missing
// CRD is logged and counts as an empty kind, never holds the table back), and once the CRDs are installed the
// informers pick them up and HTTPRoutes are served.
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { gatewayRouteCrdYaml } from '../../../src/api/crd.ts';
import { createLogger } from '../../../src/lib/log.ts';
import { type RunningGateway, runGateway } from '../../../src/run.ts';
import { createEchoServer } from '../../../src/tools/echo-server.ts';
import { installGatewayApiCrds } from '../../support/gateway-api.ts';
import { type KubeServer, startKube } from '../../support/kube.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { waitFor } from '../../support/wait.ts';
import { apply, ensureNamespace, get, routeYaml } from './helpers.ts';

let kube: KubeServer | undefined;
let gw: RunningGateway | undefined;
const ns = 'gwapi-nocrd';
const echo = createEchoServer({ name: 'e' });
/** The API server refuses loopback EndpointSlice addresses: the echo server uses this machine's own address. */
const hostAddress = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
printLogsOnFailure(() => kubeLogs(kube));

beforeAll(async () => {
  if (!hostAddress) throw new Error('this test needs a non-loopback IPv4 address on this machine');
  kube = await startKube();
  await new Promise<void>((r) => echo.listen(0, hostAddress, r));
  await kube.kubectl(['apply', '--server-side', '-f', '-'], { input: gatewayRouteCrdYaml() });
  // Polled rather than `kubectl wait`, which fails on a CRD whose status is still empty.
  await waitFor(async () => {
    const r = await kube!.kubectl(
      [
        'get',
        'crd',
        'gatewayroutes.edgegate.io',
        '-o',
        'jsonpath={.status.conditions[?(@.type=="Established")].status}',
      ],
      { allowFailure: true },
    );
    return r.stdout.trim() === 'True';
  });
  await ensureNamespace(kube, ns);
  const port = (echo.address() as AddressInfo).port;
  await apply(
    kube,
    [
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'echo', namespace: ns },
        spec: { clusterIP: 'None', ports: [{ name: 'http', port: 80, targetPort: port }] },
      },
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 'echo-1', namespace: ns, labels: { 'kubernetes.io/service-name': 'echo' } },
        addressType: 'IPv4',
        ports: [{ name: 'http', port, protocol: 'TCP' }],
        endpoints: [{ addresses: [hostAddress], conditions: { ready: true } }],
      },
    ]
      .map((o) => stringify(o))
      .join('---\n'),
  );
  gw = await runGateway({
    listen: '127.0.0.1:0',
    admin: '127.0.0.1:0',
    logLevel: 'warn',
    logger: createLogger(process.env.EDGEGATE_TEST_LOG_LEVEL ?? 'error'),
    policy: { overloadDelayMs: 0 },
    kube: {
      kubeconfig: kube.kubeconfigPath,
      leaseNamespace: ns,
      identity: 'nocrd-test',
      retryPeriodMs: 500,
      renewDeadlineMs: 3000,
      leaseDurationMs: 4000,
      gatewayApi: { httpPort: 80, addresses: ['192.0.2.10'] },
    },
  });
}, 180_000);

afterAll(async () => {
  await gw?.stop();
  echo.close();
  await kube?.stop();
});

it('serves GatewayRoutes without the Gateway API CRDs, and HTTPRoutes once they are installed', async () => {
  await apply(
    kube!,
    routeYaml(ns, 'plain', {
      hostnames: ['plain.test'],
      rules: [{ backends: [{ service: { name: 'echo', port: 80 } }] }],
    }),
  );
  await waitFor(async () => (await get(gw!.proxyAddress.port, 'plain.test')).status === 200, {
    timeoutMs: 30_000,
    message: 'the GatewayRoute is served although the Gateway API CRDs are missing',
  });
  expect(gw!.kube!.stats().gatewayApi?.absentKinds).toBeGreaterThan(0);

  await installGatewayApiCrds(kube!);
  await apply(
    kube!,
    [
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'GatewayClass',
        metadata: { name: 'edgegate' },
        spec: { controllerName: 'edgegate.io/gateway' },
      },
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        metadata: { name: 'edge', namespace: ns },
        spec: { gatewayClassName: 'edgegate', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
      },
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: 'late', namespace: ns },
        spec: {
          parentRefs: [{ name: 'edge' }],
          hostnames: ['late.test'],
          rules: [{ backendRefs: [{ name: 'echo', port: 80 }] }],
        },
      },
    ]
      .map((o) => stringify(o))
      .join('---\n'),
  );
  // The informers retry with backoff (at most 30 s apart).
  await waitFor(async () => (await get(gw!.proxyAddress.port, 'late.test')).status === 200, {
    timeoutMs: 90_000,
    message: 'the HTTPRoute is served once the CRDs exist',
  });
  expect((await get(gw!.proxyAddress.port, 'plain.test')).status).toBe(200);
}, 180_000);

// Gateway API against a real API server (the pinned standard-channel CRDs) and a real Consul agent, edgegate in
// this process with --kube --gateway-api: HTTPRoutes to Services (EndpointSlices of echo servers on loopback) and
// to ConsulServices, GatewayClass/Gateway/HTTPRoute status as the spec says, ReferenceGrants, GatewayRoutes and
// HTTPRoutes on one host under one precedence with conflicts reported in both, and the latency of a
// `kubectl apply` of an HTTPRoute next to a GatewayRoute's.
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { consulSettingsFromEnv } from '../../../src/control/sources/consul/settings.ts';
import { createLogger } from '../../../src/lib/log.ts';
import { type RunningGateway, runGateway } from '../../../src/run.ts';
import { createEchoServer } from '../../../src/tools/echo-server.ts';
import { type ConsulAgent, startConsulAgent } from '../../support/consul.ts';
import { installGatewayApiCrds } from '../../support/gateway-api.ts';
import { type KubeServer, startKube } from '../../support/kube.ts';
import { consulLogs, kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { waitFor } from '../../support/wait.ts';
import { apply, ensureNamespace, get, rand, routeYaml, waitForCondition } from './helpers.ts';

let kube: KubeServer | undefined;
let consul: ConsulAgent | undefined;
let gw: RunningGateway | undefined;
const ns = 'gwapi';
const other = 'gwapi-backends';
const echoes = ['a', 'b', 'c'].map((name) => createEchoServer({ name }));
/**
 * The API server refuses loopback EndpointSlice addresses: the echo servers listen on this machine's own (first
 * non-internal IPv4) address instead, for the few seconds of the test.
 */
const hostAddress = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
const echoPort = (i: number) => (echoes[i]!.address() as AddressInfo).port;
printLogsOnFailure(() => [...kubeLogs(kube), ...consulLogs(consul)]);

const GW = 'gateway.networking.k8s.io';

interface Cond {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}
interface Obj {
  metadata: { generation: number };
  status?: {
    conditions?: Cond[];
    addresses?: { type: string; value: string }[];
    listeners?: { name: string; attachedRoutes: number; conditions: Cond[]; supportedKinds: unknown[] }[];
    parents?: { parentRef: { name: string }; controllerName: string; conditions: Cond[] }[];
  };
}

async function getObj(path: string): Promise<Obj | undefined> {
  const r = await kube!.request('GET', path);
  return r.status === 200 ? r.json<Obj>() : undefined;
}
const routePath = (namespace: string, name: string) =>
  `/apis/${GW}/v1/namespaces/${namespace}/httproutes/${name}`;

/** Waits until the route's parent condition `type` has `status` (and `reason`) for its current generation. */
async function waitRouteCondition(
  namespace: string,
  name: string,
  type: string,
  status: 'True' | 'False',
  reason?: string,
): Promise<Cond> {
  return waitFor(
    async () => {
      const o = await getObj(routePath(namespace, name));
      const c = o?.status?.parents
        ?.find((p) => p.controllerName === 'edgegate.io/gateway')
        ?.conditions.find((x) => x.type === type);
      return c &&
        c.status === status &&
        (reason === undefined || c.reason === reason) &&
        c.observedGeneration === o?.metadata.generation
        ? c
        : undefined;
    },
    { timeoutMs: 20_000, message: `HTTPRoute ${namespace}/${name} ${type}=${status} ${reason ?? ''}` },
  );
}

function yamlDocs(...objs: unknown[]): string {
  return objs.map((o) => stringify(o)).join('---\n');
}

/** A Service without selector and its EndpointSlice naming a loopback echo server. */
function serviceYaml(namespace: string, name: string, port: number): string {
  return yamlDocs(
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace },
      spec: { clusterIP: 'None', ports: [{ name: 'http', port: 80, targetPort: port }] },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-1`, namespace, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port, protocol: 'TCP' }],
      endpoints: [{ addresses: [hostAddress!], conditions: { ready: true } }],
    },
  );
}

function httpRoute(namespace: string, name: string, spec: Record<string, unknown>): string {
  return stringify({
    apiVersion: `${GW}/v1`,
    kind: 'HTTPRoute',
    metadata: { name, namespace },
    spec: { parentRefs: [{ name: 'edge', namespace: ns, sectionName: 'http' }], ...spec },
  });
}

const port = () => gw!.proxyAddress.port;
const nameOf = (a: { headers: Record<string, string | string[] | undefined> }) => a.headers['x-echo-name'];

beforeAll(async () => {
  if (!hostAddress) throw new Error('this test needs a non-loopback IPv4 address on this machine');
  const started = await Promise.all([
    startKube(),
    startConsulAgent({ datacenter: 'dc1' }),
    ...echoes.map((e) => new Promise<void>((r) => e.listen(0, hostAddress, r))),
  ]);
  kube = started[0] as KubeServer;
  consul = started[1] as ConsulAgent;
  await installGatewayApiCrds(kube);
  await ensureNamespace(kube, ns);
  await ensureNamespace(kube, other);
  await apply(
    kube,
    `${serviceYaml(ns, 'echo-a', echoPort(0))}---\n${serviceYaml(ns, 'echo-b', echoPort(1))}`,
  );
  await apply(kube, serviceYaml(other, 'echo-c', echoPort(2)));
  await apply(
    kube,
    yamlDocs(
      {
        apiVersion: `${GW}/v1`,
        kind: 'GatewayClass',
        metadata: { name: 'edgegate' },
        spec: { controllerName: 'edgegate.io/gateway' },
      },
      {
        apiVersion: `${GW}/v1`,
        kind: 'GatewayClass',
        metadata: { name: 'somebody-else' },
        spec: { controllerName: 'example.com/other' },
      },
      {
        apiVersion: `${GW}/v1`,
        kind: 'Gateway',
        metadata: { name: 'edge', namespace: ns },
        spec: {
          gatewayClassName: 'edgegate',
          listeners: [
            { name: 'http', port: 80, protocol: 'HTTP', allowedRoutes: { namespaces: { from: 'All' } } },
            { name: 'elsewhere', port: 8081, protocol: 'HTTP' },
          ],
        },
      },
    ),
  );
  gw = await runGateway({
    listen: '127.0.0.1:0',
    admin: '127.0.0.1:0',
    logLevel: 'warn',
    logger: createLogger(process.env.EDGEGATE_TEST_LOG_LEVEL ?? 'warn'),
    consul: consulSettingsFromEnv({ CONSUL_HTTP_ADDR: consul.httpUrl }),
    policy: { overloadDelayMs: 0 },
    kube: {
      kubeconfig: kube.kubeconfigPath,
      leaseNamespace: ns,
      identity: 'gwapi-test',
      retryPeriodMs: 500,
      renewDeadlineMs: 3000,
      leaseDurationMs: 4000,
      gatewayApi: { httpPort: 80, httpsPort: 443, addresses: ['192.0.2.10'] },
      tlsSecretNamespaces: [ns],
    },
  });
}, 180_000);

afterAll(async () => {
  await gw?.stop();
  for (const e of echoes) e.close();
  await Promise.all([kube?.stop(), consul?.stop()]);
});

describe('Gateway API', () => {
  it('serves an HTTPRoute to a Service and writes GatewayClass, Gateway and HTTPRoute status', async () => {
    await apply(
      kube!,
      httpRoute(ns, 'simple', {
        hostnames: ['simple.gw.test'],
        rules: [{ backendRefs: [{ name: 'echo-a', port: 80 }] }],
      }),
    );
    const answer = await waitFor(
      async () => {
        const a = await get(port(), 'simple.gw.test', '/anything');
        return a.status === 200 ? a : undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(nameOf(answer)).toBe('a');
    // Another host is not this route's.
    expect((await get(port(), 'other.gw.test', '/')).status).toBe(404);

    await waitRouteCondition(ns, 'simple', 'Accepted', 'True', 'Accepted');
    await waitRouteCondition(ns, 'simple', 'ResolvedRefs', 'True', 'ResolvedRefs');

    const cls = await waitFor(async () => {
      const o = await getObj(`/apis/${GW}/v1/gatewayclasses/edgegate`);
      return o?.status?.conditions?.find((c) => c.type === 'Accepted' && c.status === 'True') ? o : undefined;
    });
    expect(cls.status!.conditions!.find((c) => c.type === 'Accepted')!.observedGeneration).toBe(
      cls.metadata.generation,
    );
    // A class of another controller is left alone.
    const foreign = await getObj(`/apis/${GW}/v1/gatewayclasses/somebody-else`);
    expect(foreign?.status?.conditions?.find((c) => c.type === 'Accepted')?.status).not.toBe('True');

    const gateway = await waitFor(async () => {
      const o = await getObj(`/apis/${GW}/v1/namespaces/${ns}/gateways/edge`);
      const http = o?.status?.listeners?.find((l) => l.name === 'http');
      return http?.attachedRoutes === 1 ? o : undefined;
    });
    const conds = Object.fromEntries(gateway.status!.conditions!.map((c) => [c.type, c]));
    expect(conds.Accepted).toMatchObject({ status: 'True', observedGeneration: gateway.metadata.generation });
    expect(conds.Programmed).toMatchObject({ status: 'True' });
    expect(gateway.status!.addresses).toEqual([{ type: 'IPAddress', value: '192.0.2.10' }]);
    const elsewhere = gateway.status!.listeners!.find((l) => l.name === 'elsewhere')!;
    expect(elsewhere.conditions.find((c) => c.type === 'Accepted')).toMatchObject({
      status: 'False',
      reason: 'PortUnavailable',
    });
    expect(elsewhere.attachedRoutes).toBe(0);
  }, 60_000);

  it('an HTTPS listener whose Secret is missing or not a TLS Secret: ResolvedRefs=False, InvalidCertificateRef', async () => {
    await apply(
      kube!,
      yamlDocs(
        {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: 'not-tls', namespace: ns },
          type: 'Opaque',
          stringData: { 'tls.crt': 'not a certificate', 'tls.key': 'not a key' },
        },
        {
          apiVersion: `${GW}/v1`,
          kind: 'Gateway',
          metadata: { name: 'tls', namespace: ns },
          spec: {
            gatewayClassName: 'edgegate',
            listeners: [
              { name: 'missing', port: 443, protocol: 'HTTPS', tls: { certificateRefs: [{ name: 'nope' }] } },
              {
                name: 'opaque',
                port: 443,
                hostname: 'opaque.gw.test',
                protocol: 'HTTPS',
                tls: { certificateRefs: [{ name: 'not-tls' }] },
              },
            ],
          },
        },
      ),
    );
    const gateway = await waitFor(
      async () => {
        const o = await getObj(`/apis/${GW}/v1/namespaces/${ns}/gateways/tls`);
        const bad = o?.status?.listeners?.filter((l) =>
          l.conditions.some((c) => c.type === 'ResolvedRefs' && c.reason === 'InvalidCertificateRef'),
        );
        return bad?.length === 2 ? o : undefined;
      },
      { timeoutMs: 20_000, message: 'both listeners ResolvedRefs=False InvalidCertificateRef' },
    );
    for (const l of gateway.status!.listeners!)
      expect(l.conditions.find((c) => c.type === 'Programmed')?.status).toBe('False');
    expect(gateway.status!.conditions!.find((c) => c.type === 'Programmed')?.status).toBe('False');
  }, 60_000);

  it('refuses a parentRef to a listener that does not exist (NoMatchingParent) and serves nothing for it', async () => {
    await apply(
      kube!,
      httpRoute(ns, 'nosection', {
        parentRefs: [{ name: 'edge', sectionName: 'missing' }],
        hostnames: ['nosection.gw.test'],
        rules: [{ backendRefs: [{ name: 'echo-a', port: 80 }] }],
      }),
    );
    await waitRouteCondition(ns, 'nosection', 'Accepted', 'False', 'NoMatchingParent');
    expect((await get(port(), 'nosection.gw.test', '/')).status).toBe(404);
    // The metric counts parentRefs that are not Accepted; status writes succeed.
    const metrics = await (await fetch(`http://127.0.0.1:${gw!.adminAddress.port}/metrics`)).text();
    const notAccepted = /^edgegate_gateway_api_route_parents_not_accepted (\d+)$/m.exec(metrics);
    expect(Number(notAccepted?.[1])).toBeGreaterThanOrEqual(1);
    expect(metrics).toMatch(/^edgegate_gateway_api_status_writes_total\{result="ok"\} [1-9]/m);
  }, 60_000);

  it('a cross-namespace backendRef is refused (500, RefNotPermitted) until a ReferenceGrant allows it', async () => {
    await apply(
      kube!,
      httpRoute(ns, 'cross', {
        hostnames: ['cross.gw.test'],
        rules: [{ backendRefs: [{ name: 'echo-c', namespace: other, port: 80 }] }],
      }),
    );
    await waitRouteCondition(ns, 'cross', 'ResolvedRefs', 'False', 'RefNotPermitted');
    await waitFor(async () => (await get(port(), 'cross.gw.test', '/')).status === 500, {
      timeoutMs: 20_000,
    });
    await apply(
      kube!,
      stringify({
        apiVersion: `${GW}/v1beta1`,
        kind: 'ReferenceGrant',
        metadata: { name: 'routes-to-backends', namespace: other },
        spec: {
          from: [{ group: GW, kind: 'HTTPRoute', namespace: ns }],
          to: [{ group: '', kind: 'Service' }],
        },
      }),
    );
    const a = await waitFor(
      async () => {
        const r = await get(port(), 'cross.gw.test', '/');
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(nameOf(a)).toBe('c');
    await waitRouteCondition(ns, 'cross', 'ResolvedRefs', 'True');
    // A GatewayRoute cannot do the same: the API server refuses service.namespace.
    const refused = await kube!.kubectl(['apply', '-f', '-'], {
      input: routeYaml(ns, `sneaky-${rand()}`, {
        rules: [{ backends: [{ service: { name: 'echo-c', namespace: other, port: 80 } }] }],
      }),
      allowFailure: true,
    });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('namespace');
  }, 60_000);

  it('a ConsulService backend: not in the catalog, no healthy instance, then served after a catalog change', async () => {
    const service = `web-${rand()}`;
    await apply(
      kube!,
      yamlDocs(
        {
          apiVersion: 'edgegate.io/v1alpha1',
          kind: 'ConsulService',
          metadata: { name: 'web', namespace: ns },
          spec: { service, datacenter: 'dc1' },
        },
        {
          apiVersion: `${GW}/v1`,
          kind: 'HTTPRoute',
          metadata: { name: 'consul', namespace: ns },
          spec: {
            parentRefs: [{ name: 'edge' }],
            hostnames: ['consul.gw.test'],
            rules: [{ backendRefs: [{ group: 'edgegate.io', kind: 'ConsulService', name: 'web' }] }],
          },
        },
      ),
    );
    const notFound = await waitRouteCondition(ns, 'consul', 'ResolvedRefs', 'False', 'BackendNotFound');
    expect(notFound.message).toContain(service);
    // Registered with a TTL check that has not passed: critical, so no healthy instance.
    const reg = await consul!.fetch('/v1/agent/service/register', {
      method: 'PUT',
      body: JSON.stringify({
        ID: `${service}-1`,
        Name: service,
        Address: hostAddress,
        Port: echoPort(1),
        Check: { CheckID: `${service}-ttl`, TTL: '30s', Status: 'critical' },
      }),
    });
    expect(reg.status).toBe(200);
    const unhealthy = await waitRouteCondition(
      ns,
      'consul',
      'edgegate.io/BackendsHealthy',
      'False',
      'NoHealthyEndpoints',
    );
    expect(unhealthy.message).toContain(service);
    await waitRouteCondition(ns, 'consul', 'ResolvedRefs', 'True');
    expect((await get(port(), 'consul.gw.test', '/')).status).toBe(503);
    // The catalog changes: the check passes.
    const pass = await consul!.fetch(`/v1/agent/check/pass/${service}-ttl`, { method: 'PUT' });
    expect(pass.status).toBe(200);
    const a = await waitFor(
      async () => {
        const r = await get(port(), 'consul.gw.test', '/');
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(nameOf(a)).toBe('b');
    await waitRouteCondition(ns, 'consul', 'edgegate.io/BackendsHealthy', 'True');
  }, 90_000);

  it('GatewayRoutes and HTTPRoutes on one host share one precedence; an identical match is reported in both', async () => {
    // The GatewayRoute first (older): PathPrefix / to echo-a.
    await apply(
      kube!,
      routeYaml(ns, 'mixed', {
        hostnames: ['mixed.gw.test'],
        rules: [{ backends: [{ service: { name: 'echo-a', port: 80 } }] }],
      }),
    );
    await waitFor(async () => nameOf(await get(port(), 'mixed.gw.test', '/x')) === 'a', {
      timeoutMs: 20_000,
    });
    // An HTTPRoute with a more specific match wins for its path, whoever is older.
    await apply(
      kube!,
      httpRoute(ns, 'mixed-exact', {
        hostnames: ['mixed.gw.test'],
        rules: [
          {
            matches: [{ path: { type: 'Exact', value: '/exact' } }],
            backendRefs: [{ name: 'echo-b', port: 80 }],
          },
        ],
      }),
    );
    await waitFor(async () => nameOf(await get(port(), 'mixed.gw.test', '/exact')) === 'b', {
      timeoutMs: 20_000,
    });
    expect(nameOf(await get(port(), 'mixed.gw.test', '/exact/more'))).toBe('a');
    // The same match as the GatewayRoute's, newer: the older GatewayRoute keeps it; both are told.
    await apply(
      kube!,
      httpRoute(ns, 'mixed-same', {
        hostnames: ['mixed.gw.test'],
        rules: [{ backendRefs: [{ name: 'echo-c', namespace: other, port: 80 }] }],
      }),
    );
    const c = await waitRouteCondition(ns, 'mixed-same', 'edgegate.io/Conflicted', 'True', 'MatchConflict');
    expect(c.message).toContain(`shadowed by route ${ns}/mixed`);
    const gr = await waitForCondition(kube!, ns, 'mixed', 'Conflicted', 'True', 20_000);
    expect(gr.message).toContain(`shadows route ${ns}/mixed-same`);
    expect(nameOf(await get(port(), 'mixed.gw.test', '/y'))).toBe('a');
  }, 90_000);

  it('an HTTPRoute applied with kubectl is served within the latency of a GatewayRoute', async () => {
    const rounds = 3;
    const took = { HTTPRoute: [] as number[], GatewayRoute: [] as number[] };
    // After kubectl returned (the object is stored): what edgegate adds, without kubectl's own time.
    const afterStored = { HTTPRoute: [] as number[], GatewayRoute: [] as number[] };
    for (let i = 0; i < rounds; i++) {
      const id = rand();
      const t0 = performance.now();
      await apply(
        kube!,
        httpRoute(ns, `lat-${id}`, {
          hostnames: [`h-${id}.gw.test`],
          rules: [{ backendRefs: [{ name: 'echo-a', port: 80 }] }],
        }),
      );
      const stored = performance.now();
      await waitFor(async () => (await get(port(), `h-${id}.gw.test`, '/')).status === 200, {
        timeoutMs: 20_000,
        intervalMs: 5,
      });
      took.HTTPRoute.push(performance.now() - t0);
      afterStored.HTTPRoute.push(performance.now() - stored);
      const t1 = performance.now();
      await apply(
        kube!,
        routeYaml(ns, `lat-${id}`, {
          hostnames: [`g-${id}.gw.test`],
          rules: [{ backends: [{ service: { name: 'echo-a', port: 80 } }] }],
        }),
      );
      const stored1 = performance.now();
      await waitFor(async () => (await get(port(), `g-${id}.gw.test`, '/')).status === 200, {
        timeoutMs: 20_000,
        intervalMs: 5,
      });
      took.GatewayRoute.push(performance.now() - t1);
      afterStored.GatewayRoute.push(performance.now() - stored1);
    }
    const median = (l: number[]) => [...l].sort((a, b) => a - b)[Math.floor(l.length / 2)]!;
    console.log(
      `kubectl apply → served (median of ${rounds}, ms): HTTPRoute ${median(took.HTTPRoute).toFixed(0)}, GatewayRoute ${median(took.GatewayRoute).toFixed(0)}; ` +
        `after kubectl returned: HTTPRoute ${median(afterStored.HTTPRoute).toFixed(0)}, GatewayRoute ${median(afterStored.GatewayRoute).toFixed(0)}`,
    );
  }, 120_000);
});

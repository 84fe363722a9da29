/**
 * The rendered ServiceAccount, ClusterRole/Roles and bindings are what the controller needs: install them on the
 * real kube-apiserver, run `edgegate run` as the pod would (the rendered container env; in-cluster config from
 * KUBERNETES_SERVICE_HOST/PORT and the ServiceAccount's token, CA and namespace under
 * /var/run/secrets/kubernetes.io/serviceaccount, mounted in a private mount namespace) and watch it list, watch, write status, create Events and hold the leader Lease — with nothing forbidden
 * in its log, and nothing more allowed (no Secrets, no spec writes, no Leases outside its namespace).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { REPO_ROOT } from '../../support/bins.ts';
import { waitCrdsEstablished } from '../../support/kube.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { freePorts } from '../../support/ports.ts';
import { type ManagedProcess, startProcess } from '../../support/proc.ts';
import { sharedKube } from '../../support/shared.ts';
import { logPathFor, makeTempDir } from '../../support/tmp.ts';
import { StopWaiting, waitFor } from '../../support/wait.ts';
import {
  CHART_DIR,
  find,
  gatewayContainer,
  type Manifest,
  only,
  render,
  toYamlStream,
} from './chart-support.ts';

const kube = sharedKube();
const gateways: ManagedProcess[] = [];
printLogsOnFailure(() => [...kubeLogs(kube), ...gateways.map((g) => ({ name: g.name, logPath: g.logPath }))]);
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.stop(10_000)));
});

const rand = () => randomBytes(3).toString('hex');
const POD_NAME = 'edgegate-test-pod';

/** The container env as the kubelet would set it (the overrides put the ports on loopback). */
function podEnv(container: Manifest, ns: string, overrides: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  const fields: Record<string, string> = {
    'metadata.name': POD_NAME,
    'metadata.namespace': ns,
    'status.hostIP': '127.0.0.1',
  };
  for (const e of container.env as Manifest[]) {
    const name = e.name as unknown as string;
    if (e.value !== undefined) env[name] = String(e.value).replace(/\$\((\w+)\)/g, (_m, v) => env[v] ?? '');
    else if (e.valueFrom?.fieldRef) env[name] = fields[e.valueFrom.fieldRef.fieldPath]!;
    else if (e.valueFrom?.resourceFieldRef) env[name] = '1';
    else throw new Error(`env ${name}: no value source this test knows`);
  }
  return { ...env, ...overrides };
}

interface Route {
  status?: {
    conditions?: Array<{ type: string; status: string; reason: string; observedGeneration?: number }>;
  };
  metadata: { generation: number };
}

async function condition(ns: string, name: string, type: string): Promise<string | undefined> {
  const r = await kube.request('GET', `/apis/edgegate.io/v1alpha1/namespaces/${ns}/gatewayroutes/${name}`);
  if (r.status !== 200) return undefined;
  const route = r.json<Route>();
  const c = route.status?.conditions?.find((x) => x.type === type);
  return c && c.observedGeneration === route.metadata.generation ? `${c.status}/${c.reason}` : undefined;
}

async function canI(token: string, args: string[]): Promise<string> {
  const r = await kube.kubectl(['auth', 'can-i', ...args], { token, allowFailure: true });
  return r.stdout.trim();
}

describe.each([
  ['cluster-wide (ClusterRole)', false],
  ['watched namespaces (a Role in each)', true],
])('rendered RBAC, %s', (_name, perNamespace) => {
  it('is enough for the controller and no more', async () => {
    const id = rand();
    const ns = `edge-rbac-${id}`;
    const apps = `apps-rbac-${id}`;
    const release = `rbac${id}`;
    for (const n of [ns, apps]) await kube.kubectl(['create', 'namespace', n]);
    for (const f of ['gatewayroutes.edgegate.io.yaml'])
      await kube.kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(CHART_DIR, 'crds', f)]);
    await waitCrdsEstablished(kube, ['gatewayroutes.edgegate.io']);

    const { objects } = await render(release, ns, {
      consul: { enabled: false },
      kubernetes: { watchNamespaces: perNamespace ? [apps] : [] },
    });
    expect(find(objects, 'ClusterRole')).toHaveLength(perNamespace ? 0 : 1);
    // Install for real (not a dry run): ServiceAccount, roles, bindings, Service, DaemonSet (nothing runs it here).
    await kube.kubectl(['apply', '-f', '-'], { input: toYamlStream(objects) });
    const sa = only(objects, 'ServiceAccount').metadata.name;
    const token = await kube.createServiceAccountToken(ns, sa);

    // What the routes need: a Service (and its EndpointSlice) to resolve, made by the admin.
    await kube.kubectl(['create', 'service', 'clusterip', 'web', '--tcp=80:8080', '-n', apps]);
    await kube.kubectl(['apply', '-f', '-'], {
      input: stringify({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 'web-1', namespace: apps, labels: { 'kubernetes.io/service-name': 'web' } },
        addressType: 'IPv4',
        endpoints: [{ addresses: ['10.0.0.10'], conditions: { ready: true } }],
        ports: [{ name: '', port: 8080, protocol: 'TCP' }],
      }),
    });

    // The kubelet's service-account volume, as files; the gateway sees them at the in-cluster path through a
    // tmpfs over /run in a mount namespace of its own (nothing on this machine's /run changes).
    const dir = makeTempDir('chart-rbac');
    const saDir = join(dir, 'serviceaccount');
    mkdirSync(saDir);
    writeFileSync(join(saDir, 'token'), token);
    writeFileSync(join(saDir, 'ca.crt'), kube.caPem);
    writeFileSync(join(saDir, 'namespace'), ns);
    const apiserver = new URL(kube.url);
    const [httpPort, adminPort] = await freePorts(2);
    const env = podEnv(gatewayContainer(objects), ns, {
      EDGEGATE_LISTEN: `127.0.0.1:${httpPort}`,
      EDGEGATE_ADMIN: `127.0.0.1:${adminPort}`,
      EDGEGATE_STATE_DIR: join(dir, 'state'),
      EDGEGATE_LOG_LEVEL: 'debug',
      KUBERNETES_SERVICE_HOST: apiserver.hostname,
      KUBERNETES_SERVICE_PORT: apiserver.port,
    });
    expect(env.EDGEGATE_KUBECONFIG).toBeUndefined();
    // What puts those files into the real pod.
    expect(only(objects, 'DaemonSet').spec.template.spec.automountServiceAccountToken).toBe(true);
    expect(env.EDGEGATE_KUBE).toBe('true');
    expect(env.POD_NAMESPACE).toBe(ns);
    const gw = startProcess({
      name: `edgegate-rbac-${id}`,
      command: 'unshare',
      args: [
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io && ' +
          'cp -r "$0" /run/secrets/kubernetes.io/serviceaccount && exec "$@"',
        saDir,
        process.execPath,
        join(REPO_ROOT, 'cmd/edgegate.ts'),
        'run',
      ],
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      cwd: dir,
      logPath: logPathFor(`edgegate-rbac-${id}`),
    });
    gateways.push(gw);

    // Ready: every informer (GatewayRoutes, Services, EndpointSlices) listed with the ServiceAccount's rights.
    await waitFor(
      async () => {
        if (!gw.running()) throw new StopWaiting(`the gateway exited:\n${gw.tail(40)}`);
        const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`).catch(() => undefined);
        return r?.status === 200;
      },
      { timeoutMs: 30_000, message: 'gateway /readyz', diagnostics: () => gw.tail(40) },
    );

    // Leader Lease in the release namespace, held by this pod.
    const holder = await waitFor(
      async () => {
        const r = await kube.request(
          'GET',
          `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/edgegate-controller`,
        );
        return r.status === 200
          ? r.json<{ spec: { holderIdentity?: string } }>().spec.holderIdentity
          : undefined;
      },
      { timeoutMs: 30_000, message: 'the leader Lease', diagnostics: () => gw.tail(40) },
    );
    expect(holder).toBe(POD_NAME);

    // Status writes (gatewayroutes/status patch) and a resolved Service backend (services + endpointslices).
    const route = (name: string, path: string) =>
      stringify({
        apiVersion: 'edgegate.io/v1alpha1',
        kind: 'GatewayRoute',
        metadata: { name, namespace: apps },
        spec: {
          hostnames: [`${name}.example.com`],
          rules: [
            { matches: [{ path: { value: path } }], backends: [{ service: { name: 'web', port: 80 } }] },
          ],
        },
      });
    await kube.kubectl(['apply', '-f', '-'], { input: route('good', '/') });
    await waitFor(async () => (await condition(apps, 'good', 'Accepted')) === 'True/Accepted', {
      timeoutMs: 20_000,
      message: 'good Accepted=True',
      diagnostics: () => gw.tail(40),
    });
    await waitFor(async () => (await condition(apps, 'good', 'ResolvedRefs'))?.startsWith('True/'), {
      timeoutMs: 20_000,
      message: 'good ResolvedRefs=True',
    });
    const debug = (await (await fetch(`http://127.0.0.1:${adminPort}/debug/routes`)).text()) as string;
    expect(debug).toContain('good.example.com');

    // Events (events.k8s.io create) for a route the controller's validation rejects.
    await kube.kubectl(['apply', '-f', '-'], { input: route('bad', '/a//b') });
    await waitFor(async () => (await condition(apps, 'bad', 'Accepted'))?.startsWith('False/'), {
      timeoutMs: 20_000,
      message: 'bad Accepted=False',
    });
    await waitFor(
      async () => {
        const r = await kube.request('GET', `/apis/events.k8s.io/v1/namespaces/${apps}/events`);
        const items = r.json<{ items: Array<{ reason: string; regarding: { name: string } }> }>().items;
        return items.some((e) => e.regarding.name === 'bad' && e.reason === 'Invalid');
      },
      { timeoutMs: 20_000, message: 'the Invalid event', diagnostics: () => gw.tail(40) },
    );

    // Nothing the controller tried was refused.
    expect(gw.tail(10_000)).not.toMatch(/forbidden|\b403\b/i);

    // And no more than that.
    expect(await canI(token, ['get', 'secrets', '-n', apps])).toBe('no');
    expect(await canI(token, ['list', 'secrets', '-A'])).toBe('no');
    expect(await canI(token, ['update', 'gatewayroutes.edgegate.io', '-n', apps])).toBe('no');
    expect(await canI(token, ['delete', 'gatewayroutes.edgegate.io', '-n', apps])).toBe('no');
    expect(await canI(token, ['create', 'leases.coordination.k8s.io', '-n', apps])).toBe('no');
    expect(await canI(token, ['update', 'leases.coordination.k8s.io', '-n', ns])).toBe('yes');
    expect(await canI(token, ['list', 'gatewayroutes.edgegate.io', '-A'])).toBe(perNamespace ? 'no' : 'yes');
    await gw.stop(15_000);
  });
});

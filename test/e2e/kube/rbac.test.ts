// The controller runs with a ServiceAccount token bound to exactly the rules in src/control/sources/kube/rbac.ts, and
// works (routes served, status written, Lease held); the same token is refused Secrets, other namespaces'
// Leases and GatewayRoute spec writes. A token without the EndpointSlice rights keeps a gateway from ever
// publishing a table (half the informers synced is not a routing table): not ready, nothing served, no status.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { LEASE_RULES, WATCH_RULES } from '../../../src/control/sources/kube/rbac.ts';
import type { RunningGateway } from '../../../src/run.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { scrapeMetrics, sumOf } from '../../support/prom-text.ts';
import { sharedKube } from '../../support/shared.ts';
import { waitFor } from '../../support/wait.ts';
import {
  apply,
  ensureNamespace,
  get,
  installCrd,
  rand,
  routeYaml,
  startGateway,
  tokenKubeconfig,
  waitForCondition,
} from './helpers.ts';

const kube = sharedKube();
printLogsOnFailure(() => kubeLogs(kube));
const id = rand();
const ns = `eg-rbac-${id}`;
const other = `eg-rbac-other-${id}`;
let token = '';
let gw: RunningGateway | undefined;

/**
 * The RBAC objects that bind a ServiceAccount to the controller's rights: `watchRules` cluster-wide (a ClusterRole
 * named `clusterRole`) and the Lease rules in the ServiceAccount's namespace.
 */
function controllerRbac(sa: { name: string; namespace: string }, clusterRole: string, watchRules: unknown[]) {
  const subjects = [{ kind: 'ServiceAccount', ...sa }];
  const ref = (kind: string, name: string) => ({ apiGroup: 'rbac.authorization.k8s.io', kind, name });
  const rbac = (kind: string, name: string, body: object, namespace?: string) => ({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind,
    metadata: { name, ...(namespace ? { namespace } : {}) },
    ...body,
  });
  return [
    rbac('ClusterRole', clusterRole, { rules: watchRules }),
    rbac('ClusterRoleBinding', clusterRole, { roleRef: ref('ClusterRole', clusterRole), subjects }),
    rbac('Role', 'edgegate-lease', { rules: LEASE_RULES }, sa.namespace),
    rbac('RoleBinding', 'edgegate-lease', { roleRef: ref('Role', 'edgegate-lease'), subjects }, sa.namespace),
  ]
    .map((m) => stringify(m))
    .join('---\n');
}

beforeAll(async () => {
  await installCrd(kube);
  await ensureNamespace(kube, other);
  token = await kube.createServiceAccountToken(ns, 'edgegate');
  await apply(kube, controllerRbac({ name: 'edgegate', namespace: ns }, `edgegate-${id}`, WATCH_RULES));
  await apply(
    kube,
    routeYaml(ns, 'web', {
      hostnames: ['rbac.example.com'],
      rules: [{ backends: [{ service: { name: 'web', port: 80 } }] }],
    }),
  );
  await apply(
    kube,
    routeYaml(ns, 'bad', {
      rules: [
        { matches: [{ path: { value: '/x/../y' } }], backends: [{ service: { name: 'web', port: 80 } }] },
      ],
    }),
  );
  // Runs with the token only (no admin rights anywhere in its kubeconfig).
  // Only its own namespace: other test files share this API server and assert who writes their statuses.
  gw = await startGateway(tokenKubeconfig(kube, token, ns), {
    namespaces: [ns],
    leaseNamespace: ns,
    identity: 'rbac-test',
  });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  for (const name of [`edgegate-${id}`, `edgegate-noslices-${id}`])
    await kube.kubectl(['delete', 'clusterrolebinding,clusterrole', name], { allowFailure: true });
  await kube.kubectl(['delete', 'namespace', ns, other, '--wait=false'], { allowFailure: true });
});

it('works with the ServiceAccount token bound to the RBAC rules', async () => {
  await waitFor(() => gw!.controller.synced, { timeoutMs: 20_000 });
  expect((await get(gw!.proxyAddress.port, 'rbac.example.com')).status).toBe(503); // routed; Service missing
  await waitForCondition(kube, ns, 'web', 'ResolvedRefs', 'False');
  await waitForCondition(kube, ns, 'bad', 'Accepted', 'False');
  // Events were allowed too.
  await waitFor(
    async () =>
      (await kube.request('GET', `/apis/events.k8s.io/v1/namespaces/${ns}/events`))
        .json<{ items: Array<{ reason: string }> }>()
        .items.some((e) => e.reason === 'Invalid'),
    { timeoutMs: 10_000 },
  );
  expect(gw!.kube!.isLeader).toBe(true);
  expect(gw!.kube!.stats().informerErrors).toBe(0); // no 403 on the way
  // Both statuses were written (one write at least each) and none failed, as /metrics counts them. The counter
  // moves when the API server's answer is back, which can be just after the status is visible.
  const prom = await waitFor(
    async () => {
      const p = await scrapeMetrics(`http://127.0.0.1:${gw!.adminAddress.port}`);
      return sumOf(p, 'edgegate_kube_status_writes_total', { result: 'ok' }) >= 2 && p;
    },
    { timeoutMs: 10_000, message: 'two status writes counted' },
  );
  expect(sumOf(prom, 'edgegate_kube_status_writes_total', { result: 'error' })).toBe(0);
});

it('refuses the same token Secrets, other namespaces’ Leases and GatewayRoute spec writes', async () => {
  const as = (method: string, path: string, body?: unknown) =>
    kube.request(method, path, { token, ...(body ? { body } : {}) });
  expect((await as('GET', `/api/v1/namespaces/${ns}/secrets`)).status).toBe(403);
  expect((await as('GET', '/api/v1/secrets')).status).toBe(403);
  expect((await as('GET', `/apis/coordination.k8s.io/v1/namespaces/${other}/leases`)).status).toBe(403);
  const lease = {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: 'steal', namespace: other },
    spec: { holderIdentity: 'x' },
  };
  expect((await as('POST', `/apis/coordination.k8s.io/v1/namespaces/${other}/leases`, lease)).status).toBe(
    403,
  );
  const denied = await kube.kubectl(['delete', 'gr', 'web', '-n', ns], { token, allowFailure: true });
  expect(denied.code).not.toBe(0);
  expect(denied.stderr).toContain('forbidden');
  // …while its own namespace's Lease is allowed.
  expect(
    (await as('GET', `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/edgegate-controller`)).status,
  ).toBe(200);
});

it('never publishes a table while an informer is forbidden (no EndpointSlice rights)', async () => {
  // Its own ServiceAccount and Lease namespace (`other`), the same routes to watch in `ns`.
  const noSlicesToken = await kube.createServiceAccountToken(other, 'edgegate-noslices');
  await apply(
    kube,
    controllerRbac(
      { name: 'edgegate-noslices', namespace: other },
      `edgegate-noslices-${id}`,
      WATCH_RULES.filter((r) => !r.resources.includes('endpointslices')),
    ),
  );
  const blind = await startGateway(tokenKubeconfig(kube, noSlicesToken, other), {
    namespaces: [ns],
    leaseNamespace: other,
    identity: 'rbac-noslices',
  });
  try {
    // Two refused EndpointSlice lists (a restart after the first) while the other informers synced: by then a
    // gateway that published on a partial sync would have done so.
    await waitFor(
      () => {
        const st = blind.kube!.stats();
        return (
          st.informersSynced.gatewayroutes && st.informersSynced.services && Number(st.informerErrors) >= 2
        );
      },
      { timeoutMs: 30_000, message: 'routes and services synced, EndpointSlices refused twice' },
    );
    const st = blind.kube!.stats();
    expect(st.informersSynced.endpointslices).toBe(false);
    expect(blind.controller.synced).toBe(false);
    expect(blind.proxy.version).toBe(0);
    const ready = await fetch(`http://127.0.0.1:${blind.adminAddress.port}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toContain('waiting for kube (endpointslices not synced; see the log)');
    // The route the fully-privileged gateway serves is not served here, and no status was written from a
    // half-known cluster.
    expect((await get(blind.proxyAddress.port, 'rbac.example.com')).status).not.toBe(200);
    expect(blind.proxy.version).toBe(0);
    expect(st.status.writes).toBe(0);
  } finally {
    await blind.stop();
  }
});

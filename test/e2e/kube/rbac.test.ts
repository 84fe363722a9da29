// The controller runs with a ServiceAccount token bound to exactly the rules in src/sources/kube/rbac.ts, and
// works (routes served, status written, Lease held); the same token is refused Secrets, other namespaces'
// Leases and GatewayRoute spec writes.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { RunningGateway } from '../../../src/run.ts';
import { LEASE_RULES, WATCH_RULES } from '../../../src/sources/kube/rbac.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { sharedKube } from '../../support/shared.ts';
import { makeTempDir } from '../../support/tmp.ts';
import { waitFor } from '../../support/wait.ts';
import {
  apply,
  ensureNamespace,
  get,
  installCrd,
  rand,
  routeYaml,
  startGateway,
  waitForCondition,
} from './helpers.ts';

const kube = sharedKube();
printLogsOnFailure(() => kubeLogs(kube));
const id = rand();
const ns = `eg-rbac-${id}`;
const other = `eg-rbac-other-${id}`;
let token = '';
let gw: RunningGateway | undefined;

function tokenKubeconfig(t: string): string {
  const path = join(makeTempDir('eg-rbac'), 'kubeconfig');
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'c',
          cluster: {
            server: kube.url,
            'certificate-authority-data': Buffer.from(kube.caPem).toString('base64'),
          },
        },
      ],
      users: [{ name: 'sa', user: { token: t } }],
      contexts: [{ name: 'sa', context: { cluster: 'c', user: 'sa', namespace: ns } }],
      'current-context': 'sa',
    }),
  );
  return path;
}

beforeAll(async () => {
  await installCrd(kube);
  await ensureNamespace(kube, other);
  token = await kube.createServiceAccountToken(ns, 'edgegate');
  const subject = [{ kind: 'ServiceAccount', name: 'edgegate', namespace: ns }];
  const manifests = [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: `edgegate-${id}` },
      rules: WATCH_RULES,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: `edgegate-${id}` },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `edgegate-${id}` },
      subjects: subject,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'edgegate-lease', namespace: ns },
      rules: LEASE_RULES,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'edgegate-lease', namespace: ns },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'edgegate-lease' },
      subjects: subject,
    },
  ];
  await apply(kube, manifests.map((m) => stringify(m)).join('---\n'));
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
  gw = await startGateway(tokenKubeconfig(token), {
    namespaces: [ns],
    leaseNamespace: ns,
    identity: 'rbac-test',
  });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  await kube.kubectl(['delete', 'clusterrolebinding,clusterrole', `edgegate-${id}`], { allowFailure: true });
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

// The generated RBAC rules are enough for --ingress: the gateway runs with a ServiceAccount token bound to exactly
// WATCH_RULES + INGRESS_RULES (a Role in the watched namespace), a ClusterRole with INGRESS_CLASS_RULES and the
// Lease rules — as the chart renders them with kubernetes.watchNamespaces and kubernetes.ingress.enabled — and
// serves an Ingress (a redirect: no upstream needed) and writes its status.loadBalancer.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  INGRESS_CLASS_RULES,
  INGRESS_RULES,
  LEASE_RULES,
  WATCH_RULES,
} from '../../../src/control/sources/kube/rbac.ts';
import type { RunningGateway } from '../../../src/run.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { sharedKube } from '../../support/shared.ts';
import { waitFor } from '../../support/wait.ts';
import { apply, ensureNamespace, get, installCrd, rand, startGateway, tokenKubeconfig } from './helpers.ts';

const kube = sharedKube();
printLogsOnFailure(() => kubeLogs(kube));
const id = rand();
const ns = `eg-ingr-${id}`;
const cls = `eg-ing-rbac-${id}`;
let gw: RunningGateway | undefined;

beforeAll(async () => {
  await installCrd(kube);
  await ensureNamespace(kube, ns);
  const token = await kube.createServiceAccountToken(ns, 'edgegate');
  const subjects = [{ kind: 'ServiceAccount', name: 'edgegate', namespace: ns }];
  const ref = (kind: string, name: string) => ({ apiGroup: 'rbac.authorization.k8s.io', kind, name });
  const rbac = (kind: string, name: string, rules: unknown, namespace?: string) => [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind,
      metadata: { name, ...(namespace ? { namespace } : {}) },
      rules,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: `${kind}Binding`,
      metadata: { name, ...(namespace ? { namespace } : {}) },
      roleRef: ref(kind, name),
      subjects,
    },
  ];
  await apply(
    kube,
    [
      ...rbac('Role', 'edgegate', [...WATCH_RULES, ...INGRESS_RULES], ns),
      ...rbac('Role', 'edgegate-lease', LEASE_RULES, ns),
      ...rbac('ClusterRole', `${cls}-ingressclasses`, INGRESS_CLASS_RULES),
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'IngressClass',
        metadata: { name: cls },
        spec: { controller: 'edgegate.io/ingress-controller' },
      },
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'Ingress',
        metadata: {
          name: 'moved',
          namespace: ns,
          annotations: { 'nginx.ingress.kubernetes.io/permanent-redirect': 'https://new.example.com/' },
        },
        spec: {
          ingressClassName: cls,
          rules: [
            {
              host: 'moved.rbac.test',
              http: {
                paths: [
                  {
                    path: '/',
                    pathType: 'Prefix',
                    backend: { service: { name: 'none', port: { number: 80 } } },
                  },
                ],
              },
            },
          ],
        },
      },
    ]
      .map((o) => stringify(o))
      .join('---\n'),
  );
  gw = await startGateway(tokenKubeconfig(kube, token, ns), {
    namespaces: [ns],
    leaseNamespace: ns,
    identity: 'ingress-rbac-test',
    ingress: { publish: ['192.0.2.9'] },
  });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  await kube.kubectl(['delete', 'clusterrole,clusterrolebinding', `${cls}-ingressclasses`, '--wait=false'], {
    allowFailure: true,
  });
  await kube.kubectl(['delete', 'ingressclass', cls, '--wait=false'], { allowFailure: true });
  await kube.kubectl(['delete', 'namespace', ns, '--wait=false'], { allowFailure: true });
});

it('serves the Ingress and writes its status with exactly the generated rules', async () => {
  const a = await waitFor(
    async () => {
      const r = await get(gw!.proxyAddress.port, 'moved.rbac.test', '/x');
      return r.status === 301 ? r : undefined;
    },
    { timeoutMs: 20_000, message: 'moved.rbac.test redirected' },
  );
  expect(a.headers.location).toBe('https://new.example.com/');
  const lb = await waitFor(
    async () => {
      const r = await kube.request('GET', `/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses/moved`);
      return r.json<{ status?: { loadBalancer?: { ingress?: unknown[] } } }>().status?.loadBalancer?.ingress;
    },
    { timeoutMs: 15_000, message: 'status.loadBalancer written by the ServiceAccount' },
  );
  expect(lb).toEqual([{ ip: '192.0.2.9' }]);
});

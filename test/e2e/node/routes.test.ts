// GatewayRoutes applied with kubectl to a real node: a Consul backend (instances registered in the node's own
// agent, processes on the node) and a Kubernetes Service backend whose endpoints are real pods (the local backend
// image). Traffic from the host through edgegate's pod on the node IP reaches each, the routes are Programmed,
// and deleting a route stops its traffic.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { REPO_ROOT } from '../../support/bins.ts';
import { printLogsOnFailure } from '../../support/logs.ts';
import { sharedNode } from '../../support/node-client.ts';
import type { ManagedProcess } from '../../support/proc.ts';
import { logPathFor } from '../../support/tmp.ts';
import { waitFor } from '../../support/wait.ts';
import {
  chartDefaults,
  httpGet,
  installChart,
  pods,
  rand,
  routeYaml,
  uninstallChart,
  waitForHttp,
  waitForRouteCondition,
  waitRollout,
} from './helpers.ts';

const node = sharedNode();
const defaults = chartDefaults();
const id = rand();
const ns = `eg-routes-${id}`;
const rel = 'edge';
const consulService = `web-${id}`;
const echoes: ManagedProcess[] = [];
let release: () => Promise<void> = async () => {};
printLogsOnFailure(() => [...node.logs(), ...echoes.map((e) => ({ name: e.name, logPath: e.logPath }))], 30);

const ECHO_PORTS = [18181, 18182];

beforeAll(async () => {
  release = await node.lease('routes.test.ts');
  // Ingresses too (issue 19): the chart's IngressClass `edgegate`, status published as the node IP.
  await installChart(node, rel, ns, { kubernetes: { ingress: { enabled: true } } });
  // Two Consul instances: `edgegate echo` processes on the node IP, registered in the node's agent.
  for (const [i, port] of ECHO_PORTS.entries()) {
    echoes.push(
      node.start({
        name: `consul-echo-${i}`,
        command: process.execPath,
        args: [
          `${REPO_ROOT}/cmd/edgegate.ts`,
          'echo',
          '--listen',
          `${node.nodeIp}:${port}`,
          '--name',
          `consul-${i}`,
        ],
        logPath: logPathFor(`node-consul-echo-${i}`),
      }),
    );
    const reg = await fetch(`${node.consulUrl}/v1/agent/service/register`, {
      method: 'PUT',
      body: JSON.stringify({
        ID: `${consulService}-${i}`,
        Name: consulService,
        Address: node.nodeIp,
        Port: port,
      }),
    });
    expect(reg.status).toBe(200);
  }
  // Two backend pods behind a Service.
  await node.kube.kubectl(['apply', '-n', ns, '-f', '-'], {
    input: [
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'backend' },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: 'backend' } },
          template: {
            metadata: { labels: { app: 'backend' } },
            spec: {
              securityContext: { runAsNonRoot: true, runAsUser: 1000 },
              containers: [
                {
                  name: 'backend',
                  image: node.images.backend.ref,
                  imagePullPolicy: 'Never',
                  env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
                  ports: [{ name: 'http', containerPort: 8080 }],
                  readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 },
                  securityContext: {
                    readOnlyRootFilesystem: true,
                    allowPrivilegeEscalation: false,
                    capabilities: { drop: ['ALL'] },
                  },
                },
              ],
            },
          },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'backend' },
        spec: { selector: { app: 'backend' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
      },
    ]
      .map((o) => stringify(o))
      .join('---\n'),
  });
  await node.kube.kubectl(['rollout', 'status', 'deployment/backend', '-n', ns, '--timeout=180s'], {
    timeoutMs: 200_000,
  });
  await waitRollout(node, ns, `${rel}-edgegate`);
}, 30 * 60_000);

afterAll(async () => {
  for (const [i] of ECHO_PORTS.entries())
    await fetch(`${node.consulUrl}/v1/agent/service/deregister/${consulService}-${i}`, {
      method: 'PUT',
    }).catch(() => {});
  await Promise.all(echoes.map((e) => e.stop()));
  await uninstallChart(node, rel, ns);
  await release();
}, 300_000);

/** Names the backends answered with over `n` requests through the node IP. */
async function namesSeen(host: string, n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = await httpGet(node.nodeIp, defaults.hostPorts.http, `/probe-${i}`, { host });
    expect(r.status, r.body).toBe(200);
    seen.add((JSON.parse(r.body) as { name: string }).name);
  }
  return seen;
}

describe('GatewayRoutes on a real node', () => {
  it('routes to a Consul service of the node agent and to a Service backed by pods; both Programmed', async () => {
    await node.kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: [
        routeYaml(ns, 'to-consul', {
          hostnames: ['consul.example.test'],
          rules: [{ backends: [{ consul: { service: consulService, datacenter: 'dc1' } }] }],
        }),
        routeYaml(ns, 'to-pods', {
          hostnames: ['pods.example.test'],
          rules: [{ backends: [{ service: { name: 'backend', port: 80 } }] }],
        }),
      ].join('---\n'),
    });
    for (const name of ['to-consul', 'to-pods']) {
      const programmed = await waitForRouteCondition(node, ns, name, 'Programmed');
      expect(programmed.status).toBe('True');
    }
    await waitForHttp(node.nodeIp, defaults.hostPorts.http, '/', { host: 'consul.example.test' });
    expect(await namesSeen('consul.example.test', 12)).toEqual(new Set(['consul-0', 'consul-1']));

    const podNames = new Set((await pods(node, ns, 'app=backend')).map((p) => p.metadata.name));
    expect(podNames.size).toBe(2);
    await waitForHttp(node.nodeIp, defaults.hostPorts.http, '/', { host: 'pods.example.test' });
    await waitFor(async () => (await namesSeen('pods.example.test', 8)).size === 2, {
      timeoutMs: 20_000,
      message: 'both backend pods to answer',
    });
    expect(await namesSeen('pods.example.test', 12)).toEqual(podNames);
    // What the backend pod saw: the path, and the client's Host passed through.
    const r = await httpGet(node.nodeIp, defaults.hostPorts.http, '/some/path', {
      host: 'pods.example.test',
    });
    expect(JSON.parse(r.body)).toMatchObject({ path: '/some/path', host: 'pods.example.test' });
  }, 180_000);

  it('an Ingress of the chart’s IngressClass is served through the node IP, its status published by the leader', async () => {
    await node.kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: stringify({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'Ingress',
        metadata: {
          name: 'web-ingress',
          annotations: { 'nginx.ingress.kubernetes.io/upstream-vhost': 'internal.example' },
        },
        spec: {
          ingressClassName: 'edgegate',
          rules: [
            {
              host: 'ingress.example.test',
              http: {
                paths: [
                  {
                    path: '/',
                    pathType: 'Prefix',
                    backend: { service: { name: 'backend', port: { number: 80 } } },
                  },
                ],
              },
            },
          ],
        },
      }),
    });
    const r = await waitForHttp(node.nodeIp, defaults.hostPorts.http, '/cart', {
      host: 'ingress.example.test',
    });
    const body = JSON.parse(r.body) as { name: string; path: string; host: string };
    const podNames = new Set((await pods(node, ns, 'app=backend')).map((p) => p.metadata.name));
    expect(podNames.has(body.name)).toBe(true);
    expect(body.path).toBe('/cart');
    // upstream-vhost: the backend pod sees the Host the annotation names.
    expect(body.host).toBe('internal.example');
    const published = await waitFor(
      async () => {
        const out = await node.kube.kubectl(['get', 'ingress', 'web-ingress', '-n', ns, '-o', 'json']);
        const ing = JSON.parse(out.stdout) as { status?: { loadBalancer?: { ingress?: { ip?: string }[] } } };
        const ips = (ing.status?.loadBalancer?.ingress ?? []).map((i) => i.ip);
        return ips.length > 0 && ips;
      },
      { timeoutMs: 30_000, message: 'status.loadBalancer.ingress of web-ingress' },
    );
    expect(published).toEqual([node.nodeIp]);
  }, 180_000);

  it('deleting a route stops its traffic; the other route keeps serving', async () => {
    await node.kube.kubectl(['delete', 'gatewayroute', 'to-pods', '-n', ns]);
    const gone = await waitForHttp(node.nodeIp, defaults.hostPorts.http, '/', {
      host: 'pods.example.test',
      status: 404,
      message: 'the deleted route to stop serving',
    });
    expect(JSON.parse(gone.body).error).toBe('EDGEGATE_NO_ROUTE');
    expect(await namesSeen('consul.example.test', 6)).toEqual(new Set(['consul-0', 'consul-1']));
  }, 120_000);
});

/** Shared pieces of the Kubernetes e2e tests: CRD install, routes as YAML, gateway start, HTTP through it. */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { gatewayRouteCrdYaml } from '../../../src/api/crd.ts';
import type { Condition } from '../../../src/api/gateway-route-status.ts';
import type { KubeOptions } from '../../../src/control/start-kube.ts';
import { createLogger } from '../../../src/lib/log.ts';
import { type RunningGateway, runGateway } from '../../../src/run.ts';
import { type KubeClient, waitCrdsEstablished } from '../../support/kube.ts';
import { makeTempDir } from '../../support/tmp.ts';
import { waitFor } from '../../support/wait.ts';

export const rand = () => randomBytes(3).toString('hex');

/** A kubeconfig that authenticates with `token` only (a ServiceAccount's): no admin rights anywhere in it. */
export function tokenKubeconfig(kube: KubeClient, token: string, namespace: string): string {
  const path = join(makeTempDir('eg-token'), 'kubeconfig');
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
      users: [{ name: 'sa', user: { token } }],
      contexts: [{ name: 'sa', context: { cluster: 'c', user: 'sa', namespace } }],
      'current-context': 'sa',
    }),
  );
  return path;
}

export async function installCrd(kube: KubeClient): Promise<void> {
  await kube.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], {
    input: gatewayRouteCrdYaml(),
  });
  await waitCrdsEstablished(kube, ['gatewayroutes.edgegate.io']);
}

export async function ensureNamespace(kube: KubeClient, ns: string): Promise<void> {
  const r = await kube.kubectl(['create', 'namespace', ns], { allowFailure: true });
  if (r.code !== 0 && !r.stderr.includes('AlreadyExists')) throw new Error(r.stderr);
}

export function routeYaml(ns: string, name: string, spec: Record<string, unknown>): string {
  return stringify({
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name, namespace: ns },
    spec,
  });
}

export async function apply(kube: KubeClient, yaml: string, token?: string) {
  return kube.kubectl(['apply', '-f', '-'], { input: yaml, ...(token ? { token } : {}) });
}

/** A catalog file with one Consul service `echo` in dc1 (the standalone catalog, next to --kube). */
export function catalogFile(port: number): string {
  const dir = makeTempDir('eg-kube-catalog');
  const path = join(dir, 'catalog.yaml');
  writeFileSync(
    path,
    stringify({ datacenters: { dc1: { services: { echo: [{ address: '127.0.0.1', port }] } } } }),
  );
  return path;
}

export async function startGateway(
  kubeconfig: string,
  kube: KubeOptions,
  catalog?: string,
): Promise<RunningGateway> {
  return runGateway({
    listen: '127.0.0.1:0',
    admin: '127.0.0.1:0',
    logLevel: 'warn',
    logger: createLogger(process.env.EDGEGATE_TEST_LOG_LEVEL ?? 'warn'),
    ...(catalog ? { catalog } : {}),
    // In this process: the test code's own pauses must not count as gateway overload (vitest.config.ts).
    policy: { overloadDelayMs: 0 },
    kube: { kubeconfig, retryPeriodMs: 500, renewDeadlineMs: 3000, leaseDurationMs: 4000, ...kube },
  });
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function get(port: number, host: string, path = '/'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

export interface RouteObject {
  metadata: {
    generation: number;
    resourceVersion: string;
    managedFields?: Array<{ manager: string; subresource?: string; operation: string; time?: string }>;
  };
  status?: { observedGeneration?: number; conditions?: Condition[]; backends?: unknown[] };
}

export async function getRoute(kube: KubeClient, ns: string, name: string): Promise<RouteObject | undefined> {
  const r = await kube.request('GET', `/apis/edgegate.io/v1alpha1/namespaces/${ns}/gatewayroutes/${name}`);
  return r.status === 200 ? r.json<RouteObject>() : undefined;
}

export function condition(obj: RouteObject | undefined, type: string): Condition | undefined {
  return obj?.status?.conditions?.find((c) => c.type === type);
}

/** Waits until the route's condition has `status` for its current generation; returns the condition. */
export async function waitForCondition(
  kube: KubeClient,
  ns: string,
  name: string,
  type: string,
  status: 'True' | 'False' | 'Unknown',
  timeoutMs = 15_000,
): Promise<Condition> {
  return waitFor(
    async () => {
      const obj = await getRoute(kube, ns, name);
      const c = condition(obj, type);
      return c && c.status === status && c.observedGeneration === obj?.metadata.generation ? c : undefined;
    },
    { timeoutMs, message: `${ns}/${name} ${type}=${status}` },
  );
}

export function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)]!;
}

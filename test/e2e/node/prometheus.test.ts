// A real Prometheus finds the gateway pod through Kubernetes service discovery (kubernetes_sd_configs, role pod)
// and the chart's prometheus.io/* pod annotations, with the relabelling of Prometheus' own example configuration,
// and scrapes it: the request, pool and upstream metrics of traffic sent through the node IP are queryable,
// labelled with the pod and the node, the way the chart's users scrape it. Prometheus is the pinned upstream one
// scripts/test-deps.sh builds (Debian's leaves the Kubernetes discovery out); it runs on the node (it scrapes pod
// IPs, as an in-cluster Prometheus does) and is queried from the host through the node IP.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { binPath, REPO_ROOT } from '../../support/bins.ts';
import { printLogsOnFailure } from '../../support/logs.ts';
import { sharedNode } from '../../support/node-client.ts';
import type { ManagedProcess } from '../../support/proc.ts';
import { logPathFor, makeTempDir, removeDir } from '../../support/tmp.ts';
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
const ns = `eg-prom-${id}`;
const rel = 'edge';
const service = `metered-${id}`;
const host = 'metrics.example.test';
const ECHO_PORTS = [18481, 18482];
const PROMETHEUS_PORT = 19090;
const REQUESTS = 40;
const procs: ManagedProcess[] = [];
let release: () => Promise<void> = async () => {};
printLogsOnFailure(() => [...node.logs(), ...procs.map((p) => ({ name: p.name, logPath: p.logPath }))], 40);

let prometheusDir: string | undefined;
const prometheusUrl = () => `http://${node.nodeIp}:${PROMETHEUS_PORT}`;

beforeAll(async () => {
  release = await node.lease('prometheus.test.ts');
  for (const [i, port] of ECHO_PORTS.entries()) {
    procs.push(
      node.start({
        name: `prom-echo-${i}`,
        command: process.execPath,
        args: [
          `${REPO_ROOT}/cmd/edgegate.ts`,
          'echo',
          '--listen',
          `${node.nodeIp}:${port}`,
          '--name',
          `metered-${i}`,
        ],
        logPath: logPathFor(`node-prom-echo-${i}`),
      }),
    );
    const reg = await fetch(`${node.consulUrl}/v1/agent/service/register`, {
      method: 'PUT',
      body: JSON.stringify({ ID: `${service}-${i}`, Name: service, Address: node.nodeIp, Port: port }),
    });
    expect(reg.status).toBe(200);
  }
  await installChart(node, rel, ns, {});
  await waitRollout(node, ns, `${rel}-edgegate`);

  // Prometheus on the node, with the discovery and relabelling from Prometheus' example configuration for
  // annotated pods (documentation/examples/prometheus-kubernetes.yml, job kubernetes-pods).
  const dir = makeTempDir('node-prometheus');
  prometheusDir = dir;
  writeFileSync(join(dir, 'ca.pem'), node.kube.caPem);
  writeFileSync(join(dir, 'token'), node.kube.adminToken);
  writeFileSync(
    join(dir, 'prometheus.yml'),
    stringify({
      global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
      scrape_configs: [
        {
          job_name: 'kubernetes-pods',
          kubernetes_sd_configs: [
            {
              role: 'pod',
              api_server: node.kube.url,
              tls_config: { ca_file: join(dir, 'ca.pem') },
              authorization: { credentials_file: join(dir, 'token') },
              namespaces: { names: [ns] },
            },
          ],
          relabel_configs: [
            {
              source_labels: ['__meta_kubernetes_pod_annotation_prometheus_io_scrape'],
              action: 'keep',
              regex: 'true',
            },
            {
              source_labels: ['__meta_kubernetes_pod_annotation_prometheus_io_path'],
              action: 'replace',
              target_label: '__metrics_path__',
              regex: '(.+)',
            },
            {
              source_labels: ['__address__', '__meta_kubernetes_pod_annotation_prometheus_io_port'],
              action: 'replace',
              regex: '([^:]+)(?::\\d+)?;(\\d+)',
              replacement: '$1:$2',
              target_label: '__address__',
            },
            { action: 'labelmap', regex: '__meta_kubernetes_pod_label_(.+)' },
            { source_labels: ['__meta_kubernetes_namespace'], action: 'replace', target_label: 'namespace' },
            { source_labels: ['__meta_kubernetes_pod_name'], action: 'replace', target_label: 'pod' },
            { source_labels: ['__meta_kubernetes_pod_node_name'], action: 'replace', target_label: 'node' },
          ],
        },
      ],
    }),
  );
  procs.push(
    node.start({
      name: 'prometheus',
      command: binPath('prometheus'),
      args: [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=${node.nodeIp}:${PROMETHEUS_PORT}`,
        '--log.level=info',
      ],
      logPath: logPathFor('node-prometheus'),
    }),
  );
  await waitFor(async () => (await fetch(`${prometheusUrl()}/-/ready`).catch(() => undefined))?.ok, {
    timeoutMs: 60_000,
    message: 'Prometheus to be ready',
  });
}, 30 * 60_000);

afterAll(async () => {
  for (const [i] of ECHO_PORTS.entries())
    await fetch(`${node.consulUrl}/v1/agent/service/deregister/${service}-${i}`, { method: 'PUT' }).catch(
      () => {},
    );
  await Promise.all(procs.map((p) => p.stop()));
  if (prometheusDir) removeDir(prometheusDir);
  await uninstallChart(node, rel, ns);
  await release();
}, 300_000);

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(promql: string): Promise<Sample[]> {
  const res = await fetch(`${prometheusUrl()}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.json()) as { status: string; data?: { result: Sample[] }; error?: string };
  if (body.status !== 'success') throw new Error(`${promql}: ${body.error}`);
  return body.data!.result;
}

describe('Prometheus scrapes the gateway pod found by Kubernetes service discovery', () => {
  it('the pod is an up target at its admin port, labelled with pod and node', async () => {
    const [pod] = await pods(node, ns, `app.kubernetes.io/instance=${rel}`);
    const up = await waitFor(
      async () => {
        const r = await query(`up{job="kubernetes-pods", namespace="${ns}"}`);
        return r.length > 0 && r.every((s) => s.value[1] === '1') ? r : undefined;
      },
      { timeoutMs: 60_000, message: 'the gateway pod to be an up target' },
    );
    expect(up).toHaveLength(1);
    expect(up[0]!.metric).toMatchObject({
      instance: `${pod!.status.podIP}:${defaults.ports.admin}`,
      pod: pod!.metadata.name,
      node: node.name,
      app_kubernetes_io_instance: rel,
    });
  }, 120_000);

  it('the request, pool and upstream metrics of traffic through the node IP are queryable', async () => {
    await node.kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: routeYaml(ns, 'metered', {
        hostnames: [host],
        rules: [{ backends: [{ consul: { service, datacenter: 'dc1' } }] }],
      }),
    });
    await waitForRouteCondition(node, ns, 'metered', 'Programmed');
    await waitForHttp(node.nodeIp, defaults.hostPorts.http, '/', { host });
    // The route's series are scraped once before the traffic, so that rates over it have a start.
    await waitFor(
      async () => (await query(`edgegate_request_duration_seconds_count{namespace="${ns}"}`)).length > 0,
      {
        timeoutMs: 30_000,
        message: "the route's request series in Prometheus",
      },
    );
    for (let i = 0; i < REQUESTS; i++)
      expect((await httpGet(node.nodeIp, defaults.hostPorts.http, `/m/${i}`, { host })).status).toBe(200);

    // Requests by route and service, as answered (2xx): at least the ones sent here (waitForHttp's come on top).
    const requests = await waitFor(
      async () => {
        const r = await query(
          `sum(edgegate_requests_total{namespace="${ns}", service="${service}", code="2xx"})`,
        );
        return r.length === 1 && Number(r[0]!.value[1]) >= REQUESTS ? r : undefined;
      },
      { timeoutMs: 60_000, message: 'the requests to show in edgegate_requests_total' },
    );
    expect(Number(requests[0]!.value[1])).toBeGreaterThanOrEqual(REQUESTS);
    const byRoute = await query(
      `sum by (route) (edgegate_requests_total{namespace="${ns}", service="${service}"})`,
    );
    expect(byRoute.map((s) => s.metric.route)).toEqual([expect.stringContaining('metered')]);

    // The upstream pool of the Consul service: both instances healthy, connections opened to them.
    const endpoints = await waitFor(
      async () => {
        const r = await query(
          `edgegate_upstream_endpoints{namespace="${ns}", service="${service}", datacenter="dc1", state="healthy"}`,
        );
        return r.length === 1 && r[0]!.value[1] === '2' ? r : undefined;
      },
      { timeoutMs: 60_000, message: 'two healthy upstream endpoints' },
    );
    expect(endpoints[0]!.metric.node).toBe(node.name);
    const opened = await query(
      `sum(edgegate_upstream_connections_opened_total{namespace="${ns}", service="${service}"})`,
    );
    expect(Number(opened[0]?.value[1] ?? 0)).toBeGreaterThanOrEqual(1);
    const connected = await query(
      `edgegate_upstream_pool_connected{namespace="${ns}", service="${service}"}`,
    );
    expect(connected.length).toBeGreaterThanOrEqual(1);
    // Latency as users graph it: a quantile over the scraped histogram (a rate needs two scrapes of it).
    const p99 = await waitFor(
      async () => {
        const r = await query(
          `histogram_quantile(0.99, sum by (le) (rate(edgegate_request_duration_seconds_bucket{namespace="${ns}"}[1m])))`,
        );
        return r.length === 1 && Number.isFinite(Number(r[0]!.value[1])) ? r : undefined;
      },
      { timeoutMs: 30_000, message: 'a p99 request duration from the scraped histogram' },
    );
    expect(Number(p99[0]!.value[1])).toBeGreaterThan(0);
  }, 180_000);
});

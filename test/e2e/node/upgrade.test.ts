// Upgrades lose nothing: `helm upgrade` to a new image tag and to changed values on a real node, under constant
// load from the host to the node IP, with zero failed requests. The gateway runs in the node's network namespace
// (hostNetwork, as at the edge); the chart's default update strategy there (maxSurge 1, maxUnavailable 0) starts
// the new pod next to the old one: both listen on the same ports (SO_REUSEPORT) while the old one drains. The
// same upgrade with the strategy that replaces the pod in place (maxSurge 0) loses requests: the test can fail.
// The node has net.ipv4.tcp_migrate_req=1, as docs/install-kubernetes.md tells edge nodes to set: connections queued
// on the old pod's listener when it closes move to the new pod's instead of being reset.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../support/bins.ts';
import { printLogsOnFailure } from '../../support/logs.ts';
import { sharedNode } from '../../support/node-client.ts';
import type { ManagedProcess } from '../../support/proc.ts';
import { logPathFor } from '../../support/tmp.ts';
import { waitFor } from '../../support/wait.ts';
import {
  chartDefaults,
  installChart,
  pods,
  rand,
  routeYaml,
  steadyLoad,
  summarizeFailures,
  uninstallChart,
  waitForHttp,
  waitRollout,
  watchPods,
} from './helpers.ts';

const node = sharedNode();
const defaults = chartDefaults();
const id = rand();
const ns = `eg-upgrade-${id}`;
const rel = 'edge';
const ds = `${rel}-edgegate`;
const selector = `app.kubernetes.io/instance=${rel}`;
const service = `up-${id}`;
const host = 'upgrade.example.test';
const ECHO_PORT = 18281;
let echo: ManagedProcess | undefined;
let release: () => Promise<void> = async () => {};
printLogsOnFailure(() => [...node.logs(), ...(echo ? [{ name: echo.name, logPath: echo.logPath }] : [])], 30);

// The edge variant: the gateway in the node's network namespace, on the node's port 80 itself.
const edgeValues = { hostNetwork: true };
const port = defaults.hostPorts.http;

beforeAll(async () => {
  release = await node.lease('upgrade.test.ts');
  echo = node.start({
    name: 'upgrade-echo',
    command: process.execPath,
    args: [
      `${REPO_ROOT}/cmd/edgegate.ts`,
      'echo',
      '--listen',
      `${node.nodeIp}:${ECHO_PORT}`,
      '--name',
      'upgrade-echo',
    ],
    logPath: logPathFor('node-upgrade-echo'),
  });
  const reg = await fetch(`${node.consulUrl}/v1/agent/service/register`, {
    method: 'PUT',
    body: JSON.stringify({ ID: service, Name: service, Address: node.nodeIp, Port: ECHO_PORT }),
  });
  expect(reg.status).toBe(200);
  await installChart(node, rel, ns, edgeValues);
  await waitRollout(node, ns, ds);
  await node.kube.kubectl(['apply', '-n', ns, '-f', '-'], {
    input: routeYaml(ns, 'upgrade', {
      hostnames: [host],
      rules: [{ backends: [{ consul: { service, datacenter: 'dc1' } }] }],
    }),
  });
  await waitForHttp(node.nodeIp, port, '/', { host });
}, 30 * 60_000);

afterAll(async () => {
  await fetch(`${node.consulUrl}/v1/agent/service/deregister/${service}`, { method: 'PUT' }).catch(() => {});
  await echo?.stop();
  await uninstallChart(node, rel, ns);
  await release();
}, 300_000);

/** `helm upgrade` under load; returns the load's result and what the pod watcher saw. */
async function upgradeUnderLoad(values: Record<string, unknown>, image: 'gateway' | 'gatewayNextTag') {
  const before = (await pods(node, ns, selector)).map((p) => p.metadata.uid);
  const watcher = watchPods(node, ns, selector);
  const load = steadyLoad({ address: node.nodeIp, port, host });
  await waitFor(() => load.answered() >= 20, { message: 'the load to be running' });
  await installChart(node, rel, ns, values, { image });
  await waitRollout(node, ns, ds, 240);
  // The old pod is gone (not only replaced in the DaemonSet's status), and the load ran past its drain.
  await waitFor(async () => (await pods(node, ns, selector)).every((p) => !before.includes(p.metadata.uid)), {
    timeoutMs: 120_000,
    message: 'the old gateway pod to be gone',
  });
  const after = load.answered();
  await waitFor(() => load.answered() >= after + 40, { message: 'more load after the old pod left' });
  const result = await load.stop();
  const seen = await watcher.stop();
  console.info(
    `[upgrade] ${result.sent} requests in ${result.durationMs} ms, ${result.ok} ok, ${result.failures.length} failed; ` +
      `at most ${seen.maxReady} gateway pods Ready at once`,
  );
  const now = await pods(node, ns, selector);
  return { result, seen, now, before };
}

describe('helm upgrade on a real node loses nothing', () => {
  it('renders the surge strategy by default for the node-network gateway', async () => {
    const r = await node.kube.kubectl([
      'get',
      'daemonset',
      ds,
      '-n',
      ns,
      '-o',
      'jsonpath={.spec.updateStrategy}',
    ]);
    expect(JSON.parse(r.stdout)).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
    });
  });

  it('a new image tag: zero failed requests, the new pod overlapping the old one', async () => {
    const { result, seen, now } = await upgradeUnderLoad(edgeValues, 'gatewayNextTag');
    expect(summarizeFailures(result.failures)).toEqual([]);
    expect(result.ok).toBe(result.sent);
    expect(result.sent).toBeGreaterThan(200);
    expect(now.map((p) => p.spec.containers[0]!.image)).toEqual([node.images.gatewayNextTag.ref]);
    // maxSurge 1 at work: two gateway pods Ready at once on the one node.
    expect(seen.maxReady).toBe(2);
  }, 600_000);

  it('changed values: zero failed requests', async () => {
    const { result, seen, now } = await upgradeUnderLoad(
      { ...edgeValues, logLevel: 'debug', drain: { preStopSleepSeconds: 3 } },
      'gatewayNextTag',
    );
    expect(summarizeFailures(result.failures)).toEqual([]);
    expect(result.sent).toBeGreaterThan(200);
    expect(seen.maxReady).toBe(2);
    const env = await node.kube.kubectl([
      'get',
      'pod',
      now[0]!.metadata.name,
      '-n',
      ns,
      '-o',
      'jsonpath={.spec.containers[0].env[?(@.name=="EDGEGATE_LOG_LEVEL")].value}',
    ]);
    expect(env.stdout).toBe('debug');
  }, 600_000);

  it('the same upgrade replacing the pod in place (maxSurge 0, maxUnavailable 1) fails requests', async () => {
    const { result, seen } = await upgradeUnderLoad(
      { ...edgeValues, updateStrategy: { maxSurge: 0, maxUnavailable: 1 } },
      'gateway',
    );
    expect(seen.maxReady).toBe(1);
    expect(result.failures.length).toBeGreaterThan(0);
    expect(result.failures.some((f) => /ECONNREFUSED/.test(f.what))).toBe(true);
  }, 600_000);
});

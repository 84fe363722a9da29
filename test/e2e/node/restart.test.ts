// A node restart with the API server down: the node's container runtime loses power (containerd, every shim and
// every container SIGKILLed at once) while kube-apiserver is stopped, and comes back. The kubelet keeps the pods it
// was given before the outage (as every kubelet does while its API server is away), recreates the gateway's sandbox
// and container, and the new gateway process, which cannot reach the API server, serves the last-known-good table
// from its state directory: the route (a GatewayRoute only the API server knows) still answers through the node IP.
//
// What this does not cover: a kubelet that itself starts while the API server is down runs no API pods at all
// (Kubernetes keeps no pod checkpoint outside static pods); see docs/install-kubernetes.md.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../support/bins.ts';
import { printLogsOnFailure } from '../../support/logs.ts';
import { sharedNode } from '../../support/node-client.ts';
import type { ManagedProcess } from '../../support/proc.ts';
import { logPathFor } from '../../support/tmp.ts';
import { waitFor } from '../../support/wait.ts';
import {
  chartDefaults,
  gatewayProcesses,
  httpGet,
  installChart,
  isReady,
  pods,
  rand,
  routeYaml,
  uninstallChart,
  waitForHttp,
  waitRollout,
} from './helpers.ts';

const node = sharedNode();
const defaults = chartDefaults();
const id = rand();
const ns = `eg-restart-${id}`;
const rel = 'edge';
const selector = `app.kubernetes.io/instance=${rel}`;
const service = `lkg-${id}`;
const host = 'restart.example.test';
const ECHO_PORT = 18381;
let echo: ManagedProcess | undefined;
let release: () => Promise<void> = async () => {};
let apiserverStopped = false;
printLogsOnFailure(() => [...node.logs(), ...(echo ? [{ name: echo.name, logPath: echo.logPath }] : [])], 40);

beforeAll(async () => {
  release = await node.lease('restart.test.ts');
  echo = node.start({
    name: 'restart-echo',
    command: process.execPath,
    args: [
      `${REPO_ROOT}/cmd/edgegate.ts`,
      'echo',
      '--listen',
      `${node.nodeIp}:${ECHO_PORT}`,
      '--name',
      'lkg-echo',
    ],
    logPath: logPathFor('node-restart-echo'),
  });
  const reg = await fetch(`${node.consulUrl}/v1/agent/service/register`, {
    method: 'PUT',
    body: JSON.stringify({ ID: service, Name: service, Address: node.nodeIp, Port: ECHO_PORT }),
  });
  expect(reg.status).toBe(200);
  await installChart(node, rel, ns, {});
  await waitRollout(node, ns, `${rel}-edgegate`);
}, 30 * 60_000);

afterAll(async () => {
  if (apiserverStopped) await node.startApiServer();
  await fetch(`${node.consulUrl}/v1/agent/service/deregister/${service}`, { method: 'PUT' }).catch(() => {});
  await echo?.stop();
  await uninstallChart(node, rel, ns);
  await release();
}, 300_000);

async function apiserverAnswers(): Promise<boolean> {
  try {
    await node.kube.request('GET', '/readyz');
    return true;
  } catch {
    return false;
  }
}

/** No such process, or only its zombie (orphans of a killed shim wait for the host's init to reap them). */
function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return true;
  }
}

/** The gateway's processes (primary and workers) in the pod's cgroup. */
function gatewayPids(podUid: string): number[] {
  return gatewayProcesses(node, podUid).map((p) => p.pid);
}

describe('node restart with the API server down', () => {
  it('the gateway pod comes back and serves the last-known-good table from its state directory', async () => {
    await node.kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: routeYaml(ns, 'lkg', {
        hostnames: [host],
        rules: [{ backends: [{ consul: { service, datacenter: 'dc1' } }] }],
      }),
    });
    await waitForHttp(node.nodeIp, defaults.hostPorts.http, '/', { host });
    const [pod] = await pods(node, ns, selector);
    // The table with the route is on disk in the state volume.
    const tableFile = join(defaults.state.mountPath, 'table.json');
    await waitFor(
      async () =>
        (
          await node.kube.kubectl(['exec', '-n', ns, pod!.metadata.name, '--', 'cat', tableFile], {
            allowFailure: true,
          })
        ).stdout.includes(host),
      { timeoutMs: 30_000, message: `${tableFile} to hold the route` },
    );
    const before = gatewayPids(pod!.metadata.uid);
    expect(before.length).toBeGreaterThan(0);

    await node.stopApiServer();
    apiserverStopped = true;
    expect(await apiserverAnswers()).toBe(false);
    const { killed } = await node.restartRuntime();
    expect(killed).toBeGreaterThanOrEqual(before.length);
    for (const pid of before) expect(processGone(pid), `gateway process ${pid}`).toBe(true);

    // The kubelet brings the pod back through the new containerd; the new gateway has no API server.
    const answer = await waitForHttp(node.nodeIp, defaults.hostPorts.http, '/after-restart', {
      host,
      timeoutMs: 240_000,
      message: 'the gateway to serve again after the runtime restart',
    });
    expect(JSON.parse(answer.body)).toMatchObject({ name: 'lkg-echo', path: '/after-restart' });
    expect(await apiserverAnswers()).toBe(false);
    const after = gatewayPids(pod!.metadata.uid);
    expect(after.length).toBeGreaterThan(0);
    expect(after.filter((pid) => before.includes(pid))).toEqual([]);
    // The new container says where its table came from (its log file, read on the node: no API server for logs).
    const logDir = join(node.dir, 'pod-logs', `${ns}_${pod!.metadata.name}_${pod!.metadata.uid}`, 'edgegate');
    const logs = existsSync(logDir) ? readdirSync(logDir).sort() : [];
    expect(logs.length).toBeGreaterThanOrEqual(2);
    expect(readFileSync(join(logDir, logs.at(-1)!), 'utf8')).toContain('serving the last-known-good table');
    for (let i = 0; i < 5; i++)
      expect((await httpGet(node.nodeIp, defaults.hostPorts.http, '/', { host })).status).toBe(200);

    // The API server comes back: the pod is reported Ready again and keeps serving.
    await node.startApiServer();
    apiserverStopped = false;
    await waitFor(
      async () =>
        (await pods(node, ns, selector)).some((p) => p.metadata.uid === pod!.metadata.uid && isReady(p)),
      {
        timeoutMs: 120_000,
        message: 'the pod to be Ready again',
      },
    );
    await waitForHttp(node.nodeIp, defaults.hostPorts.http, '/', { host });
  }, 600_000);
});

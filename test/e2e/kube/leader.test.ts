// Two controllers against one API server: every pod serves, exactly one (the Lease holder) writes status.
// Controller A runs as its own process (so it can be SIGKILLed), B in this process (so its counters can be read).
// A second pair with a 60 s lease shows a leader that gets SIGTERM releasing the Lease at the start of its drain,
// so the other takes over long before the lease could have expired.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningGateway } from '../../../src/run.ts';
import { REPO_ROOT } from '../../support/bins.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { freePorts } from '../../support/ports.ts';
import { type ManagedProcess, startProcess } from '../../support/proc.ts';
import { sharedKube } from '../../support/shared.ts';
import { logPathFor } from '../../support/tmp.ts';
import { waitFor } from '../../support/wait.ts';
import {
  apply,
  ensureNamespace,
  get,
  getRoute,
  installCrd,
  rand,
  routeYaml,
  startGateway,
  waitForCondition,
} from './helpers.ts';

const kube = sharedKube();
const ns = `eg-leader-${rand()}`;
const releaseNs = `eg-leader-release-${rand()}`;
const timing = { leaseDurationMs: 4000, renewDeadlineMs: 3000, retryPeriodMs: 500 };
let a: ManagedProcess | undefined;
let b: RunningGateway | undefined;
printLogsOnFailure(() => [...kubeLogs(kube), ...(a ? [{ name: 'edgegate-a', logPath: a.logPath }] : [])]);

async function lease(leaseNs = ns): Promise<{ holderIdentity?: string; renewTime?: string } | undefined> {
  const r = await kube.request(
    'GET',
    `/apis/coordination.k8s.io/v1/namespaces/${leaseNs}/leases/edgegate-controller`,
  );
  return r.status === 200
    ? r.json<{ spec: { holderIdentity?: string; renewTime?: string } }>().spec
    : undefined;
}

async function holder(leaseNs = ns): Promise<string | undefined> {
  return (await lease(leaseNs))?.holderIdentity;
}

async function statusManagers(name: string): Promise<string[]> {
  const obj = await getRoute(kube, ns, name);
  return (obj?.metadata.managedFields ?? [])
    .filter((f) => f.subresource === 'status')
    .map((f) => f.manager)
    .sort();
}

const route = (name: string, svc: string) =>
  routeYaml(ns, name, {
    hostnames: [`${name}.example.com`],
    rules: [{ backends: [{ service: { name: svc, port: 80 } }] }],
  });

beforeAll(async () => {
  await installCrd(kube);
  await ensureNamespace(kube, ns);
  await apply(kube, route('one', 'missing'));
  a = await startController('edgegate-a', 'ctl-a', ns, ['--lease-duration', '4s', '--renew-deadline', '3s']);
  await waitFor(async () => (await holder()) === 'ctl-a', {
    timeoutMs: 30_000,
    diagnostics: () => a!.tail(20),
  });
  b = await startGateway(kube.kubeconfigPath, {
    namespaces: [ns],
    leaseNamespace: ns,
    identity: 'ctl-b',
    ...timing,
  });
  await waitFor(() => b!.controller.synced, { timeoutMs: 15_000 });
}, 120_000);

/** `edgegate run --kube` as its own process on free loopback ports, watching `watchNs` and competing for its Lease. */
async function startController(
  name: string,
  identity: string,
  watchNs: string,
  extra: string[],
): Promise<ManagedProcess> {
  const [listen, admin] = await freePorts(2);
  return startProcess({
    name,
    command: process.execPath,
    args: [
      `${REPO_ROOT}/cmd/edgegate.ts`,
      'run',
      '--kube',
      '--kubeconfig',
      kube.kubeconfigPath,
      '--watch-namespaces',
      watchNs,
      '--lease-namespace',
      watchNs,
      '--retry-period',
      '500ms',
      '--workers',
      '0',
      '--listen',
      `127.0.0.1:${listen}`,
      '--admin',
      `127.0.0.1:${admin}`,
      ...extra,
    ],
    env: { ...process.env, POD_NAME: identity },
    logPath: logPathFor(name),
  });
}

afterAll(async () => {
  await a?.kill();
  await b?.stop();
  for (const n of [ns, releaseNs])
    await kube.kubectl(['delete', 'namespace', n, '--wait=false'], { allowFailure: true });
});

it('only the leader writes status; after the leader is killed the other takes over within the lease duration', async () => {
  // Both serve: B routes the host (503: the Service is missing) although it does not lead.
  expect((await get(b!.proxyAddress.port, 'one.example.com')).status).toBe(503);
  await waitForCondition(kube, ns, 'one', 'ResolvedRefs', 'False');
  // Status changes while A leads: a second route, and the first one fixed.
  await apply(kube, route('two', 'missing-too'));
  await waitForCondition(kube, ns, 'two', 'ResolvedRefs', 'False');
  await kube.kubectl(['create', 'service', 'clusterip', 'missing', '--tcp=80:8080', '-n', ns]);
  await waitForCondition(kube, ns, 'one', 'ResolvedRefs', 'True');
  expect(await statusManagers('one')).toEqual(['edgegate-ctl-a']);
  expect(await statusManagers('two')).toEqual(['edgegate-ctl-a']);
  expect(b!.kube!.isLeader).toBe(false);
  expect(b!.kube!.stats().status.writes).toBe(0);
  const rvBefore = (await getRoute(kube, ns, 'two'))!.metadata.resourceVersion;

  const killed = performance.now();
  await a!.kill();
  const lastRenew = Date.parse((await lease())!.renewTime!);
  await waitFor(() => b!.kube!.isLeader, { timeoutMs: 20_000 });
  const takeover = performance.now() - killed;
  const sinceRenew = Date.now() - lastRenew;
  console.log(
    `leader SIGKILLed: the other controller took over ${takeover.toFixed(0)} ms after the kill, ${sinceRenew} ms after the dead leader's last renewal (lease duration ${timing.leaseDurationMs} ms, retry period ${timing.retryPeriodMs} ms)`,
  );
  // The lease duration counts from when B saw the last renewal (its own clock, up to one jittered retry late),
  // and B notices expiry at its next retry: a generous bound on top of that for a loaded machine.
  expect(sinceRenew).toBeGreaterThanOrEqual(timing.leaseDurationMs - 100);
  expect(sinceRenew).toBeLessThan(timing.leaseDurationMs + 4 * timing.retryPeriodMs);
  expect(await holder()).toBe('ctl-b');

  // The new leader writes what changed while nobody led.
  await kube.kubectl(['create', 'service', 'clusterip', 'missing-too', '--tcp=80:8080', '-n', ns]);
  await waitForCondition(kube, ns, 'two', 'ResolvedRefs', 'True');
  expect((await getRoute(kube, ns, 'two'))!.metadata.resourceVersion).not.toBe(rvBefore);
  expect(await statusManagers('two')).toEqual(['edgegate-ctl-a', 'edgegate-ctl-b']);
  expect(b!.kube!.stats().status.writes).toBeGreaterThan(0);
}, 120_000);

it('a leader that gets SIGTERM releases the Lease as its drain starts, and the other takes over at once', async () => {
  await ensureNamespace(kube, releaseNs);
  // A 60 s lease and a 20 s drain delay: only a release lets the other lead within the 20 s waited below.
  const leader = await startController('edgegate-release', 'ctl-r1', releaseNs, [
    '--lease-duration',
    '60s',
    '--renew-deadline',
    '40s',
    '--drain-delay',
    '20s',
  ]);
  let candidate: RunningGateway | undefined;
  try {
    await waitFor(async () => (await holder(releaseNs)) === 'ctl-r1', {
      timeoutMs: 30_000,
      diagnostics: () => leader.tail(20),
    });
    candidate = await startGateway(kube.kubeconfigPath, {
      namespaces: [releaseNs],
      leaseNamespace: releaseNs,
      identity: 'ctl-r2',
      leaseDurationMs: 60_000,
      renewDeadlineMs: 40_000,
    });
    await waitFor(() => candidate!.controller.synced, { timeoutMs: 15_000 });
    expect(candidate.kube!.isLeader).toBe(false);
    process.kill(leader.pid, 'SIGTERM');
    await waitFor(() => candidate!.kube!.isLeader, {
      timeoutMs: 20_000,
      message: 'the candidate leads after the SIGTERMed leader released the Lease',
      diagnostics: () => leader.tail(20),
    });
    expect(await holder(releaseNs)).toBe('ctl-r2');
    // The old leader is still draining (20 s delay) while the other already leads.
    expect(leader.running()).toBe(true);
  } finally {
    await candidate?.stop();
    await leader.kill();
  }
}, 120_000);

// A Kubernetes Service backend resolved through EndpointSlices the test writes (no kubelet here). The API
// server refuses loopback endpoint addresses, so the upstreams run in a network namespace this test creates
// (veth pair, a TEST-NET /24 the host does not use): traffic stays inside that pair. Removing an endpoint from
// the slice takes it out of rotation.
//
// The range is chosen, not fixed: on the machine this was written on, eth0 itself is 192.0.2.2/24 with the
// default gateway at 192.0.2.1 — putting 192.0.2.1 on a veth would have cut the host off its gateway.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { RunningGateway } from '../../../src/run.ts';
import { REPO_ROOT } from '../../support/bins.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { type ManagedProcess, startProcess } from '../../support/proc.ts';
import { sharedKube } from '../../support/shared.ts';
import { logPathFor } from '../../support/tmp.ts';
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
const id = rand();
const netns = `eg-test-${id}`;
const hostIf = `egh-${id}`;
const nsIf = `egn-${id}`;
const ns = `eg-eps-${id}`;
const UPSTREAM_PORT = 18080;
const echoes: ManagedProcess[] = [];
let gw: RunningGateway | undefined;
printLogsOnFailure(() => [...kubeLogs(kube), ...echoes.map((e) => ({ name: e.name, logPath: e.logPath }))]);

function ip(...args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT')
      throw new Error('this test needs iproute2 (`ip`): apt-get install -y iproute2 (and root for ip netns)');
    throw new Error(`ip ${args.join(' ')} failed: ${e.stderr ?? e.message}`);
  }
}

/** Network namespaces and host-side veths left behind by an earlier run that was killed. */
function cleanStale(): void {
  for (const line of ip('netns', 'list').split('\n')) {
    const name = line.split(' ')[0];
    if (name?.startsWith('eg-test-')) ip('netns', 'delete', name);
  }
  for (const line of ip('-o', 'link', 'show').split('\n')) {
    const m = /^\d+: (egh-[0-9a-f]+)[@:]/.exec(line);
    if (m) ip('link', 'delete', m[1]!);
  }
}

/** The first documentation range (RFC 5737) that no host address or route overlaps. */
function freeTestNet(): string {
  const used = ip('-o', 'addr', 'show') + ip('route', 'show', 'table', 'all');
  for (const prefix of ['198.51.100', '203.0.113', '192.0.2'])
    if (!used.includes(`${prefix}.`)) return prefix;
  throw new Error(
    'every RFC 5737 TEST-NET range is in use on this host; cannot create an isolated veth pair',
  );
}

let net = '';
const addr = (n: number) => `${net}.${n}`;

const slice = (addresses: Array<{ ip: string; ready: boolean }>) =>
  stringify({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'web-1', namespace: ns, labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: UPSTREAM_PORT, protocol: 'TCP' }],
    endpoints: addresses.map((a) => ({ addresses: [a.ip], conditions: { ready: a.ready } })),
  });

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('this test creates a network namespace: run it as root');
  cleanStale();
  net = freeTestNet();
  ip('netns', 'add', netns);
  ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
  ip('link', 'set', nsIf, 'netns', netns);
  ip('addr', 'add', `${addr(1)}/24`, 'dev', hostIf);
  ip('link', 'set', hostIf, 'up');
  ip('netns', 'exec', netns, 'ip', 'addr', 'add', `${addr(2)}/24`, 'dev', nsIf);
  ip('netns', 'exec', netns, 'ip', 'addr', 'add', `${addr(3)}/24`, 'dev', nsIf);
  ip('netns', 'exec', netns, 'ip', 'link', 'set', nsIf, 'up');
  ip('netns', 'exec', netns, 'ip', 'link', 'set', 'lo', 'up');
  for (const [name, address] of [
    ['a', addr(2)],
    ['b', addr(3)],
  ] as const) {
    echoes.push(
      startProcess({
        name: `echo-${name}`,
        command: 'ip',
        args: [
          'netns',
          'exec',
          netns,
          process.execPath,
          `${REPO_ROOT}/cmd/edgegate.ts`,
          'echo',
          '--listen',
          `${address}:${UPSTREAM_PORT}`,
          '--name',
          name,
        ],
        logPath: logPathFor(`echo-${name}`),
      }),
    );
  }
  for (const address of [addr(2), addr(3)])
    await waitFor(
      async () => {
        try {
          const r = await fetch(`http://${address}:${UPSTREAM_PORT}/`);
          return r.status === 200;
        } catch {
          return false;
        }
      },
      { timeoutMs: 20_000, message: `echo on ${address} reachable over the veth pair` },
    );

  await installCrd(kube);
  await ensureNamespace(kube, ns);
  await apply(
    kube,
    stringify({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: ns },
      spec: { ports: [{ name: 'http', port: 80, targetPort: UPSTREAM_PORT }] },
    }),
  );
  await apply(
    kube,
    slice([
      { ip: addr(2), ready: true },
      { ip: addr(3), ready: true },
    ]),
  );
  await apply(
    kube,
    routeYaml(ns, 'web', {
      hostnames: ['web.example.com'],
      rules: [
        {
          matches: [{ path: { value: '/by-name' } }],
          backends: [{ service: { name: 'web', port: 'http' } }],
        },
        { backends: [{ service: { name: 'web', port: 80 } }] },
      ],
    }),
  );
  gw = await startGateway(kube.kubeconfigPath, {
    namespaces: [ns],
    leaseNamespace: ns,
    identity: 'eps-test',
  });
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  for (const e of echoes) await e.stop().catch(() => e.kill());
  try {
    ip('netns', 'delete', netns); // takes the veth pair with it
  } catch {}
  await kube.kubectl(['delete', 'namespace', ns, '--wait=false'], { allowFailure: true });
});

async function names(path: string, n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const a = await get(gw!.proxyAddress.port, 'web.example.com', path);
    expect(a.status).toBe(200);
    seen.add(JSON.parse(a.body).name);
  }
  return seen;
}

it('routes to the ready endpoints of a Service by port number and by name; removing one takes it out', async () => {
  await waitFor(async () => (await get(gw!.proxyAddress.port, 'web.example.com')).status === 200, {
    timeoutMs: 20_000,
  });
  expect(await names('/', 10)).toEqual(new Set(['a', 'b']));
  expect(await names('/by-name', 10)).toEqual(new Set(['a', 'b']));
  const resolved = await waitForCondition(kube, ns, 'web', 'ResolvedRefs', 'True');
  expect(resolved.reason).toBe('ResolvedRefs');
  const status = await kube.kubectl(['get', 'gr', 'web', '-n', ns, '-o', 'jsonpath={.status.backends}']);
  expect(JSON.parse(status.stdout)).toContainEqual({
    ref: `service:${ns}/web:80`,
    healthyEndpoints: { kubernetes: 2 },
  });

  // Not ready: out of rotation.
  await apply(
    kube,
    slice([
      { ip: addr(2), ready: true },
      { ip: addr(3), ready: false },
    ]),
  );
  await waitFor(async () => (await names('/', 6)).size === 1, { timeoutMs: 10_000 });
  expect(await names('/', 10)).toEqual(new Set(['a']));

  // Removed from the slice, the other one back: only b.
  await apply(kube, slice([{ ip: addr(3), ready: true }]));
  await waitFor(async () => [...(await names('/', 6))].join() === 'b', { timeoutMs: 10_000 });
  expect(await names('/by-name', 10)).toEqual(new Set(['b']));
}, 60_000);

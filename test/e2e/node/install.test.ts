// `helm install` of charts/edgegate on a real node (test/support/node.ts), with default values and with the
// hostNetwork variant: the image built from the Dockerfile runs under the kubelet and containerd, becomes Ready
// through its readiness probe (the kubelet's own probe counters say so), runs as the chart says (checked on the
// container's processes from the host: non-root, no capabilities or only NET_BIND_SERVICE, no new privileges, a
// read-only root filesystem), reads the node's Consul agent at status.hostIP, and the commands NOTES.txt prints work.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binPath } from '../../support/bins.ts';
import { printLogsOnFailure } from '../../support/logs.ts';
import { sharedNode } from '../../support/node-client.ts';
import { freePort } from '../../support/ports.ts';
import { type ManagedProcess, runCommand, startProcess } from '../../support/proc.ts';
import { logPathFor } from '../../support/tmp.ts';
import { StopWaiting, waitFor } from '../../support/wait.ts';
import {
  chartDefaults,
  httpGet,
  installChart,
  isReady,
  type Pod,
  gatewayProcesses as podGatewayProcesses,
  pods,
  procStatus,
  rand,
  uninstallChart,
  waitRollout,
} from './helpers.ts';

const node = sharedNode();
const defaults = chartDefaults();
const rel = 'edge';
const ds = `${rel}-edgegate`;
const selector = `app.kubernetes.io/instance=${rel}`;
const forwards: ManagedProcess[] = [];
let release: () => Promise<void> = async () => {};
printLogsOnFailure(
  () => [...node.logs(), ...forwards.map((f) => ({ name: f.name, logPath: f.logPath }))],
  30,
);

beforeAll(async () => {
  release = await node.lease('install.test.ts');
}, 30 * 60_000);
afterAll(async () => {
  await Promise.all(forwards.map((f) => f.stop()));
  await release();
});

/** The NOTES helm printed after install. */
function notesOf(helmOutput: string): string {
  const i = helmOutput.indexOf('NOTES:');
  expect(i, helmOutput).toBeGreaterThanOrEqual(0);
  return helmOutput.slice(i + 'NOTES:'.length);
}

/** The kubelet's probe counter for the gateway container (its /metrics/probes, on the node IP). */
function readinessProbesSucceeded(namespace: string, pod: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `https://${node.nodeIp}:10250/metrics/probes`,
      { rejectUnauthorized: false, timeout: 10_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => {
          let total = 0;
          for (const line of body.split('\n')) {
            if (!line.startsWith('prober_probe_total{')) continue;
            const labels = line.slice(line.indexOf('{') + 1, line.indexOf('}'));
            if (
              labels.includes('container="edgegate"') &&
              labels.includes(`namespace="${namespace}"`) &&
              labels.includes(`pod="${pod}"`) &&
              labels.includes('probe_type="Readiness"') &&
              labels.includes('result="successful"')
            )
              total += Number(line.slice(line.lastIndexOf(' ') + 1));
          }
          resolve(total);
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The gateway's processes in the pod (primary and workers), from the node's cgroups. */
function gatewayProcesses(pod: Pod) {
  const procs = podGatewayProcesses(node, pod.metadata.uid);
  // The primary and at least one worker (the chart's default: one per CPU of the limit).
  expect(procs.filter((p) => p.cmdline.some((a) => a.endsWith('dist/cmd/edgegate.js'))).length).toBe(1);
  expect(procs.length, 'gateway processes in the pod cgroup').toBeGreaterThan(1);
  return procs;
}

function environ(pid: number): Map<string, string> {
  return new Map(
    readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as [string, string]),
  );
}

/** Checks shared by both variants: Ready by its probe, Consul at the node IP, the root filesystem read-only. */
async function checkCommon(ns: string): Promise<Pod> {
  const [pod, ...others] = await pods(node, ns, selector);
  expect(others).toEqual([]);
  expect(isReady(pod!)).toBe(true);
  expect(pod!.spec.nodeName).toBe(node.name);
  expect(pod!.status.hostIP).toBe(node.nodeIp);
  expect(await readinessProbesSucceeded(ns, pod!.metadata.name)).toBeGreaterThan(0);

  for (const p of gatewayProcesses(pod!)) {
    const env = environ(p.pid);
    // status.hostIP through the downward API, $(HOST_IP) expanded by the kubelet.
    expect(env.get('HOST_IP')).toBe(node.nodeIp);
    expect(env.get('CONSUL_HTTP_ADDR')).toBe(`http://${node.nodeIp}:${defaults.consul.agentPort}`);
  }
  // Read-only root filesystem; the state volume and /tmp are the writable places.
  const write = (path: string) =>
    node.kube.kubectl(['exec', '-n', ns, pod!.metadata.name, '--', 'sh', '-c', `: > ${path} && rm ${path}`], {
      allowFailure: true,
    });
  const root = await write('/edgegate-write-probe');
  expect(root.code).not.toBe(0);
  expect(root.stderr).toContain('Read-only file system');
  expect((await write('/tmp/edgegate-write-probe')).code).toBe(0);
  expect((await write(join(defaults.state.mountPath, 'write-probe'))).code).toBe(0);
  return pod!;
}

/** Runs the NOTES' kubectl/curl lines against this release: what a user copies from `helm install`. */
async function runNotes(ns: string, notes: string) {
  const lines = notes
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter((l) => /^(kubectl|curl) /.test(l));
  const kubectl = lines.filter((l) => l.startsWith('kubectl ') && !l.includes(' port-forward '));
  const forward = lines.find((l) => l.includes(' port-forward '));
  const curls = lines.filter((l) => l.startsWith('curl '));
  expect(kubectl).toEqual(['kubectl get nodes -o wide', 'kubectl get gatewayroutes -A']);
  expect(forward).toBe(
    `kubectl -n ${ns} port-forward ds/${ds} ${defaults.ports.admin} ${defaults.ports.adminDebug}`,
  );
  expect(curls.length).toBe(3);

  const nodes = await node.kube.kubectl(kubectl[0]!.split(' ').slice(1));
  expect(nodes.stdout).toMatch(new RegExp(`${node.name}\\s+Ready`));
  expect(nodes.stdout).toContain(node.nodeIp);
  const routes = await node.kube.kubectl(kubectl[1]!.split(' ').slice(1));
  expect(routes.code).toBe(0);

  // The port-forward as printed, but to free local ports (the printed ones may be taken on this host): the admin
  // port (probes, metrics) and the debug port (bound on the pod's loopback only).
  const local = await freePort();
  const localDebug = await freePort();
  const args = forward!.split(' ').slice(1);
  args[args.length - 2] = `${local}:${defaults.ports.admin}`;
  args[args.length - 1] = `${localDebug}:${defaults.ports.adminDebug}`;
  const pf = startProcess({
    name: `port-forward-${ns}`,
    command: binPath('kubectl'),
    args: ['--kubeconfig', node.kube.kubeconfigPath, ...args],
    logPath: logPathFor(`node-port-forward-${ns}`),
  });
  forwards.push(pf);
  await waitFor(
    () => {
      if (!pf.running()) throw new StopWaiting(`kubectl port-forward exited: ${pf.tail(10)}`);
      return pf.tail(20).includes('Forwarding from');
    },
    { timeoutMs: 30_000, message: 'kubectl port-forward to listen' },
  );
  const out: Record<string, string> = {};
  for (const line of curls) {
    const url = line
      .split(' ')[1]!
      .replace(`:${defaults.ports.admin}/`, `:${local}/`)
      .replace(`:${defaults.ports.adminDebug}/`, `:${localDebug}/`);
    const r = await runCommand('curl', ['-sS', '--fail', '--max-time', '10', url]);
    expect(r.code, `${line}: ${r.stderr}`).toBe(0);
    out[new URL(url).pathname] = r.stdout;
  }
  await pf.stop();
  return out;
}

describe('helm install with default values', () => {
  const ns = `eg-install-${rand()}`;
  afterAll(async () => {
    await uninstallChart(node, rel, ns);
  }, 300_000);

  it('a Ready, locked-down pod that serves on the node port, reads its node agent, and whose NOTES work', async () => {
    const installed = await installChart(node, rel, ns, {});
    await waitRollout(node, ns, ds);
    const pod = await checkCommon(ns);

    // Non-root, nothing in any capability set, no new privileges: on every process of the container.
    for (const p of gatewayProcesses(pod)) {
      const st = procStatus(p.pid);
      expect(st.Uid).toBe('1000\t1000\t1000\t1000');
      expect(st.Gid?.split('\t')[0]).toBe('1000');
      for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'])
        expect(st[set], set).toBe('0000000000000000');
      expect(st.NoNewPrivs).toBe('1');
      expect(st.Seccomp).toBe('2'); // RuntimeDefault: a filter
      expect(p.cmdline[0]).toMatch(/(^|\/)node$/); // the plain binary: no file capabilities
    }
    // The host port on the node IP reaches the pod's unprivileged port: edgegate's own 404 for an unknown host.
    const r = await httpGet(node.nodeIp, defaults.hostPorts.http, '/nothing-here', {
      host: 'unknown.example',
    });
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body).error).toBe('EDGEGATE_NO_ROUTE');

    const notes = notesOf(installed.stdout);
    expect(notes).toContain(`http://<node-address>:${defaults.hostPorts.http}/`);
    const admin = await runNotes(ns, notes);
    expect(admin['/readyz']).toBeDefined();
    // Its Consul source is up: it reached the agent at the node's IP.
    expect(admin['/metrics']).toMatch(/^edgegate_source_up\{source="consul"\} 1$/m);
    expect(admin['/metrics']).toMatch(/^edgegate_source_up\{source="kube"\} 1$/m);
    expect(admin['/debug/routes']).toBeTruthy();
  }, 600_000);
});

describe('helm install with hostNetwork (the gateway on the node ports 80 and 443 itself)', () => {
  const ns = `eg-install-hn-${rand()}`;
  afterAll(async () => {
    await uninstallChart(node, rel, ns);
  }, 300_000);

  it('binds 80 and 443 in the node network namespace as UID 1000 with NET_BIND_SERVICE only', async () => {
    const installed = await installChart(node, rel, ns, {
      hostNetwork: true,
      tls: { enabled: true, secretNamespaces: [ns] },
    });
    await waitRollout(node, ns, ds);
    const pod = await checkCommon(ns);
    expect(pod.spec.hostNetwork).toBe(true);
    expect(pod.status.podIP).toBe(node.nodeIp);

    // Who listens on the node's 80 and 443: processes of this pod, node-netbind, as UID 1000.
    const ss = await node.run('ss', ['-Hltnp']);
    const podPids = new Set(gatewayProcesses(pod).map((p) => p.pid));
    for (const port of [defaults.hostPorts.http, defaults.hostPorts.https]) {
      const lines = ss.stdout.split('\n').filter((l) => new RegExp(`[:*]${port}\\s`).test(l));
      expect(lines.length, `a listener on :${port}\n${ss.stdout}`).toBeGreaterThan(0);
      const pids = lines.flatMap((l) => [...l.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])));
      expect(pids.length).toBeGreaterThan(0);
      for (const pid of pids)
        expect(podPids.has(pid), `pid ${pid} on :${port} belongs to the pod`).toBe(true);
    }
    const netbind = (1n << 10n).toString(16).padStart(16, '0'); // CAP_NET_BIND_SERVICE
    for (const p of gatewayProcesses(pod)) {
      const st = procStatus(p.pid);
      expect(st.Uid).toBe('1000\t1000\t1000\t1000');
      expect(p.cmdline[0]).toMatch(/^(\/usr\/local\/bin\/)?node-netbind$/);
      expect(st.CapEff).toBe(netbind);
      expect(st.CapPrm).toBe(netbind);
      expect(st.CapBnd).toBe(netbind);
      expect(st.CapAmb).toBe('0000000000000000');
    }
    const r = await httpGet(node.nodeIp, defaults.hostPorts.http, '/nothing-here', {
      host: 'unknown.example',
    });
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body).error).toBe('EDGEGATE_NO_ROUTE');

    const notes = notesOf(installed.stdout);
    expect(notes).toContain(`http://<node-address>:${defaults.hostPorts.http}/`);
    expect(notes).toContain(`https://<node-address>:${defaults.hostPorts.https}/`);
    const admin = await runNotes(ns, notes);
    expect(admin['/metrics']).toMatch(/^edgegate_source_up\{source="consul"\} 1$/m);
  }, 600_000);
});

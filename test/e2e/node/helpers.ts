/**
 * Shared pieces of the real-node tests: the chart installed with the locally built image, rollouts waited on
 * with kubectl, HTTP through the node IP with a Host header, the chart's own defaults read from values.yaml
 * (ports are never hard-coded here), pods' processes inspected through the node's cgroups.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { REPO_ROOT } from '../../support/bins.ts';
import type { NodeClient } from '../../support/node-client.ts';
import type { CommandResult } from '../../support/proc.ts';
import { makeTempDir } from '../../support/tmp.ts';
import { waitFor } from '../../support/wait.ts';

export const CHART_DIR = join(REPO_ROOT, 'charts', 'edgegate');
export const rand = () => randomBytes(3).toString('hex');

interface ChartValues {
  ports: { http: number; https: number; admin: number; adminDebug: number };
  hostPorts: { http: number; https: number };
  consul: { agentPort: number };
  state: { mountPath: string };
  [key: string]: unknown;
}

/** The chart's values.yaml: the defaults the tests check the pods against. */
export function chartDefaults(): ChartValues {
  return parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')) as ChartValues;
}

let valuesDir: string | undefined;
let counter = 0;
function valuesFile(values: Record<string, unknown>): string {
  valuesDir ??= makeTempDir('node-values');
  const path = join(valuesDir, `values-${++counter}.yaml`);
  writeFileSync(path, stringify(values));
  return path;
}

/** The image values every release on the node needs: the locally built image, never pulled. */
export function imageValues(node: NodeClient, which: 'gateway' | 'gatewayNextTag' = 'gateway') {
  const img = node.images[which];
  return { image: { repository: img.repository, tag: img.tag, pullPolicy: 'Never' } };
}

/** `helm upgrade --install` of charts/edgegate with the node's image and `values`; returns helm's output. */
export async function installChart(
  node: NodeClient,
  release: string,
  namespace: string,
  values: Record<string, unknown>,
  opts: { image?: 'gateway' | 'gatewayNextTag' } = {},
): Promise<CommandResult> {
  return node.helm(
    [
      'upgrade',
      '--install',
      release,
      CHART_DIR,
      '--namespace',
      namespace,
      '--create-namespace',
      '-f',
      valuesFile({
        ...imageValues(node, opts.image),
        ...values,
        // As for every gateway the tests start (vitest.config.ts, docs/testing.md): the overload guard's
        // event-loop signal is off, so the pods do not shed requests because this shared machine is busy.
        extraEnv: [
          { name: 'EDGEGATE_OVERLOAD_DELAY', value: '0' },
          ...((values.extraEnv as unknown[]) ?? []),
        ],
      }),
    ],
    { timeoutMs: 180_000 },
  );
}

/** Removes a release and its namespace, and waits until their pods are gone (the next file's ports are free). */
export async function uninstallChart(node: NodeClient, release: string, namespace: string): Promise<void> {
  await node.helm(['uninstall', release, '--namespace', namespace, '--wait', '--timeout', '120s'], {
    allowFailure: true,
    timeoutMs: 180_000,
  });
  await node.kube.kubectl(['delete', 'namespace', namespace, '--wait=true', '--timeout=120s'], {
    allowFailure: true,
    timeoutMs: 180_000,
  });
}

/**
 * Waits for the DaemonSet's rollout (`kubectl rollout status`: `helm install --wait` returns before a one-pod
 * DaemonSet is ready), with the pods' state in the error.
 */
export async function waitRollout(node: NodeClient, namespace: string, daemonSet: string, timeoutS = 180) {
  const r = await node.kube.kubectl(
    ['rollout', 'status', `daemonset/${daemonSet}`, '-n', namespace, `--timeout=${timeoutS}s`],
    { allowFailure: true, timeoutMs: (timeoutS + 30) * 1000 },
  );
  if (r.code !== 0)
    throw new Error(
      `rollout of ${namespace}/${daemonSet} did not finish:\n${r.stderr}\n${await node.describe(namespace)}`,
    );
}

export interface Pod {
  metadata: { name: string; uid: string; creationTimestamp: string; labels?: Record<string, string> };
  spec: { nodeName?: string; hostNetwork?: boolean; containers: Array<{ name: string; image: string }> };
  status: {
    phase: string;
    podIP?: string;
    hostIP?: string;
    conditions?: Array<{ type: string; status: string }>;
    containerStatuses?: Array<{
      name: string;
      ready: boolean;
      started?: boolean;
      restartCount: number;
      containerID?: string;
      image: string;
    }>;
  };
}

export async function pods(node: NodeClient, namespace: string, selector: string): Promise<Pod[]> {
  const r = await node.kube.kubectl(['get', 'pods', '-n', namespace, '-l', selector, '-o', 'json']);
  return (JSON.parse(r.stdout) as { items: Pod[] }).items;
}

export const isReady = (p: Pod) =>
  p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request to the node (or any address) with a Host header; a fresh connection unless `agent`. */
export function httpGet(
  address: string,
  port: number,
  path: string,
  opts: { host?: string; agent?: Agent; timeoutMs?: number } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: address,
        port,
        path,
        headers: opts.host ? { host: opts.host } : {},
        agent: opts.agent ?? false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(opts.timeoutMs ?? 10_000, () =>
      req.destroy(new Error(`GET ${address}:${port}${path} timed out`)),
    );
    req.on('error', reject);
    req.end();
  });
}

/** Waits until a request through the node answers `status` (and `check` holds for it). */
export async function waitForHttp(
  address: string,
  port: number,
  path: string,
  opts: {
    host?: string;
    status?: number;
    check?: (r: HttpResult) => boolean;
    timeoutMs?: number;
    message?: string;
  } = {},
): Promise<HttpResult> {
  return waitFor(
    async () => {
      const r = await httpGet(address, port, path, { host: opts.host, timeoutMs: 5_000 });
      return r.status === (opts.status ?? 200) && (opts.check?.(r) ?? true) ? r : undefined;
    },
    {
      timeoutMs: opts.timeoutMs ?? 60_000,
      intervalMs: 250,
      message:
        opts.message ??
        `GET http://${address}:${port}${path} (Host ${opts.host ?? '-'}) to answer ${opts.status ?? 200}`,
    },
  );
}

export function routeYaml(namespace: string, name: string, spec: Record<string, unknown>): string {
  return stringify({
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name, namespace },
    spec,
  });
}

/** Waits until a GatewayRoute has condition `type` with `status`; returns the condition. */
export async function waitForRouteCondition(
  node: NodeClient,
  namespace: string,
  name: string,
  type: string,
  status = 'True',
  timeoutMs = 60_000,
): Promise<{ type: string; status: string; reason?: string; message?: string }> {
  return waitFor(
    async () => {
      const r = await node.kube.kubectl(['get', 'gatewayroute', name, '-n', namespace, '-o', 'json'], {
        allowFailure: true,
      });
      if (r.code !== 0) return undefined;
      const conds = (
        JSON.parse(r.stdout) as { status?: { conditions?: Array<{ type: string; status: string }> } }
      ).status?.conditions;
      return conds?.find((c) => c.type === type && c.status === status);
    },
    { timeoutMs, intervalMs: 500, message: `GatewayRoute ${namespace}/${name} ${type}=${status}` },
  );
}

/** /proc/<pid>/status fields of a process. */
export function procStatus(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/**
 * The host PIDs of a pod's containers' processes: every process in the pod's cgroup (kubelet's cgroupfs layout:
 * <root>/kubepods/<qos>/pod<uid>/<container>), read from the pids hierarchy.
 */
export function podProcesses(node: NodeClient, podUid: string): Array<{ pid: number; cmdline: string[] }> {
  const root = node.cgroupProcs
    .split(':')
    .find((p) => p.includes('/pids/'))
    ?.replace(/\/system\/cgroup\.procs$/, '');
  if (!root) throw new Error(`no pids hierarchy among ${node.cgroupProcs}`);
  const out: Array<{ pid: number; cmdline: string[] }> = [];
  const walk = (dir: string, inPod: boolean) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const child = join(dir, entry.name);
      const pod = inPod || entry.name === `pod${podUid}`;
      if (pod) {
        for (const line of readFileSync(join(child, 'cgroup.procs'), 'utf8').split('\n')) {
          if (!line.trim()) continue;
          try {
            const cmdline = readFileSync(`/proc/${line}/cmdline`, 'utf8').split('\0').filter(Boolean);
            out.push({ pid: Number(line), cmdline });
          } catch {
            // exited
          }
        }
      }
      walk(child, pod);
    }
  };
  walk(join(root, 'kubepods'), false);
  return out;
}

export interface SteadyLoad {
  /** Stops sending, waits for requests in flight, and returns what happened. */
  stop(): Promise<SteadyLoadResult>;
  /** Requests answered so far (any status). */
  answered(): number;
}

export interface SteadyLoadResult {
  sent: number;
  ok: number;
  /** Requests that got no 2xx answer: the status, or the socket error, and when. */
  failures: Array<{ atMs: number; what: string; keepAlive: boolean }>;
  durationMs: number;
}

/**
 * Constant, bounded load from the host to the node IP: `loops` request loops, each sending one request every
 * `intervalMs` (or as soon as the previous answer is in, if slower); half of them on one keep-alive connection
 * each (as a proxy or a browser does), half on a new connection per request. Stops by itself after `maxMs`.
 */
export function steadyLoad(opts: {
  address: string;
  port: number;
  host: string;
  path?: string;
  loops?: number;
  intervalMs?: number;
  maxMs?: number;
}): SteadyLoad {
  const loops = opts.loops ?? 4;
  const interval = opts.intervalMs ?? 25;
  const started = Date.now();
  const deadline = started + (opts.maxMs ?? 300_000);
  const result: SteadyLoadResult = { sent: 0, ok: 0, failures: [], durationMs: 0 };
  let stopping = false;
  let answered = 0;
  const agents: Agent[] = [];
  const runLoop = async (keepAlive: boolean) => {
    const agent = keepAlive ? new Agent({ keepAlive: true, maxSockets: 1 }) : undefined;
    if (agent) agents.push(agent);
    let i = 0;
    while (!stopping && Date.now() < deadline) {
      const next = Date.now() + interval;
      result.sent++;
      try {
        const r = await httpGet(opts.address, opts.port, `${opts.path ?? '/load'}/${i++}`, {
          host: opts.host,
          agent,
          timeoutMs: 10_000,
        });
        if (r.status >= 200 && r.status < 300) result.ok++;
        else
          result.failures.push({
            atMs: Date.now() - started,
            what: `status ${r.status}: ${r.body.slice(0, 200)}`,
            keepAlive,
          });
      } catch (err) {
        result.failures.push({ atMs: Date.now() - started, what: (err as Error).message, keepAlive });
      }
      answered++;
      // Pacing of the load (not synchronisation): the next request of this loop is due at `next`.
      const wait = next - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  };
  const running = Promise.all(Array.from({ length: loops }, (_, k) => runLoop(k % 2 === 0)));
  return {
    answered: () => answered,
    stop: async () => {
      stopping = true;
      await running;
      for (const a of agents) a.destroy();
      result.durationMs = Date.now() - started;
      return result;
    },
  };
}

/**
 * Watches a DaemonSet's pods (kubectl every 500 ms) while a rollout runs: the most pods that were Ready at the
 * same time, and every pod seen with its image.
 */
export function watchPods(node: NodeClient, namespace: string, selector: string) {
  let stopping = false;
  let maxReady = 0;
  let maxRunning = 0;
  const seen = new Map<string, { image: string; ready: boolean }>();
  const loop = (async () => {
    while (!stopping) {
      const list = await pods(node, namespace, selector).catch(() => [] as Pod[]);
      const ready = list.filter(isReady).length;
      const running = list.filter((p) => p.status.phase === 'Running').length;
      maxReady = Math.max(maxReady, ready);
      maxRunning = Math.max(maxRunning, running);
      for (const p of list)
        seen.set(p.metadata.name, {
          image: p.spec.containers[0]!.image,
          ready: isReady(p) || (seen.get(p.metadata.name)?.ready ?? false),
        });
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  })();
  return {
    stop: async () => {
      stopping = true;
      await loop;
      return { maxReady, maxRunning, seen };
    },
  };
}

/** The gateway's processes in a pod (the primary and its workers: everything of the pod but the pause process). */
export function gatewayProcesses(
  node: NodeClient,
  podUid: string,
): Array<{ pid: number; cmdline: string[] }> {
  return podProcesses(node, podUid).filter((p) => p.cmdline[0] !== '/pause');
}

/** Failures grouped by what went wrong: "<what> ×<count> (<first>–<last> ms into the load)". */
export function summarizeFailures(failures: SteadyLoadResult['failures']): string[] {
  const groups = new Map<string, { n: number; first: number; last: number }>();
  for (const f of failures) {
    const key = `${f.keepAlive ? 'keep-alive' : 'new connection'}: ${f.what}`;
    const g = groups.get(key) ?? { n: 0, first: f.atMs, last: f.atMs };
    g.n++;
    g.last = f.atMs;
    groups.set(key, g);
  }
  return [...groups].map(([what, g]) => `${what} ×${g.n} (${g.first}–${g.last} ms into the load)`);
}

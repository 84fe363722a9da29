/**
 * The shared real node from a test file: `sharedNode()` (global setup starts the node when a selected file calls
 * it). The node belongs to the whole run; a test file takes it exclusively with `lease()` for as long as it
 * installs releases, stops its API server or restarts its runtime, and removes what it created.
 */
import { request } from 'node:http';
import { inject } from 'vitest';
import { helm } from './helm.ts';
import { type KubeClient, kubeClient } from './kube.ts';
import type { LogSource } from './logs.ts';
import type { NodeInfo } from './node.ts';
import { wrapInSandbox } from './node-sandbox.ts';
import {
  type CommandResult,
  type ManagedProcess,
  type ProcessSpec,
  runCommand,
  startProcess,
} from './proc.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The real node's coordinates, `{ error }` when it could not start, null when no selected file needs it. */
    edgegateNode: NodeInfo | { error: string } | null;
  }
}

export interface NodeClient extends Omit<NodeInfo, 'kube'> {
  /** kubectl and the REST API of the node's own API server (admin). */
  kube: KubeClient;
  /** The pinned helm with the node's kubeconfig. */
  helm(args: string[], opts?: { allowFailure?: boolean; timeoutMs?: number }): Promise<CommandResult>;
  /**
   * Waits until no other test file holds the node, takes it, and returns the release function. A lease whose
   * test process dies is released by the node itself.
   */
  lease(holder: string, timeoutMs?: number): Promise<() => Promise<void>>;
  /** SIGTERM to the node's kube-apiserver (etcd keeps the data): an API outage. */
  stopApiServer(): Promise<void>;
  /** Starts it again and waits for /readyz. */
  startApiServer(): Promise<void>;
  /** Power loss of the runtime: containerd, its shims and every container killed; containerd started again. */
  restartRuntime(): Promise<{ killed: number }>;
  /** A short command inside the node's namespaces and cgroup. */
  run(command: string, args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<CommandResult>;
  /** A long-running process inside the node (stopped by the caller; killed with the node at the latest). */
  start(spec: ProcessSpec): ManagedProcess;
  /** The node's component logs, for printLogsOnFailure. */
  logs(): LogSource[];
  /** Pods, events and the node's conditions, for failure messages. */
  describe(namespace?: string): Promise<string>;
}

function control(socketPath: string, method: string, path: string, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => {
        const parsed = body ? (JSON.parse(body) as { error?: string }) : {};
        if (res.statusCode !== 200)
          reject(new Error(`node ${method} ${path}: ${parsed.error ?? res.statusCode}`));
        else resolve(parsed);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`node ${method} ${path}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** A client for a node somebody else started (its NodeInfo). */
export function nodeClient(info: NodeInfo): NodeClient {
  const kube = kubeClient(info.kube);
  const inNode = (command: string, args: string[]) =>
    wrapInSandbox(info.holderPid, info.cgroupProcs, command, args);
  return {
    ...info,
    kube,
    helm: (args, opts = {}) => helm(args, { ...opts, kubeconfig: info.kube.kubeconfigPath }),
    lease: async (holder, timeoutMs = 30 * 60_000) => {
      const granted = (await control(
        info.controlSocket,
        'POST',
        `/lease?pid=${process.pid}&holder=${encodeURIComponent(holder)}`,
        timeoutMs,
      )) as { id: string };
      return async () => {
        await control(info.controlSocket, 'DELETE', `/lease/${granted.id}`, 10_000);
      };
    },
    stopApiServer: async () => {
      await control(info.controlSocket, 'POST', '/stop-apiserver', 60_000);
    },
    startApiServer: async () => {
      await control(info.controlSocket, 'POST', '/start-apiserver', 180_000);
    },
    restartRuntime: async () =>
      (await control(info.controlSocket, 'POST', '/restart-runtime', 180_000)) as { killed: number },
    run: (command, args, opts = {}) => {
      const w = inNode(command, args);
      return runCommand(w.command, w.args, { input: opts.input, timeoutMs: opts.timeoutMs ?? 60_000 });
    },
    start: (spec) => {
      const w = inNode(spec.command, spec.args);
      return startProcess({ ...spec, command: w.command, args: w.args });
    },
    logs: () => Object.entries(info.logPaths).map(([name, logPath]) => ({ name: `node-${name}`, logPath })),
    describe: async (namespace) => {
      const ns = namespace ? ['-n', namespace] : ['-A'];
      const parts = await Promise.all([
        kube.kubectl(['get', 'pods', ...ns, '-o', 'wide'], { allowFailure: true }),
        kube.kubectl(['get', 'events', ...ns, '--sort-by=.lastTimestamp'], { allowFailure: true }),
        kube.kubectl(['describe', 'pods', ...ns], { allowFailure: true }),
        kube.kubectl(['get', 'node', info.name, '-o', 'wide'], { allowFailure: true }),
      ]);
      return parts.map((r) => r.stdout + r.stderr).join('\n');
    },
  };
}

/** The run's real node. Throws the reason the node could not start, if it could not. */
export function sharedNode(): NodeClient {
  const info = inject('edgegateNode');
  if (info === null)
    throw new Error(
      'The real node was not started by test/support/global-setup.ts: it starts it only for test files that ' +
        'call sharedNode( literally (grep), and not when EDGEGATE_SHARED_SERVERS=off.',
    );
  if ('error' in info) throw new Error(info.error);
  return nodeClient(info);
}

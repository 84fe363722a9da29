/**
 * Real Consul agents on loopback: a dev-mode server agent per datacenter, every port
 * chosen free on 127.0.0.1, data in a temp dir, log in a file; a dc1 + dc2 pair joined
 * over WAN (each agent retries joining the other, so a restarted agent rejoins by itself);
 * optional ACLs with a bootstrap (initial management) token.
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binPath } from './bins.ts';
import { freePorts } from './ports.ts';
import { formatTail, type ManagedProcess, startProcess } from './proc.ts';
import { logPathFor, makeTempDir, removeDir } from './tmp.ts';
import { StopWaiting, waitFor } from './wait.ts';

export interface ConsulPorts {
  http: number;
  dns: number;
  serfLan: number;
  serfWan: number;
  server: number;
  grpc: number;
  grpcTls: number;
}

export interface ConsulAclOptions {
  /** The initial management token (a UUID); generated if omitted. */
  bootstrapToken?: string;
  /** Default "deny". */
  defaultPolicy?: 'allow' | 'deny';
}

/** Plain, serialisable coordinates of an agent (what global setup provides). */
export interface ConsulAgentInfo {
  datacenter: string;
  nodeName: string;
  /** "127.0.0.1:<port>" */
  httpAddr: string;
  /** "http://127.0.0.1:<port>" */
  httpUrl: string;
  ports: ConsulPorts;
  /** The management token when ACLs are enabled. */
  token: string | undefined;
  logPath: string;
}

/** Talks to an agent's HTTP API, sending the management token if there is one. */
export interface ConsulClient extends ConsulAgentInfo {
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** GET (or `init`) `path` and parse JSON; throws with the body on a non-2xx status. */
  json<T = unknown>(path: string, init?: RequestInit): Promise<T>;
  /** Datacenters this agent knows (`/v1/catalog/datacenters`). */
  datacenters(): Promise<string[]>;
}

/** An agent this process started and controls. */
export interface ConsulAgent extends ConsulClient {
  readonly dataDir: string;
  running(): boolean;
  /** Start again after stop()/kill(), same ports, node and data dir; waits until ready. */
  start(): Promise<void>;
  /** Graceful stop (SIGINT: leave, then exit). */
  stop(): Promise<void>;
  /** SIGKILL: an outage, no leave. */
  kill(): Promise<void>;
  /** stop() then start(). */
  restart(): Promise<void>;
  /** Last lines of the agent's log. */
  tail(lines?: number): string;
  /** Plain coordinates, e.g. for vitest provide(). */
  info(): ConsulAgentInfo;
}

export interface ConsulAgentOptions {
  datacenter: string;
  nodeName?: string;
  /** Enable ACLs. With `primaryDatacenter` set to another DC, this agent replicates tokens from it. */
  acl?: ConsulAclOptions | boolean;
  /** Default: this agent's datacenter. */
  primaryDatacenter?: string;
  /** Serf WAN addresses ("127.0.0.1:port") to keep trying to join. */
  retryJoinWan?: string[];
  /** Ports to use (default: all free). */
  ports?: ConsulPorts;
  /**
   * Keep state across stop()/kill() + start(): run a single-server agent
   * (`-server -bootstrap-expect=1`) with raft on disk instead of `-dev`, whose raft is
   * in memory (a dev agent comes back empty). Costs ~1-2 s more per start (leader election).
   */
  persistent?: boolean;
  /** Don't wait for readiness in startConsulAgent (default false). */
  noWait?: boolean;
  /** Readiness deadline (default 60 s). */
  startTimeoutMs?: number;
}

export async function allocateConsulPorts(): Promise<ConsulPorts> {
  const [http, dns, serfLan, serfWan, server, grpc, grpcTls] = (await freePorts(7)) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return { http, dns, serfLan, serfWan, server, grpc, grpcTls };
}

/** A client for an agent somebody else started (e.g. from inject()). */
export function consulClient(info: ConsulAgentInfo): ConsulClient {
  const doFetch = (path: string, init: RequestInit = {}): Promise<Response> => {
    const headers = new Headers(init.headers);
    if (info.token && !headers.has('X-Consul-Token')) headers.set('X-Consul-Token', info.token);
    return fetch(`${info.httpUrl}${path}`, { ...init, headers });
  };
  const json = async <T>(path: string, init?: RequestInit): Promise<T> => {
    const res = await doFetch(path, init);
    const text = await res.text();
    if (!res.ok)
      throw new Error(`consul ${info.datacenter} ${init?.method ?? 'GET'} ${path}: ${res.status} ${text}`);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  };
  return {
    ...info,
    fetch: doFetch,
    json,
    datacenters: () => json<string[]>('/v1/catalog/datacenters'),
  };
}

function resolveAcl(acl: ConsulAgentOptions['acl']): Required<ConsulAclOptions> | undefined {
  if (!acl) return undefined;
  const o = acl === true ? {} : acl;
  return { bootstrapToken: o.bootstrapToken ?? randomUUID(), defaultPolicy: o.defaultPolicy ?? 'deny' };
}

/** Starts one dev-mode Consul server agent and waits until it has a leader. */
export async function startConsulAgent(opts: ConsulAgentOptions): Promise<ConsulAgent> {
  const consul = binPath('consul');
  const ports = opts.ports ?? (await allocateConsulPorts());
  const dc = opts.datacenter;
  const nodeName = opts.nodeName ?? `consul-${dc}`;
  const nodeId = randomUUID();
  const acl = resolveAcl(opts.acl);
  const primary = opts.primaryDatacenter ?? dc;
  const dataDir = makeTempDir(`consul-${dc}`);
  const logPath = logPathFor(`consul-${dc}`);

  const config: Record<string, unknown> = { primary_datacenter: primary };
  // Dev-mode raft timings for the persistent server (elects itself in about a second).
  if (opts.persistent) config.performance = { raft_multiplier: 1 };
  if (acl) {
    const tokens: Record<string, string> = { agent: acl.bootstrapToken };
    if (primary === dc) tokens.initial_management = acl.bootstrapToken;
    else tokens.replication = acl.bootstrapToken;
    config.acl = {
      enabled: true,
      default_policy: acl.defaultPolicy,
      down_policy: 'extend-cache',
      enable_token_persistence: true,
      enable_token_replication: primary !== dc,
      tokens,
    };
  }
  const configFile = join(dataDir, 'edgegate-test.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));

  const modeArgs = opts.persistent ? ['-server', '-bootstrap-expect=1', '-ui=false'] : ['-dev'];
  const args = [
    'agent',
    ...modeArgs,
    `-datacenter=${dc}`,
    `-node=${nodeName}`,
    `-node-id=${nodeId}`,
    `-data-dir=${join(dataDir, 'data')}`,
    `-config-file=${configFile}`,
    '-bind=127.0.0.1',
    '-client=127.0.0.1',
    '-advertise=127.0.0.1',
    '-advertise-wan=127.0.0.1',
    `-http-port=${ports.http}`,
    `-dns-port=${ports.dns}`,
    `-serf-lan-port=${ports.serfLan}`,
    `-serf-wan-port=${ports.serfWan}`,
    `-server-port=${ports.server}`,
    `-grpc-port=${ports.grpc}`,
    `-grpc-tls-port=${ports.grpcTls}`,
    '-https-port=-1',
    '-log-level=debug',
    '-retry-interval-wan=1s',
    ...(opts.retryJoinWan ?? []).map((a) => `-retry-join-wan=${a}`),
  ];

  const info: ConsulAgentInfo = {
    datacenter: dc,
    nodeName,
    httpAddr: `127.0.0.1:${ports.http}`,
    httpUrl: `http://127.0.0.1:${ports.http}`,
    ports,
    token: acl?.bootstrapToken,
    logPath,
  };
  const client = consulClient(info);
  let proc: ManagedProcess | undefined;

  const waitReady = async (): Promise<void> => {
    const p = proc;
    await waitFor(
      async () => {
        if (p && !p.running()) throw new StopWaiting(`consul ${dc} exited`);
        const res = await fetch(`${info.httpUrl}/v1/status/leader`);
        const leader = (await res.json()) as string;
        if (!leader) return false;
        // The agent's own node is in the catalog once it has synced.
        const nodes = await client.json<Array<{ Node: string }>>('/v1/catalog/nodes');
        return nodes.some((n) => n.Node === nodeName);
      },
      {
        timeoutMs: opts.startTimeoutMs ?? 60_000,
        intervalMs: 100,
        message: `consul ${dc} at ${info.httpAddr} to elect itself leader`,
        diagnostics: () => formatTail(`consul-${dc}`, logPath, 40),
      },
    );
  };

  const start = async (): Promise<void> => {
    if (proc?.running()) return;
    proc = startProcess({ name: `consul-${dc}`, command: consul, args, logPath, stopSignal: 'SIGINT' });
    await waitReady();
  };

  const agent: ConsulAgent = {
    ...client,
    dataDir,
    running: () => proc?.running() ?? false,
    start,
    stop: async () => {
      await proc?.stop(15_000);
    },
    kill: async () => {
      await proc?.kill();
    },
    restart: async () => {
      await proc?.stop(15_000);
      await start();
    },
    tail: (lines = 50) => proc?.tail(lines) ?? '',
    info: () => ({ ...info }),
  };
  if (opts.noWait) {
    proc = startProcess({ name: `consul-${dc}`, command: consul, args, logPath, stopSignal: 'SIGINT' });
  } else {
    await start();
  }
  return agent;
}

export interface ConsulPair {
  dc1: ConsulAgent;
  dc2: ConsulAgent;
  /** The management token (same in both DCs) when ACLs are enabled. */
  token: string | undefined;
  /** Waits until each agent lists both datacenters (after a restart, for example). */
  waitForWan(timeoutMs?: number): Promise<void>;
  /** Stops both agents and removes their data dirs (logs are kept). */
  stop(): Promise<void>;
}

export interface ConsulPairOptions {
  /** Enable ACLs in both DCs; dc1 is the primary, dc2 replicates tokens. */
  acl?: ConsulAclOptions | boolean;
  /** See ConsulAgentOptions.persistent. */
  persistent?: boolean;
  startTimeoutMs?: number;
}

/** Two datacenters, dc1 and dc2, each one dev-mode server agent, joined over WAN. */
export async function startConsulPair(opts: ConsulPairOptions = {}): Promise<ConsulPair> {
  const acl = resolveAcl(opts.acl);
  const [p1, p2] = await Promise.all([allocateConsulPorts(), allocateConsulPorts()]);
  const started = await Promise.allSettled([
    startConsulAgent({
      datacenter: 'dc1',
      ports: p1,
      acl,
      primaryDatacenter: 'dc1',
      persistent: opts.persistent,
      retryJoinWan: [`127.0.0.1:${p2.serfWan}`],
      startTimeoutMs: opts.startTimeoutMs,
    }),
    startConsulAgent({
      datacenter: 'dc2',
      ports: p2,
      acl,
      primaryDatacenter: 'dc1',
      persistent: opts.persistent,
      retryJoinWan: [`127.0.0.1:${p1.serfWan}`],
      startTimeoutMs: opts.startTimeoutMs,
    }),
  ]);
  const ok = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
  if (failed.length > 0) {
    await Promise.all(ok.map((a) => a.stop()));
    throw failed[0];
  }
  const [dc1, dc2] = ok as [ConsulAgent, ConsulAgent];
  const waitForWan = async (timeoutMs = 60_000): Promise<void> => {
    await waitFor(
      async () => {
        for (const a of [dc1, dc2]) {
          const dcs = await a.datacenters();
          if (!(dcs.includes('dc1') && dcs.includes('dc2'))) return false;
        }
        if (acl) {
          // dc2 can resolve the management token (replicated or fetched from dc1).
          await dc2.json('/v1/acl/token/self');
        }
        return true;
      },
      {
        timeoutMs,
        intervalMs: 200,
        message: 'consul dc1 and dc2 to see each other over WAN',
        diagnostics: () =>
          formatTail('consul-dc1', dc1.logPath, 20) + formatTail('consul-dc2', dc2.logPath, 20),
      },
    );
  };
  const stop = async (): Promise<void> => {
    await Promise.all([dc1.stop(), dc2.stop()]);
    removeDir(dc1.dataDir);
    removeDir(dc2.dataDir);
  };
  try {
    await waitForWan(opts.startTimeoutMs ?? 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { dc1, dc2, token: acl?.bootstrapToken, waitForWan, stop };
}

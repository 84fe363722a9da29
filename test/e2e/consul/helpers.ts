/**
 * Helpers for the Consul e2e tests: edgegate as a real process (`node cmd/edgegate.ts run … --consul`), echo
 * upstreams on loopback (the `edgegate echo` server, in-process), service registration on a real agent, and a
 * keep-alive client that reports which echo instance answered.
 */
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { Agent, request } from 'undici';
import { createEchoServer } from '../../../src/tools/echo-server.ts';
import type { ConsulClient } from '../../support/consul.ts';
import { freePorts } from '../../support/ports.ts';
import { formatTail, type ManagedProcess, startProcess } from '../../support/proc.ts';
import { logPathFor } from '../../support/tmp.ts';
import { waitFor } from '../../support/wait.ts';

const ROOT = resolve(import.meta.dirname, '../../..');

export interface Echo {
  name: string;
  port: number;
  server: Server;
}

export async function startEcho(name: string): Promise<Echo> {
  const server = createEchoServer({ name });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { name, port: (server.address() as AddressInfo).port, server };
}

export async function stopEcho(e: Echo): Promise<void> {
  e.server.closeAllConnections();
  e.server.close();
}

export interface RegisterOptions {
  id: string;
  service: string;
  tags: string[];
  port: number;
  /** HTTP check on the echo (`/?status=NNN`), run every second. */
  httpStatus?: number;
  /** A TTL check the test passes or fails through the agent API; its initial status. */
  ttl?: 'passing' | 'warning' | 'critical';
}

/** Registers an instance with the agent: an HTTP check on the echo and, if asked, a TTL check. */
export async function register(agent: ConsulClient, o: RegisterOptions): Promise<void> {
  const checks: Record<string, unknown>[] = [];
  if (o.httpStatus !== undefined)
    checks.push({
      CheckID: `${o.id}-http`,
      Name: 'echo answers',
      HTTP: `http://127.0.0.1:${o.port}/?status=${o.httpStatus}`,
      Interval: '1s',
      Timeout: '1s',
    });
  if (o.ttl) checks.push({ CheckID: `${o.id}-ttl`, Name: 'ttl', TTL: '10m', Status: o.ttl });
  await agent.json('/v1/agent/service/register', {
    method: 'PUT',
    body: JSON.stringify({
      ID: o.id,
      Name: o.service,
      Tags: o.tags,
      Address: '127.0.0.1',
      Port: o.port,
      Checks: checks,
    }),
  });
}

/** Switches what the echo's HTTP check asks for (`/?status=NNN`): re-registers the check with the agent. */
export async function setHttpCheck(
  agent: ConsulClient,
  id: string,
  port: number,
  status: number,
): Promise<void> {
  await agent.json('/v1/agent/check/register', {
    method: 'PUT',
    body: JSON.stringify({
      ID: `${id}-http`,
      Name: 'echo answers',
      ServiceID: id,
      HTTP: `http://127.0.0.1:${port}/?status=${status}`,
      Interval: '1s',
      Timeout: '1s',
    }),
  });
}

export async function ttl(agent: ConsulClient, id: string, state: 'pass' | 'warn' | 'fail'): Promise<void> {
  await agent.json(`/v1/agent/check/${state}/${encodeURIComponent(`${id}-ttl`)}`, { method: 'PUT' });
}

export async function deregister(agent: ConsulClient, id: string): Promise<void> {
  await agent.json(`/v1/agent/service/deregister/${encodeURIComponent(id)}`, { method: 'PUT' });
}

/** Aggregated status of an instance as the agent's catalog sees it (passing | warning | critical). */
export async function healthOf(
  agent: ConsulClient,
  dc: string,
  service: string,
  id: string,
): Promise<string> {
  const entries = await agent.json<{ Service: { ID: string }; Checks: { Status: string }[] }[]>(
    `/v1/health/service/${service}?dc=${dc}`,
  );
  const e = entries.find((x) => x.Service.ID === id);
  if (!e) return 'absent';
  const rank = ['passing', 'warning', 'critical'];
  return e.Checks.reduce((w, c) => (rank.indexOf(c.Status) > rank.indexOf(w) ? c.Status : w), 'passing');
}

export interface Answer {
  status: number;
  /** x-echo-name, or the gateway's error code. */
  name: string;
  body: string;
  at: number;
}

export class Client {
  readonly #agent = new Agent({ keepAliveTimeout: 10_000, connections: 4 });
  readonly #base: string;

  constructor(port: number) {
    this.#base = `http://127.0.0.1:${port}`;
  }

  async get(path: string, host = 'catalog.test'): Promise<Answer> {
    const res = await request(`${this.#base}${path}`, { dispatcher: this.#agent, headers: { host } });
    const body = await res.body.text();
    let name = String(res.headers['x-echo-name'] ?? '');
    if (!name) {
      try {
        name = (JSON.parse(body) as { error?: string }).error ?? '';
      } catch {
        name = '';
      }
    }
    return { status: res.statusCode, name, body, at: performance.now() };
  }

  /** `n` sequential requests; counts per answering instance (or error code). */
  async spread(path: string, n: number, host?: string): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const a = await this.get(path, host);
      counts[a.name] = (counts[a.name] ?? 0) + 1;
    }
    return counts;
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

export interface Gateway {
  proc: ManagedProcess;
  port: number;
  adminPort: number;
  client: Client;
  admin<T = unknown>(path: string): Promise<T>;
  stop(): Promise<void>;
}

/** The resty-gate catalog route the Consul tests share: every `edge`-tagged service under /{dc}/{service}/. */
export const CATALOG_ROUTE_YAML = `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: edge-catalog, namespace: edge }
spec:
  hostnames: [catalog.test]
  catalog: { pathPrefix: /, requiredTags: [edge] }
`;

export function writeRoutes(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
}

/** Starts `edgegate run --consul` as its own process and waits until the admin server answers. */
export async function startGateway(opts: {
  routesDir: string;
  stateDir: string;
  consulAddr: string;
  env?: Record<string, string>;
  ports?: [number, number];
}): Promise<Gateway> {
  const [port, adminPort] = opts.ports ?? ((await freePorts(2)) as [number, number]);
  const logPath = logPathFor('edgegate-consul');
  const proc = startProcess({
    name: 'edgegate',
    command: process.execPath,
    args: [
      join(ROOT, 'cmd/edgegate.ts'),
      'run',
      '--routes',
      opts.routesDir,
      '--consul',
      '--state-dir',
      opts.stateDir,
      '--listen',
      `127.0.0.1:${port}`,
      '--admin',
      `127.0.0.1:${adminPort}`,
      '--log-level',
      'debug',
    ],
    env: { ...process.env, CONSUL_HTTP_ADDR: opts.consulAddr, ...opts.env },
    cwd: ROOT,
    logPath,
    stopSignal: 'SIGTERM',
  });
  const admin = async <T>(path: string): Promise<T> => {
    const res = await fetch(`http://127.0.0.1:${adminPort}${path}`);
    return (await res.json()) as T;
  };
  await waitFor(
    async () => {
      if (!proc.running()) throw new Error('edgegate exited');
      return (await fetch(`http://127.0.0.1:${adminPort}/healthz`)).ok;
    },
    {
      timeoutMs: 30_000,
      message: 'edgegate admin to answer',
      diagnostics: () => formatTail('edgegate', logPath, 40),
    },
  );
  const client = new Client(port);
  return {
    proc,
    port,
    adminPort,
    client,
    admin,
    async stop() {
      await client.close();
      await proc.stop(10_000);
    },
  };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

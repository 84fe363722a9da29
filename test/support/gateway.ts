/**
 * edgegate itself as a real process for e2e tests: `node cmd/edgegate.ts run …` on free loopback ports, its
 * output captured, ready when /readyz says so. Also real `edgegate echo` upstreams.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createEchoServer } from '../../src/tools/echo-server.ts';
import { freePort } from './ports.ts';
import { waitFor } from './wait.ts';

export const ROOT = join(import.meta.dirname, '..', '..');
export const CLI = join(ROOT, 'cmd', 'edgegate.ts');

export interface GatewayProcess {
  proc: ChildProcess;
  port: number;
  adminPort: number;
  url: string;
  adminUrl: string;
  output(): string;
  /** Resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Peak resident set size in KiB (VmHWM, from /proc) of the process that proxies: the largest of the primary
   * and its worker processes. */
  peakRssKiB(): number;
}

export async function startGateway(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; ready?: boolean } = {},
): Promise<GatewayProcess> {
  const port = await freePort({ udp: false });
  const adminPort = await freePort({ udp: false });
  const proc = spawn(
    process.execPath,
    [
      CLI,
      'run',
      '--listen',
      `127.0.0.1:${port}`,
      '--admin',
      `127.0.0.1:${adminPort}`,
      '--log-level',
      'debug',
      ...args,
    ],
    { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = once(proc, 'exit').then(([code]) => code as number | null);
  const gw: GatewayProcess = {
    proc,
    port,
    adminPort,
    url: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
    peakRssKiB() {
      const hwm = (pid: number | string) => {
        try {
          return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
        } catch {
          return 0;
        }
      };
      const children = readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .filter(Boolean);
      return Math.max(hwm(proc.pid!), ...children.map(hwm));
    },
  };
  if (opts.ready !== false) {
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`edgegate exited with ${proc.exitCode}:\n${out}`);
        const r = await fetch(`${gw.adminUrl}/readyz`);
        return r.status === 200;
      },
      { timeoutMs: 60_000, message: 'edgegate ready', diagnostics: () => out },
    );
  }
  return gw;
}

export interface EchoUpstream {
  name: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

/** An in-process `edgegate echo` on a free loopback port. */
export async function startEcho(name: string, port = 0): Promise<EchoUpstream> {
  const server = createEchoServer({ name });
  server.listen({ host: '127.0.0.1', port });
  await once(server, 'listening');
  return {
    name,
    port: (server.address() as AddressInfo).port,
    server,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A GatewayRoute manifest as YAML text. */
export function routeYaml(name: string, spec: unknown, namespace = 'default'): string {
  return `${JSON.stringify({ apiVersion: 'edgegate.io/v1alpha1', kind: 'GatewayRoute', metadata: { name, namespace }, spec })}\n`;
}

/** A standalone catalog file: datacenter dc1, each service's instances on 127.0.0.1 at the given ports. */
export function writeLoopbackCatalog(file: string, services: Record<string, number[]>): void {
  const dc1 = Object.fromEntries(
    Object.entries(services).map(([name, ports]) => [
      name,
      ports.map((port) => ({ address: '127.0.0.1', port })),
    ]),
  );
  writeFileSync(file, JSON.stringify({ datacenters: { dc1: { services: dc1 } } }));
}

/**
 * Standalone config under `dir`: a catalog file with one instance of `service` on 127.0.0.1:`port`, and a routes
 * directory with one catch-all route (named like the service) to it. Returns the two paths for `run`.
 */
export function writeOneServiceConfig(
  dir: string,
  port: number,
  service = 'echo',
): { routes: string; catalog: string } {
  const routes = join(dir, 'routes');
  const catalog = join(dir, 'catalog.yaml');
  mkdirSync(routes, { recursive: true });
  writeLoopbackCatalog(catalog, { [service]: [port] });
  writeFileSync(
    join(routes, `${service}.yaml`),
    routeYaml(service, {
      rules: [{ matches: [{ path: { value: '/' } }], backends: [{ consul: { service } }] }],
    }),
  );
  return { routes, catalog };
}

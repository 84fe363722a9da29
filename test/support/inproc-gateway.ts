/**
 * In-process gateway for e2e tests: compile routes + a catalog into a table, serve it with ProxyPipeline and
 * createProxyServer on 127.0.0.1:0, against real upstreams (echo servers or purpose-built ones).
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import type { Instance } from '../../src/api/catalog.ts';
import { LocalCoordinator } from '../../src/cluster/policy-state.ts';
import { compile } from '../../src/compile/compile.ts';
import { PolicyRuntime } from '../../src/dataplane/policy/policy-runtime.ts';
import { ProxyPipeline, type ProxySettings } from '../../src/dataplane/proxy/proxy.ts';
import {
  createProxyServer,
  type HttpListener,
  type ListenerSettings,
} from '../../src/dataplane/proxy/server.ts';
import { acceptH2c } from '../../src/dataplane/tls/h2c-listener.ts';
import { TlsListener } from '../../src/dataplane/tls/tls-listener.ts';
import type { TlsListenerSettings } from '../../src/dataplane/tls/tls-settings.ts';
import { silentLogger } from '../../src/lib/log.ts';
import type { TableData } from '../../src/table/types.ts';
import { createEchoServer } from '../../src/tools/echo-server.ts';

export async function listen(server: import('node:net').Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

export interface Upstream {
  name: string;
  port: number;
  server: Server;
  /** Requests received (counted when their headers arrive). */
  hits: number;
  close(): Promise<void>;
}

async function track(name: string, server: Server): Promise<Upstream> {
  const port = await listen(server);
  const up: Upstream = {
    name,
    port,
    server,
    hits: 0,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  server.prependListener('request', () => {
    up.hits++;
  });
  server.prependListener('upgrade', () => {
    up.hits++;
  });
  return up;
}

export function startEcho(name: string): Promise<Upstream> {
  return track(name, createEchoServer({ name }));
}

export function startUpstream(
  name: string,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<Upstream> {
  return track(name, createServer(handler));
}

export function instance(port: number, name = `i${port}`): Instance {
  return { id: name, address: '127.0.0.1', port, tags: [], meta: {}, health: 'passing', weight: 1 };
}

/** A table with one route (spec given) and service `svc` in dc1 with these upstream ports. */
export function tableOf(
  spec: Record<string, unknown>,
  services: Record<string, number[]>,
  version = 1,
): TableData {
  const catalogServices: Record<string, Instance[]> = {};
  for (const [svc, ports] of Object.entries(services)) catalogServices[svc] = ports.map((p) => instance(p));
  const { table, statuses } = compile({
    routes: [
      {
        raw: {
          apiVersion: 'edgegate.io/v1alpha1',
          kind: 'GatewayRoute',
          metadata: { name: 'test', namespace: 'default' },
          spec,
        },
        origin: 'test',
      },
    ],
    catalog: { localDatacenter: 'dc1', datacenters: { dc1: { services: catalogServices } } },
  });
  const bad = statuses.filter((s) => !s.accepted);
  if (bad.length > 0) throw new Error(`route rejected: ${JSON.stringify(bad[0]!.errors)}`);
  return { ...table, version };
}

export interface Gateway {
  proxy: ProxyPipeline;
  server: HttpListener;
  port: number;
  /** The HTTPS listener (HTTP/2 and HTTP/1.1 over TLS) on the same pipeline, when started with `tls`. */
  tls: TlsListener | undefined;
  tlsPort: number;
  close(): Promise<void>;
}

export interface GatewayOptions {
  /** Also serve HTTPS with this certificate (PEM), as the default certificate. */
  tls?: { certPem: string; keyPem: string };
  tlsSettings?: Partial<TlsListenerSettings>;
  /** Enforce the routes' policies (a PolicyRuntime in this process, as `--workers 0` has). */
  policies?: boolean;
}

export async function startGateway(
  table: TableData,
  proxySettings: Partial<ProxySettings> = {},
  listenerSettings: Partial<ListenerSettings> = {},
  opts: GatewayOptions = {},
): Promise<Gateway> {
  // The suite can run on either HTTP/1.1 data path: EDGEGATE_HTTP1_SERVER / EDGEGATE_UPSTREAM_CLIENT as `run` reads them.
  const h1 = process.env.EDGEGATE_HTTP1_SERVER;
  if ((h1 === 'raw' || h1 === 'node') && listenerSettings.http1Server === undefined)
    listenerSettings = { ...listenerSettings, http1Server: h1 };
  const uc = process.env.EDGEGATE_UPSTREAM_CLIENT;
  if ((uc === 'raw' || uc === 'undici') && proxySettings.upstreamClient === undefined)
    proxySettings = { ...proxySettings, upstreamClient: uc };
  const policies = opts.policies
    ? new PolicyRuntime({ trustedHops: proxySettings.trustedHops ?? 0, workers: 1 }, new LocalCoordinator())
    : undefined;
  const proxy = new ProxyPipeline(proxySettings, policies);
  proxy.setTable(table);
  let tls: TlsListener | undefined;
  let tlsPort = 0;
  if (opts.tls) {
    tls = new TlsListener(proxy, opts.tlsSettings ?? {}, silentLogger(), listenerSettings);
    tls.applyCerts({
      version: 1,
      bundles: [],
      defaultBundle: { source: 'test', hostnames: [], certPem: opts.tls.certPem, keyPem: opts.tls.keyPem },
    });
    tlsPort = (await tls.listen({ host: '127.0.0.1', port: 0, reusePort: false })).port;
  }
  const server = createProxyServer(proxy, listenerSettings);
  if (listenerSettings.h2c) acceptH2c(server, proxy, listenerSettings, opts.tlsSettings);
  // closeAllConnections does not reach upgraded (WebSocket) sockets: track every socket.
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  const port = await listen(server);
  return {
    proxy,
    server,
    port,
    tls,
    tlsPort,
    async close() {
      server.closeAllConnections();
      for (const s of sockets) s.destroy();
      if (tls) await tls.drain({ delayMs: 0, timeoutMs: 0 });
      await new Promise<void>((r) => server.close(() => r()));
      await proxy.pools.destroy();
      await policies?.close();
    },
  };
}

/**
 * Sends raw bytes on a fresh TCP connection and resolves with everything the server sent until it closed the
 * connection (or `timeoutMs`, after which the socket is destroyed and what arrived is returned).
 */
export function rawExchange(port: number, payload: string | Buffer, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    }, timeoutMs);
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') return;
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

export function statusOf(response: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(response);
  return m ? Number(m[1]) : 0;
}

/** A GET through the gateway with fetch-free plain http (keeps tests on node:http). */
export async function get(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, headers: { host: 'test.local', ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            headers: res.headers,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

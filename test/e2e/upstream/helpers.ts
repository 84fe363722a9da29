/**
 * The attacks that try to hold a gateway's upstream resources, run against every listener: a real `edgegate run`
 * process (one worker) with its HTTP listener and its HTTPS listener (HTTP/1.1 and HTTP/2 over TLS), clients for
 * each, raw connections for the misbehaving ones, and upstreams that count what reaches them (requests in flight,
 * TCP connections opened).
 */
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import {
  createServer,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { type ClientHttp2Session, connect as h2connect } from 'node:http2';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { type AddressInfo, connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { routeYaml, writeLoopbackCatalog } from '../../support/gateway.ts';
import { type PromText, scrapeMetrics, sumOf } from '../../support/prom-text.ts';
import { tempDir } from '../cluster/helpers.ts';
import { makeCert, startTlsGateway, type TlsGateway } from '../tls/helpers.ts';

/** The three ways a client reaches the gateway: HTTP/1.1, HTTP/1.1 over TLS, HTTP/2 over TLS. */
export type Listener = 'http' | 'https' | 'h2';
export const LISTENERS: Listener[] = ['http', 'https', 'h2'];

/** The name the test certificate is for (and the Host / :authority clients send). */
export const HOST = 'edge.test';

export interface RouteSpec {
  prefix: string;
  service: string;
  /** `backends[].pool` */
  pool?: Record<string, unknown>;
  /** `rules[].retry` */
  retry?: Record<string, unknown>;
}

export interface EdgeGateway extends TlsGateway {
  metrics(): Promise<PromText>;
  /** A counter's value summed over its series (matching `labels`), from /metrics. */
  counter(name: string, labels?: Record<string, string>): Promise<number>;
  close(): Promise<void>;
}

/** `edgegate run --workers 1` with both listeners, one rule per route spec, the services on loopback ports. */
export async function startEdgeGateway(opts: {
  routes: RouteSpec[];
  services: Record<string, number[]>;
  args?: string[];
}): Promise<EdgeGateway> {
  const tmp = tempDir('edgegate-upstream-');
  const cert = makeCert(tmp.dir, 'edge', HOST);
  const routes = join(tmp.dir, 'routes');
  mkdirSync(routes);
  opts.routes.forEach((r, i) => {
    writeFileSync(
      join(routes, `r${i}.yaml`),
      routeYaml(`r${i}`, {
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: r.prefix } }],
            backends: [
              { consul: { service: r.service, datacenter: 'dc1' }, ...(r.pool ? { pool: r.pool } : {}) },
            ],
            ...(r.retry ? { retry: r.retry } : {}),
          },
        ],
      }),
    );
  });
  const catalog = join(tmp.dir, 'catalog.json');
  writeLoopbackCatalog(catalog, opts.services);
  const gw = await startTlsGateway({
    routes,
    catalog,
    workers: 1,
    args: ['--tls-cert', `${cert.cert},${cert.key}`, '--access-log', 'off', ...(opts.args ?? [])],
  });
  const adminUrl = `http://127.0.0.1:${gw.adminPort}`;
  return {
    ...gw,
    metrics: () => scrapeMetrics(adminUrl),
    counter: async (name, labels = {}) => sumOf(await scrapeMetrics(adminUrl), name, labels),
    async close() {
      await gw.stop();
      tmp.remove();
    },
  };
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** Informational (1xx) answers received before the final one, with their headers. */
  informational: { status: number; headers: Record<string, string | string[] | undefined> }[];
}

export interface RequestOptions {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
}

/** A client of one listener: keep-alive HTTP/1.1 (plain or TLS), or one HTTP/2 session. */
export interface Client {
  request(o: RequestOptions): Promise<Reply>;
  close(): void;
}

export function client(listener: Listener, gw: TlsGateway): Client {
  if (listener === 'h2') {
    const session = h2connect(`https://127.0.0.1:${gw.tlsPort}`, {
      servername: HOST,
      rejectUnauthorized: false,
    });
    session.on('error', () => {});
    return { request: (o) => h2Request(session, o), close: () => session.close() };
  }
  const tls = listener === 'https';
  const agent = tls
    ? new HttpsAgent({ keepAlive: true, rejectUnauthorized: false, servername: HOST })
    : new HttpAgent({ keepAlive: true });
  return {
    request: (o) =>
      new Promise<Reply>((resolve, reject) => {
        const informational: Reply['informational'] = [];
        const req = (tls ? httpsRequest : httpRequest)(
          {
            host: '127.0.0.1',
            port: tls ? gw.tlsPort : gw.port,
            method: o.method ?? 'GET',
            path: o.path,
            headers: { host: HOST, ...o.headers },
            agent,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                headers: res.headers,
                body: Buffer.concat(chunks),
                informational,
              }),
            );
            res.on('error', reject);
          },
        );
        req.on('information', (info) =>
          informational.push({ status: info.statusCode, headers: info.headers }),
        );
        req.on('error', reject);
        req.end(o.body);
      }),
    close: () => agent.destroy(),
  };
}

function h2Request(session: ClientHttp2Session, o: RequestOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const informational: Reply['informational'] = [];
    const stream = session.request({
      ':method': o.method ?? 'GET',
      ':path': o.path,
      ':authority': HOST,
      ...o.headers,
    });
    stream.on('headers', (h) => informational.push({ status: Number(h[':status']), headers: { ...h } }));
    stream.on('response', (h) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () =>
        resolve({
          status: Number(h[':status']),
          headers: { ...h },
          body: Buffer.concat(chunks),
          informational,
        }),
      );
    });
    stream.on('error', reject);
    stream.end(o.body);
  });
}

/** A raw HTTP/1.1 connection to the HTTP listener, or over TLS (ALPN http/1.1) to the HTTPS one. */
export async function rawConnection(listener: 'http' | 'https', gw: TlsGateway): Promise<Socket | TLSSocket> {
  const socket =
    listener === 'http'
      ? netConnect(gw.port, '127.0.0.1')
      : tlsConnect({
          host: '127.0.0.1',
          port: gw.tlsPort,
          servername: HOST,
          ALPNProtocols: ['http/1.1'],
          rejectUnauthorized: false,
        });
  socket.on('error', () => {});
  await once(socket, listener === 'http' ? 'connect' : 'secureConnect');
  return socket;
}

/** An HTTP/2 session to the HTTPS listener (settings as given: a zero receive window, say). */
export async function h2Session(
  gw: TlsGateway,
  settings: Record<string, number> = {},
): Promise<ClientHttp2Session> {
  const session = h2connect(`https://127.0.0.1:${gw.tlsPort}`, {
    servername: HOST,
    rejectUnauthorized: false,
    settings,
  });
  session.on('error', () => {});
  await once(session, 'connect');
  return session;
}

/** An upstream that counts what reaches it. */
export interface CountingUpstream {
  port: number;
  server: Server;
  /** TCP connections accepted since start (or the last reset). */
  connections: number;
  /** Requests received, and by method. */
  requests: number;
  byMethod: Record<string, number>;
  /** Requests being handled now (response not finished and not closed), and the most at once. */
  inFlight: number;
  maxInFlight: number;
  reset(): void;
  close(): Promise<void>;
}

export async function countingUpstream(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<CountingUpstream> {
  const server = createServer(handler);
  const up: CountingUpstream = {
    port: 0,
    server,
    connections: 0,
    requests: 0,
    byMethod: {},
    inFlight: 0,
    maxInFlight: 0,
    reset() {
      up.connections = 0;
      up.requests = 0;
      up.byMethod = {};
      up.maxInFlight = up.inFlight;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  server.on('connection', () => {
    up.connections++;
  });
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    up.requests++;
    up.byMethod[req.method ?? ''] = (up.byMethod[req.method ?? ''] ?? 0) + 1;
    up.inFlight++;
    up.maxInFlight = Math.max(up.maxInFlight, up.inFlight);
    res.once('close', () => {
      up.inFlight--;
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  up.port = (server.address() as AddressInfo).port;
  return up;
}

/** Writes `size` bytes in 64 KiB chunks with backpressure (a large download). */
export function writeBig(res: ServerResponse, size: number): void {
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let left = size;
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      left -= n;
      if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
}

/** The JSON error code of a gateway-generated answer ('' when the body is not one). */
export function errorCodeOf(r: Reply): string {
  try {
    return String((JSON.parse(r.body.toString()) as { error?: string }).error ?? '');
  } catch {
    return '';
  }
}

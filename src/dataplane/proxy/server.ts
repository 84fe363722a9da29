/**
 * The proxy's HTTP listener: Node's http server with edge defaults, feeding ProxyPipeline.handle, and
 * handleUpgrade for WebSocket upgrades. Request-level checks that must happen before routing (header count,
 * duplicate Host, underscores, control characters, absolute-form authority) live here and in request-checks.ts.
 *
 * Upgrades: only `Upgrade: websocket` reaches handleUpgrade. Any other upgrade (`h2c`, `TLS/1.0`…) is served as
 * a plain HTTP/1.1 request with Upgrade, Connection and the headers Connection names removed (RFC 9110 §7.8
 * lets a server ignore Upgrade), and the client connection is closed after the response, so an h2c upgrade can
 * never open a tunnel past the gateway nor smuggle a second request behind it.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { noteGatewayError } from '../observe/request-observer.ts';
import { InFlight } from './in-flight.ts';
import type { ProxyPipeline } from './proxy.ts';
import { sendError } from './proxy.ts';
import { checkRequest, isWebSocketUpgrade, type RequestCheckSettings } from './request-checks.ts';
import { refuseUpgrade } from './websocket.ts';

export interface ListenerSettings extends RequestCheckSettings {
  /** Time a client has to send the request headers (slowloris guard). */
  headersTimeoutMs: number;
  /** Time a client has to send the whole request, body included (slow-body guard). 0: no limit. */
  requestTimeoutMs: number;
  /** Idle keep-alive time: above the 60 s idle timeout of common load balancers in front of the gateway. */
  keepAliveTimeoutMs: number;
  /** How often Node checks the two timeouts above; they fire at most this late. */
  connectionsCheckingIntervalMs: number;
  /** More request headers than this: 431. */
  maxHeaders: number;
  /** Open client connections per worker (listener); more are refused at accept. 0: no cap. */
  maxConnections: number;
}

export const DEFAULT_LISTENER_SETTINGS: ListenerSettings = {
  headersTimeoutMs: 15_000,
  requestTimeoutMs: 300_000,
  keepAliveTimeoutMs: 75_000,
  connectionsCheckingIntervalMs: 500,
  maxHeaders: 100,
  maxConnections: 10_000,
  rejectUnderscoreHeaders: true,
  rejectAuthorityMismatch: true,
  rejectControlCharacters: true,
};

export function createProxyServer(
  proxy: Pick<ProxyPipeline, 'handle'> & Partial<Pick<ProxyPipeline, 'handleUpgrade' | 'observer'>>,
  settings: Partial<ListenerSettings> = {},
): Server {
  const s = { ...DEFAULT_LISTENER_SETTINGS, ...settings };
  const server = createServer(
    {
      headersTimeout: s.headersTimeoutMs,
      requestTimeout: s.requestTimeoutMs,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      // Timeouts are checked at this interval; keep it short so they fire on time.
      connectionsCheckingInterval: s.connectionsCheckingIntervalMs,
      requireHostHeader: true,
      // The header cap is enforced below with a clear 431, not by silent truncation.
      maxHeaderSize: 16 * 1024,
      // A listener without WebSocket support (the HTTPS redirector) serves upgrade requests as plain ones.
      shouldUpgradeCallback: proxy.handleUpgrade ? isWebSocketUpgrade : () => false,
    },
    (req: IncomingMessage, res: ServerResponse) => {
      track(server, res);
      proxy.observer?.begin(req, res);
      if (req.rawHeaders.length > s.maxHeaders * 2) {
        noteGatewayError(res, 'EDGEGATE_BAD_REQUEST');
        res.shouldKeepAlive = false;
        res.writeHead(431, { 'content-type': 'application/json', connection: 'close' });
        res.end(
          JSON.stringify({
            error: 'EDGEGATE_BAD_REQUEST',
            message: `more than ${s.maxHeaders} request headers`,
          }),
        );
        return;
      }
      const problem = checkRequest(req, s);
      if (problem !== undefined) {
        res.shouldKeepAlive = false;
        return sendError(res, 'EDGEGATE_BAD_REQUEST', '-', problem);
      }
      // A refused upgrade (h2c…): Node's parser treats the bytes after its head as the new protocol, so the
      // connection cannot carry another request. Close it after this response.
      if (req.headers.upgrade !== undefined) res.shouldKeepAlive = false;
      proxy.handle(req, res);
    },
  );
  server.maxHeadersCount = s.maxHeaders + 1;
  if (s.maxConnections > 0) server.maxConnections = s.maxConnections;
  trackConnections(server);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const problem =
      req.rawHeaders.length > s.maxHeaders * 2
        ? `more than ${s.maxHeaders} request headers`
        : checkRequest(req, s);
    if (problem !== undefined) return refuseUpgrade(socket, 'EDGEGATE_BAD_REQUEST', '-', problem);
    proxy.handleUpgrade?.(req, socket, head);
  });
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    if (!socket.writable) return socket.destroy();
    const status =
      err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const body = JSON.stringify({
      error: 'EDGEGATE_BAD_REQUEST',
      message: status === 408 ? 'request timeout' : 'malformed request',
    });
    socket.end(
      `HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  return server;
}

// ── Listening and graceful drain ─────────────────────────────────────────────────────────────────────────────

/** Per-server bookkeeping for drain and stats; kept beside the server so the request handler stays flat. */
interface ServerState {
  draining: boolean;
  requests: number;
  readonly active: InFlight<ServerResponse>;
  readonly sockets: Set<Socket>;
  /** Called whenever a response finishes or a socket closes while draining. */
  onSettle: (() => void) | undefined;
}

const states = new WeakMap<Server, ServerState>();

function stateOf(server: Server): ServerState {
  let st = states.get(server);
  if (!st) {
    st = { draining: false, requests: 0, active: new InFlight(), sockets: new Set(), onSettle: undefined };
    states.set(server, st);
  }
  return st;
}

function trackConnections(server: Server): void {
  const st = stateOf(server);
  server.on('connection', (socket: Socket) => {
    st.sockets.add(socket);
    socket.once('close', () => {
      st.sockets.delete(socket);
      st.onSettle?.();
    });
  });
}

function track(server: Server, res: ServerResponse): void {
  const st = stateOf(server);
  st.requests++;
  const entry = st.active.add(res);
  // While draining, every response closes its connection: the client reconnects elsewhere.
  if (st.draining) res.shouldKeepAlive = false;
  res.once('close', () => {
    st.active.delete(entry);
    st.onSettle?.();
  });
}

export interface ListenerStats {
  /** Requests received since start. */
  requests: number;
  /** Requests whose response has not finished. */
  inFlight: number;
  /** Open client connections. */
  connections: number;
  draining: boolean;
}

export function listenerStats(server: Server): ListenerStats {
  const st = stateOf(server);
  return {
    requests: st.requests,
    inFlight: st.active.size,
    connections: st.sockets.size,
    draining: st.draining,
  };
}

export interface ListenOptions {
  host: string | undefined;
  port: number;
  /**
   * A socket of this process's own with SO_REUSEPORT (`exclusive` in a cluster worker), so the kernel balances
   * connections across workers. Linux, FreeBSD and a few others; elsewhere the caller passes false and a cluster
   * worker shares the primary's handle instead.
   */
  reusePort: boolean;
}

/**
 * Starts listening (the HTTP and the HTTPS listener alike); rejects with the listen error (EADDRINUSE…) instead of
 * emitting it.
 */
export async function listenProxyServer(server: NetServer, opts: ListenOptions): Promise<AddressInfo> {
  server.listen({
    host: opts.host,
    port: opts.port,
    ...(opts.reusePort ? { reusePort: true, exclusive: true } : {}),
  });
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([err]) => {
      throw err;
    }),
  ]);
  return server.address() as AddressInfo;
}

export interface DrainOptions {
  /** Keep the listener open this long after the drain starts (load balancers stop sending meanwhile). */
  delayMs: number;
  /** Total budget from the start: requests still running then are cut. */
  timeoutMs: number;
  /** Told when the listener closes (after the delay). */
  onListenerClosed?: () => void;
}

export interface DrainResult {
  /** Requests that were still running at the deadline and were cut. */
  cut: number;
  ms: number;
}

/**
 * Graceful drain. From the start, every response (including those of requests already running) carries
 * `Connection: close`. After `delayMs` the listener closes and idle keep-alive sockets are closed; requests in
 * flight run to completion until `timeoutMs`, when whatever is left is cut.
 */
export async function drainServer(server: Server, opts: DrainOptions): Promise<DrainResult> {
  const st = stateOf(server);
  const started = Date.now();
  const deadline = started + opts.timeoutMs;
  st.draining = true;
  for (const res of st.active) if (!res.headersSent) res.shouldKeepAlive = false;

  await new Promise((r) => setTimeout(r, Math.max(0, Math.min(opts.delayMs, opts.timeoutMs))));
  if (server.listening) server.close();
  opts.onListenerClosed?.();

  const settled = new Promise<void>((resolve) => {
    const check = () => {
      // A keep-alive response already under way when the drain began leaves its socket idle: close it now.
      server.closeIdleConnections();
      if (st.active.size === 0 && st.sockets.size === 0) resolve();
    };
    st.onSettle = () => setImmediate(check);
    check();
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(true), Math.max(0, deadline - Date.now()));
  });
  const late = await Promise.race([settled.then(() => false), timedOut]);
  clearTimeout(timer);
  st.onSettle = undefined;
  const cut = late ? st.active.size : 0;
  if (late) server.closeAllConnections();
  return { cut, ms: Date.now() - started };
}

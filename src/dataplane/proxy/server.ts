/**
 * The proxy's HTTP listener: Node's http server with edge defaults, feeding ProxyPipeline.handle, and
 * handleUpgrade for WebSocket upgrades. Every request — plain or upgrade — first passes admission
 * (request-checks.ts → admission.ts: version, method, target, Host, header checks), the same as on the HTTPS
 * listener; parser errors, `CONNECT` and connections over the cap are answered and counted the same way too.
 *
 * Upgrades: only `Upgrade: websocket` reaches handleUpgrade. Any other upgrade (`h2c`, `TLS/1.0`…) is served as
 * a plain HTTP/1.1 request with Upgrade, Connection and the headers Connection names removed (RFC 9110 §7.8
 * lets a server ignore Upgrade), and the client connection is closed after the response, so an h2c upgrade can
 * never open a tunnel past the gateway nor smuggle a second request behind it.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Http2ServerResponse } from 'node:http2';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type AdmissionProtocol, methodRefusal, type Refusal } from './admission.ts';
import { edgeEvents } from './edge-events.ts';
import { InFlight, type InFlightEntry } from './in-flight.ts';
import type { ProxyPipeline } from './proxy.ts';
import { acceptProxyProtocol, type ProxyProtocolSettings } from './proxy-protocol-listener.ts';
import { RawHttpServer } from './raw-server.ts';
import { answerUpgradeError, refuseOnSocket, respondRefusal } from './refusal-response.ts';
import {
  checkRequest,
  clientErrorHandler,
  enterRequest,
  isWebSocketUpgrade,
  noteResponse,
  type RequestCheckSettings,
} from './request-checks.ts';

export interface ListenerSettings extends RequestCheckSettings, ProxyProtocolSettings {
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
  /** Accept cleartext HTTP/2 with prior knowledge on the plain listener (h2c; tls/h2c-listener.ts). Off by default. */
  h2c: boolean;
  /** The plain listener's HTTP/1.1 server: `node:http`, or raw sockets with Node's parser (raw-server.ts). */
  http1Server: Http1Server;
}

export type Http1Server = 'node' | 'raw';

/** What both HTTP/1.1 servers of the plain listener are: a net server that can close its connections. */
export type HttpListener = NetServer & { closeIdleConnections(): void; closeAllConnections(): void };

export const DEFAULT_LISTENER_SETTINGS: ListenerSettings = {
  headersTimeoutMs: 15_000,
  requestTimeoutMs: 300_000,
  keepAliveTimeoutMs: 75_000,
  connectionsCheckingIntervalMs: 500,
  maxHeaders: 100,
  maxConnections: 10_000,
  h2c: false,
  http1Server: 'raw',
  rejectUnderscoreHeaders: true,
  rejectAuthorityMismatch: true,
  rejectControlCharacters: true,
  proxyProtocolFrom: [],
  proxyProtocolTimeoutMs: 5_000,
};

export function createProxyServer(
  proxy: PlainHandler,
  settings: Partial<ListenerSettings> = {},
): HttpListener {
  const s = { ...DEFAULT_LISTENER_SETTINGS, ...settings };
  if (s.http1Server === 'raw') return createRawProxyServer(proxy, s);
  const server = createServer(
    {
      headersTimeout: s.headersTimeoutMs,
      requestTimeout: s.requestTimeoutMs,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      // Timeouts are checked at this interval; keep it short so they fire on time.
      connectionsCheckingInterval: s.connectionsCheckingIntervalMs,
      requireHostHeader: true,
      // The header cap is enforced by admission with a clear 431, not by silent truncation.
      maxHeaderSize: MAX_HEADER_SIZE,
      // A listener without WebSocket support (the HTTPS redirector) serves upgrade requests as plain ones.
      shouldUpgradeCallback: proxy.handleUpgrade ? isWebSocketUpgrade : () => false,
    },
    (req: IncomingMessage, res: ServerResponse) => enterPlain(server, proxy, s, req, res),
  );
  server.maxHeadersCount = s.maxHeaders + 1;
  return wirePlainListener(server, proxy, s);
}

type PlainHandler = Pick<ProxyPipeline, 'handle'> &
  Partial<Pick<ProxyPipeline, 'handleUpgrade' | 'handleExtendedConnect' | 'observer'>>;

/** A request on the plain listener (either server): counted, observed, tagged, admitted, handled. */
function enterPlain(
  server: NetServer,
  proxy: PlainHandler,
  s: ListenerSettings,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  track(server, res);
  proxy.observer?.begin(req, res);
  noteResponse(req, res);
  enterRequest(proxy, req, res, s, 'http1');
}

/** What both servers of the plain listener get: the cap, bookkeeping, upgrades, the guard, PROXY protocol. */
function wirePlainListener<T extends NetServer>(server: T, proxy: PlainHandler, s: ListenerSettings): T {
  if (s.maxConnections > 0) server.maxConnections = s.maxConnections;
  trackConnections(server);
  if (proxy.handleUpgrade) server.on('upgrade', upgradeHandler(proxy as UpgradeHandler, s, 'http1'));
  guardListener(server, 'http1');
  acceptProxyProtocol(server, s, 'http1', false);
  return server;
}

/** The same listener on raw-server.ts: the same handler, checks, upgrades, guard and bookkeeping. */
function createRawProxyServer(proxy: PlainHandler, s: ListenerSettings): HttpListener {
  const server: RawHttpServer = new RawHttpServer(
    {
      headersTimeoutMs: s.headersTimeoutMs,
      requestTimeoutMs: s.requestTimeoutMs,
      keepAliveTimeoutMs: s.keepAliveTimeoutMs,
      connectionsCheckingIntervalMs: s.connectionsCheckingIntervalMs,
      maxHeaderSize: MAX_HEADER_SIZE,
      shouldUpgrade: proxy.handleUpgrade
        ? (req) => isWebSocketUpgrade(req as unknown as IncomingMessage)
        : () => false,
    },
    (req, res) =>
      enterPlain(server, proxy, s, req as unknown as IncomingMessage, res as unknown as ServerResponse),
  );
  return wirePlainListener(server, proxy, s);
}

/** Request head bytes (request line and fields) either server accepts; more: 431. */
const MAX_HEADER_SIZE = 16 * 1024;

/** What takes WebSocket upgrades over HTTP/1.1 (the proxy pipeline). */
export interface UpgradeHandler {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, protocol: AdmissionProtocol): void;
}

/**
 * The `upgrade` handler of an HTTP/1 listener (plain, or the HTTPS listener's HTTP/1.1 side): admission as for
 * every request, then the pipeline's WebSocket path under a guard. `onTunnel`: told of each admitted upgrade.
 */
export function upgradeHandler(
  proxy: UpgradeHandler,
  s: RequestCheckSettings & { maxHeaders: number },
  protocol: AdmissionProtocol,
  onTunnel?: (socket: Duplex) => void,
): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (req, socket, head) => {
    socket.on('error', destroyOnError);
    // Defence in depth: the listeners route only `Upgrade: websocket` here (shouldUpgradeCallback).
    const refusal = isWebSocketUpgrade(req) ? checkRequest(req, s) : NOT_WEBSOCKET;
    if (refusal !== undefined) {
      edgeEvents.websocket(protocol, 'bad_request');
      return refuseOnSocket(socket, refusal, protocol);
    }
    onTunnel?.(socket);
    try {
      proxy.handleUpgrade(req, socket, head, protocol);
    } catch (err) {
      answerUpgradeError(socket, err);
    }
  };
}

const CONNECT_REFUSED = methodRefusal('CONNECT')!;
const NOT_WEBSOCKET: Refusal = {
  status: 400,
  reason: 'malformed',
  message: 'only WebSocket upgrades are proxied',
};

function destroyOnError(this: Duplex): void {
  this.destroy();
}

/**
 * What every HTTP/1 listener (plain or TLS) answers outside a request handler: parser errors and client timeouts
 * (`clientError`), `CONNECT` (405: the gateway is no tunnel), and connections refused over the cap (counted).
 */
export function guardListener(
  server: NetServer,
  protocol: AdmissionProtocol,
  extendedConnect?: (req: IncomingMessage, res: ServerResponse) => void,
): void {
  server.on('clientError', clientErrorHandler(protocol));
  // HTTP/1 passes the raw socket; HTTP/2 (the HTTPS and h2c listeners) a compat response of the CONNECT stream,
  // which with `:protocol` is an RFC 8441 extended CONNECT (websocket-h2.ts).
  server.on('connect', (req: IncomingMessage, target: Duplex | Http2ServerResponse) => {
    if (target instanceof Http2ServerResponse) {
      const res = target as unknown as ServerResponse;
      if (extendedConnect !== undefined && req.headers[':protocol'] !== undefined)
        return extendedConnect(req, res);
      return respondRefusal(res, CONNECT_REFUSED, protocol === 'h2c' ? 'h2c' : 'h2');
    }
    target.on('error', destroyOnError);
    refuseOnSocket(target, CONNECT_REFUSED, protocol);
  });
  server.on('drop', () =>
    edgeEvents.refused(protocol, 'max_connections', `over ${server.maxConnections} open client connections`),
  );
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
  /** Connections served by another protocol on this listener (h2c sessions): told when a drain starts and cuts. */
  drainHooks: DrainHooks | undefined;
}

export interface DrainHooks {
  /** The drain began: stop taking new requests on these connections (HTTP/2: GOAWAY). */
  start(): void;
  /** The drain budget is spent: close them. */
  cut(): void;
}

/** Lets another protocol served on this listener's sockets (h2c) take part in its graceful drain. */
export function setDrainHooks(server: HttpListener, hooks: DrainHooks): void {
  stateOf(server).drainHooks = hooks;
}

const states = new WeakMap<NetServer, ServerState>();

function stateOf(server: NetServer): ServerState {
  let st = states.get(server);
  if (!st) {
    st = {
      draining: false,
      requests: 0,
      active: new InFlight(),
      sockets: new Set(),
      onSettle: undefined,
      drainHooks: undefined,
    };
    states.set(server, st);
  }
  return st;
}

function trackConnections(server: NetServer): void {
  const st = stateOf(server);
  server.on('connection', (socket: Socket) => {
    st.sockets.add(socket);
    socket.once('close', () => {
      st.sockets.delete(socket);
      st.onSettle?.();
    });
  });
}

/** Counts a request served on this listener by another protocol (h2c) in its figures and its drain. */
export function trackRequest(server: HttpListener, res: ServerResponse): void {
  track(server, res);
}

const kListener = Symbol('edgegate.listenerState');
const kActive = Symbol('edgegate.activeEntry');
type TrackedResponse = ServerResponse & {
  [kListener]?: ServerState;
  [kActive]?: InFlightEntry<ServerResponse> | undefined;
};

function track(server: NetServer, res: ServerResponse): void {
  const st = stateOf(server);
  st.requests++;
  const tracked = res as TrackedResponse;
  tracked[kListener] = st;
  tracked[kActive] = st.active.add(res);
  // While draining, every response closes its connection: the client reconnects elsewhere.
  if (st.draining) res.shouldKeepAlive = false;
  // One module-level listener, its state on the response: no closure and no `once` wrapper per request.
  res.on('close', onTrackedClose);
}

function onTrackedClose(this: TrackedResponse): void {
  const entry = this[kActive];
  if (entry === undefined) return;
  this[kActive] = undefined;
  const st = this[kListener]!;
  st.active.delete(entry);
  st.onSettle?.();
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

export function listenerStats(server: NetServer): ListenerStats {
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
export async function drainServer(server: HttpListener, opts: DrainOptions): Promise<DrainResult> {
  const st = stateOf(server);
  const started = Date.now();
  const deadline = started + opts.timeoutMs;
  st.draining = true;
  for (const res of st.active) if (!res.headersSent) res.shouldKeepAlive = false;
  st.drainHooks?.start();

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
  if (late) {
    server.closeAllConnections();
    st.drainHooks?.cut();
  }
  return { cut, ms: Date.now() - started };
}

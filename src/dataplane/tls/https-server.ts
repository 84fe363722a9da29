import type { ServerOptions as HttpServerOptions, IncomingMessage, ServerResponse } from 'node:http';
import {
  createSecureServer,
  type Http2SecureServer,
  type Http2Server,
  Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
  constants as h2,
  type SecureServerOptions,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { FloodReason } from '../../cluster/worker-report.ts';
import { edgeEvents } from '../proxy/edge-events.ts';
import { InFlight } from '../proxy/in-flight.ts';
import { acceptProxyProtocol } from '../proxy/proxy-protocol-listener.ts';
import { enterRequest, isWebSocketUpgrade, noteResponse } from '../proxy/request-checks.ts';
import {
  DEFAULT_LISTENER_SETTINGS,
  guardListener,
  type ListenerSettings,
  type ListenerStats,
  type UpgradeHandler,
  upgradeHandler,
} from '../proxy/server.ts';
import { type ExtendedConnectHandler, extendedConnectHandler } from '../proxy/websocket-h2.ts';
import { type CertStore, secureContextOptions } from './cert-store.ts';
import { TlsConnectionGuard } from './tls-connection-guard.ts';
import {
  DEFAULT_TLS_LISTENER_SETTINGS,
  ECDH_CURVES,
  INTERMEDIATE_CIPHERS,
  MAX_TLS_VERSION,
  MIN_TLS_VERSION,
  TLS_SECURE_OPTIONS,
  type TlsListenerSettings,
} from './tls-settings.ts';
import { floodReasonOf, handshakeErrorReason, type TlsStats } from './tls-stats.ts';

export interface RequestHandler extends Partial<UpgradeHandler>, Partial<ExtendedConnectHandler> {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Metrics and access log (observe/), when the handler is the proxy pipeline. */
  observer?: { begin(req: IncomingMessage, res: ServerResponse): unknown };
}

type AnyRequest = IncomingMessage | Http2ServerRequest;
type AnyResponse = ServerResponse | Http2ServerResponse;

/** Bookkeeping for drain and stats of one HTTPS server. */
interface HttpsState {
  draining: boolean;
  requests: number;
  readonly active: InFlight<AnyResponse>;
  readonly sessions: Set<Http2Session>;
  /** HTTP/1.1 connections, with their count of unfinished responses. */
  readonly h1: Map<Socket, number>;
  onSettle: (() => void) | undefined;
}

const states = new WeakMap<Http2SecureServer, HttpsState>();

function stateOf(server: Http2SecureServer): HttpsState {
  const st = states.get(server);
  if (!st) throw new Error('not an edgegate HTTPS server');
  return st;
}

/**
 * HTTP/1.1 over TLS goes through node:http's connection handling: the same timeouts as the HTTP listener's.
 * (Node passes every http.createServer option through; @types/node only declares a few.)
 */
function http1OptionsOf(l: ListenerSettings, maxHeaderSize: number): SecureServerOptions['http1Options'] {
  const options: HttpServerOptions = {
    headersTimeout: l.headersTimeoutMs,
    requestTimeout: l.requestTimeoutMs,
    keepAliveTimeout: l.keepAliveTimeoutMs,
    connectionsCheckingInterval: l.connectionsCheckingIntervalMs,
    requireHostHeader: true,
    maxHeaderSize,
  };
  return options as SecureServerOptions['http1Options'];
}

function onSessionHeaderTimeout(session: Http2Session): void {
  if (session.destroyed) return;
  edgeEvents.refused('h2', 'header_timeout', 'no request HEADERS within the client header timeout');
  session.goaway(h2.NGHTTP2_NO_ERROR);
  session.destroy();
}

/** Resets counted in one window of a second. */
interface ResetWindow {
  start: number;
  n: number;
}

/**
 * Rapid-reset budgets (CVE-2023-44487): streams that end in a reset, counted per session and per client address in
 * windows of one second. A client that stays under the per-connection limit on many connections still meets its
 * address's budget. Address windows older than a second are swept once a second, so the map holds only the
 * addresses that reset streams in the last second.
 */
class ResetBudgets {
  readonly #perSession: number;
  readonly #perAddress: number;
  readonly #sessions = new WeakMap<Http2Session, ResetWindow>();
  readonly #addresses = new Map<string, ResetWindow>();
  #swept = 0;

  constructor(perSession: number, perAddress: number) {
    this.#perSession = perSession;
    this.#perAddress = perAddress;
  }

  /** Counts one reset of `session`; the budget it exceeds, if any. */
  reset(session: Http2Session, address: string, now: number): FloodReason | undefined {
    let w = this.#sessions.get(session);
    if (w === undefined || now - w.start >= 1000) {
      w = { start: now, n: 0 };
      this.#sessions.set(session, w);
    }
    if (++w.n > this.#perSession) return 'rapid_reset';
    if (now - this.#swept >= 1000) {
      this.#swept = now;
      for (const [a, aw] of this.#addresses) if (now - aw.start >= 1000) this.#addresses.delete(a);
    }
    let a = this.#addresses.get(address);
    if (a === undefined || now - a.start >= 1000) {
      a = { start: now, n: 0 };
      this.#addresses.set(address, a);
    }
    return ++a.n > this.#perAddress ? 'rapid_reset_address' : undefined;
  }
}

/** What a stream's close handler needs, kept on its session (one object per session, no closure per stream). */
interface SessionGuard {
  budgets: ResetBudgets;
  stats: Pick<TlsStats, 'floodStopped'>;
  address: string;
}
const kGuard = Symbol('edgegate.resetGuard');
const kSessionOf = Symbol('edgegate.sessionOf');
type GuardedSession = Http2Session & { [kGuard]?: SessionGuard };
type TaggedStream = ServerHttp2Stream & { [kSessionOf]?: GuardedSession };

/** A stream that ended in a reset (the rapid-reset pattern: HEADERS, then RST_STREAM at once) spends budget. */
function onStreamClose(this: TaggedStream): void {
  if (this.rstCode === h2.NGHTTP2_NO_ERROR) return;
  const session = this[kSessionOf];
  const guard = session?.[kGuard];
  if (session === undefined || guard === undefined || session.destroyed) return;
  const over = guard.budgets.reset(session, guard.address, Date.now());
  if (over === undefined) return;
  guard.stats.floodStopped(over);
  // One GOAWAY(ENHANCE_YOUR_CALM) and the session is gone (goaway() then destroy() would send a second GOAWAY,
  // NO_ERROR, and clients report the last one).
  session.destroy(
    Object.assign(new Error(`HTTP/2 session cut: ${over}`), { code: 'ERR_EDGEGATE_RAPID_RESET' }),
    h2.NGHTTP2_ENHANCE_YOUR_CALM,
  );
}

function onSessionStream(this: GuardedSession, stream: TaggedStream): void {
  stream[kSessionOf] = this;
  stream.once('close', onStreamClose);
}

/**
 * The HTTP/2 session limits and settings of every listener that speaks HTTP/2 (the HTTPS listener and the h2c side
 * of the HTTP listener): one place, so the two never drift apart.
 */
export function http2SessionOptions(
  l: ListenerSettings,
  s: TlsListenerSettings,
  proxy: Partial<ExtendedConnectHandler>,
) {
  return {
    settings: {
      maxConcurrentStreams: s.maxConcurrentStreams,
      maxHeaderListSize: s.maxHeaderListSize,
      enablePush: false,
      // RFC 8441: WebSocket over HTTP/2 (extended CONNECT), when the handler proxies WebSockets.
      enableConnectProtocol: proxy.handleExtendedConnect !== undefined,
    },
    maxHeaderListPairs: l.maxHeaders + 8,
    maxSessionInvalidFrames: s.maxSessionInvalidFrames,
    maxSessionRejectedStreams: s.maxSessionRejectedStreams,
    maxSessionMemory: s.maxSessionMemoryMb,
  };
}

/**
 * The guards every HTTP/2 listener of the gateway puts on its sessions (the HTTPS listener's, and the cleartext
 * h2c one, h2c-listener.ts): rapid-reset budgets per session and per client address, Node's own flood teardowns
 * counted, and the first request's HEADERS due within the client header timeout. `track`: told of each session.
 */
export function guardHttp2Sessions(
  server: Http2Server | Http2SecureServer,
  s: Pick<TlsListenerSettings, 'maxResetsPerSecond' | 'maxResetsPerSecondPerAddress'>,
  headersTimeoutMs: number,
  stats: Pick<TlsStats, 'floodStopped'>,
  track: (session: Http2Session) => void,
): void {
  const budgets = new ResetBudgets(s.maxResetsPerSecond, s.maxResetsPerSecondPerAddress);
  server.on('session', (session: GuardedSession) => {
    track(session);
    session.on('error', () => {});
    session[kGuard] = { budgets, stats, address: session.socket?.remoteAddress ?? '' };
    session.on('stream', onSessionStream);
  });
  // Node tears sessions down itself for its own limits (maxSessionInvalidFrames / maxSessionRejectedStreams, and
  // nghttp2's flood and reset-rate detection, which send their own GOAWAY code); count those as well.
  server.on('sessionError', (err: Error & { code?: string }) => {
    const reason = floodReasonOf(err);
    if (reason !== undefined) stats.floodStopped(reason);
  });

  // Slowloris over HTTP/2: a session must bring its first request's HEADERS within the header timeout (the TLS
  // handshake before it has its own bound, handshakeTimeoutMs).
  if (headersTimeoutMs > 0)
    server.on('session', (session: Http2Session) => {
      const timer = setTimeout(onSessionHeaderTimeout, headersTimeoutMs, session);
      session.once('stream', () => clearTimeout(timer));
      session.once('close', () => clearTimeout(timer));
    });
}

/**
 * The HTTPS listener (HTTP/2 and HTTP/1.1 over TLS). `listener`: the edge flags of the HTTP listener (request
 * checks, header count, client connections, header / request / keep-alive timeouts), which hold here the same;
 * where a flag is not given, the TLS listener's own defaults apply (equal to the HTTP listener's).
 */
export function createHttpsProxyServer(
  proxy: RequestHandler,
  store: CertStore,
  stats: TlsStats,
  settings: Partial<TlsListenerSettings> = {},
  listener: Partial<ListenerSettings> = {},
): Http2SecureServer {
  const s = { ...DEFAULT_TLS_LISTENER_SETTINGS, ...settings };
  const l: ListenerSettings = {
    ...DEFAULT_LISTENER_SETTINGS,
    maxHeaders: s.maxHeaders,
    headersTimeoutMs: s.headersTimeoutMs,
    keepAliveTimeoutMs: s.idleTimeoutMs,
    ...listener,
  };
  const def = store.defaultCert;
  // SNI (with the unrecognized_name alert), no renegotiation, no resumption across certificates.
  const guard = new TlsConnectionGuard(store, stats);
  const server = createSecureServer({
    allowHTTP1: true,
    minVersion: MIN_TLS_VERSION,
    maxVersion: MAX_TLS_VERSION,
    ciphers: INTERMEDIATE_CIPHERS,
    ecdhCurve: ECDH_CURVES,
    honorCipherOrder: true,
    secureOptions: TLS_SECURE_OPTIONS,
    // The client header timeout bounds the handshake too: a connection has that long to become a request.
    handshakeTimeout:
      l.headersTimeoutMs > 0 ? Math.min(s.handshakeTimeoutMs, l.headersTimeoutMs) : s.handshakeTimeoutMs,
    SNICallback: guard.SNICallback,
    ...http2SessionOptions(l, s, proxy),
    http1Options: http1OptionsOf(l, s.maxHeaderListSize),
  });
  guard.attach(server);
  // Clients without SNI (an IP address in the URL) get the default certificate, when there is one.
  if (def) server.setSecureContext(secureContextOptionsOfDefault(store));
  // node:http reads the header cap of HTTP/1.1 connections from the server object (admission answers 431 above it),
  // and which upgrades go to the `upgrade` event: only `Upgrade: websocket` (as on the HTTP listener); any other
  // (h2c…) is served as a plain request. (Node does not take `shouldUpgradeCallback` from http1Options: without this
  // every upgrade would reach the upgrade handler once it is installed.)
  Object.assign(server, {
    maxHeadersCount: l.maxHeaders + 1,
    shouldUpgradeCallback: proxy.handleUpgrade ? isWebSocketUpgrade : () => false,
  });
  if (l.maxConnections > 0) server.maxConnections = l.maxConnections;
  guardListener(
    server,
    'https1',
    proxy.handleExtendedConnect
      ? extendedConnectHandler(proxy as ExtendedConnectHandler, l, 'h2')
      : undefined,
  );
  server.setTimeout(s.idleTimeoutMs);

  const st: HttpsState = {
    draining: false,
    requests: 0,
    active: new InFlight(),
    sessions: new Set(),
    h1: new Map(),
    onSettle: undefined,
  };
  states.set(server, st);

  server.on('secureConnection', (socket: TLSSocket) => {
    stats.handshake(socket.alpnProtocol || 'http/1.1');
    if (socket.alpnProtocol !== 'h2') {
      st.h1.set(socket, 0);
      socket.once('close', () => {
        st.h1.delete(socket);
        st.onSettle?.();
      });
    }
  });
  server.on('tlsClientError', (err: Error) => stats.handshakeError(handshakeErrorReason(err)));
  // WebSocket over HTTP/1.1 on TLS: the HTTP listener's upgrade path. A tunnel counts as a busy connection, so a
  // drain lets it run until the drain timeout (as on the HTTP listener) instead of closing it as idle.
  if (proxy.handleUpgrade)
    server.on(
      'upgrade',
      upgradeHandler(proxy as UpgradeHandler, l, 'https1', (socket) => {
        const tls = socket as Socket;
        if (st.h1.has(tls)) st.h1.set(tls, (st.h1.get(tls) ?? 0) + 1);
      }),
    );

  guardHttp2Sessions(server, s, l.headersTimeoutMs, stats, (session) => {
    st.sessions.add(session);
    session.once('close', () => {
      st.sessions.delete(session);
      st.onSettle?.();
    });
    if (st.draining) session.close();
  });

  server.on('request', (req: AnyRequest, res: AnyResponse) => {
    proxy.observer?.begin(req as IncomingMessage, res as ServerResponse);
    st.requests++;
    const entry = st.active.add(res);
    // By the request object, not the version it claims: an HTTP/1 request line may say `HTTP/2.0`.
    const isH2 = req instanceof Http2ServerRequest;
    const h1Socket = isH2 ? undefined : (req.socket as Socket);
    if (h1Socket) {
      st.h1.set(h1Socket, (st.h1.get(h1Socket) ?? 0) + 1);
      noteResponse(req as IncomingMessage, res as ServerResponse);
    }
    if (st.draining && h1Socket) (res as ServerResponse).shouldKeepAlive = false;
    res.once('close', () => {
      st.active.delete(entry);
      if (h1Socket && st.h1.has(h1Socket)) st.h1.set(h1Socket, Math.max(0, st.h1.get(h1Socket)! - 1));
      st.onSettle?.();
    });
    enterRequest(proxy, req as IncomingMessage, res as ServerResponse, l, isH2 ? 'h2' : 'https1');
  });
  acceptProxyProtocol(server, l, 'https1', true);
  return server;
}

function secureContextOptionsOfDefault(store: CertStore) {
  const d = store.defaultCert!;
  return secureContextOptions(d.pems.cert, d.pems.key);
}

/** The same figures as the HTTP listener's; connections count HTTP/2 sessions and HTTP/1.1 sockets. */
export function httpsListenerStats(server: Http2SecureServer): ListenerStats {
  const st = stateOf(server);
  return {
    requests: st.requests,
    inFlight: st.active.size,
    connections: st.sessions.size + st.h1.size,
    draining: st.draining,
  };
}

/** After a CertSet change: clients without SNI get the new default certificate. */
export function refreshDefaultCertificate(server: Http2SecureServer, store: CertStore): void {
  if (store.defaultCert) server.setSecureContext(secureContextOptionsOfDefault(store));
}

/**
 * Graceful drain, same contract as the HTTP listener's: from the start HTTP/2 sessions get GOAWAY (streams under
 * way finish, new ones go to a new connection) and HTTP/1.1 responses carry `Connection: close`; after `delayMs`
 * the listener closes and idle connections are closed; at `timeoutMs` whatever is left is cut.
 */
export async function drainHttpsServer(
  server: Http2SecureServer,
  opts: { delayMs: number; timeoutMs: number },
): Promise<{ cut: number; ms: number }> {
  const st = stateOf(server);
  const started = Date.now();
  st.draining = true;
  for (const session of st.sessions) session.close();
  for (const res of st.active)
    if ('shouldKeepAlive' in res && !res.headersSent) (res as ServerResponse).shouldKeepAlive = false;
  await new Promise((r) => setTimeout(r, Math.max(0, Math.min(opts.delayMs, opts.timeoutMs))));
  if (server.listening) server.close();
  const settled = new Promise<void>((resolve) => {
    const check = () => {
      for (const [socket, n] of st.h1) if (n === 0) socket.destroy();
      if (st.active.size === 0 && st.sessions.size === 0 && st.h1.size === 0) resolve();
    };
    st.onSettle = () => setImmediate(check);
    check();
  });
  let timer: NodeJS.Timeout | undefined;
  const late = await Promise.race([
    settled.then(() => false),
    new Promise<boolean>((r) => {
      timer = setTimeout(() => r(true), Math.max(0, started + opts.timeoutMs - Date.now()));
    }),
  ]);
  clearTimeout(timer);
  st.onSettle = undefined;
  const cut = late ? st.active.size : 0;
  if (late) {
    for (const session of st.sessions) session.destroy();
    for (const socket of st.h1.keys()) socket.destroy();
  }
  return { cut, ms: Date.now() - started };
}

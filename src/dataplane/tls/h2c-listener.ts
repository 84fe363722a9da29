/**
 * Cleartext HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3) on the plain HTTP listener, when the listener is told
 * to accept it (`--h2c`; off by default). Each new connection's first bytes are compared with the HTTP/2 client
 * preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`): a connection that starts with it is handed to an HTTP/2 server,
 * any other is handed back to node:http as before (the bytes read are put back first). Usually the first byte or
 * four decide; a connection that sends less than that within the client header timeout is closed.
 *
 * The HTTP/2 side is the HTTPS listener's, without TLS: the same SETTINGS limits, the same session guards
 * (rapid-reset budgets, first HEADERS within the header timeout; https-server.ts `guardHttp2Sessions`), the same
 * admission (`enterRequest`, protocol label `h2c`) and request pipeline, RFC 8441 WebSocket (extended CONNECT).
 * It lives beside the HTTPS listener because it shares those guards; the plain listener's drain reaches its
 * sessions through `setDrainHooks` (GOAWAY at the start, closed at the deadline).
 */

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import {
  createServer as createHttp2Server,
  type Http2Server,
  Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
} from 'node:http2';
import type { Server as NetServer, Socket } from 'node:net';
import { edgeEvents } from '../proxy/edge-events.ts';
import { enterRequest } from '../proxy/request-checks.ts';
import {
  DEFAULT_LISTENER_SETTINGS,
  guardListener,
  type HttpListener,
  type ListenerSettings,
  setDrainHooks,
  trackRequest,
} from '../proxy/server.ts';
import { type ExtendedConnectHandler, extendedConnectHandler } from '../proxy/websocket-h2.ts';
import { guardHttp2Sessions, http2SessionOptions, type RequestHandler } from './https-server.ts';
import { DEFAULT_TLS_LISTENER_SETTINGS, type TlsListenerSettings } from './tls-settings.ts';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

type ConnectionListener = (this: NetServer, socket: Socket) => void;

const HEADER_TIMEOUT_MESSAGE = 'no request within the client header timeout';

/** Reads the start of a connection until it is known to be the HTTP/2 preface or not. */
function sniff(socket: Socket, timeoutMs: number, decide: (h2: boolean, head: Buffer) => void): void {
  let head: Buffer = Buffer.alloc(0);
  let timer: NodeJS.Timeout | undefined;
  const done = (h2: boolean) => {
    socket.off('readable', onReadable);
    socket.off('close', onClose);
    clearTimeout(timer);
    decide(h2, head);
  };
  const onReadable = () => {
    for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null)
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const n = Math.min(head.length, PREFACE.length);
    if (n === 0) return;
    const prefix = head.compare(PREFACE, 0, n, 0, n) === 0;
    if (!prefix) return done(false);
    if (head.length >= PREFACE.length) done(true);
  };
  const onClose = () => {
    socket.off('readable', onReadable);
    clearTimeout(timer);
  };
  if (timeoutMs > 0)
    timer = setTimeout(() => {
      socket.off('readable', onReadable);
      edgeEvents.refused('h2c', 'header_timeout', HEADER_TIMEOUT_MESSAGE, socket.remoteAddress);
      socket.destroy();
    }, timeoutMs);
  socket.on('readable', onReadable);
  socket.once('close', onClose);
  socket.on('error', () => socket.destroy());
}

/**
 * Makes `server` (a plain listener from createProxyServer, not yet listening) accept h2c too. `proxy`: the request
 * handler of the listener; `upgrade`: its RFC 8441 WebSocket handler. Returns the HTTP/2 server (tests, figures).
 */
export function acceptH2c(
  server: HttpListener,
  proxy: RequestHandler & Partial<ExtendedConnectHandler>,
  listener: Partial<ListenerSettings> = {},
  settings: Partial<TlsListenerSettings> = {},
): Http2Server {
  const l = { ...DEFAULT_LISTENER_SETTINGS, ...listener };
  const s = { ...DEFAULT_TLS_LISTENER_SETTINGS, ...settings };
  const h2 = createHttp2Server(http2SessionOptions(l, s, proxy));
  h2.setTimeout(l.keepAliveTimeoutMs);
  const sessions = new Set<Http2Session>();
  let draining = false;
  const floods = {
    floodStopped: (reason: string) =>
      edgeEvents.refused('h2c', 'flood', `HTTP/2 session cut for flooding: ${reason}`),
  };
  guardHttp2Sessions(h2, s, l.headersTimeoutMs, floods, (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    if (draining) session.close();
  });
  guardListener(
    h2 as unknown as Server,
    'h2c',
    proxy.handleExtendedConnect
      ? extendedConnectHandler(proxy as ExtendedConnectHandler, l, 'h2c')
      : undefined,
  );
  h2.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => {
    trackRequest(server, res as unknown as ServerResponse);
    proxy.observer?.begin(req as unknown as IncomingMessage, res as unknown as ServerResponse);
    enterRequest(proxy, req as unknown as IncomingMessage, res as unknown as ServerResponse, l, 'h2c');
  });
  setDrainHooks(server, {
    start() {
      draining = true;
      for (const session of sessions) session.close();
    },
    cut() {
      for (const session of sessions) session.destroy();
    },
  });

  // node:http's own connection handler (registered first, by createServer) now only sees HTTP/1 connections.
  const http1 = server.listeners('connection')[0] as ConnectionListener;
  server.removeListener('connection', http1);
  server.prependListener('connection', function onConnection(this: NetServer, socket: Socket) {
    sniff(socket, l.headersTimeoutMs, (isH2, head) => {
      if (socket.destroyed) return;
      if (head.length > 0) socket.unshift(head);
      if (isH2) h2.emit('connection', socket);
      else http1.call(server, socket);
    });
  });
  return h2;
}

export { Http2ServerRequest };

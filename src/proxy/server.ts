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
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
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

export function createProxyServer(proxy: ProxyPipeline, settings: Partial<ListenerSettings> = {}): Server {
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
      shouldUpgradeCallback: isWebSocketUpgrade,
    },
    (req: IncomingMessage, res: ServerResponse) => {
      if (req.rawHeaders.length > s.maxHeaders * 2) {
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
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const problem =
      req.rawHeaders.length > s.maxHeaders * 2
        ? `more than ${s.maxHeaders} request headers`
        : checkRequest(req, s);
    if (problem !== undefined) return refuseUpgrade(socket, 'EDGEGATE_BAD_REQUEST', '-', problem);
    proxy.handleUpgrade(req, socket, head);
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

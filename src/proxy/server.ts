/**
 * The proxy's HTTP listener: Node's http server with edge defaults, feeding ProxyPipeline.handle. Request-level checks
 * that must happen before routing (duplicate Host, header count) live here.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { noteGatewayError } from '../observe/request-observer.ts';
import type { ProxyPipeline } from './proxy.ts';
import { sendError } from './proxy.ts';

export interface ListenerSettings {
  /** Time a client has to send the request headers (slowloris guard). */
  headersTimeoutMs: number;
  /** Time a client has to send the whole request. 0: no limit (long uploads). */
  requestTimeoutMs: number;
  /** Idle keep-alive time: above the 60 s idle timeout of common load balancers in front of the gateway. */
  keepAliveTimeoutMs: number;
  maxHeaders: number;
}

export const DEFAULT_LISTENER_SETTINGS: ListenerSettings = {
  headersTimeoutMs: 15_000,
  requestTimeoutMs: 0,
  keepAliveTimeoutMs: 75_000,
  maxHeaders: 100,
};

function countHeader(raw: string[], lowerName: string): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i]!.length === lowerName.length && raw[i]!.toLowerCase() === lowerName) n++;
  return n;
}

export function createProxyServer(proxy: ProxyPipeline, settings: Partial<ListenerSettings> = {}): Server {
  const s = { ...DEFAULT_LISTENER_SETTINGS, ...settings };
  const server = createServer(
    {
      headersTimeout: s.headersTimeoutMs,
      requestTimeout: s.requestTimeoutMs,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      // Timeouts are checked at this interval; keep it short so they fire on time.
      connectionsCheckingInterval: 1000,
      requireHostHeader: true,
      // The header cap is enforced below with a clear 431, not by silent truncation.
      maxHeaderSize: 16 * 1024,
    },
    (req: IncomingMessage, res: ServerResponse) => {
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
      if (countHeader(req.rawHeaders, 'host') > 1) {
        res.shouldKeepAlive = false;
        return sendError(res, 'EDGEGATE_BAD_REQUEST', '-', 'duplicate Host header');
      }
      proxy.handle(req, res);
    },
  );
  server.maxHeadersCount = s.maxHeaders + 1;
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

/**
 * WebSocket proxying: the upgrade request goes to the endpoint the rule's balancer picked, over that endpoint's
 * pool (undici sends `connection: upgrade` / `upgrade: websocket` itself; the client's hop-by-hop headers are
 * gone). Only a 101 answer opens a tunnel; any other answer is relayed as a plain response and the connection
 * closed, so a backend that refuses the upgrade can never leave a raw tunnel behind (WebSocket smuggling). The
 * tunnel pipes bytes both ways with backpressure, closes both sides when either ends or errors, and closes an
 * idle tunnel after `idleTimeoutMs`.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { errorBody, type GatewayErrorCode, GatewayErrors } from '../../lib/errors.ts';
import type { HeaderEdits } from '../../table/types.ts';
import { clientResponseHeaders } from './headers.ts';
import type { Upstream } from './upstream-pools.ts';

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  421: 'Misdirected Request',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** Answers an upgrade request the gateway refuses, on the raw socket, and closes it. */
export function refuseUpgrade(
  socket: Duplex,
  code: GatewayErrorCode,
  requestId: string,
  message?: string,
): void {
  const status = GatewayErrors[code].status;
  const body = errorBody(code, requestId, message);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`,
  );
}

function headerBlock(headers: Record<string, string | string[]>): string {
  let out = '';
  for (const name in headers) {
    const v = headers[name]!;
    if (Array.isArray(v)) for (const x of v) out += `${name}: ${x}\r\n`;
    else out += `${name}: ${v}\r\n`;
  }
  return out;
}

function onIdle(this: Duplex): void {
  this.destroy();
}

export interface WebSocketProxyInit {
  socket: Duplex;
  head: Buffer;
  upstream: Upstream;
  path: string;
  headers: string[];
  requestId: string;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  responseHeaders: HeaderEdits | undefined;
}

class WebSocketTunnel implements Dispatcher.DispatchHandler {
  readonly #init: WebSocketProxyInit;
  #responded = false;
  #released = false;
  #controller: Dispatcher.DispatchController | undefined;

  constructor(init: WebSocketProxyInit) {
    this.#init = init;
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#init.upstream.inFlight--;
  }

  clientGone(): void {
    if (!this.#responded) this.#controller?.abort(new Error('client closed the connection'));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#init.socket.destroyed) controller.abort(new Error('client closed the connection'));
  }

  onRequestUpgrade(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    upSocket: Duplex,
  ): void {
    const { socket, head, idleTimeoutMs } = this.#init;
    this.#responded = true;
    if (socket.destroyed) {
      upSocket.destroy();
      this.release();
      return;
    }
    const out = clientResponseHeaders(headers, this.#init.responseHeaders, this.#init.requestId);
    socket.write(
      `HTTP/1.1 ${statusCode} Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\n${headerBlock(out)}\r\n`,
    );
    if (head.length > 0) upSocket.write(head);
    // Either side closing or failing closes the other; a half-close (end) is passed on by pipe.
    upSocket.on('error', () => socket.destroy());
    upSocket.on('close', () => {
      socket.destroy();
      this.release();
    });
    socket.on('close', () => upSocket.destroy());
    if (idleTimeoutMs > 0) {
      (socket as Socket).setTimeout(idleTimeoutMs, onIdle);
      (upSocket as Socket).setTimeout?.(idleTimeoutMs, onIdle);
    }
    socket.pipe(upSocket);
    upSocket.pipe(socket);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusText?: string,
  ): void {
    // The upstream refused the upgrade: relay its answer as a plain response, then close.
    this.#responded = true;
    const out = clientResponseHeaders(headers, this.#init.responseHeaders, this.#init.requestId);
    this.#init.socket.write(
      `HTTP/1.1 ${statusCode} ${statusText || 'Upgrade Refused'}\r\n${headerBlock(out)}connection: close\r\n\r\n`,
    );
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#init.socket.write(chunk);
  }

  onResponseEnd(): void {
    this.release();
    this.#init.socket.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, error: Error & { code?: string }): void {
    this.release();
    const { socket, requestId } = this.#init;
    if (this.#responded) {
      socket.destroy();
      return;
    }
    const code: GatewayErrorCode =
      error.code === 'UND_ERR_HEADERS_TIMEOUT' || error.code === 'UND_ERR_CONNECT_TIMEOUT'
        ? 'EDGEGATE_UPSTREAM_TIMEOUT'
        : error.code === 'ECONNREFUSED'
          ? 'EDGEGATE_UPSTREAM_CONNECT'
          : 'EDGEGATE_UPSTREAM_RESET';
    refuseUpgrade(socket, code, requestId);
  }
}

export function proxyWebSocket(init: WebSocketProxyInit): void {
  const tunnel = new WebSocketTunnel(init);
  init.upstream.inFlight++;
  init.socket.on('error', () => init.socket.destroy());
  init.socket.once('close', () => tunnel.clientGone());
  const options: Dispatcher.DispatchOptions & { servername?: string } = {
    path: init.path,
    method: 'GET',
    headers: init.headers,
    upgrade: 'websocket',
    servername: init.upstream.servername,
    headersTimeout: init.connectTimeoutMs,
    bodyTimeout: init.connectTimeoutMs,
  };
  init.upstream.pool.dispatch(options, tunnel);
}

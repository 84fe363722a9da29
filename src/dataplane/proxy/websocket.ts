/**
 * WebSocket proxying: the upgrade request goes to the endpoint the rule's balancer picked, over that endpoint's
 * pool (undici sends `connection: upgrade` / `upgrade: websocket` itself; the client's hop-by-hop headers are
 * gone). Only a 101 answer opens a tunnel; any other answer is relayed as a plain response and the connection
 * closed, so a backend that refuses the upgrade can never leave a raw tunnel behind (WebSocket smuggling). The
 * tunnel pipes bytes both ways with backpressure, closes both sides when either ends or errors, and closes an
 * idle tunnel after `idleTimeoutMs`.
 *
 * The client end is a `TunnelClient`: an HTTP/1.1 connection (plain or TLS) that asked `Upgrade: websocket`
 * (answered with raw `101` bytes, then the socket is the tunnel), or an HTTP/2 stream opened by an RFC 8441
 * extended CONNECT (`:protocol websocket`; answered `:status 200`, then the stream is the tunnel). The upstream
 * always gets an HTTP/1.1 upgrade. Every outcome is counted (`edgegate_websocket_upgrades_total{protocol,result}`).
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { errorBody, type GatewayErrorCode, GatewayErrors } from '../../lib/errors.ts';
import type { HeaderEdits } from '../../table/types.ts';
import { type Denial, rawDenial } from '../policy/verdict.ts';
import type { AdmissionProtocol } from './admission.ts';
import { edgeEvents, type WebSocketResult } from './edge-events.ts';
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

/** The client end of a WebSocket tunnel, whatever protocol brought it. */
export interface TunnelClient {
  readonly protocol: AdmissionProtocol;
  /** The bytes of the tunnel once accepted (the connection, or the HTTP/2 stream). */
  readonly socket: Duplex;
  /** The upstream switched protocols: tell the client. */
  accept(headers: Record<string, string | string[]>): void;
  /** The upstream answered without switching: start relaying its response (body via socket.write, then finish). */
  relay(status: number, statusText: string, headers: Record<string, string | string[]>): void;
  /** The relayed answer is complete: close the connection (HTTP/1.1) or the stream, both ways (HTTP/2). */
  finish(): void;
  /** The gateway refuses (no route, no upstream, upstream failure…), and the connection or stream is closed. */
  refuse(code: GatewayErrorCode, requestId: string, message?: string): void;
  /** A policy denial. */
  deny(d: Denial, requestId: string): void;
}

/** An HTTP/1.1 connection that sent `Upgrade: websocket` (plain or TLS listener). */
export class Http1TunnelClient implements TunnelClient {
  readonly protocol: AdmissionProtocol;
  readonly socket: Duplex;

  constructor(socket: Duplex, protocol: AdmissionProtocol) {
    this.socket = socket;
    this.protocol = protocol;
  }

  accept(headers: Record<string, string | string[]>): void {
    this.socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\n${headerBlock(headers)}\r\n`,
    );
  }

  relay(status: number, statusText: string, headers: Record<string, string | string[]>): void {
    this.socket.write(`HTTP/1.1 ${status} ${statusText}\r\n${headerBlock(headers)}connection: close\r\n\r\n`);
  }

  finish(): void {
    this.socket.end();
  }

  refuse(code: GatewayErrorCode, requestId: string, message?: string): void {
    refuseUpgrade(this.socket, code, requestId, message);
  }

  deny(d: Denial, requestId: string): void {
    if (this.socket.writable) this.socket.end(rawDenial(d, requestId));
    else this.socket.destroy();
  }
}

/** The `result` label of a gateway refusal. */
function refusalResult(code: GatewayErrorCode): WebSocketResult {
  switch (code) {
    case 'EDGEGATE_NO_ROUTE':
    case 'EDGEGATE_CATALOG_UNKNOWN_DATACENTER':
    case 'EDGEGATE_CATALOG_UNKNOWN_SERVICE':
      return 'no_route';
    case 'EDGEGATE_NO_HEALTHY_UPSTREAM':
    case 'EDGEGATE_UPSTREAM_OVERLOADED':
      return 'no_healthy_upstream';
    case 'EDGEGATE_UPSTREAM_CONNECT':
    case 'EDGEGATE_UPSTREAM_RESET':
    case 'EDGEGATE_UPSTREAM_PROTOCOL':
    case 'EDGEGATE_UPSTREAM_TIMEOUT':
      return 'upstream_error';
    case 'EDGEGATE_INTERNAL':
      return 'internal';
    default:
      return 'bad_request';
  }
}

/** Refuses on `client` and counts it. */
export function refuseTunnel(
  client: TunnelClient,
  code: GatewayErrorCode,
  requestId: string,
  message?: string,
): void {
  edgeEvents.websocket(client.protocol, refusalResult(code));
  client.refuse(code, requestId, message);
}

/** A policy denial of a WebSocket, counted. */
export function denyTunnel(client: TunnelClient, d: Denial, requestId: string): void {
  edgeEvents.websocket(client.protocol, 'policy_denied');
  client.deny(d, requestId);
}

export interface WebSocketProxyInit {
  client: TunnelClient;
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

  get #socket(): Duplex {
    return this.#init.client.socket;
  }

  clientGone(): void {
    if (!this.#responded) this.#controller?.abort(new Error('client closed the connection'));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#socket.destroyed) controller.abort(new Error('client closed the connection'));
  }

  onRequestUpgrade(
    _controller: Dispatcher.DispatchController,
    _statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    upSocket: Duplex,
  ): void {
    const { client, head, idleTimeoutMs } = this.#init;
    const socket = client.socket;
    this.#responded = true;
    if (socket.destroyed) {
      upSocket.destroy();
      this.release();
      return;
    }
    edgeEvents.websocket(client.protocol, 'opened');
    client.accept(clientResponseHeaders(headers, this.#init.responseHeaders, this.#init.requestId));
    if (head.length > 0) upSocket.write(head);
    // Either side closing or failing closes the other; a half-close (end) is passed on by pipe.
    upSocket.on('error', () => socket.destroy());
    upSocket.on('close', () => {
      socket.destroy();
      this.release();
    });
    socket.on('close', () => upSocket.destroy());
    if (idleTimeoutMs > 0) {
      (socket as Socket).setTimeout?.(idleTimeoutMs, onIdle);
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
    const { client } = this.#init;
    edgeEvents.websocket(client.protocol, 'upstream_refused');
    const out = clientResponseHeaders(headers, this.#init.responseHeaders, this.#init.requestId);
    client.relay(statusCode, statusText || 'Upgrade Refused', out);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#socket.write(chunk);
  }

  onResponseEnd(): void {
    this.release();
    this.#init.client.finish();
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, error: Error & { code?: string }): void {
    this.release();
    const { client, requestId } = this.#init;
    if (this.#responded) {
      client.socket.destroy();
      return;
    }
    const code: GatewayErrorCode =
      error.code === 'UND_ERR_HEADERS_TIMEOUT' || error.code === 'UND_ERR_CONNECT_TIMEOUT'
        ? 'EDGEGATE_UPSTREAM_TIMEOUT'
        : error.code === 'ECONNREFUSED'
          ? 'EDGEGATE_UPSTREAM_CONNECT'
          : 'EDGEGATE_UPSTREAM_RESET';
    refuseTunnel(client, code, requestId);
  }
}

export function proxyWebSocket(init: WebSocketProxyInit): void {
  const tunnel = new WebSocketTunnel(init);
  init.upstream.inFlight++;
  const socket = init.client.socket;
  socket.on('error', () => socket.destroy());
  socket.once('close', () => tunnel.clientGone());
  const options: Dispatcher.DispatchOptions & { servername?: string } = {
    path: init.path,
    method: 'GET',
    headers: init.headers,
    upgrade: 'websocket',
    servername: init.upstream.servername,
    headersTimeout: init.connectTimeoutMs,
    bodyTimeout: init.connectTimeoutMs,
  };
  init.upstream.tunnelPool.dispatch(options, tunnel);
}

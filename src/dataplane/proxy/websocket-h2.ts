/**
 * WebSocket over HTTP/2 (RFC 8441): the listeners' answer to an extended CONNECT. The HTTP/2 listeners advertise
 * SETTINGS_ENABLE_CONNECT_PROTOCOL; a client that sees it may open a WebSocket as a stream with `:method CONNECT`,
 * `:protocol websocket`, `:scheme`, `:path` and `:authority`. Here that stream is admitted like the GET it stands
 * for (the same admission checks on its path, authority and headers), any other `:protocol` is refused with 501,
 * and the pipeline (ProxyPipeline.handleExtendedConnect) routes it, runs the route's policies and opens the tunnel
 * through websocket.ts with an `Http2TunnelClient`: the upstream gets an ordinary HTTP/1.1 upgrade, and its 101
 * becomes `:status 200` on the stream, whose DATA frames then carry the WebSocket bytes both ways.
 *
 * A CONNECT without `:protocol` stays refused (405: the gateway is no tunnel); nghttp2 itself resets a stream that
 * carries `:protocol` on a connection where the setting was not sent.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Http2ServerRequest, constants as h2, type ServerHttp2Stream } from 'node:http2';
import type { GatewayErrorCode } from '../../lib/errors.ts';
import { type Denial, respondDenial } from '../policy/verdict.ts';
import { type AdmissionProtocol, type AdmissionSettings, admit, type Refusal } from './admission.ts';
import { edgeEvents } from './edge-events.ts';
import { sendError } from './exchange.ts';
import { answerHandlerError, respondRefusal } from './refusal-response.ts';
import type { TunnelClient } from './websocket.ts';

/** What a listener hands an admitted extended CONNECT to (the proxy pipeline). */
export interface ExtendedConnectHandler {
  handleExtendedConnect(req: IncomingMessage, res: ServerResponse, protocol: AdmissionProtocol): void;
}

/** Response fields an HTTP/2 answer must not carry (RFC 9113 §8.2.2), nor the HTTP/1.1 handshake's proof. */
const NOT_ON_H2 = new Set([
  'sec-websocket-accept',
  'connection',
  'upgrade',
  'keep-alive',
  'transfer-encoding',
]);

function h2Headers(headers: Record<string, string | string[]>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) if (!NOT_ON_H2.has(name)) out[name] = headers[name]!;
  return out;
}

/** The client end of a WebSocket opened by extended CONNECT: its HTTP/2 stream. */
export class Http2TunnelClient implements TunnelClient {
  readonly protocol: AdmissionProtocol;
  readonly socket: ServerHttp2Stream;
  readonly #res: ServerResponse;

  constructor(res: ServerResponse, protocol: AdmissionProtocol) {
    this.#res = res;
    this.protocol = protocol;
    this.socket = (res as unknown as { stream: ServerHttp2Stream }).stream;
  }

  accept(headers: Record<string, string | string[]>): void {
    this.#respond(200, headers);
  }

  relay(status: number, _statusText: string, headers: Record<string, string | string[]>): void {
    this.#respond(status, headers);
  }

  finish(): void {
    this.#res.end();
    this.#closeWhenSent();
  }

  refuse(code: GatewayErrorCode, requestId: string, message?: string): void {
    if (this.socket.destroyed) return;
    sendError(this.#res, code, requestId, message);
    this.#closeWhenSent();
  }

  deny(d: Denial, requestId: string): void {
    if (this.socket.destroyed) return;
    respondDenial(this.#res, d, requestId);
    this.#closeWhenSent();
  }

  /**
   * No tunnel: once the answer is out, the stream is closed both ways (RST_STREAM NO_ERROR after END_STREAM,
   * RFC 9113 §8.1), so nothing the client sends on it afterwards is read, and it holds no stream slot.
   */
  #closeWhenSent(): void {
    // Node sends a NO_ERROR reset only once the stream's writable side has finished (the answer is out first).
    if (!this.socket.destroyed) this.socket.close(h2.NGHTTP2_NO_ERROR);
  }

  #respond(status: number, headers: Record<string, string | string[]>): void {
    if (this.socket.destroyed) return;
    try {
      this.#res.writeHead(status, h2Headers(headers));
    } catch {
      // A header HTTP/2 cannot carry that slipped through: the stream is reset rather than half answered.
      this.socket.close(h2.NGHTTP2_INTERNAL_ERROR);
    }
  }
}

/**
 * The upstream request headers of an HTTP/2 WebSocket as an HTTP/1.1 handshake: a fresh Sec-WebSocket-Key (an
 * HTTP/2 client sends none, and one it sent anyway is replaced), and Sec-WebSocket-Version 13 when missing.
 */
export function http1HandshakeHeaders(headers: string[]): string[] {
  const out: string[] = [];
  let version = false;
  for (let i = 0; i < headers.length; i += 2) {
    const lower = headers[i]!.toLowerCase();
    if (lower === 'sec-websocket-key') continue;
    if (lower === 'sec-websocket-version') version = true;
    out.push(headers[i]!, headers[i + 1]!);
  }
  out.push('sec-websocket-key', randomBytes(16).toString('base64'));
  if (!version) out.push('sec-websocket-version', '13');
  return out;
}

function unsupportedProtocol(p: unknown): Refusal {
  return {
    status: 501,
    reason: 'method',
    message: `extended CONNECT with :protocol ${JSON.stringify(String(p)).slice(0, 64)} is not supported (only websocket)`,
  };
}

/**
 * The listener's handler for an HTTP/2 CONNECT that carries `:protocol`: admission as the GET it replaces, then
 * the pipeline, under a guard (an exception answers this stream 500 and never ends the process).
 */
export function extendedConnectHandler(
  proxy: ExtendedConnectHandler,
  s: AdmissionSettings,
  protocol: AdmissionProtocol,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const p = req.headers[':protocol'];
    if (p !== 'websocket') {
      edgeEvents.websocket(protocol, 'bad_request');
      return respondRefusal(res, unsupportedProtocol(p), protocol);
    }
    const refusal = admit('GET', req.url ?? '', '2.0', req.rawHeaders, true, s);
    if (refusal !== undefined) {
      edgeEvents.websocket(protocol, 'bad_request');
      return respondRefusal(res, refusal, protocol);
    }
    const authority = (req as unknown as Http2ServerRequest).authority;
    if (authority) req.headers.host = authority;
    try {
      proxy.handleExtendedConnect(req, res, protocol);
    } catch (err) {
      answerHandlerError(res, err, 'upgrade');
    }
  };
}

/**
 * How the listeners answer what admission refuses and what goes wrong while handling a request: a JSON error body
 * (`EDGEGATE_BAD_REQUEST` with the refusal's status; `EDGEGATE_INTERNAL` 500 for an exception) on a node:http or
 * HTTP/2 compat response, or as raw HTTP/1.1 bytes on a socket (parser errors, upgrade requests). Every answer is
 * counted and sampled into the log through edgeEvents. HTTP/1 connections are closed after a refusal.
 */
import { type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { errorBody } from '../../lib/errors.ts';
import { noteGatewayError } from '../observe/request-observer.ts';
import { type AdmissionProtocol, methodRefusal, type Refusal } from './admission.ts';
import { type ErrorSite, edgeEvents } from './edge-events.ts';
import { sendError } from './exchange.ts';

function peerOf(socket: { remoteAddress?: string } | null | undefined): string | undefined {
  return socket?.remoteAddress;
}

/** Answers a refused request on its response (either protocol) and, on HTTP/1, closes the connection after it. */
export function respondRefusal(res: ServerResponse, r: Refusal, protocol: AdmissionProtocol): void {
  edgeEvents.refused(protocol, r.reason, r.message, peerOf(res.socket));
  noteGatewayError(res, 'EDGEGATE_BAD_REQUEST');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody('EDGEGATE_BAD_REQUEST', '-', r.message);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-request-id': '-',
    'cache-control': 'no-store',
  };
  if (protocol !== 'h2' && protocol !== 'h2c') {
    res.shouldKeepAlive = false;
    headers.connection = 'close';
  }
  res.writeHead(r.status, headers);
  res.end(body);
}

/** The raw HTTP/1.1 answer to a refusal (the connection closes after it). */
export function rawRefusal(r: Refusal): string {
  const body = errorBody('EDGEGATE_BAD_REQUEST', '-', r.message);
  return `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-request-id: -\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`;
}

/** Refuses on a raw socket (upgrade requests, parser errors): counted, answered when still writable, closed. */
export function refuseOnSocket(socket: Duplex, r: Refusal, protocol: AdmissionProtocol): void {
  edgeEvents.refused(protocol, r.reason, r.message, peerOf(socket as { remoteAddress?: string }));
  if (socket.writable) socket.end(rawRefusal(r));
  else socket.destroy();
}

const MALFORMED: Refusal = { status: 400, reason: 'malformed', message: 'malformed request' };
const FRAMING: Refusal = { status: 400, reason: 'framing', message: 'invalid message framing' };
const TOO_LARGE: Refusal = {
  status: 431,
  reason: 'header_too_large',
  message: 'request header section too large',
};
const TIMEOUT: Refusal = { status: 408, reason: 'request_timeout', message: 'request timeout' };
const BAD_VERSION: Refusal = { status: 505, reason: 'version', message: 'HTTP version not supported' };
const BAD_TARGET: Refusal = { status: 400, reason: 'target', message: 'invalid request target' };

/** The method a parser error points at: the request line starting before `at` in `packet`. */
function methodAt(packet: Buffer | undefined, at: number): string {
  if (packet === undefined) return '';
  let start = Math.min(Math.max(0, at), packet.length);
  while (start > 0 && packet[start - 1] !== 0x0a) start--;
  let end = start;
  while (end < packet.length && end - start < 32 && packet[end] !== 0x20 && packet[end] !== 0x0d) end++;
  return packet.toString('latin1', start, end);
}

/**
 * The answer to an error of Node's HTTP/1 parser (a `clientError`), by its code: the same statuses and reasons
 * admission gives a parsed request (an unknown method is 501 here as on HTTP/2, an HTTP/2 preface 505).
 * Undefined: not a request problem (a reset, a TLS error), close without an answer.
 */
export function parserRefusal(
  err: Error & { code?: string; bytesParsed?: number; rawPacket?: Buffer },
): Refusal | undefined {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return TOO_LARGE;
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return TIMEOUT;
    case 'HPE_INVALID_VERSION':
      // `HTTP/3.0` is a version the gateway does not speak; `HTTP/1.1 x` or a bare LF after it is malformed.
      return (err as { reason?: string }).reason === 'Invalid HTTP version' ? BAD_VERSION : MALFORMED;
    case 'HPE_PAUSED_H2_UPGRADE':
      return BAD_VERSION;
    case 'HPE_INVALID_METHOD':
      return methodRefusal(methodAt(err.rawPacket, err.bytesParsed ?? 0)) ?? MALFORMED;
    case 'HPE_INVALID_URL':
      return BAD_TARGET;
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_INVALID_CHUNK_SIZE':
      return FRAMING;
    default:
      // Anything else is no HTTP problem: a reset, or on the HTTPS listener a TLS error (a handshake that timed
      // out or failed, counted by the TLS handshake metrics) on a socket that cannot carry an HTTP answer.
      return err.code?.startsWith('HPE_') ? MALFORMED : undefined;
  }
}

/**
 * An exception thrown while a request was handled: counted and logged, the request answered 500
 * `EDGEGATE_INTERNAL` — or its connection closed when the response head is already out. Never rethrown.
 */
export function answerHandlerError(res: ServerResponse, err: unknown, site: ErrorSite): void {
  edgeEvents.handlerError(site, err);
  try {
    if (res.headersSent) res.destroy();
    else sendError(res, 'EDGEGATE_INTERNAL', '-');
  } catch {
    res.destroy();
  }
}

/** The same for an upgrade request: the raw connection is answered 500 when still possible, and closed. */
export function answerUpgradeError(socket: Duplex, err: unknown): void {
  edgeEvents.handlerError('upgrade', err);
  // Bytes already out (a previous response, or part of this one): closing is the only clean answer left.
  if (!socket.writable || ((socket as Partial<Socket>).bytesWritten ?? 0) > 0) {
    socket.destroy();
    return;
  }
  const body = errorBody('EDGEGATE_INTERNAL', '-');
  socket.end(
    `HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

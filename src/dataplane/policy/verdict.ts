/**
 * What the policies of a rule decide about one request: let it through (possibly with header changes, a buffered
 * body, and a release to call when the request is over), or answer it here.
 */
import { type ServerResponse, STATUS_CODES } from 'node:http';
import { errorBody, type GatewayErrorCode, GatewayErrors } from '../../lib/errors.ts';
import { isGrpcResponse, respondGrpcError } from '../../lib/grpc-status.ts';
import { noteGatewayError } from '../observe/request-observer.ts';

export interface Pass {
  allowed: true;
  /** Headers to remove from the upstream request (lower-case): client copies of headers policies own. */
  strip: string[];
  /** Headers to add to the upstream request (claims, external auth results). */
  add: [string, string][];
  /** The request body, already read and verified (signed requests); undefined: stream it from the client. */
  body: Buffer | undefined;
  /** Call once when the request is over (concurrency accounting). */
  release: (() => void) | undefined;
}

export interface Denial {
  allowed: false;
  status: number;
  code: GatewayErrorCode | undefined;
  /** Machine-readable reason for auth failures (`expired`, `bad-signature`, …). */
  reason: string | undefined;
  headers: Record<string, string>;
  body: string | Buffer;
  /** The request body was not read: close the connection after the answer. */
  closeConnection: boolean;
}

export type Verdict = Pass | Denial;

/** A gateway error as a denial: the JSON error body of errors.ts plus policy headers. */
export function deny(
  code: GatewayErrorCode,
  requestId: string,
  opts: {
    reason?: string;
    message?: string;
    headers?: Record<string, string>;
    closeConnection?: boolean;
  } = {},
): Denial {
  return {
    allowed: false,
    status: GatewayErrors[code].status,
    code,
    reason: opts.reason,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...opts.headers },
    body: errorBody(code, requestId, opts.message, opts.reason),
    closeConnection: opts.closeConnection ?? false,
  };
}

/**
 * Writes a denial as the response (headers already sent: the connection is cut instead). One the gateway wrote
 * (403, 429, 401, 503…) is counted and logged under its error code like every gateway answer; an external auth
 * service's own answer (no code) under its status class.
 */
export function respondDenial(res: ServerResponse, d: Denial, requestId: string): void {
  if (d.code !== undefined) noteGatewayError(res, d.code);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (isGrpcResponse(res)) {
    const { 'content-type': _json, ...extra } = d.headers;
    const what = d.code !== undefined ? GatewayErrors[d.code].message : `denied (HTTP ${d.status})`;
    return respondGrpcError(
      res,
      d.status,
      d.code,
      requestId,
      d.reason ? `${what}: ${d.reason}` : what,
      extra,
    );
  }
  const headers: Record<string, string | number> = {
    ...d.headers,
    'content-length': Buffer.byteLength(d.body),
    'x-request-id': requestId,
  };
  // An unread request body would be parsed as the next request: close the connection instead (HTTP/1 only:
  // HTTP/2 forbids the header, and a stream's unread body does not affect the others).
  const http2 = (res as { req?: { httpVersionMajor?: number } }).req?.httpVersionMajor === 2;
  if (d.closeConnection && !http2) {
    headers.connection = 'close';
    res.shouldKeepAlive = false;
  }
  res.writeHead(d.status, headers);
  res.end(d.body);
}

/** A denial as raw HTTP/1.1 bytes, for a refused WebSocket upgrade (the connection closes after it). */
export function rawDenial(d: Denial, requestId: string): Buffer {
  let head = `HTTP/1.1 ${d.status} ${STATUS_CODES[d.status] ?? 'Error'}\r\n`;
  for (const [k, v] of Object.entries(d.headers)) head += `${k}: ${v}\r\n`;
  head += `content-length: ${Buffer.byteLength(d.body)}\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(d.body)]);
}

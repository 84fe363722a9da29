/**
 * gRPC-shaped answers for errors the gateway itself produces (no route, upstream down or timed out, policy
 * denials). A gRPC client reads the outcome of a call from `grpc-status` / `grpc-message`, not from the HTTP status:
 * an HTTP 502 with a JSON body surfaces as an opaque `UNKNOWN`/`INTERNAL` "Received HTTP status code 502". So a
 * request that is gRPC (HTTP/2, `content-type: application/grpc…`) gets a Trailers-Only response instead: HTTP 200,
 * `content-type: application/grpc`, and the gRPC status mapped from the gateway error (gRPC's HTTP-to-gRPC status
 * table, refined where the gateway knows more: a timeout is DEADLINE_EXCEEDED, a rate limit RESOURCE_EXHAUSTED), with
 * the gateway's message and its error code (`x-edgegate-error`) beside it. Only the error path reads any of this.
 */
import type { GatewayErrorCode } from './errors.ts';

/** gRPC status codes (grpc/doc/statuscodes.md) the gateway answers with. */
export const GRPC_STATUS = {
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

const BY_CODE: Partial<Record<GatewayErrorCode, number>> = {
  EDGEGATE_UPSTREAM_TIMEOUT: GRPC_STATUS.DEADLINE_EXCEEDED,
  EDGEGATE_RATE_LIMITED: GRPC_STATUS.RESOURCE_EXHAUSTED,
  EDGEGATE_BODY_TOO_LARGE: GRPC_STATUS.RESOURCE_EXHAUSTED,
};

/** The gRPC status for a gateway answer of this HTTP status (and gateway error code, when there is one). */
export function grpcStatusOf(httpStatus: number, code: GatewayErrorCode | undefined): number {
  const known = code === undefined ? undefined : BY_CODE[code];
  if (known !== undefined) return known;
  switch (httpStatus) {
    case 400:
      return GRPC_STATUS.INTERNAL;
    case 401:
      return GRPC_STATUS.UNAUTHENTICATED;
    case 403:
      return GRPC_STATUS.PERMISSION_DENIED;
    case 404:
      return GRPC_STATUS.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC_STATUS.UNAVAILABLE;
    default:
      return GRPC_STATUS.UNKNOWN;
  }
}

/** The parts of Node's request and response objects (HTTP/1 and HTTP/2 compat alike) read and written here. */
interface RequestLike {
  httpVersionMajor: number;
  headers: Record<string, string | string[] | undefined>;
}
interface ResponseLike {
  statusCode: number;
  setHeader(name: string, value: string | number): unknown;
  end(): unknown;
}

/** A request from a gRPC client: HTTP/2 and `application/grpc` (or `application/grpc+proto`, `+json`…). */
export function isGrpcRequest(req: RequestLike): boolean {
  if (req.httpVersionMajor !== 2) return false;
  const ct = req.headers['content-type'];
  return (
    typeof ct === 'string' && ct.startsWith('application/grpc') && !ct.startsWith('application/grpc-web')
  );
}

/** The response of a gRPC request (Node's responses, HTTP/1 and HTTP/2 compat alike, know their request). */
export function isGrpcResponse(res: object): boolean {
  const req = (res as { req?: RequestLike }).req;
  return req !== undefined && isGrpcRequest(req);
}

/** `grpc-message` is percent-encoded: bytes outside printable ASCII, and `%`, as %XX of their UTF-8 bytes. */
export function grpcMessage(text: string): string {
  let plain = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return text;
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out +=
      byte < 0x20 || byte > 0x7e || byte === 0x25
        ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
        : String.fromCharCode(byte);
  }
  return out;
}

/**
 * Answers a gRPC request with a Trailers-Only error: one HEADERS frame with END_STREAM carrying `:status 200`,
 * `grpc-status` and `grpc-message`.
 */
export function respondGrpcError(
  res: ResponseLike,
  httpStatus: number,
  code: GatewayErrorCode | undefined,
  requestId: string,
  message: string,
  extra?: Record<string, string>,
): void {
  const headers: Record<string, string | number> = {
    ...extra,
    'content-type': 'application/grpc',
    'grpc-status': grpcStatusOf(httpStatus, code),
    'grpc-message': grpcMessage(message),
    'x-request-id': requestId,
  };
  if (code !== undefined) headers['x-edgegate-error'] = code;
  res.statusCode = 200;
  for (const name in headers) res.setHeader(name, headers[name]!);
  // end() with the head not yet sent: one HEADERS frame with END_STREAM (writeHead would send it without).
  res.end();
}

const TIMEOUT_UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 0.001,
  n: 0.000001,
};

/**
 * A gRPC call's `grpc-timeout` (1–8 digits and a unit: H, M, S, m, u, n) in whole milliseconds (at least 1), or
 * undefined when absent or malformed (a malformed value is the upstream's to judge; the gateway ignores it).
 */
export function grpcTimeoutMs(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (m === null) return undefined;
  return Math.max(1, Math.ceil(Number(m[1]) * TIMEOUT_UNIT_MS[m[2]!]!));
}

/** The whole-request timeout of a gRPC call: its deadline when sooner than the rule's (0: the rule has none). */
export function grpcRequestMs(value: string | string[] | undefined, ruleMs: number): number | undefined {
  const deadline = grpcTimeoutMs(value);
  if (deadline === undefined) return undefined;
  return ruleMs > 0 && ruleMs <= deadline ? undefined : deadline;
}

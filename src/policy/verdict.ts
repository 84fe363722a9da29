/**
 * What the policies of a rule decide about one request: let it through (possibly with header changes, a buffered
 * body, and a release to call when the request is over), or answer it here.
 */
import { errorBody, type GatewayErrorCode, GatewayErrors } from '../errors.ts';

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

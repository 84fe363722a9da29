/**
 * A rule's request body limit (`maxRequestBodySize`, ingress-nginx's `proxy-body-size`, nginx's
 * `client_max_body_size`): a declared Content-Length above it is answered 413 before anything else runs; a body
 * without one (chunked, or HTTP/2 without Content-Length) is read first, up to the limit (request-body.ts), and
 * forwarded whole — one byte more and the answer is 413, with nothing sent upstream. Rules without a limit never
 * come here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendError } from './exchange.ts';
import { type BodySink, readRequestBody } from './request-body.ts';

/** The declared length is above the limit (an invalid Content-Length is the admission checks' business). */
export function declaredTooLarge(contentLength: string | undefined, limit: number): boolean {
  return contentLength !== undefined && Number(contentLength) > limit;
}

function tooLarge(res: ServerResponse, requestId: string, limit: number): void {
  // The rest of the body is never read: the connection cannot be reused.
  res.shouldKeepAlive = false;
  sendError(res, 'EDGEGATE_BODY_TOO_LARGE', requestId, `the request body exceeds ${limit} bytes`);
}

export function refuseDeclaredBody(res: ServerResponse, requestId: string, limit: number): void {
  tooLarge(res, requestId, limit);
}

/** Reads a body of unknown length up to `limit`, then `forward(body)` it, or answers 413 / 408. */
export function readLimitedBody(
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
  limit: number,
  timeoutMs: number,
  forward: (body: Buffer | null) => void,
): void {
  const sink: BodySink = {
    bodyComplete: forward,
    bodyStreams: () => tooLarge(res, requestId, limit),
    bodyTimedOut: () => {
      res.shouldKeepAlive = false;
      sendError(res, 'EDGEGATE_CLIENT_BODY_TIMEOUT', requestId);
    },
    bodyAborted: () => {},
  };
  readRequestBody(req, sink, limit, timeoutMs);
}

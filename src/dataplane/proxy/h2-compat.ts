/**
 * The few facts the request pipeline reads differently for HTTP/2 clients (Node's Http2ServerRequest compat
 * objects) than for HTTP/1.x ones, so ProxyPipeline.handle stays one code path for both listeners.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

/** `https` on a TLS connection (either protocol), else the listener's configured scheme. */
export function requestProto(req: IncomingMessage, fallback: 'http' | 'https'): 'http' | 'https' {
  return (req.socket as TLSSocket | undefined)?.encrypted ? 'https' : fallback;
}

/**
 * Whether the request has a body to stream upstream. HTTP/1.x: Content-Length ≠ 0 or Transfer-Encoding. HTTP/2
 * has no Transfer-Encoding and Content-Length is optional: a request without a body ends its stream with the
 * HEADERS frame (END_STREAM).
 */
export function requestHasBody(req: IncomingMessage): boolean {
  const h = req.headers;
  // An HTTP/2 request is one with a stream, whatever version a request line claims (`GET / HTTP/2.0` is HTTP/1).
  const stream = (req as unknown as { stream?: { endAfterHeaders: boolean } }).stream;
  if (stream !== undefined) {
    if (h['content-length'] !== undefined) return h['content-length'] !== '0';
    return !stream.endAfterHeaders;
  }
  return h['content-length'] !== undefined
    ? h['content-length'] !== '0'
    : h['transfer-encoding'] !== undefined;
}

/** Trailers that may be forwarded to an HTTP/2 client (gRPC status and friends); undefined when none. */
export function forwardedTrailers(
  trailers: Record<string, string | string[] | undefined> | null | undefined,
): Record<string, string> | undefined {
  if (!trailers) return undefined;
  let out: Record<string, string> | undefined;
  for (const name in trailers) {
    const v = trailers[name];
    // Never framing or connection fields in trailers (RFC 9110 §6.5.1).
    if (v === undefined || name.startsWith(':') || name === 'content-length' || name === 'transfer-encoding')
      continue;
    out ??= {};
    out[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

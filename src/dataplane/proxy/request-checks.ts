/**
 * The listeners' entry for a request parsed by Node (HTTP/1.x, HTTP/1.1 over TLS, HTTP/2 compat): admission
 * (src/dataplane/proxy/admission.ts, one pass over the raw headers), then the request handler under a guard, so that an
 * exception while handling one request answers that request and never ends the process. Plus the parser-error
 * answer every HTTP/1 listener gives (`clientError`) and the WebSocket upgrade test.
 *
 * Node's parser (llhttp, strict mode) already refuses with 400, before any of this runs: CL+TE together,
 * duplicate or invalid Content-Length, Transfer-Encoding with `chunked` not last, obs-fold, bare LF line
 * endings, methods it does not know, and CR / LF / NUL / other control characters in header values. The
 * control-character check of admission is defence in depth should the parser ever be run leniently (HTTP/2's
 * nghttp2 drops such fields itself).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { Duplex } from 'node:stream';
import { type AdmissionProtocol, type AdmissionSettings, admit, type Refusal } from './admission.ts';
import { edgeEvents } from './edge-events.ts';
import { answerHandlerError, parserRefusal, refuseOnSocket, respondRefusal } from './refusal-response.ts';

export interface RequestCheckSettings {
  /** `X_Forwarded_For` style names: many servers (CGI, nginx, some frameworks) fold `_` into `-`. */
  rejectUnderscoreHeaders: boolean;
  /** Absolute-form target (`GET http://a/ HTTP/1.1`) whose authority differs from Host. */
  rejectAuthorityMismatch: boolean;
  /** C0 control characters (except HTAB) and DEL in header values. */
  rejectControlCharacters: boolean;
}

/** What a listener hands admitted requests to (the proxy pipeline, the HTTPS redirector). */
export interface RequestHandler {
  handle(req: IncomingMessage, res: ServerResponse): void;
}

/** Why a request parsed by Node must be refused, or undefined when it may proceed. */
export function checkRequest(req: IncomingMessage, s: AdmissionSettings, h2 = false): Refusal | undefined {
  return admit(req.method ?? '', req.url ?? '', req.httpVersion, req.rawHeaders, h2, s);
}

/**
 * Admission, then `handler.handle` under a guard. On HTTP/2, `:authority` becomes the Host the pipeline routes by
 * (RFC 9113 §8.3.1: it wins over a `host` field, which admission has checked names the same host).
 */
export function enterRequest(
  handler: RequestHandler,
  req: IncomingMessage,
  res: ServerResponse,
  s: AdmissionSettings,
  protocol: AdmissionProtocol,
): void {
  const h2 = protocol === 'h2' || protocol === 'h2c';
  const refusal = checkRequest(req, s, h2);
  if (refusal !== undefined) return respondRefusal(res, refusal, protocol);
  if (h2) {
    const authority = (req as unknown as Http2ServerRequest).authority;
    if (authority) req.headers.host = authority;
  } else if (req.headers.upgrade !== undefined) {
    // A refused upgrade (h2c…) served as a plain request: the bytes after its head never become a request.
    res.shouldKeepAlive = false;
  }
  try {
    handler.handle(req, res);
  } catch (err) {
    answerHandlerError(res, err, 'request');
  }
}

const HEADER_TIMEOUT: Refusal = { status: 408, reason: 'header_timeout', message: 'request header timeout' };

const kResponse = Symbol('edgegate.currentResponse');
type TaggedSocket = Duplex & { [kResponse]?: ServerResponse };

/** Remembers the response a connection is working on, so a timeout can tell a late head from a late body. */
export function noteResponse(req: IncomingMessage, res: ServerResponse): void {
  (req.socket as TaggedSocket)[kResponse] = res;
}

/**
 * A `clientError` handler for an HTTP/1 listener: Node's parser refused the bytes (or a client timeout fired).
 * Answered with the status admission would give, counted by reason, sampled into the log, connection closed.
 */
export function clientErrorHandler(
  protocol: AdmissionProtocol,
): (err: Error & { code?: string }, socket: Duplex) => void {
  return (err, socket) => {
    let r = parserRefusal(err);
    if (r === undefined || !socket.writable) {
      socket.destroy();
      return;
    }
    if (r.status === 408) {
      const res = (socket as TaggedSocket)[kResponse];
      // No response under way (or the last one is done): the head of the next request did not arrive in time.
      if (res === undefined || res.writableFinished) r = HEADER_TIMEOUT;
      else if (res.headersSent) {
        // The body of a request being answered is late: its response is already streaming, only closing is left.
        edgeEvents.refused(protocol, r.reason, r.message);
        socket.destroy();
        return;
      }
    }
    refuseOnSocket(socket, r, protocol);
  };
}

/** Only `Upgrade: websocket` is proxied as an upgrade; other upgrades (h2c…) are served as plain requests. */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const u = req.headers.upgrade;
  return u !== undefined && u.toLowerCase() === 'websocket';
}

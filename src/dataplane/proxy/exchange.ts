/**
 * One proxied request: picks an upstream per try, forwards over its pool, streams the response back with
 * backpressure, and decides retries (idempotent, bodiless requests only; within the cluster's retry budget),
 * per-try and whole-request timeouts, the pending cap, and outlier bookkeeping.
 *
 * No client holds upstream resources hostage (docs/security.md): a request waits for a slot of its client
 * connection's budget (connection-budget.ts) before it takes an upstream connection; a response the client does not
 * read for `sendTimeoutMs` is abandoned and its upstream connection released; a streamed request body that stalls
 * for `clientBodyTimeoutMs` is answered 408; a request whose client cancels before it was written upstream is never
 * written (and its pooled connection is kept), one cancelled while in flight is drained briefly so its connection
 * stays reusable. An HTTP/2 client's first try is dispatched at the end of the I/O phase that brought it, so a
 * stream reset in the same read (rapid reset) never reaches the pool.
 *
 * Hot-path notes: one Exchange and one Attempt object per request (plus one per retry); listeners and timers are
 * module-level functions that find their Exchange through a symbol or a timer argument, so nothing allocates a
 * closure per request. Timers are only armed when a timeout is configured (the send timer only when a response
 * actually stalls; the body timer only for streamed bodies).
 */
import { Buffer } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { constants as h2 } from 'node:http2';
import { nextTick } from 'node:process';
import type { Dispatcher } from 'undici';
import { errorBody, type GatewayErrorCode, GatewayErrors } from '../../lib/errors.ts';
import { isGrpcResponse, respondGrpcError } from '../../lib/grpc-status.ts';
import type { HeaderEdits } from '../../table/types.ts';
import { noteGatewayError, type RequestRecord } from '../observe/request-observer.ts';
import type { ClusterRuntime } from './cluster-runtime.ts';
import { budgetOf, type ConnectionBudget, GRANTED, REFUSED } from './connection-budget.ts';
import type { CorsPolicy } from './cors.ts';
import { forwardedTrailers } from './h2-compat.ts';
import { clientResponseFields, clientResponseHeaders } from './headers.ts';
import type { OutlierDetector } from './outlier.ts';
import type { RawResponse } from './raw-messages.ts';
import { type BodySink, coalescedBody } from './request-body.ts';
import { type CompressedBody, type CompressionPolicy, compressedBody } from './response-compression.ts';
import type { Upstream } from './upstream-pools.ts';

/** What went wrong with one try, as bits so a rule's `retry.on` is one mask. */
export const FAIL_CONNECT = 1;
export const FAIL_RESET = 2;
export const FAIL_TIMEOUT = 4;
export const FAIL_5XX = 8;
export const FAIL_502 = 16;
export const FAIL_503 = 32;
export const FAIL_504 = 64;
export const FAIL_PROTOCOL = 128;
/** The client went away (or was abandoned): nobody to answer, nothing to hold against the upstream. */
export const FAIL_CLIENT = 256;
const FAIL_REQUEST_TIMEOUT = 512;
/** The HTTP client refused the request as built from the client's input before sending anything: 400. */
export const FAIL_UNSENDABLE = 1024;
/** Refused before anything was sent for a reason of the gateway's own: 500. */
export const FAIL_INTERNAL = 2048;
/** The client stalled its streamed request body: 408. */
const FAIL_CLIENT_BODY = 4096;
/** Kinds that are never the upstream's doing: no outlier failure, no retry, no upstream error count. */
const NOT_UPSTREAM = FAIL_CLIENT | FAIL_UNSENDABLE | FAIL_INTERNAL | FAIL_CLIENT_BODY;

export const RETRY_ON_BITS: Record<string, number> = {
  'connect-failure': FAIL_CONNECT,
  reset: FAIL_RESET,
  timeout: FAIL_TIMEOUT,
  '5xx': FAIL_5XX,
  '502': FAIL_502,
  '503': FAIL_503,
  '504': FAIL_504,
};

function statusBits(status: number): number {
  if (status < 500) return 0;
  return FAIL_5XX | (status === 502 ? FAIL_502 : status === 503 ? FAIL_503 : status === 504 ? FAIL_504 : 0);
}

/** A rule's traffic policy, resolved once per table (never per request). */
export interface RulePolicy {
  mode: number;
  hashHeader: string | undefined;
  hashCookie: string | undefined;
  hashSourceIP: boolean;
  requestMs: number;
  backendRequestMs: number;
  responseHeadersMs: number;
  idleMs: number;
  attempts: number;
  retryMask: number;
  backoffMs: number;
  responseHeaders: HeaderEdits | undefined;
  /** CORS filter (response headers of actual requests); undefined: none. */
  cors?: CorsPolicy | undefined;
  /** ResponseCompression filter; undefined: none. */
  compression?: CompressionPolicy | undefined;
}

/** Worker-wide counters (plain numbers; observe/ turns them into edgegate_* metrics). */
export class ProxyCounters {
  requests = 0;
  tries = 0;
  retries = 0;
  retriesRefusedByBudget = 0;
  overloaded = 0;
  tryTimeouts = 0;
  requestTimeouts = 0;
  upstreamErrors = 0;
  /** Requests answered 408 because their body stalled longer than the client body timeout. */
  clientBodyTimeouts = 0;
  /** Responses abandoned because the client read nothing for the send timeout. */
  responsesAbandoned = 0;
  /** Requests that waited for a slot of their connection's budget, and those refused with a full queue. */
  connectionQueued = 0;
  connectionRefused = 0;
  /** Requests whose client left before they were written upstream: never sent. */
  cancelledBeforeUpstream = 0;
  /** Requests cancelled while in flight whose upstream connection was kept (drained) rather than closed. */
  cancelledDrained = 0;
  /** …and those that could not be drained (body still streaming, not done within 1 s or 64 KiB): aborted. */
  cancelledClosed = 0;
  /** Requests the HTTP client refused to send (invalid header or Host value…): never counted upstream. */
  unsendable = 0;
}

/** Shared by every Exchange of a pipeline. */
export interface ExchangeContext {
  outlier: OutlierDetector;
  budgetPercent: number;
  budgetMinConcurrent: number;
  counters: ProxyCounters;
  /** A response the client reads nothing of for this long is abandoned; 0: never. */
  sendTimeoutMs: number;
  /** A streamed request body with no bytes for this long: 408; 0: never. */
  clientBodyTimeoutMs: number;
  /** Requests with an upstream try in flight per client connection; 0: no cap. */
  maxPerConnection: number;
}

/** A request cancelled while in flight is drained at most this long / this far so its connection can be reused. */
const CANCEL_DRAIN_MS = 1000;
const CANCEL_DRAIN_BYTES = 64 * 1024;

class TimeoutError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * What kind of failure an error of the HTTP client (undici) or of the gateway's own aborts is. `sync`: raised
 * while the request was being handed to the pool (undici validates the request then): nothing was sent.
 */
export function classify(err: Error & { code?: string }, sync: boolean): number {
  switch (err.code) {
    case 'ECONNREFUSED':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'EDGEGATE_CONNECT_TIMEOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EADDRNOTAVAIL':
    // The pool was closed or destroyed (the endpoint left the table): the request never left the gateway.
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED':
    case 'EDGEGATE_POOL_CLOSED':
    case 'EDGEGATE_POOL_DESTROYED':
    // mTLS to the upstream without its client certificate loaded: no connection was opened.
    case 'EDGEGATE_NO_CLIENT_CERTIFICATE':
    // A Consul mesh upstream with the wrong SPIFFE identity or a chain outside the CA roots (mesh-tls.ts).
    case 'EDGEGATE_MESH_IDENTITY':
      return FAIL_CONNECT;
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'EDGEGATE_HEADERS_TIMEOUT':
    case 'EDGEGATE_BODY_TIMEOUT':
    case 'ETIMEDOUT':
    case 'EDGEGATE_TRY_TIMEOUT':
      return FAIL_TIMEOUT;
    case 'EDGEGATE_REQUEST_TIMEOUT':
      return FAIL_REQUEST_TIMEOUT;
    case 'EDGEGATE_CLIENT_GONE':
    case 'EDGEGATE_SEND_TIMEOUT':
      return FAIL_CLIENT;
    case 'EDGEGATE_CLIENT_BODY_TIMEOUT':
      return FAIL_CLIENT_BODY;
    // The request as built from the client's input cannot be sent (a header or Host value undici or Node refuses;
    // a body that does not match its Content-Length).
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_NOT_SUPPORTED':
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
    case 'EDGEGATE_REQUEST_LENGTH_MISMATCH':
    case 'ERR_INVALID_CHAR':
    case 'ERR_INVALID_HTTP_TOKEN':
    case 'ERR_HTTP_INVALID_HEADER_VALUE':
    case 'ERR_HTTP2_INVALID_HEADER_VALUE':
    case 'ERR_HTTP2_INVALID_CONNECTION_HEADERS':
    case 'ERR_HTTP2_HEADER_SINGLE_VALUE':
    case 'ERR_HTTP2_INVALID_PSEUDOHEADER':
      return FAIL_UNSENDABLE;
    // Malformed upstream responses: llhttp's parse errors (HTTPParserError, whose code undici leaves undefined),
    // headers over the limit, a body longer or framed differently than its Content-Length, an unsolicited
    // `100 Continue` or upgrade (undici's "bad response" / "bad upgrade").
    case 'UND_ERR_HEADERS_OVERFLOW':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
    // The raw pool (raw-pool.ts): a response nobody asked for, or an upgrade nobody asked for.
    case 'EDGEGATE_UNSOLICITED_RESPONSE':
    case 'EDGEGATE_BAD_UPGRADE':
      return FAIL_PROTOCOL;
    case 'EDGEGATE_UPSTREAM_CLOSED':
      return FAIL_RESET;
    case 'UND_ERR_SOCKET':
      return err.message === 'bad response' || err.message === 'bad upgrade' ? FAIL_PROTOCOL : FAIL_RESET;
    // An HTTP/2 upstream's stream ended by nghttp2 for a malformed frame or header block is a protocol error; a
    // reset the upstream sent (CANCEL, REFUSED_STREAM, INTERNAL_ERROR…) is a reset.
    case 'ERR_HTTP2_STREAM_ERROR':
      return H2_PROTOCOL_ERRORS.test(err.message) ? FAIL_PROTOCOL : FAIL_RESET;
  }
  if (err.name === 'HTTPParserError' || err.code?.startsWith('HPE_')) return FAIL_PROTOCOL;
  // Anything else raised while handing the request over: undici asserting on a Host it cannot parse (`[x`) is the
  // client's input; an error without a known cause is the gateway's.
  if (sync) return err.code === 'ERR_ASSERTION' ? FAIL_UNSENDABLE : FAIL_INTERNAL;
  return FAIL_RESET;
}

const H2_PROTOCOL_ERRORS = /PROTOCOL_ERROR|COMPRESSION_ERROR|FRAME_SIZE_ERROR|FLOW_CONTROL_ERROR/;

function gatewayCode(kind: number): GatewayErrorCode {
  if (kind & FAIL_UNSENDABLE) return 'EDGEGATE_BAD_REQUEST';
  if (kind & FAIL_INTERNAL) return 'EDGEGATE_INTERNAL';
  if (kind & FAIL_CLIENT_BODY) return 'EDGEGATE_CLIENT_BODY_TIMEOUT';
  if (kind & FAIL_CONNECT) return 'EDGEGATE_UPSTREAM_CONNECT';
  if (kind & (FAIL_TIMEOUT | FAIL_REQUEST_TIMEOUT)) return 'EDGEGATE_UPSTREAM_TIMEOUT';
  if (kind & FAIL_PROTOCOL) return 'EDGEGATE_UPSTREAM_PROTOCOL';
  return 'EDGEGATE_UPSTREAM_RESET';
}

export function sendError(
  res: ServerResponse,
  code: GatewayErrorCode,
  requestId: string,
  message?: string,
): void {
  noteGatewayError(res, code);
  if (res.headersSent) {
    cutResponse(res);
    return;
  }
  if (isGrpcResponse(res))
    return respondGrpcError(
      res,
      GatewayErrors[code].status,
      code,
      requestId,
      message ?? GatewayErrors[code].message,
    );
  const body = errorBody(code, requestId, message);
  res.writeHead(GatewayErrors[code].status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-request-id': requestId,
    'cache-control': 'no-store',
  });
  res.end(body);
}

/**
 * Ends a response that cannot be completed so the client sees it was cut: HTTP/1.x closes the connection; HTTP/2
 * resets the stream with INTERNAL_ERROR (a bare destroy would send RST_STREAM(NO_ERROR), which clients read as the
 * end of a complete response).
 */
export function cutResponse(res: ServerResponse): void {
  const stream = (res as { stream?: { close(code: number): void; destroyed: boolean } }).stream;
  if (stream === undefined) res.destroy();
  else if (!stream.destroyed) stream.close(h2.NGHTTP2_INTERNAL_ERROR);
}

function setHead(res: ServerResponse, statusCode: number, headers: Record<string, string | string[]>): void {
  res.statusCode = statusCode;
  for (const name in headers) res.setHeader(name, headers[name]!);
}

const kExchange = Symbol('edgegate.exchange');
type TaggedResponse = ServerResponse & { [kExchange]?: Exchange };

function onResponseClose(this: TaggedResponse): void {
  this[kExchange]?.clientClosed();
}
function onResponseDrain(this: TaggedResponse): void {
  this[kExchange]?.drained();
}
function onRequestTimer(ex: Exchange): void {
  ex.requestTimedOut();
}
function onTryTimer(a: Attempt): void {
  a.timedOut();
}
function onDrainTimer(a: Attempt): void {
  a.drainTimedOut();
}
function onRetry(ex: Exchange): void {
  ex.retryNow();
}
function onSendTimer(ex: Exchange): void {
  ex.sendTimedOut();
}
function onBodyTimer(ex: Exchange): void {
  ex.bodyStalled();
}
function onSlotGranted(ex: Exchange): void {
  ex.dispatchFirst();
}

/**
 * HTTP/2 first tries wait here for the end of the I/O phase that brought them (one setImmediate for all of them):
 * Node delivers a stream's HEADERS and a RST_STREAM that follows in the same read as separate callbacks, and the
 * reset only closes the stream after the request handler ran. Dispatching a turn later means a stream opened and
 * cancelled at once (rapid reset) never reaches an upstream pool. No allocation per request: two arrays swap.
 */
let deferred: Exchange[] = [];
let spare: Exchange[] = [];
let deferredScheduled = false;

function dispatchDeferred(): void {
  deferredScheduled = false;
  const list = deferred;
  deferred = spare;
  spare = list;
  for (let i = 0; i < list.length; i++) list[i]!.dispatchFirst();
  list.length = 0;
}

/** The undici handler of one try; forwards events to its Exchange. */
class Attempt implements Dispatcher.DispatchHandler {
  readonly exchange: Exchange;
  readonly upstream: Upstream;
  controller: Dispatcher.DispatchController | null = null;
  /** The response is drained, never shown to the client: a retriable failure, or a cancelled request. */
  discard = false;
  /** Draining after the client cancelled: bytes it may still read before the connection is given up. */
  drainLeft = 0;
  /** The whole request, body included, was written upstream. */
  sent = false;
  settled = false;
  timer: NodeJS.Timeout | undefined;

  constructor(exchange: Exchange, upstream: Upstream) {
    this.exchange = exchange;
    this.upstream = upstream;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.exchange.finished) {
      // The client left while the request waited for a connection: never write it. Throwing here (rather than
      // controller.abort(), which destroys the socket) makes undici drop the request and keep the connection.
      this.exchange.cancelledBeforeSend();
      throw new TimeoutError('EDGEGATE_CLIENT_GONE', 'client gone before the request was sent');
    }
    this.exchange.requestStarted();
  }

  onBodySent(): void {
    this.exchange.bodyProgress();
  }

  onRequestSent(): void {
    this.sent = true;
    this.exchange.bodyDone();
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.exchange.responseStart(this, controller, statusCode, headers);
  }

  onResponseStartFlat(controller: Dispatcher.DispatchController, statusCode: number, raw: string[]): boolean {
    return this.exchange.responseStartFlat(this, controller, statusCode, raw);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.discard) this.exchange.responseData(controller, chunk);
    else if (this.drainLeft > 0) {
      this.drainLeft -= chunk.length;
      if (this.drainLeft <= 0) {
        this.exchange.cancelClosed();
        this.abort(new TimeoutError('EDGEGATE_CLIENT_GONE', 'cancelled response too large to drain'));
      }
    }
  }

  onResponseEnd(
    _controller: Dispatcher.DispatchController,
    trailers: Record<string, string | string[] | undefined>,
  ): void {
    this.exchange.responseEnd(this, trailers);
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, error: Error): void {
    this.exchange.responseError(this, error);
  }

  abort(err: Error): void {
    this.controller?.abort(err);
  }

  timedOut(): void {
    this.timer = undefined;
    if (!this.settled) this.abort(new TimeoutError('EDGEGATE_TRY_TIMEOUT', 'per-try timeout'));
  }

  /** Drain after a cancel: `CANCEL_DRAIN_MS` at most, then the connection is closed after all. */
  drain(): void {
    this.discard = true;
    this.drainLeft = CANCEL_DRAIN_BYTES;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(onDrainTimer, CANCEL_DRAIN_MS, this);
  }

  drainTimedOut(): void {
    this.timer = undefined;
    if (this.settled) return;
    this.exchange.cancelClosed();
    this.abort(new TimeoutError('EDGEGATE_CLIENT_GONE', 'cancelled response not done in time'));
  }
}

export interface ExchangeInit {
  req: IncomingMessage;
  res: ServerResponse;
  policy: RulePolicy;
  cluster: ClusterRuntime;
  requestId: string;
  /** Upstream path with the query. */
  path: string;
  method: string;
  headers: string[];
  /** The client's body stream, or the bytes a policy already read and verified (signed requests). */
  body: IncomingMessage | Buffer | null;
  /** Idempotent method and no body: may be sent again. */
  retryable: boolean;
  /** Consistent-hash key hash, when the rule hashes and the request has a key. */
  hash: number | undefined;
  /** Metrics / access-log record of this request (observe/), when an observer is installed. */
  record: RequestRecord | undefined;
  /**
   * A gRPC call: its request body is a stream of messages that may pause for as long as the call lasts once the
   * upstream has answered (bidi), so the client body timeout only applies until the response starts.
   */
  grpc?: boolean;
  /** Whole-request timeout of this request when shorter than the rule's (a gRPC call's deadline, grpc-timeout). */
  requestMs?: number;
}

/** HTTP/2 compat response: trailers can be passed on (gRPC status); HTTP/1.1 clients get none. */
type TrailerResponse = ServerResponse & { addTrailers(t: Record<string, string>): void };
/** A controller whose body pieces are handed over (raw-pool.ts's `transientChunks`). */
type TransientSource = Dispatcher.DispatchController & { transientChunks?: boolean };

export class Exchange implements BodySink {
  readonly #ctx: ExchangeContext;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #policy: RulePolicy;
  readonly #cluster: ClusterRuntime;
  readonly #requestId: string;
  readonly #path: string;
  readonly #method: Dispatcher.HttpMethod;
  readonly #headers: string[];
  #body: IncomingMessage | Buffer | null;
  readonly #retryable: boolean;
  readonly #hash: number | undefined;
  readonly #h2Client: boolean;
  readonly #record: RequestRecord | undefined;
  readonly #grpc: boolean;
  readonly #requestMs: number;
  #attempt: Attempt | undefined;
  #tries = 0;
  /** A try's request was handed to an upstream connection (RequestMirror sends its copy for exactly these). */
  reachedUpstream = false;
  #retrying = false;
  #finished = false;
  #timedOut = false;
  #paused: Dispatcher.DispatchController | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** The connection budget this request holds a slot of (connection-budget.ts), when a cap is set. */
  #budget: ConnectionBudget | undefined;
  #holdsSlot = false;
  /** True while the request is handed to the pool: an error raised then means nothing was sent. */
  #dispatching = false;
  /** The client's last write did not fit: the send timer runs until it drains. */
  #stalled = false;
  #sendTimer: NodeJS.Timeout | undefined;
  #bodyTimer: NodeJS.Timeout | undefined;
  /** The response body goes through a compressor (ResponseCompression filter). */
  #compressed: CompressedBody | undefined;

  constructor(ctx: ExchangeContext, init: ExchangeInit) {
    this.#ctx = ctx;
    this.#req = init.req;
    this.#res = init.res;
    this.#policy = init.policy;
    this.#cluster = init.cluster;
    this.#requestId = init.requestId;
    this.#path = init.path;
    this.#method = init.method as Dispatcher.HttpMethod;
    this.#headers = init.headers;
    this.#body = init.body;
    this.#retryable = init.retryable;
    this.#hash = init.hash;
    this.#h2Client = init.req.httpVersionMajor === 2;
    this.#record = init.record;
    this.#grpc = init.grpc === true;
    this.#requestMs = init.requestMs ?? init.policy.requestMs;
  }

  get finished(): boolean {
    return this.#finished;
  }

  /**
   * Takes the request in. `bodyPending`: the body is being read first (request-body.ts), which then calls
   * bodyComplete / bodyStreams / bodyTimedOut; the request takes no upstream resource until then.
   */
  start(bodyPending = false): void {
    const res = this.#res as TaggedResponse;
    res[kExchange] = this;
    res.on('close', onResponseClose);
    res.on('drain', onResponseDrain);
    this.#cluster.state.active++;
    this.#ctx.counters.requests++;
    if (this.#requestMs > 0) this.#timer = setTimeout(onRequestTimer, this.#requestMs, this);
    if (!bodyPending) this.#admit();
  }

  bodyComplete(body: Buffer | null): void {
    if (this.#finished) return;
    this.#body = body;
    this.#admit();
  }

  bodyStreams(): void {
    if (!this.#finished) this.#admit();
  }

  bodyTimedOut(): void {
    if (this.#finished) return;
    this.#ctx.counters.clientBodyTimeouts++;
    this.#answerClientBodyTimeout();
  }

  bodyAborted(): void {
    // The response closes with the client connection (clientClosed).
  }

  /** A slot of the client connection's budget, then the first try. */
  #admit(): void {
    const max = this.#ctx.maxPerConnection;
    if (max > 0) {
      const budget = budgetOf(this.#req);
      this.#budget = budget;
      const got = budget.acquire(this, max);
      if (got !== GRANTED) {
        if (got === REFUSED) {
          this.#ctx.counters.connectionRefused++;
          return sendError(this.#res, 'EDGEGATE_CONNECTION_LIMITED', this.#requestId);
        }
        this.#ctx.counters.connectionQueued++;
        return;
      }
      this.#holdsSlot = true;
    }
    this.#first();
  }

  /** Called by the connection budget when a queued request gets its slot (from another request's release). */
  slotGranted(): void {
    this.#holdsSlot = true;
    // Not from inside the releasing request's undici callback: the next turn.
    nextTick(onSlotGranted, this);
  }

  #first(): void {
    if (this.#h2Client) {
      deferred.push(this);
      if (!deferredScheduled) {
        deferredScheduled = true;
        setImmediate(dispatchDeferred);
      }
      return;
    }
    this.#try(undefined);
  }

  /** The first try, unless the client left meanwhile (then nothing ever reaches the upstream). */
  dispatchFirst(): void {
    // Gone already (counted in clientClosed), or about to be: its close event is still due.
    if (this.#finished || this.#clientGone()) {
      this.#releaseSlot();
      return;
    }
    if (this.#attempt === undefined) this.#try(undefined);
  }

  /** The client connection (HTTP/1.x) or stream (HTTP/2) is gone, its response's close event maybe still due. */
  #clientGone(): boolean {
    const req = this.#req as IncomingMessage & { stream?: { destroyed: boolean } };
    return this.#h2Client ? req.stream!.destroyed : req.socket === null || req.socket.destroyed;
  }

  #releaseSlot(): void {
    if (!this.#holdsSlot) return;
    this.#holdsSlot = false;
    this.#budget!.release();
  }

  #try(previous: Upstream | undefined): void {
    const up = this.#cluster.pick(this.#policy.mode, this.#hash, previous);
    if (up === undefined) {
      const c = this.#cluster.data;
      if (c.invalid)
        return sendError(
          this.#res,
          'EDGEGATE_BACKEND_INVALID',
          this.#requestId,
          'the backendRef is not valid',
        );
      return sendError(
        this.#res,
        'EDGEGATE_NO_HEALTHY_UPSTREAM',
        this.#requestId,
        `no healthy endpoint for ${c.service} in ${c.datacenter}`,
      );
    }
    if (up.inFlight >= up.capacity) {
      // Fail fast instead of queueing without bound behind a slow endpoint.
      this.#ctx.counters.overloaded++;
      return sendError(this.#res, 'EDGEGATE_UPSTREAM_OVERLOADED', this.#requestId);
    }
    this.#tries++;
    this.#ctx.counters.tries++;
    const attempt = new Attempt(this, up);
    this.#attempt = attempt;
    up.inFlight++;
    this.#record?.dispatched(up.endpoint);
    const p = this.#policy;
    if (p.backendRequestMs > 0) attempt.timer = setTimeout(onTryTimer, p.backendRequestMs, attempt);
    const body = this.#body;
    let headers =
      this.#tries === 1 ? this.#headers : [...this.#headers, 'x-edgegate-attempt', String(this.#tries)];
    // Tracing on: this try's client span, and its traceparent in place of the client's.
    const trace = this.#record?.trace;
    if (trace !== undefined) headers = trace.startTry(headers, up.endpoint, this.#cluster.data, this.#path);
    // `servername`: undici's per-request TLS server name (constant per upstream; see upstream-tls.ts).
    const options: Dispatcher.DispatchOptions & { servername?: string } = {
      path: this.#path,
      method: this.#method,
      headers,
      // An HTTP/2 client's streamed body is coalesced: its DATA frames may be one byte each. (undici takes async
      // iterables as bodies; its type for `body` does not list them.)
      body:
        body !== null && body === this.#req && this.#h2Client
          ? (coalescedBody(body) as unknown as IncomingMessage)
          : body,
      headersTimeout: p.responseHeadersMs,
      bodyTimeout: p.idleMs,
      servername: up.servername,
    };
    this.#dispatching = true;
    try {
      up.pool.dispatch(options, attempt);
    } catch (err) {
      // undici reports its refusals through onResponseError; one that throws instead is handled the same way.
      this.responseError(attempt, err as Error);
    } finally {
      this.#dispatching = false;
    }
  }

  #settle(a: Attempt): void {
    if (a.settled) return;
    a.settled = true;
    a.upstream.inFlight--;
    if (a.timer !== undefined) clearTimeout(a.timer);
    if (this.#bodyTimer !== undefined) {
      clearTimeout(this.#bodyTimer);
      this.#bodyTimer = undefined;
    }
    if (this.#finished) this.#releaseSlot();
  }

  /** May this failure (kind bits) be retried now? Takes a retry-budget slot on the first retry. */
  #mayRetry(kind: number): boolean {
    const p = this.#policy;
    if (
      this.#finished ||
      this.#timedOut ||
      !this.#retryable ||
      (kind & p.retryMask) === 0 ||
      this.#tries > p.attempts ||
      this.#res.headersSent
    )
      return false;
    const state = this.#cluster.state;
    if (!this.#retrying) {
      const budget = Math.max(
        this.#ctx.budgetMinConcurrent,
        Math.floor((state.active * this.#ctx.budgetPercent) / 100),
      );
      if (state.retriesActive >= budget) {
        state.retriesRefusedByBudget++;
        this.#ctx.counters.retriesRefusedByBudget++;
        return false;
      }
      state.retriesActive++;
      this.#retrying = true;
    }
    state.retries++;
    this.#ctx.counters.retries++;
    if (this.#record !== undefined) this.#record.retries++;
    return true;
  }

  #scheduleRetry(): void {
    if (this.#policy.backoffMs > 0) setTimeout(onRetry, this.#policy.backoffMs, this);
    else nextTick(onRetry, this);
  }

  retryNow(): void {
    if (this.#finished || this.#timedOut) return;
    this.#try(this.#attempt?.upstream);
  }

  /** undici is about to write the request: a streamed body now has `clientBodyTimeoutMs` between chunks. */
  requestStarted(): void {
    this.reachedUpstream = true;
    const ms = this.#ctx.clientBodyTimeoutMs;
    const body = this.#body;
    if (ms <= 0 || body === null || Buffer.isBuffer(body)) return;
    if (this.#bodyTimer === undefined) this.#bodyTimer = setTimeout(onBodyTimer, ms, this);
    else this.#bodyTimer.refresh();
  }

  bodyProgress(): void {
    this.#bodyTimer?.refresh();
  }

  bodyDone(): void {
    if (this.#bodyTimer !== undefined) {
      clearTimeout(this.#bodyTimer);
      this.#bodyTimer = undefined;
    }
  }

  /** No body bytes went upstream for the client body timeout: whose fault? */
  bodyStalled(): void {
    const a = this.#attempt;
    if (this.#finished || a === undefined || a.settled || a.sent) return;
    if (this.#grpc && this.#res.headersSent) return;
    const req = this.#req;
    // Bytes waiting on our side, or undici holding the stream paused (it reads an HTTP/1.x body with 'data' events
    // and pauses it when the upstream pushes back): the upstream is the slow one.
    if (req.readableLength > 0 || (!this.#h2Client && req.isPaused())) {
      this.#bodyTimer?.refresh();
      return;
    }
    this.#ctx.counters.clientBodyTimeouts++;
    a.abort(new TimeoutError('EDGEGATE_CLIENT_BODY_TIMEOUT', 'request body timeout'));
  }

  /** A cancelled try in flight that could not be drained (body still streaming, too slow, too large): aborted. */
  cancelClosed(): void {
    this.#ctx.counters.cancelledClosed++;
  }

  /** The try was dropped before undici wrote it: not a try sent upstream after all. */
  cancelledBeforeSend(): void {
    this.#ctx.counters.cancelledBeforeUpstream++;
    this.#ctx.counters.tries--;
  }

  responseStart(
    a: Attempt,
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    // 1xx only: a status below 100 is no HTTP status, and fails as a protocol error below (writeHead refuses it).
    if (statusCode >= 100 && statusCode < 200) return this.#informational(a, statusCode, headers);
    if (!this.#answered(a, controller, statusCode)) return;
    const res = this.#res;
    try {
      const p = this.#policy;
      const out = clientResponseHeaders(headers, p.responseHeaders, this.#requestId);
      if (p.cors !== undefined) p.cors.decorate(out, this.#req.headers.origin);
      if (p.compression !== undefined)
        this.#compressed = compressedBody(p.compression, this, this.#req, res, statusCode, out);
      // A gRPC Trailers-Only answer (grpc-status in the head, no body) stays one HEADERS frame with END_STREAM for an
      // HTTP/2 client: the head is only set here and goes out with end() (grpc-js reads no status otherwise).
      if (this.#h2Client && headers['grpc-status'] !== undefined) setHead(res, statusCode, out);
      else res.writeHead(statusCode, out);
    } catch {
      this.#unforwardable(controller);
    }
  }

  /**
   * The raw pool's flat head of a final answer (raw-pool.ts, FlatHeadHandler): the common one — a route without
   * response header edits, CORS or compression, a client on the raw HTTP/1.1 server — goes to the client's head
   * with no header object in between (headers.ts's clientResponseFields: the same fields clientResponseHeaders
   * gives). False: the pool builds the object and calls responseStart.
   */
  responseStartFlat(
    a: Attempt,
    controller: Dispatcher.DispatchController,
    statusCode: number,
    raw: string[],
  ): boolean {
    const res = this.#res as ServerResponse & Partial<Pick<RawResponse, 'writeHeadParsed'>>;
    const p = this.#policy;
    if (
      res.writeHeadParsed === undefined ||
      p.responseHeaders !== undefined ||
      p.cors !== undefined ||
      p.compression !== undefined
    )
      return false;
    if (!this.#answered(a, controller, statusCode)) return true;
    try {
      res.writeHeadParsed(statusCode, clientResponseFields(raw, this.#requestId));
    } catch {
      this.#unforwardable(controller);
    }
    return true;
  }

  /**
   * A final answer arrived: it is recorded and tells the outlier detector about the endpoint. False when the
   * client is not shown it (drained for a retry, a cancelled request, or the client is gone).
   */
  #answered(a: Attempt, controller: Dispatcher.DispatchController, statusCode: number): boolean {
    this.#record?.answered();
    this.#record?.trace?.tryAnswered(statusCode);
    const failed = statusBits(statusCode);
    if (failed !== 0) this.#ctx.outlier.failure(a.upstream, this.#cluster);
    else this.#ctx.outlier.success(a.upstream);
    // A cancelled request being drained: its answer still tells about the endpoint, nobody reads it.
    if (a.discard) return false;
    if (failed !== 0 && this.#mayRetry(failed)) {
      // Drain the (small) error body so the connection stays reusable, then retry at its end.
      a.discard = true;
      return false;
    }
    if (this.#finished || this.#res.destroyed) {
      controller.abort(new TimeoutError('EDGEGATE_CLIENT_GONE', 'client gone'));
      return false;
    }
    return true;
  }

  /** The upstream's head cannot be forwarded (a field Node or the raw server refuses): 502, the try aborted. */
  #unforwardable(controller: Dispatcher.DispatchController): void {
    sendError(
      this.#res,
      'EDGEGATE_UPSTREAM_PROTOCOL',
      this.#requestId,
      'the upstream sent a header that cannot be forwarded',
    );
    controller.abort(new Error('invalid upstream header'));
  }

  /**
   * An informational (1xx) answer before the final one. `103 Early Hints` is relayed with its Link fields to
   * HTTP/1.1 and HTTP/2 clients (never to HTTP/1.0 ones, RFC 9110 §15.2); every other 1xx (100, 102, 104…) is
   * dropped. Either way the final response follows on the same try.
   */
  #informational(
    a: Attempt,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    const res = this.#res;
    if (statusCode !== 103 || a.discard || this.#finished || res.headersSent) return;
    if (!this.#h2Client && this.#req.httpVersionMinor === 0) return;
    const link = headers.link;
    if (link === undefined) return;
    try {
      res.writeEarlyHints({ link });
    } catch {
      // A Link value Node will not send (it validates them): the hint is dropped, the response goes on.
    }
  }

  responseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const res = this.#res as ServerResponse & Partial<Pick<RawResponse, 'writeTransient'>>;
    // A raw pool's piece to a raw HTTP/1.1 client: its memory goes back once written (RawResponse.writeTransient).
    const ok =
      this.#compressed !== undefined
        ? this.#compressed.write(chunk)
        : res.writeTransient !== undefined && (controller as TransientSource).transientChunks === true
          ? res.writeTransient(chunk)
          : res.write(chunk);
    if (!ok) {
      controller.pause();
      this.#paused = controller;
      const ms = this.#ctx.sendTimeoutMs;
      if (ms > 0) {
        this.#stalled = true;
        if (this.#sendTimer === undefined) this.#sendTimer = setTimeout(onSendTimer, ms, this);
        else this.#sendTimer.refresh();
      }
    }
  }

  /** The response compressor failed (response-compression.ts): the client sees a cut response. */
  compressionFailed(): void {
    if (this.#finished) return;
    sendError(this.#res, 'EDGEGATE_INTERNAL', this.#requestId, 'response compression failed');
    const a = this.#attempt;
    if (a !== undefined && !a.settled)
      a.abort(new TimeoutError('EDGEGATE_CLIENT_GONE', 'response compression failed'));
  }

  drained(): void {
    this.#stalled = false;
    const c = this.#paused;
    if (c !== undefined) {
      this.#paused = undefined;
      c.resume();
    }
  }

  /**
   * The client read nothing of the response for the send timeout (nginx's `send_timeout`): abandon it. The client's
   * stream is reset (HTTP/2) or its connection closed (HTTP/1.x: a response cannot be skipped, and one queued
   * behind an unread one stalls because of it), and the upstream try is aborted, which releases its connection.
   */
  sendTimedOut(): void {
    if (!this.#stalled || this.#finished) return;
    this.#ctx.counters.responsesAbandoned++;
    if (this.#h2Client) cutResponse(this.#res);
    else this.#req.socket?.destroy();
    const a = this.#attempt;
    if (a !== undefined && !a.settled)
      a.abort(new TimeoutError('EDGEGATE_SEND_TIMEOUT', 'the client read nothing for the send timeout'));
  }

  responseEnd(a: Attempt, trailers: Record<string, string | string[] | undefined>): void {
    this.#settle(a);
    this.#record?.trace?.endTry(undefined);
    if (!a.discard) {
      if (this.#h2Client) {
        const t = forwardedTrailers(trailers);
        if (t) (this.#res as TrailerResponse).addTrailers(t);
      }
      if (this.#compressed === undefined) this.#res.end();
      else this.#compressed.end();
      return;
    }
    if (this.#finished) {
      // A cancelled request drained to its end: the connection went back to the pool.
      if (a.drainLeft > 0) this.#ctx.counters.cancelledDrained++;
      return;
    }
    if (this.#timedOut) sendError(this.#res, 'EDGEGATE_UPSTREAM_TIMEOUT', this.#requestId, 'request timeout');
    else this.#scheduleRetry();
  }

  responseError(a: Attempt, error: Error): void {
    this.#settle(a);
    this.#record?.trace?.endTry(error);
    // The client's own body stream failed (it aborted its upload): not the upstream's doing.
    const kind = error === this.#req.errored ? FAIL_CLIENT : classify(error, this.#dispatching);
    if ((kind & NOT_UPSTREAM) !== 0) return this.#notUpstream(kind);
    if (kind !== FAIL_REQUEST_TIMEOUT) this.#ctx.outlier.failure(a.upstream, this.#cluster);
    if (kind === FAIL_TIMEOUT) this.#ctx.counters.tryTimeouts++;
    if (this.#finished) return;
    if ((a.discard && kind !== FAIL_REQUEST_TIMEOUT) || this.#mayRetry(kind)) {
      // A drained error response that fails half-way is still the failure we decided to retry.
      this.#scheduleRetry();
      return;
    }
    this.#ctx.counters.upstreamErrors++;
    // A mesh identity failure says which identity was expected and which one was presented.
    if ((error as Error & { code?: string }).code === 'EDGEGATE_MESH_IDENTITY')
      return sendError(this.#res, 'EDGEGATE_MESH_IDENTITY', this.#requestId, error.message);
    // Mid-response failure: cutting the client connection is the only honest signal left (truncated body);
    // sendError does that once headers are sent, and records the code either way (metrics, access log).
    sendError(this.#res, gatewayCode(kind), this.#requestId);
  }

  /**
   * A failure that is not the upstream's: the client left or was abandoned, stalled its body (408), or sent
   * something the HTTP client refuses to forward (400; 500 for the gateway's own errors). No outlier failure, no
   * retry, no upstream error; a request that was never sent is not counted as a try either.
   */
  #notUpstream(kind: number): void {
    if (kind === FAIL_CLIENT) return;
    if ((kind & (FAIL_UNSENDABLE | FAIL_INTERNAL)) !== 0) {
      this.#ctx.counters.unsendable++;
      this.#ctx.counters.tries--;
      this.#tries--;
      if (this.#record !== undefined) {
        this.#record.endpoint = undefined;
        this.#record.tryStart = 0;
      }
    }
    if (this.#finished) return;
    if (kind === FAIL_CLIENT_BODY) return this.#answerClientBodyTimeout();
    sendError(
      this.#res,
      gatewayCode(kind),
      this.#requestId,
      kind === FAIL_UNSENDABLE
        ? 'the request cannot be forwarded: a header or Host value is invalid'
        : undefined,
    );
  }

  /** 408, and the connection is not reused (the rest of the body would be read as the next request). */
  #answerClientBodyTimeout(): void {
    const res = this.#res;
    if (!this.#h2Client) res.shouldKeepAlive = false;
    sendError(res, 'EDGEGATE_CLIENT_BODY_TIMEOUT', this.#requestId);
  }

  requestTimedOut(): void {
    this.#timer = undefined;
    if (this.#finished) return;
    this.#timedOut = true;
    this.#ctx.counters.requestTimeouts++;
    const a = this.#attempt;
    if (a && !a.settled && a.controller) {
      a.abort(new TimeoutError('EDGEGATE_REQUEST_TIMEOUT', 'request timeout'));
    } else {
      // Between tries (backoff), or the try still waits in the pool queue (it is aborted when it starts).
      sendError(this.#res, 'EDGEGATE_UPSTREAM_TIMEOUT', this.#requestId, 'request timeout');
    }
  }

  /**
   * The client response is complete or the client went away: release everything this request held. A try still
   * in flight is dropped before it is written (onRequestStart), drained briefly when it was written whole (so an
   * HTTP/1.1 upstream connection goes back to the pool instead of closing), else aborted.
   */
  clientClosed(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#sendTimer !== undefined) clearTimeout(this.#sendTimer);
    this.#compressed?.close();
    const state = this.#cluster.state;
    state.active--;
    if (this.#retrying) state.retriesActive--;
    const a = this.#attempt;
    if (a === undefined) {
      // Never dispatched (its body still being read, waiting for a slot of its connection, or for the end of the
      // I/O phase): the client left before anything went upstream, unless the gateway answered it itself.
      if (!this.#res.headersSent) this.#ctx.counters.cancelledBeforeUpstream++;
      return this.#releaseSlot();
    }
    if (a.settled) return this.#releaseSlot();
    // Not handed to a connection yet: undici calls onRequestStart, which drops it.
    if (a.controller === null) return;
    if (a.sent && a.upstream.settings.protocol === undefined) {
      a.drain();
      const c = this.#paused;
      if (c !== undefined) {
        this.#paused = undefined;
        c.resume();
      }
      return;
    }
    this.cancelClosed();
    a.abort(new TimeoutError('EDGEGATE_CLIENT_GONE', 'client closed the connection'));
  }
}

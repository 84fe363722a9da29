/**
 * One proxied request: picks an upstream per try, forwards over its pool, streams the response back with
 * backpressure, and decides retries (idempotent, bodiless requests only; within the cluster's retry budget),
 * per-try and whole-request timeouts, the pending cap, and outlier bookkeeping.
 *
 * Hot-path notes: one Exchange and one Attempt object per request (plus one per retry); listeners and timers are
 * module-level functions that find their Exchange through a symbol or a timer argument, so nothing allocates a
 * closure per request. Timers are only armed when a timeout is configured.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { errorBody, type GatewayErrorCode, GatewayErrors } from '../../lib/errors.ts';
import type { HeaderEdits } from '../../table/types.ts';
import { noteGatewayError, type RequestRecord } from '../observe/request-observer.ts';
import type { ClusterRuntime } from './cluster-runtime.ts';
import { forwardedTrailers } from './h2-compat.ts';
import { clientResponseHeaders } from './headers.ts';
import type { OutlierDetector } from './outlier.ts';
import type { Upstream } from './upstream-pools.ts';

/** What went wrong with one try, as bits so a rule's `retry.on` is one mask. */
export const FAIL_CONNECT = 1;
export const FAIL_RESET = 2;
export const FAIL_TIMEOUT = 4;
export const FAIL_5XX = 8;
export const FAIL_502 = 16;
export const FAIL_503 = 32;
export const FAIL_504 = 64;
const FAIL_PROTOCOL = 128;
const FAIL_CLIENT = 256;
const FAIL_REQUEST_TIMEOUT = 512;

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
}

/** Shared by every Exchange of a pipeline. */
export interface ExchangeContext {
  outlier: OutlierDetector;
  budgetPercent: number;
  budgetMinConcurrent: number;
  counters: ProxyCounters;
}

class TimeoutError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

function classify(err: Error & { code?: string }): number {
  switch (err.code) {
    case 'ECONNREFUSED':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EADDRNOTAVAIL':
    // The pool was closed or destroyed (the endpoint left the table): the request never left the gateway.
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED':
    // mTLS to the upstream without its client certificate loaded: no connection was opened.
    case 'EDGEGATE_NO_CLIENT_CERTIFICATE':
      return FAIL_CONNECT;
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'ETIMEDOUT':
    case 'EDGEGATE_TRY_TIMEOUT':
      return FAIL_TIMEOUT;
    case 'EDGEGATE_REQUEST_TIMEOUT':
      return FAIL_REQUEST_TIMEOUT;
    case 'EDGEGATE_CLIENT_GONE':
      return FAIL_CLIENT;
    default:
      return err.code?.startsWith('HPE_') ? FAIL_PROTOCOL : FAIL_RESET;
  }
}

function gatewayCode(kind: number): GatewayErrorCode {
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
    res.destroy();
    return;
  }
  const body = errorBody(code, requestId, message);
  res.writeHead(GatewayErrors[code].status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-request-id': requestId,
    'cache-control': 'no-store',
  });
  res.end(body);
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
function onRetry(ex: Exchange): void {
  ex.retryNow();
}

/** The undici handler of one try; forwards events to its Exchange. */
class Attempt implements Dispatcher.DispatchHandler {
  readonly exchange: Exchange;
  readonly upstream: Upstream;
  controller: Dispatcher.DispatchController | null = null;
  /** The response is a retriable failure being drained, never shown to the client. */
  discard = false;
  settled = false;
  timer: NodeJS.Timeout | undefined;

  constructor(exchange: Exchange, upstream: Upstream) {
    this.exchange = exchange;
    this.upstream = upstream;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.exchange.finished) controller.abort(new TimeoutError('EDGEGATE_CLIENT_GONE', 'client gone'));
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.exchange.responseStart(this, controller, statusCode, headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.discard) this.exchange.responseData(controller, chunk);
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
}

/** HTTP/2 compat response: trailers can be passed on (gRPC status); HTTP/1.1 clients get none. */
type TrailerResponse = ServerResponse & { addTrailers(t: Record<string, string>): void };

export class Exchange {
  readonly #ctx: ExchangeContext;
  readonly #res: ServerResponse;
  readonly #policy: RulePolicy;
  readonly #cluster: ClusterRuntime;
  readonly #requestId: string;
  readonly #path: string;
  readonly #method: Dispatcher.HttpMethod;
  readonly #headers: string[];
  readonly #body: IncomingMessage | Buffer | null;
  readonly #retryable: boolean;
  readonly #hash: number | undefined;
  readonly #h2Client: boolean;
  readonly #record: RequestRecord | undefined;
  #attempt: Attempt | undefined;
  #tries = 0;
  #retrying = false;
  #finished = false;
  #timedOut = false;
  #paused: Dispatcher.DispatchController | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(ctx: ExchangeContext, init: ExchangeInit) {
    this.#ctx = ctx;
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
  }

  get finished(): boolean {
    return this.#finished;
  }

  start(): void {
    const res = this.#res as TaggedResponse;
    res[kExchange] = this;
    res.on('close', onResponseClose);
    res.on('drain', onResponseDrain);
    this.#cluster.state.active++;
    this.#ctx.counters.requests++;
    if (this.#policy.requestMs > 0) this.#timer = setTimeout(onRequestTimer, this.#policy.requestMs, this);
    this.#try(undefined);
  }

  #try(previous: Upstream | undefined): void {
    const up = this.#cluster.pick(this.#policy.mode, this.#hash, previous);
    if (up === undefined) {
      const c = this.#cluster.data;
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
    // `servername`: undici's per-request TLS server name (constant per upstream; see upstream-tls.ts).
    const options: Dispatcher.DispatchOptions & { servername?: string } = {
      path: this.#path,
      method: this.#method,
      headers:
        this.#tries === 1 ? this.#headers : [...this.#headers, 'x-edgegate-attempt', String(this.#tries)],
      body: this.#body,
      headersTimeout: p.responseHeadersMs,
      bodyTimeout: p.idleMs,
      servername: up.servername,
    };
    up.pool.dispatch(options, attempt);
  }

  #settle(a: Attempt): void {
    if (a.settled) return;
    a.settled = true;
    a.upstream.inFlight--;
    if (a.timer !== undefined) clearTimeout(a.timer);
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
    else process.nextTick(onRetry, this);
  }

  retryNow(): void {
    if (this.#finished || this.#timedOut) return;
    this.#try(this.#attempt?.upstream);
  }

  responseStart(
    a: Attempt,
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.#record?.answered();
    const failed = statusBits(statusCode);
    if (failed !== 0) this.#ctx.outlier.failure(a.upstream, this.#cluster);
    else this.#ctx.outlier.success(a.upstream);
    if (failed !== 0 && this.#mayRetry(failed)) {
      // Drain the (small) error body so the connection stays reusable, then retry at its end.
      a.discard = true;
      return;
    }
    const res = this.#res;
    if (this.#finished || res.destroyed) {
      controller.abort(new TimeoutError('EDGEGATE_CLIENT_GONE', 'client gone'));
      return;
    }
    try {
      res.writeHead(
        statusCode,
        clientResponseHeaders(headers, this.#policy.responseHeaders, this.#requestId),
      );
    } catch {
      sendError(
        res,
        'EDGEGATE_UPSTREAM_PROTOCOL',
        this.#requestId,
        'the upstream sent a header that cannot be forwarded',
      );
      controller.abort(new Error('invalid upstream header'));
    }
  }

  responseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#res.write(chunk)) {
      controller.pause();
      this.#paused = controller;
    }
  }

  drained(): void {
    const c = this.#paused;
    if (c !== undefined) {
      this.#paused = undefined;
      c.resume();
    }
  }

  responseEnd(a: Attempt, trailers: Record<string, string | string[] | undefined>): void {
    this.#settle(a);
    if (!a.discard && this.#h2Client) {
      const t = forwardedTrailers(trailers);
      if (t) (this.#res as TrailerResponse).addTrailers(t);
    }
    if (!a.discard) this.#res.end();
    else if (this.#timedOut)
      sendError(this.#res, 'EDGEGATE_UPSTREAM_TIMEOUT', this.#requestId, 'request timeout');
    else this.#scheduleRetry();
  }

  responseError(a: Attempt, error: Error): void {
    this.#settle(a);
    const kind = classify(error);
    if (kind === FAIL_CLIENT) return;
    if (kind !== FAIL_REQUEST_TIMEOUT) this.#ctx.outlier.failure(a.upstream, this.#cluster);
    if (kind === FAIL_TIMEOUT) this.#ctx.counters.tryTimeouts++;
    if ((a.discard && kind !== FAIL_REQUEST_TIMEOUT) || this.#mayRetry(kind)) {
      // A drained error response that fails half-way is still the failure we decided to retry.
      this.#scheduleRetry();
      return;
    }
    this.#ctx.counters.upstreamErrors++;
    if (this.#finished) return;
    // Mid-response failure: cutting the client connection is the only honest signal left (truncated body).
    if (this.#res.headersSent) this.#res.destroy();
    else sendError(this.#res, gatewayCode(kind), this.#requestId);
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

  /** The client response is complete or the client went away: release everything this request held. */
  clientClosed(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const state = this.#cluster.state;
    state.active--;
    if (this.#retrying) state.retriesActive--;
    const a = this.#attempt;
    if (a && !a.settled) a.abort(new TimeoutError('EDGEGATE_CLIENT_GONE', 'client closed the connection'));
  }
}

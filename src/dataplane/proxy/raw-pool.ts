/**
 * An HTTP/1.1 upstream pool on raw `net` sockets with Node's own parser (llhttp.ts): what undici's Pool does for a
 * cleartext HTTP/1.1 endpoint without pipelining, at a fraction of its cost per request (docs/data-plane.md).
 * It speaks undici's dispatcher protocol (`dispatch(options, handler)` with `onRequestStart` … `onResponseEnd` /
 * `onResponseError`, and a controller that aborts, pauses and resumes), so exchange.ts and request-mirror.ts use
 * either pool unchanged. TLS, HTTP/2, h2c, pipelining > 1 and upgrades stay on undici (upstream-pools.ts).
 *
 * Rules it keeps, each one tested (test/unit/dataplane/proxy/raw-pool.test.ts, test/e2e/upstream/raw-upstream.test.ts):
 * - One request per connection at a time; an idle connection is reused last-in first-out, closed after the
 *   keep-alive timeout (or earlier when the upstream's `Keep-Alive: timeout=N` says so), never reused after a
 *   response that said `Connection: close`, was read to the end of the connection, or came before the request body
 *   was fully written.
 * - Bytes from the upstream while no request is in flight, a second response in the same read, a `101`/upgrade
 *   nobody asked for: the connection is a protocol error and is closed; nothing is ever matched to the next request.
 * - The request head is checked before a byte is written (method and header names are tokens, values and the path
 *   carry no control characters); a `Transfer-Encoding` from the caller is refused: the pool does the framing
 *   (Content-Length when known, chunked otherwise). A streamed body that ends short of or beyond its
 *   Content-Length closes the connection.
 * - Timeouts per request: response headers (from the request being written), body idle (between two reads,
 *   stopped while the caller has paused), connect (per connection).
 */
import { Buffer } from 'node:buffer';
import diagnosticsChannel from 'node:diagnostics_channel';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { headerObject } from './headers.ts';
import {
  isParseError,
  kOnBody,
  kOnExecute,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageBegin,
  kOnMessageComplete,
  type NativeParser,
  newParser,
  type OnHeadersComplete,
  type ParseError,
  RESPONSE,
  releaseParser,
  STRICT,
  type StreamHandle,
} from './llhttp.ts';
import { HOLD_BODY_BYTES, holdWrites } from './turn-writes.ts';

/** Connection opens and failures, as undici's `undici:client:connected` / `connectError` (observe/pool-events.ts). */
export const rawConnectedChannel = diagnosticsChannel.channel('edgegate:raw-pool:connected');
export const rawConnectErrorChannel = diagnosticsChannel.channel('edgegate:raw-pool:connectError');

/** Largest response head accepted (Node's and undici's default `maxHeaderSize`). */
const MAX_HEADER_SIZE = 16 * 1024;

export class RawPoolError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export interface RawPoolOptions {
  host: string;
  port: number;
  connections: number;
  keepAliveTimeoutMs: number;
  connectTimeoutMs: number;
}

type Headers = Record<string, string | string[]>;
type Body = Buffer | Readable | AsyncIterable<Buffer> | null | undefined;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A field value or request target with a control character (CR, LF, NUL…) or DEL. */
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const BAD_PATH = /[^\x21-\xff]/;
/** Methods whose request without a body still says `Content-Length: 0` (RFC 9110 §8.6). */
const EXPECTS_BODY = new Set(['POST', 'PUT', 'PATCH']);
const EMPTY: Headers = Object.freeze({}) as Headers;
const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

function invalid(message: string): RawPoolError {
  return new RawPoolError('ERR_INVALID_CHAR', message);
}

/** The value of a field that appears once in llhttp's flat list (`lower`: its lower-case name); else undefined. */
function onlyValue(raw: readonly string[], lower: string): string | undefined {
  let found: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== lower.length || name.toLowerCase() !== lower) continue;
    if (found !== undefined) return undefined;
    found = raw[i + 1]!;
  }
  return found;
}

/**
 * What the pool adds to undici's handler protocol: a handler may take a final answer's head (status 200 or more)
 * as llhttp's flat `[name, value, …]` list (names as the upstream sent them) and return true; false (or no such
 * method) gets `onResponseStart` with the usual header object. Answers below 200 always take `onResponseStart`.
 */
export interface FlatHeadHandler {
  onResponseStartFlat?(controller: Dispatcher.DispatchController, status: number, raw: string[]): boolean;
}

/** `Keep-Alive: timeout=N` of a response, in ms (undefined when absent or unreadable). */
function keepAliveHint(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /(?:^|[,;\s])timeout=(\d+)/i.exec(value);
  return m ? Number(m[1]) * 1000 : undefined;
}

/** One dispatched request; it is also its own controller (abort, pause, resume), as undici's are. */
class RawRequest implements Dispatcher.DispatchController {
  readonly pool: RawPool;
  readonly handler: Dispatcher.DispatchHandler;
  readonly method: string;
  readonly path: string;
  readonly headers: string[];
  readonly body: Body;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  conn: RawConnection | null = null;
  #aborted = false;
  #paused = false;
  #reason: Error | null = null;
  /** Settled: onResponseEnd or onResponseError was called. */
  done = false;
  /** The whole request, body included, is written. */
  sent = false;
  /** The final response head arrived. */
  answered = false;
  /** The message being parsed is a 1xx (its completion is not the response's). */
  informational = false;
  /** The caller's Content-Length (requestHead reads it): what a streamed body must add up to; -1: none (chunked). */
  declaredLength = -1;
  /**
   * Every body piece given to `onResponseData` is a fresh Buffer over an ArrayBuffer of its own (Node's parser
   * copies each piece out of the read), handed over: a handler that keeps nothing of it may give its memory back
   * (RawResponse.writeTransient). undici's pieces are views of its read buffers and carry no such flag.
   */
  readonly transientChunks = true;

  constructor(pool: RawPool, opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) {
    this.pool = pool;
    this.handler = handler;
    this.method = opts.method;
    this.path = opts.path;
    this.headers = (opts.headers as string[] | null | undefined) ?? [];
    this.body = opts.body as Body;
    this.headersTimeoutMs = opts.headersTimeout ?? 0;
    this.bodyTimeoutMs = opts.bodyTimeout ?? 0;
  }

  get aborted(): boolean {
    return this.#aborted;
  }
  get paused(): boolean {
    return this.#paused;
  }
  get reason(): Error | null {
    return this.#reason;
  }

  abort(reason: Error): void {
    if (this.#aborted || this.done) return;
    this.#aborted = true;
    this.#reason = reason;
    const conn = this.conn;
    if (conn !== null) conn.destroy(reason);
    else this.pool.unqueue(this);
    this.fail(reason);
  }

  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.conn?.pauseReading();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.conn?.resumeReading();
  }

  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.handler.onResponseError?.(this, err);
  }
}

const NONE = 0;
const CONNECT = 1;
const HEADERS = 2;
const BODY = 3;
type TimerKind = typeof NONE | typeof CONNECT | typeof HEADERS | typeof BODY;

/** One upstream connection: a socket, its parser, at most one request in flight. */
class RawConnection {
  readonly pool: RawPool;
  readonly socket: net.Socket;
  readonly parser: NativeParser;
  req: RawRequest | null = null;
  connected = false;
  closed = false;
  /** The last response allowed the connection to be reused. */
  keepAlive = true;
  /** Idle time for this connection: the pool's, or less when the upstream's Keep-Alive hint says so. */
  idleMs: number;
  /** A message completed inside the current execute(): release the connection once it returns. */
  #released = false;
  #executing = false;
  #parserFreed = false;
  /** Header fields delivered in pieces (long heads) or as trailers. */
  #partial: string[] = [];
  /**
   * One timer for the connect, response-headers and body-idle timeouts, checked lazily: arming one only moves
   * `#deadline` (performance.now() time); the pending timer, when it fires, looks at the deadline and waits again
   * for the rest when it moved on. A new timer is made only when none is pending or the new deadline comes before
   * the pending one fires, so in the steady state (the same timeout request after request) no timer is created,
   * refreshed or cancelled per request, and a body chunk only writes a number. Unref'd: the socket keeps the
   * process alive while it matters.
   */
  #timer: NodeJS.Timeout | undefined;
  /** When the pending timer fires (performance.now() time). */
  #timerAt = 0;
  #deadline = 0;
  #timerKind: TimerKind = NONE;
  /** Checked lazily: the idle timer is armed once and looks at `#idleSince` when it fires. */
  #idleTimer: NodeJS.Timeout | undefined;
  #idleSince = 0;
  /** Counted out of the pool's connecting figure (connected, or failed to). */
  counted = false;

  constructor(pool: RawPool, opts: RawPoolOptions) {
    this.pool = pool;
    this.idleMs = opts.keepAliveTimeoutMs;
    const parser = newParser();
    this.parser = parser;
    parser.initialize(RESPONSE, this, MAX_HEADER_SIZE, STRICT);
    parser[kOnHeaders] = (headers: string[]) => {
      for (let i = 0; i < headers.length; i++) this.#partial.push(headers[i]!);
    };
    parser[kOnHeadersComplete] = ((_maj, _min, headers, _m, _u, status, message, upgrade, keepAlive) =>
      this.#onHead(headers, status, message, upgrade, keepAlive)) satisfies OnHeadersComplete;
    parser[kOnBody] = (chunk: Buffer) => this.#onBody(chunk);
    parser[kOnMessageComplete] = () => this.#onComplete();
    // Nothing was asked: an answer beginning now is a protocol error, and would otherwise be read as the next one.
    // Also after the answer completed in this same read: the connection is released only once the read is parsed.
    parser[kOnMessageBegin] = () => {
      if (this.req === null || this.#released)
        this.destroy(new RawPoolError('EDGEGATE_UNSOLICITED_RESPONSE', 'upstream sent data while idle'));
    };
    const socket = net.connect({ host: opts.host, port: opts.port, noDelay: true });
    this.socket = socket;
    if (opts.connectTimeoutMs > 0) this.#arm(CONNECT, opts.connectTimeoutMs);
    socket.on('connect', () => this.#onConnect(opts));
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onEnd());
    socket.on('error', (err: Error) => this.#onClose(err));
    socket.on('close', () => {
      this.#onClose(undefined);
      // A consumed socket's parser is freed here, never inside destroy(): that may run from a parser callback.
      this.#freeParser();
    });
    socket.on('drain', () => this.#onDrain());
  }

  /** The socket's libuv stream while the parser reads it directly (consume), else undefined. */
  #handle: StreamHandle | undefined;
  #reading = true;

  /** Stops or restarts reading the upstream socket (directly on its stream when consumed). */
  #setReading(on: boolean): void {
    const h = this.#handle;
    if (h === undefined) {
      if (on) this.socket.resume();
      else this.socket.pause();
      return;
    }
    if (this.#reading === on || this.closed) return;
    this.#reading = on;
    h.reading = on;
    if (on) h.readStart();
    else h.readStop();
  }

  #onConnect(opts: RawPoolOptions): void {
    this.#disarm();
    this.connected = true;
    this.socket.setKeepAlive(true, 60_000);
    const h = (this.socket as unknown as { _handle?: StreamHandle | null })._handle;
    if (h?.isStreamBase === true && h._consumed !== true && this.socket.readableLength === 0) {
      // The parser reads the socket itself: no Buffer per read reaches JavaScript, no `data` event runs.
      h._consumed = true;
      this.#handle = h;
      this.parser[kOnExecute] = (ret: number | ParseError) => this.#parsed(ret);
      this.parser.consume(h);
    }
    if (rawConnectedChannel.hasSubscribers)
      rawConnectedChannel.publish({
        connectParams: { hostname: opts.host, port: String(opts.port), protocol: 'http:' },
      });
    this.pool.connectionReady(this);
  }

  #arm(kind: TimerKind, ms: number): void {
    this.#timerKind = kind;
    const now = performance.now();
    this.#deadline = now + ms;
    if (this.#timer !== undefined) {
      if (this.#timerAt <= this.#deadline) return;
      clearTimeout(this.#timer);
    }
    this.#timerAt = this.#deadline;
    this.#timer = setTimeout(onConnectionTimer, ms, this).unref();
  }

  #disarm(): void {
    this.#timerKind = NONE;
  }

  timedOut(): void {
    this.#timer = undefined;
    const kind = this.#timerKind;
    if (kind === NONE || this.closed) return;
    const left = this.#deadline - performance.now();
    if (left >= 1) {
      // The deadline moved on since this timer was set: wait for the rest.
      this.#timerAt = this.#deadline;
      this.#timer = setTimeout(onConnectionTimer, left, this).unref();
      return;
    }
    this.#timerKind = NONE;
    if (kind === CONNECT)
      return this.destroy(new RawPoolError('EDGEGATE_CONNECT_TIMEOUT', 'upstream connect timeout'));
    const r = this.req;
    if (r === null) return;
    const err =
      kind === HEADERS
        ? new RawPoolError('EDGEGATE_HEADERS_TIMEOUT', 'upstream response headers timeout')
        : new RawPoolError('EDGEGATE_BODY_TIMEOUT', 'upstream response body timeout');
    this.destroy(err);
    r.fail(err);
  }

  /** Takes a request: checks and writes its head, then its body. */
  start(r: RawRequest): void {
    this.#disarm();
    this.req = r;
    r.conn = this;
    let head: string;
    try {
      r.handler.onRequestStart?.(r, {});
      if (r.aborted) return;
      head = requestHead(r);
    } catch (err) {
      // The caller dropped the request, or its head cannot be written: nothing was sent, the connection stays good.
      this.req = null;
      r.conn = null;
      r.fail(err as Error);
      this.pool.connectionReady(this);
      return;
    }
    if (r.headersTimeoutMs > 0) this.#arm(HEADERS, r.headersTimeoutMs);
    const body = r.body;
    const socket = this.socket;
    if (body === null || body === undefined) {
      holdWrites(socket);
      socket.write(head, 'latin1');
      return this.#bodyWritten(r);
    }
    if (Buffer.isBuffer(body)) {
      if (body.length <= HOLD_BODY_BYTES) holdWrites(socket);
      socket.cork();
      socket.write(head, 'latin1');
      if (body.length > 0) socket.write(body);
      socket.uncork();
      r.handler.onBodySent?.(body);
      return this.#bodyWritten(r);
    }
    socket.write(head, 'latin1');
    new BodyWriter(this, r, body).start();
  }

  #bodyWritten(r: RawRequest): void {
    r.sent = true;
    r.handler.onRequestSent?.();
  }

  bodyWritten(r: RawRequest): void {
    if (this.req !== r || r.done) return;
    this.#bodyWritten(r);
  }

  #onData(chunk: Buffer): void {
    if (this.closed) return;
    this.#executing = true;
    const ret = this.parser.execute(chunk);
    this.#executing = false;
    this.#parsed(ret);
  }

  /** After a read was parsed (by execute, or by the parser reading the socket itself). */
  #parsed(ret: number | ParseError): void {
    if (isParseError(ret)) {
      const r = this.req;
      this.destroy(ret);
      r?.fail(ret);
    }
    if (this.closed) {
      if (this.#handle === undefined) this.#freeParser();
      return;
    }
    if (this.#released) {
      this.#released = false;
      this.#releaseOrClose();
    }
  }

  #onHead(
    headers: string[] | undefined,
    status: number,
    message: string,
    upgrade: boolean,
    keepAlive: boolean,
  ): number {
    const r = this.req;
    if (r === null || this.#released || r.answered) {
      // A second response in one read, or one nobody asked for.
      const err = new RawPoolError('EDGEGATE_UNSOLICITED_RESPONSE', 'upstream sent an unsolicited response');
      this.destroy(err);
      r?.fail(err);
      return 1;
    }
    let raw = headers;
    if (raw === undefined) {
      raw = this.#partial;
      this.#partial = [];
    }
    if (status === 101 || upgrade) {
      const err = new RawPoolError(
        'EDGEGATE_BAD_UPGRADE',
        'upstream answered with an upgrade nobody asked for',
      );
      this.destroy(err);
      r.fail(err);
      return 1;
    }
    if (status < 200) {
      r.informational = true;
      r.handler.onResponseStart?.(r, status, headerObject(raw), message);
      return 0;
    }
    r.answered = true;
    this.keepAlive = keepAlive;
    if (keepAlive) {
      const hint = keepAliveHint(onlyValue(raw, 'keep-alive'));
      // A second less than the upstream's own timeout, so the gateway closes first (undici keeps the same margin).
      if (hint !== undefined) {
        const ms = Math.min(this.pool.options.keepAliveTimeoutMs, hint - 1000);
        if (ms < this.idleMs) {
          // Shorter than the idle timer armed: arm it again when the connection goes idle.
          clearTimeout(this.#idleTimer);
          this.#idleTimer = undefined;
        }
        this.idleMs = ms;
      }
    }
    if (r.bodyTimeoutMs > 0) this.#arm(BODY, r.bodyTimeoutMs);
    else this.#disarm();
    const h = r.handler as Dispatcher.DispatchHandler & FlatHeadHandler;
    // A handler that takes the flat list gets it, and no header object is built.
    if (h.onResponseStartFlat === undefined || !h.onResponseStartFlat(r, status, raw))
      h.onResponseStart?.(r, status, headerObject(raw), message);
    return r.method === 'HEAD' ? 1 : 0;
  }

  #onBody(chunk: Buffer): void {
    const r = this.req;
    if (r === null || r.done) return;
    if (this.#timerKind === BODY) this.#deadline = performance.now() + r.bodyTimeoutMs;
    r.handler.onResponseData?.(r, chunk);
  }

  #onComplete(): void {
    const r = this.req;
    if (r === null || r.done) return;
    if (r.informational) {
      r.informational = false;
      this.#partial = [];
      return;
    }
    let trailers = EMPTY;
    if (this.#partial.length > 0) {
      trailers = headerObject(this.#partial);
      this.#partial = [];
    }
    this.#disarm();
    r.done = true;
    r.handler.onResponseEnd?.(r, trailers);
    // Released once the read is parsed (#parsed), never from inside it: a request waiting for the connection would
    // be written, and whatever follows in this read taken as its answer (response queue poisoning).
    if (this.#executing || this.#handle !== undefined) this.#released = true;
    else this.#releaseOrClose();
  }

  /** The response is complete: the connection goes back to the pool if it can be reused. */
  #releaseOrClose(): void {
    const r = this.req;
    if (this.closed || r === null) return;
    // The answer came before the whole body was written (an early 413, say): the rest is not sent, and the
    // connection, mid-request, cannot carry another.
    if (!r.sent) return this.destroy(undefined);
    this.req = null;
    r.conn = null;
    if (!this.keepAlive || this.idleMs <= 0 || this.pool.closing) return this.destroy(undefined);
    if (r.paused) this.#setReading(true);
    this.pool.connectionReady(this);
  }

  /** No request for this connection: wait for one, at most the idle time. */
  idle(): void {
    this.#idleSince = performance.now();
    this.#idleTimer ??= setTimeout(onIdleTimer, this.idleMs, this).unref();
  }

  idleCheck(): void {
    this.#idleTimer = undefined;
    if (this.closed || this.req !== null) return;
    const left = this.idleMs - (performance.now() - this.#idleSince);
    if (left <= 1) return this.destroy(undefined);
    this.#idleTimer = setTimeout(onIdleTimer, left, this).unref();
  }

  pauseReading(): void {
    this.#setReading(false);
    if (this.#timerKind === BODY) this.#disarm();
  }

  resumeReading(): void {
    this.#setReading(true);
    const r = this.req;
    if (r?.answered && !r.done && r.bodyTimeoutMs > 0 && this.#timerKind === NONE)
      this.#arm(BODY, r.bodyTimeoutMs);
  }

  #onDrain(): void {
    this.writer?.drained();
  }

  writer: BodyWriter | undefined;

  #onEnd(): void {
    const r = this.req;
    // A response delimited by the end of the connection is complete now.
    if (r?.answered && !r.done) {
      this.#executing = true;
      const ret = this.parser.finish();
      this.#executing = false;
      // Framed by Content-Length or chunks and cut short: the upstream closed mid-response (a reset, as a close
      // before any answer is), not a malformed message.
      if (isParseError(ret)) {
        const err = ret.code === 'HPE_INVALID_EOF_STATE' ? closedEarly() : ret;
        this.destroy(err);
        r.fail(err);
      }
    }
    this.destroy(undefined);
    this.#freeParser();
  }

  #onClose(err: Error | undefined): void {
    if (!this.connected && err !== undefined && rawConnectErrorChannel.hasSubscribers) {
      const o = this.pool.options;
      rawConnectErrorChannel.publish({
        connectParams: { hostname: o.host, port: String(o.port), protocol: 'http:' },
        error: err,
      });
    }
    this.destroy(err);
  }

  /** Closes the connection; the request in flight (if any) fails with `err` or "closed". */
  destroy(err: Error | undefined): void {
    const r = this.req;
    if (!this.closed) {
      this.closed = true;
      this.#timerKind = NONE;
      clearTimeout(this.#timer);
      clearTimeout(this.#idleTimer);
      this.writer?.stop();
      this.socket.destroy();
      this.pool.connectionGone(this, err);
    }
    if (r !== null) {
      this.req = null;
      r.conn = null;
      if (!r.done) r.fail(err ?? closedEarly());
    }
    if (!this.#executing && this.#handle === undefined) this.#freeParser();
  }

  #freeParser(): void {
    if (this.#parserFreed) return;
    this.#parserFreed = true;
    releaseParser(this.parser, this.#handle);
    this.#handle = undefined;
  }
}

function closedEarly(): RawPoolError {
  return new RawPoolError(
    'EDGEGATE_UPSTREAM_CLOSED',
    'the upstream closed the connection before the response was complete',
  );
}

function onConnectionTimer(c: RawConnection): void {
  c.timedOut();
}

function onIdleTimer(c: RawConnection): void {
  c.idleCheck();
}

/**
 * The request line and header block, with the framing the body needs: Content-Length when it is known, chunked for
 * a stream without one. Records the caller's Content-Length on the request for the body writer.
 */
function requestHead(r: RawRequest): string {
  if (!TOKEN.test(r.method)) throw invalid(`invalid request method ${JSON.stringify(r.method)}`);
  if (BAD_PATH.test(r.path)) throw invalid('invalid request path');
  // `Connection: keep-alive` as undici sends it: HTTP/1.1's default, said for upstreams that still look for it.
  let head = `${r.method} ${r.path} HTTP/1.1\r\nconnection: keep-alive\r\n`;
  let length: string | undefined;
  const h = r.headers;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!;
    const value = h[i + 1]!;
    // One test per field on strings that are usually flat already: putting them end to end to test once costs
    // more (V8 flattens the concatenation in its runtime before a regular expression can read it).
    if (!TOKEN.test(name)) throw invalid(`invalid header name ${JSON.stringify(name)}`);
    if (BAD_VALUE.test(value)) throw invalid(`invalid value of header ${name}`);
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      if (length !== undefined || !/^\d+$/.test(value)) throw invalid('invalid content-length');
      length = value;
      r.declaredLength = Number(value);
    } else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding')
      throw invalid('transfer-encoding is the pool’s to set');
    head += `${name}: ${value}\r\n`;
  }
  const body = r.body;
  if (body === null || body === undefined) {
    if (length === undefined && EXPECTS_BODY.has(r.method)) head += 'content-length: 0\r\n';
    else if (length !== undefined && length !== '0')
      throw new RawPoolError('EDGEGATE_REQUEST_LENGTH_MISMATCH', 'content-length without a body');
    return `${head}\r\n`;
  }
  if (Buffer.isBuffer(body)) {
    if (length === undefined) head += `content-length: ${body.length}\r\n`;
    else if (Number(length) !== body.length)
      throw new RawPoolError('EDGEGATE_REQUEST_LENGTH_MISMATCH', 'content-length does not match the body');
    return `${head}\r\n`;
  }
  if (length !== undefined) return `${head}\r\n`;
  return `${head}transfer-encoding: chunked\r\n\r\n`;
}

/** Writes a streamed request body with backpressure; chunked framing when its length is not known. */
class BodyWriter {
  readonly conn: RawConnection;
  readonly req: RawRequest;
  readonly body: Readable | AsyncIterable<Buffer>;
  readonly chunked: boolean;
  readonly expected: number;
  written = 0;
  stopped = false;
  #wake: (() => void) | undefined;
  #stream: Readable | undefined;

  constructor(conn: RawConnection, req: RawRequest, body: Readable | AsyncIterable<Buffer>) {
    this.conn = conn;
    this.req = req;
    this.body = body;
    this.expected = req.declaredLength;
    this.chunked = this.expected < 0;
  }

  start(): void {
    this.conn.writer = this;
    const body = this.body;
    if (typeof (body as Readable).on === 'function' && typeof (body as Readable).pause === 'function') {
      const s = body as Readable;
      this.#stream = s;
      s.on('data', this.#onData);
      s.on('end', this.#onEnd);
      s.on('error', this.#onError);
      s.on('close', this.#onStreamClose);
      if (s.readableEnded) this.#onEnd();
      else if (s.destroyed) this.#onStreamClose();
      else s.resume();
      return;
    }
    void this.#iterate(body as AsyncIterable<Buffer>);
  }

  /** Writes one chunk; false when the socket asks to wait. */
  #write(chunk: Buffer): boolean {
    if (chunk.length === 0) return true;
    this.written += chunk.length;
    const socket = this.conn.socket;
    let ok: boolean;
    if (this.chunked) {
      socket.cork();
      socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      ok = socket.write(CRLF);
      socket.uncork();
    } else {
      if (this.expected >= 0 && this.written > this.expected) {
        this.#mismatch();
        return false;
      }
      ok = socket.write(chunk);
    }
    this.req.handler.onBodySent?.(chunk);
    return ok;
  }

  #onData = (chunk: Buffer): void => {
    if (this.stopped) return;
    if (!this.#write(chunk) && !this.stopped) this.#stream!.pause();
  };

  #onEnd = (): void => {
    if (this.stopped) return;
    this.#finish();
  };

  #onError = (err: Error): void => {
    if (this.stopped) return;
    this.#abortWith(err);
  };

  #onStreamClose = (): void => {
    if (this.stopped) return;
    const s = this.#stream!;
    if (s.readableEnded) return;
    // Closed before its end: the client went away mid-upload.
    this.#abortWith(s.errored ?? new RawPoolError('ECONNRESET', 'request body aborted'));
  };

  async #iterate(body: AsyncIterable<Buffer>): Promise<void> {
    try {
      for await (const chunk of body) {
        if (this.stopped) return;
        if (!this.#write(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array)))
          await new Promise<void>((resolve) => {
            this.#wake = resolve;
          });
        if (this.stopped) return;
      }
      if (!this.stopped) this.#finish();
    } catch (err) {
      if (!this.stopped) this.#abortWith(err as Error);
    }
  }

  #finish(): void {
    if (this.expected >= 0 && this.written !== this.expected) return this.#mismatch();
    if (this.chunked) this.conn.socket.write(LAST_CHUNK);
    this.#detach();
    this.conn.bodyWritten(this.req);
  }

  #mismatch(): void {
    this.#abortWith(
      new RawPoolError(
        'EDGEGATE_REQUEST_LENGTH_MISMATCH',
        'the request body does not match its content-length',
      ),
    );
  }

  #abortWith(err: Error): void {
    this.#detach();
    const r = this.req;
    this.conn.destroy(err);
    r.fail(err);
  }

  drained(): void {
    if (this.stopped) return;
    if (this.#stream !== undefined) this.#stream.resume();
    else {
      const wake = this.#wake;
      this.#wake = undefined;
      wake?.();
    }
  }

  stop(): void {
    this.#detach();
  }

  #detach(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.conn.writer === this) this.conn.writer = undefined;
    const s = this.#stream;
    if (s !== undefined) {
      s.off('data', this.#onData);
      s.off('end', this.#onEnd);
      s.off('error', this.#onError);
      s.off('close', this.#onStreamClose);
    }
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/** The figures undici's `Pool.stats` gives, with the same names (observe/pool-figures.ts reads either). */
export type RawPoolStats = Record<'connected' | 'free' | 'pending' | 'queued' | 'running' | 'size', number>;

/** The pool of one endpoint. */
export class RawPool {
  readonly options: RawPoolOptions;
  readonly #all = new Set<RawConnection>();
  /** Idle, connected; the last one released is reused first (keeps the warm set small). */
  readonly #free: RawConnection[] = [];
  readonly #queue: RawRequest[] = [];
  #connecting = 0;
  closing = false;
  #destroyed = false;
  #onIdle: (() => void) | undefined;

  constructor(options: RawPoolOptions) {
    this.options = options;
  }

  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const r = new RawRequest(this, opts, handler);
    if (this.closing || this.#destroyed) {
      r.fail(
        new RawPoolError(
          this.#destroyed ? 'EDGEGATE_POOL_DESTROYED' : 'EDGEGATE_POOL_CLOSED',
          'the upstream pool is closed',
        ),
      );
      return false;
    }
    const conn = this.#free.pop();
    if (conn !== undefined) conn.start(r);
    else {
      this.#queue.push(r);
      this.#grow();
    }
    return true;
  }

  /** Opens connections while requests wait for one and the cap allows. */
  #grow(): void {
    while (this.#queue.length > this.#connecting && this.#all.size < this.options.connections) {
      this.#connecting++;
      this.#all.add(new RawConnection(this, this.options));
    }
  }

  unqueue(r: RawRequest): void {
    const i = this.#queue.indexOf(r);
    if (i >= 0) this.#queue.splice(i, 1);
  }

  /** A connection is connected and free: it takes the next waiting request, or waits idle. */
  connectionReady(c: RawConnection): void {
    if (!c.counted) {
      c.counted = true;
      this.#connecting--;
    }
    const next = this.#queue.shift();
    if (next !== undefined) return c.start(next);
    if (this.closing) return c.destroy(undefined);
    this.#free.push(c);
    c.idle();
  }

  connectionGone(c: RawConnection, err: Error | undefined): void {
    this.#all.delete(c);
    const i = this.#free.indexOf(c);
    if (i >= 0) this.#free.splice(i, 1);
    if (!c.counted) {
      c.counted = true;
      this.#connecting--;
      // The connection never opened: the request waiting longest for it fails with the reason.
      if (err !== undefined) this.#queue.shift()?.fail(err);
    }
    if (this.#queue.length > 0 && !this.#destroyed) this.#grow();
    this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.#onIdle !== undefined && this.#queue.length === 0 && this.running === 0) {
      const done = this.#onIdle;
      this.#onIdle = undefined;
      for (const c of [...this.#all]) c.destroy(undefined);
      done();
    }
  }

  get running(): number {
    let n = 0;
    for (const c of this.#all) if (c.req !== null) n++;
    return n;
  }

  get stats(): RawPoolStats {
    let connected = 0;
    let running = 0;
    for (const c of this.#all) {
      if (c.connected) connected++;
      if (c.req !== null) running++;
    }
    const pending = this.#queue.length;
    return { connected, free: this.#free.length, pending, queued: pending, running, size: running + pending };
  }

  /** Stops taking requests; resolves once the ones in flight and waiting are done and every socket is closed. */
  close(): Promise<void> {
    this.closing = true;
    for (const c of this.#free.splice(0)) c.destroy(undefined);
    return new Promise<void>((resolve) => {
      this.#onIdle = resolve;
      this.#checkIdle();
    });
  }

  /** Fails every request in flight or waiting and closes every socket. */
  destroy(): Promise<void> {
    this.closing = true;
    this.#destroyed = true;
    const err = new RawPoolError('EDGEGATE_POOL_DESTROYED', 'the upstream pool was destroyed');
    for (const r of this.#queue.splice(0)) r.fail(err);
    for (const c of [...this.#all]) c.destroy(err);
    const done = this.#onIdle;
    this.#onIdle = undefined;
    done?.();
    return Promise.resolve();
  }
}

/**
 * The plain listener's HTTP/1.1 server on raw `net` sockets with Node's own parser (llhttp.ts), `--http1-server
 * raw`: what `node:http`'s server does for the gateway, with less in between. Each connection has one parser
 * (reused across connections); request heads and bodies come from it, responses are written by RawResponse
 * (raw-messages.ts). The listener's other parts — admission, the request guard, drain, stats, PROXY protocol, h2c
 * sniffing, WebSocket upgrades — are server.ts's, shared with the node:http server.
 *
 * What it keeps of node:http, and how (each tested in test/unit/dataplane/proxy/raw-server.test.ts and by the
 * security suite run against this server):
 * - Parsing is llhttp's, strict (no leniency flags): the same 400s for smuggling shapes, bad tokens, bare LF,
 *   obs-fold; a head over `maxHeaderSize` is HPE_HEADER_OVERFLOW (431). A parser error is a `clientError` event
 *   with the error's `code`, `bytesParsed` and `rawPacket`, as node:http emits it — but only after the response
 *   under way (a pipelined request before the bad bytes) is complete, never in the middle of it.
 * - Timeouts, checked every `connectionsCheckingIntervalMs` by one timer per server (no timer per request):
 *   `headersTimeoutMs` from a message's first byte (or the connection's start) until its head is complete, and
 *   `requestTimeoutMs` until the whole request is — both a `clientError` with `ERR_HTTP_REQUEST_TIMEOUT`, answered
 *   408 by the listener; `keepAliveTimeoutMs` of idleness between requests closes the connection silently.
 * - Keep-alive as the parser decides it (HTTP/1.0 only with `Connection: keep-alive`; `Connection: close` ends it),
 *   `Connection: close` from the pipeline, a drain or an error response. Pipelined requests are parsed as they come
 *   and answered in order, one at a time; the socket is not read while one waits. A response that ends before its
 *   request's body is read leaves the rest of the body to be read and dropped (the connection stays usable).
 * - `Expect: 100-continue` on HTTP/1.1 gets `100 Continue` before the request reaches the pipeline; any other
 *   expectation 417. A client's FIN (half-close) aborts the request under way, as with node:http.
 * - Upgrades: CONNECT and the upgrades `shouldUpgrade` accepts leave the parser with their socket and the bytes
 *   after the head (`connect` / `upgrade` events, as node:http emits them); any other upgrade is served as a plain
 *   request and the bytes after it are never parsed.
 */
import { Buffer } from 'node:buffer';
import { Server, type Socket } from 'node:net';
import {
  isParseError,
  kOnBody,
  kOnExecute,
  kOnHeaders,
  kOnHeadersComplete,
  kOnMessageBegin,
  kOnMessageComplete,
  METHODS,
  type NativeParser,
  newParser,
  type OnHeadersComplete,
  type ParseError,
  REQUEST,
  releaseParser,
  STRICT,
  type StreamHandle,
} from './llhttp.ts';
import { bodilessRequest, RawRequest, RawResponse, type ResponseCarrier } from './raw-messages.ts';
import { flushHeld } from './turn-writes.ts';

export interface RawServerOptions {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  connectionsCheckingIntervalMs: number;
  /** Bytes of request head (request line and fields); more: HPE_HEADER_OVERFLOW. */
  maxHeaderSize: number;
  /** Whether an upgrade request leaves HTTP (`upgrade` event) or is served as a plain request. */
  shouldUpgrade: (req: RawRequest) => boolean;
}

export type RawRequestListener = (req: RawRequest, res: RawResponse) => void;

/** Parsers of closed connections, initialized again for new ones (native objects: cheaper kept than made). */
const spareParsers: NativeParser[] = [];
const MAX_SPARE_PARSERS = 256;

/** `Expect` values node:http answers with 100 Continue. */
const CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;

function requestTimeoutError(): Error {
  return Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' });
}

export class RawHttpServer extends Server {
  readonly options: RawServerOptions;
  readonly #onRequest: RawRequestListener;
  readonly #connections = new Set<RawConnection>();
  #sweep: NodeJS.Timeout | undefined;

  constructor(options: RawServerOptions, onRequest: RawRequestListener) {
    super({ noDelay: true });
    this.options = options;
    this.#onRequest = onRequest;
    this.on('connection', (socket: Socket) => {
      const conn = new RawConnection(this, socket);
      this.#connections.add(conn);
    });
    this.on('listening', () => {
      if (this.#sweep === undefined && options.connectionsCheckingIntervalMs > 0) {
        this.#sweep = setInterval(() => this.#check(), options.connectionsCheckingIntervalMs);
        this.#sweep.unref();
      }
    });
    this.on('close', () => {
      if (this.#sweep !== undefined) clearInterval(this.#sweep);
      this.#sweep = undefined;
    });
  }

  /** Hands a parsed request to the listener's handler. */
  dispatch(req: RawRequest, res: RawResponse): void {
    this.#onRequest(req, res);
  }

  forget(conn: RawConnection): void {
    this.#connections.delete(conn);
  }

  #check(): void {
    const now = Date.now();
    for (const conn of this.#connections) conn.check(now);
  }

  /** Closes the connections between two requests (node:http's method of the same name; see `idle`). */
  closeIdleConnections(): void {
    for (const conn of this.#connections) if (conn.idle) conn.socket.destroy();
  }

  /** Closes every connection. */
  closeAllConnections(): void {
    for (const conn of this.#connections) conn.socket.destroy();
  }
}

class RawConnection implements ResponseCarrier {
  readonly server: RawHttpServer;
  readonly socket: Socket;
  readonly keepAliveSeconds: number;
  readonly parser: NativeParser;
  /** Head fields delivered in pieces (heads of more than 32 fields), or trailers. */
  #partial: string[] = [];
  #partialUrl = '';
  /** A message has begun (or the connection is new) and its head is not complete: the headers timeout runs. */
  #inHead = true;
  /** When the message being parsed began (or the connection, before the first). */
  #messageStart = Date.now();
  #idleSince = 0;
  /** The request whose body the parser is reading. */
  #parsing: RawRequest | undefined;
  /** The response being answered, and those waiting behind it (pipelining). */
  #active: RawResponse | undefined;
  readonly #queue: RawResponse[] = [];
  /** An upgrade (or CONNECT) that leaves HTTP once the current read is parsed. */
  #upgrade: RawRequest | undefined;
  /** No more bytes are parsed (an upgrade served as a request, an error, closing). */
  #stopped = false;
  /** The request being parsed is the connection's last (an upgrade served as a plain request). */
  #last = false;
  /** A parse error or timeout waiting for the response under way to end. */
  #pendingError: Error | undefined;
  #bodyPaused = false;
  #executing = false;
  #parserFreed = false;
  #closed = false;
  /** The socket's libuv stream when the parser reads it directly (consume), else undefined. */
  #handle: StreamHandle | undefined;
  #reading = true;
  /** A `clientError` was raised: the listener answers (or closes) the connection. */
  #raised = false;

  constructor(server: RawHttpServer, socket: Socket) {
    this.server = server;
    this.socket = socket;
    const o = server.options;
    this.keepAliveSeconds = o.keepAliveTimeoutMs > 0 ? Math.floor(o.keepAliveTimeoutMs / 1000) : -1;
    const parser = spareParsers.pop() ?? newParser();
    this.parser = parser;
    parser.initialize(REQUEST, this, o.maxHeaderSize, STRICT);
    parser[kOnMessageBegin] = () => this.#onBegin();
    parser[kOnHeaders] = (headers: string[], url: string) => this.#onHeaders(headers, url);
    parser[kOnHeadersComplete] = ((maj, min, headers, method, url, _s, _m, upgrade, keepAlive) =>
      this.#onHead(maj, min, headers, method, url, upgrade, keepAlive)) satisfies OnHeadersComplete;
    parser[kOnBody] = (chunk: Buffer) => this.#onBody(chunk);
    parser[kOnMessageComplete] = this.#completeListener;
    const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
    if (handle?.isStreamBase === true && handle._consumed !== true) {
      // The parser reads the socket itself (as node:http's does): no Buffer per read reaches JavaScript and no
      // `data` event runs. Bytes already buffered (put back by the PROXY protocol or h2c sniffing) are parsed first.
      const buffered = socket.readableLength > 0 ? (socket.read() as Buffer | null) : null;
      handle._consumed = true;
      this.#handle = handle;
      parser[kOnExecute] = (ret: number | ParseError) => this.#parsed(ret, undefined);
      parser.consume(handle);
      if (buffered !== null) queueMicrotask(() => this.#onData(buffered));
    } else socket.on('data', this.#dataListener);
    socket.on('end', this.#endListener);
    socket.on('drain', this.#drainListener);
    socket.on('error', destroySocket);
    socket.on('close', () => this.#onClose());
  }

  readonly #completeListener = () => this.#onComplete();
  /** The parser's message-complete slot is empty: the request being parsed has no body (see #onHead). */
  #completeOff = false;
  readonly #dataListener = (chunk: Buffer) => this.#onData(chunk);
  readonly #endListener = () => this.#onEnd();
  readonly #drainListener = () => this.#active?.drained();

  /**
   * Between two requests: one was answered and no byte of the next has come (node:http's idea of an idle
   * connection). A new connection, or one inside a request head, is not idle: a drain must not reset a client that
   * has just connected and is sending its request.
   */
  get idle(): boolean {
    return this.#idleSince > 0 && this.#active === undefined && this.#queue.length === 0;
  }

  /** The server's periodic look at the timeouts. */
  check(now: number): void {
    if (this.#closed || (this.#stopped && this.#pendingError === undefined)) return;
    const o = this.server.options;
    const age = now - this.#messageStart;
    if (this.#inHead) {
      if (o.headersTimeoutMs > 0 && age >= o.headersTimeoutMs) this.#fail(requestTimeoutError(), true);
    } else if (this.#parsing !== undefined) {
      if (o.requestTimeoutMs <= 0 || age < o.requestTimeoutMs) return;
      // A body still read for a request already answered is only dropped: close instead of answering.
      if (this.#parsing.dumped) this.socket.destroy();
      else this.#fail(requestTimeoutError(), true);
    } else if (
      this.#idleSince > 0 &&
      o.keepAliveTimeoutMs > 0 &&
      now - this.#idleSince >= o.keepAliveTimeoutMs
    ) {
      // Between requests, no byte of the next one yet.
      this.socket.destroy();
    }
  }

  // ── Parser callbacks ──────────────────────────────────────────────────────────────────────────────────────

  #onBegin(): void {
    this.#inHead = true;
    this.#idleSince = 0;
    this.#messageStart = Date.now();
    this.#partialUrl = '';
    if (this.#partial.length > 0) this.#partial = [];
  }

  #onHeaders(headers: string[], url: string): void {
    for (let i = 0; i < headers.length; i++) this.#partial.push(headers[i]!);
    if (this.#inHead && url) this.#partialUrl += url;
  }

  #onHead(
    major: number,
    minor: number,
    headers: string[] | undefined,
    method: number | undefined,
    url: string | undefined,
    upgrade: boolean,
    keepAlive: boolean,
  ): number {
    this.#inHead = false;
    let raw = headers;
    if (raw === undefined) {
      raw = this.#partial;
      this.#partial = [];
    } else if (this.#partial.length > 0) {
      raw = this.#partial.concat(raw);
      this.#partial = [];
    }
    const target = this.#partialUrl + (url ?? '');
    this.#partialUrl = '';
    const req = new RawRequest(this, METHODS[method ?? -1] ?? '', target, major, minor, raw);
    const res = new RawResponse(this, req, keepAlive);
    this.#parsing = req;
    if (upgrade) {
      if (req.method === 'CONNECT' || this.server.options.shouldUpgrade(req)) {
        this.#upgrade = req;
        return 0;
      }
      // Served as a plain request; whatever follows it is not parsed (the connection closes after it).
      this.#last = true;
      res.shouldKeepAlive = false;
    }
    // A request without a body (bodilessRequest: the parser frames it the same way) is complete with its head:
    // completed here, after the dispatch as the parser would, with the parser's message-complete slot left empty
    // for it — one call from C++ into JavaScript less per request (node's parser skips a slot holding no function).
    const bodiless = !upgrade && bodilessRequest(req.headers);
    if (bodiless !== this.#completeOff) {
      this.#completeOff = bodiless;
      this.parser[kOnMessageComplete] = bodiless ? null : this.#completeListener;
    }
    if (this.#active === undefined) this.#dispatch(res);
    else this.#queue.push(res);
    if (bodiless) this.#onComplete();
    return 0;
  }

  #onBody(chunk: Buffer): void {
    const req = this.#parsing;
    if (req === undefined) {
      // Body bytes of a request taken as bodiless would mean the parser and #onHead disagree on the framing: the
      // connection is closed rather than the bytes dropped and the parse gone on (llhttp.test.ts pins agreement).
      if (this.#completeOff && !this.#stopped) this.socket.destroy();
      return;
    }
    if (req.dumped || req.destroyed) return;
    if (!req.push(chunk)) this.#bodyPaused = true;
  }

  #onComplete(): void {
    const req = this.#parsing;
    if (req === undefined) return;
    this.#parsing = undefined;
    if (this.#last) this.#stopped = true;
    // Trailers are dropped (docs/data-plane.md, "Protocol behaviour").
    if (this.#partial.length > 0) this.#partial = [];
    req.complete = true;
    if (this.#upgrade === req) return;
    if (req.dumped) {
      // The response was done before the body: now that the body is read too, the next request may go.
      this.#idleSince = Date.now();
      this.#advance();
      return;
    }
    if (!req.destroyed) req.push(null);
  }

  // ── Socket events ─────────────────────────────────────────────────────────────────────────────────────────

  #onData(chunk: Buffer): void {
    if (this.#stopped || this.#closed) return;
    this.#executing = true;
    const ret = this.parser.execute(chunk);
    this.#executing = false;
    this.#parsed(ret, chunk);
  }

  /**
   * After a read was parsed (by execute, or by the parser reading the socket itself: `chunk` undefined, asked of
   * the parser — a copy — only when an error or an upgrade needs the bytes).
   */
  #parsed(ret: number | ParseError, read: Buffer | undefined): void {
    if (this.#closed) return this.#freeParser();
    if (isParseError(ret)) {
      (ret as ParseError & { rawPacket?: Buffer }).rawPacket = read ?? this.parser.getCurrentBuffer();
      return this.#fail(ret);
    }
    const upgrade = this.#upgrade;
    if (upgrade !== undefined) {
      const chunk = read ?? this.parser.getCurrentBuffer();
      return this.#handOver(upgrade, ret < chunk.length ? chunk.subarray(ret) : EMPTY);
    }
    this.#flow();
  }

  #onEnd(): void {
    if (this.#closed || this.#stopped) return;
    // The client half-closed: what it sent is all there is. As node:http (httpAllowHalfOpen off): the request
    // under way is aborted and the connection closed after whatever is written.
    const ret = this.parser.finish();
    if (isParseError(ret)) return this.#fail(ret);
    this.#stopped = true;
    this.#abortAll();
    this.socket.end();
  }

  #onClose(): void {
    this.#closed = true;
    this.#stopped = true;
    this.server.forget(this);
    this.#abortAll();
    if (!this.#executing) this.#freeParser();
  }

  #abortAll(): void {
    const active = this.#active;
    this.#active = undefined;
    const parsing = this.#parsing;
    this.#parsing = undefined;
    if (active !== undefined) {
      abortRequest(active.req);
      active.abort();
    }
    if (parsing !== undefined && parsing !== active?.req) abortRequest(parsing);
    for (const res of this.#queue) abortRequest(res.req);
    this.#queue.length = 0;
  }

  // ── Requests and responses ────────────────────────────────────────────────────────────────────────────────

  #dispatch(res: RawResponse): void {
    this.#active = res;
    this.#idleSince = 0;
    const req = res.req;
    const expect = req.headers.expect;
    if (typeof expect === 'string' && req.httpVersionMajor === 1 && req.httpVersionMinor === 1) {
      if (!CONTINUE.test(expect)) {
        res.writeHead(417, { 'content-length': 0 });
        res.end();
        return;
      }
      res.writeContinue();
    }
    this.server.dispatch(req, res);
  }

  resumeBody(req: RawRequest): void {
    if (req !== this.#parsing || !this.#bodyPaused) return;
    this.#bodyPaused = false;
    this.#flow();
  }

  responseDone(res: RawResponse, finished: boolean): void {
    if (res !== this.#active) return;
    this.#active = undefined;
    if (!finished) {
      // Cut: the client must see an incomplete answer — unless the listener already answered the connection. What
      // of it this turn still holds goes out first, as it would have without the hold.
      if (!this.#raised) {
        flushHeld(this.socket);
        this.socket.destroy();
      }
      return;
    }
    const req = res.req;
    if (!res.shouldKeepAlive || (this.#stopped && this.#pendingError === undefined)) {
      this.#stopped = true;
      this.socket.destroySoon();
      return;
    }
    if (!req.complete) {
      // Answered before its body arrived: read the rest and drop it, then go on.
      req.dumped = true;
      this.#bodyPaused = false;
      req.destroy();
      this.#flow();
      return;
    }
    // Its 'close' is told to whoever listens (a body reader, a pipeline). One nobody listens to is left as it is,
    // complete with its end pushed, for the collector: a stream's destroy() costs ~0.5 µs and a tick per request.
    if (!req.destroyed && req.listenerCount('close') > 0) req.destroy();
    this.#idleSince = Date.now();
    this.#advance();
  }

  #advance(): void {
    const next = this.#queue.shift();
    if (next !== undefined) {
      this.#dispatch(next);
    } else if (this.#pendingError !== undefined) {
      const err = this.#pendingError;
      this.#pendingError = undefined;
      this.#raise(err);
      return;
    }
    this.#flow();
  }

  /** Reads from the socket only when a request needs its bytes: none waiting, no body held back. */
  #flow(): void {
    const socket = this.socket;
    const hold = this.#stopped || this.#bodyPaused || this.#queue.length > 0;
    const h = this.#handle;
    if (h !== undefined) {
      if (hold === !this.#reading || this.#closed) return;
      this.#reading = !hold;
      // net's own flag follows, so the socket restarts reading when it is handed over.
      h.reading = !hold;
      if (hold) h.readStop();
      else h.readStart();
      return;
    }
    if (hold) {
      if (!socket.isPaused()) socket.pause();
    } else if (socket.isPaused()) socket.resume();
  }

  /** A parse error or timeout: raised now when nothing is being answered, else once the answer is complete. */
  #fail(err: Error, timeout = false): void {
    this.#stopped = true;
    this.#flow();
    const parsing = this.#parsing;
    const active = this.#active;
    if (parsing !== undefined) abortRequest(parsing);
    // Raised at once when nothing is answered, when the error is in the body of the request being answered (its
    // answer cannot complete), or for a timeout (the listener tells a late head from a late body by the response
    // under way); an error in a later pipelined request waits for the answers before it.
    if (active === undefined || timeout || active.req === parsing) {
      this.#queue.length = 0;
      return this.#raise(err);
    }
    this.#pendingError = err;
  }

  #raise(err: Error): void {
    // Once per connection: a timeout while a deferred parse error waits must not answer twice.
    if (this.#raised) return;
    this.#stopped = true;
    this.#raised = true;
    if (this.server.listenerCount('clientError') > 0) this.server.emit('clientError', err, this.socket);
    else this.socket.destroy();
  }

  #handOver(req: RawRequest, head: Buffer): void {
    this.#stopped = true;
    this.#upgrade = undefined;
    this.#parsing = undefined;
    const socket = this.socket;
    socket.removeListener('data', this.#dataListener);
    socket.removeListener('end', this.#endListener);
    socket.removeListener('drain', this.#drainListener);
    // Like node:http: neither flowing nor paused, so whoever takes the socket starts it by reading.
    (socket as { readableFlowing: boolean | null }).readableFlowing = null;
    this.server.forget(this);
    this.#freeParser();
    const event = req.method === 'CONNECT' ? 'connect' : 'upgrade';
    if (this.server.listenerCount(event) > 0) this.server.emit(event, req, socket, head);
    else socket.destroy();
  }

  #freeParser(): void {
    if (this.#parserFreed) return;
    this.#parserFreed = true;
    releaseParser(this.parser, this.#handle);
    this.#handle = undefined;
    if (spareParsers.length < MAX_SPARE_PARSERS) spareParsers.push(this.parser);
    else this.parser.close();
  }
}

const EMPTY = Buffer.alloc(0);

function destroySocket(this: Socket): void {
  this.destroy();
}

function abortRequest(req: RawRequest): void {
  if (req.complete || req.destroyed) {
    if (!req.destroyed && !req.readableEnded) req.destroy();
    return;
  }
  req.emit('aborted');
  req.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
}

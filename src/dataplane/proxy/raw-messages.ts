/**
 * The request and response objects of the raw HTTP/1.1 listener (raw-server.ts): what the proxy pipeline uses of
 * `node:http`'s IncomingMessage and ServerResponse, and no more. The pipeline, admission, the observer and the
 * filters are written against that surface (HTTP/2's compat objects implement it too), so they run unchanged.
 *
 * RawRequest is a Readable (the body, pushed by the parser; the socket pauses while the pipeline does not read)
 * with the head as node:http gives it: `method`, `url`, `httpVersion*`, `rawHeaders`, and `headers` built by the
 * same rules (names lower-case; a repeated `set-cookie` an array, `cookie` joined with `; `, the fields that allow
 * one value keep the first, the rest joined with `, `).
 *
 * RawResponse writes the head itself, once, with the first body bytes: `Date`, `Connection` / `Keep-Alive` the way
 * node:http writes them, and the framing — the caller's Content-Length; else, when the whole body is known at the
 * first write (`end(body)`), its length; else chunked for HTTP/1.1 clients and close-delimited for HTTP/1.0 ones.
 * No body for HEAD, 1xx, 204 and 304. Header names and values are checked as node:http checks them (a bad one
 * throws, and the request guard answers 500). A small head and body leave in one buffer, one `write`, held until the
 * end of the event loop's turn with the turn's other small writes (turn-writes.ts).
 */
import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { nextTick } from 'node:process';
import { Readable } from 'node:stream';
import { headerObject } from './headers.ts';
import { HOLD_BODY_BYTES, holdWrites } from './turn-writes.ts';

/** What a response tells the connection that carries it. */
export interface ResponseCarrier {
  readonly socket: Socket;
  /** Seconds in the `Keep-Alive: timeout=` hint (negative: none), as node:http rounds it. */
  readonly keepAliveSeconds: number;
  /** The request's body is wanted again (the pipeline reads). */
  resumeBody(req: RawRequest): void;
  /** The response is complete (`finished`) or was cut (`!finished`). */
  responseDone(res: RawResponse, finished: boolean): void;
}

/** Fields of which a repeat is dropped (node:http's rule: one value makes sense). */
const FIRST_WINS = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

/** llhttp's flat `[name, value, …]` → node:http's `headers` object. */
export function requestHeaders(raw: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    const prior = out[name];
    if (prior === undefined) out[name] = name === 'set-cookie' ? [value] : value;
    else if (name === 'set-cookie') (prior as string[]).push(value);
    else if (name === 'cookie') out[name] = `${prior}; ${value}`;
    else if (!FIRST_WINS.has(name)) out[name] = `${prior}, ${value}`;
  }
  return out;
}

/**
 * Whether a request with these `headers` (requestHeaders' object) has no body: neither Transfer-Encoding nor a
 * Content-Length above 0 (RFC 9112 §6.3). llhttp in strict mode frames requests the same way — it refuses a second
 * or non-numeric Content-Length and both fields together — which llhttp.test.ts pins with generated heads.
 */
export function bodilessRequest(headers: Record<string, string | string[]>): boolean {
  const length = headers['content-length'];
  return headers['transfer-encoding'] === undefined && (length === undefined || length === '0');
}

export class RawRequest extends Readable {
  readonly carrier: ResponseCarrier;
  readonly socket: Socket;
  readonly method: string;
  readonly url: string;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly httpVersion: string;
  readonly rawHeaders: string[];
  readonly headers: Record<string, string | string[]>;
  /** The whole request (body included) was received. */
  complete = false;
  /** The response finished before the body was read: what is left of it is read and dropped. */
  dumped = false;

  constructor(
    carrier: ResponseCarrier,
    method: string,
    url: string,
    major: number,
    minor: number,
    rawHeaders: string[],
  ) {
    super();
    this.carrier = carrier;
    this.socket = carrier.socket;
    this.method = method;
    this.url = url;
    this.httpVersionMajor = major;
    this.httpVersionMinor = minor;
    this.httpVersion = major === 1 && minor === 1 ? '1.1' : `${major}.${minor}`;
    this.rawHeaders = rawHeaders;
    this.headers = requestHeaders(rawHeaders);
  }

  override _read(): void {
    this.carrier.resumeBody(this);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // As node:http: an aborted request is an error only to whoever listens for one (never an uncaught one).
    cb(err !== null && this.listenerCount('error') > 0 ? err : null);
  }
}

const EMPTY = Buffer.alloc(0);
/** A head and body up to this size are copied into one buffer and written with one call, held until the turn ends. */
const COALESCE_BYTES = HOLD_BODY_BYTES;
/** writeTransient gives back the memory of body pieces from this size on. */
const RELEASE_BYTES = 2 * 1024;
const TOKEN = /^[\^_`a-zA-Z\-0-9!#$%&'*+.|~]+$/;
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** Lower-case token characters only (a name with an upper-case letter takes the Map path, which merges by case). */
const LOWER_TOKENS = /^[\^_`a-z\-0-9!#$%&'*+.|~]+$/;
const CLOSE = /(?:^|[\s,])close(?:$|[\s,])/i;
const CHUNKED = /chunked\s*$/i;
const DATE = 1;
const CONNECTION = 2;
const LENGTH = 4;
const TE = 8;

/** Which of the fields that decide the framing `name` (lower-case) is, as a bit; 0 for any other. */
function framingField(name: string): number {
  switch (name.length) {
    case 4:
      return name === 'date' ? DATE : 0;
    case 10:
      return name === 'connection' ? CONNECTION : 0;
    case 14:
      return name === 'content-length' ? LENGTH : 0;
    case 17:
      return name === 'transfer-encoding' ? TE : 0;
    default:
      return 0;
  }
}

let dateCache: string | undefined;
function clearDate(): void {
  dateCache = undefined;
}
/**
 * The `Date` field value: formatted once and kept until the next second begins (node:http's way), so a response
 * reads no clock (~40–50 ns a read on these machines: `node bench/clock.bench.ts`).
 */
function httpDate(): string {
  if (dateCache === undefined) {
    const now = new Date();
    dateCache = now.toUTCString();
    setTimeout(clearDate, 1000 - now.getMilliseconds()).unref();
  }
  return dateCache;
}

function headerError(code: string, message: string): TypeError {
  return Object.assign(new TypeError(message), { code });
}

function checkField(name: string, value: unknown): void {
  if (!TOKEN.test(name))
    throw headerError('ERR_INVALID_HTTP_TOKEN', `Header name must be a valid HTTP token ["${name}"]`);
  if (value === undefined)
    throw headerError('ERR_HTTP_INVALID_HEADER_VALUE', `Invalid value "undefined" for header "${name}"`);
  if (Array.isArray(value)) {
    for (const v of value)
      if (INVALID_VALUE.test(String(v)))
        throw headerError('ERR_INVALID_CHAR', `Invalid character in header content ["${name}"]`);
  } else if (INVALID_VALUE.test(String(value)))
    throw headerError('ERR_INVALID_CHAR', `Invalid character in header content ["${name}"]`);
}

/**
 * writeHead's fields as a flat `[name, value, …]` list when they may be written as they are: every name a
 * lower-case token and every value valid. Undefined sends them through checkField one by one (which names a bad
 * one) and the Map, which merges names by case. One test per field: putting them end to end to test once costs
 * more (V8 flattens the concatenation first).
 */
function plainFlat(fields: Record<string, FieldValue | undefined>): string[] | undefined {
  const flat: string[] = [];
  for (const name in fields) {
    const v = fields[name];
    if (v === undefined) continue;
    if (!LOWER_TOKENS.test(name)) return undefined;
    if (typeof v === 'string') {
      if (INVALID_VALUE.test(v)) return undefined;
      flat.push(name, v);
    } else if (typeof v === 'number') flat.push(name, String(v));
    else {
      if (!Array.isArray(v)) return undefined;
      for (const x of v) {
        if (typeof x !== 'string' || INVALID_VALUE.test(x)) return undefined;
        flat.push(name, x);
      }
    }
  }
  return flat;
}

type Chunk = string | Buffer | Uint8Array;
type FieldValue = string | number | readonly string[];

/** A string body chunk in bytes, in the encoding the caller named (UTF-8 when none, as node:http). */
function toBytes(chunk: string, encoding: unknown): Buffer {
  return Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
}

function byteLength(chunk: Chunk): number {
  return typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
}

export class RawResponse extends EventEmitter {
  readonly req: RawRequest;
  readonly socket: Socket;
  readonly #carrier: ResponseCarrier;
  statusCode = 200;
  /** Whether the connection stays open after this response (the pipeline and a drain turn it off). */
  shouldKeepAlive: boolean;
  /** `writeHead` was called (or a first write made): the status and fields are fixed. */
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  /** Fields set before the head (lower-case name → [name as given, value]). */
  #fields: Map<string, [string, FieldValue]> | undefined;
  /**
   * Or, when nothing was set before, the fields of writeHead as a flat `[name, value, …]` list: a relayed answer's
   * (writeHeadParsed) or a plain lower-case object's (`plainFlat`), written without the Map.
   */
  #flat: string[] | undefined;
  /** The head is on the wire (or in the socket's buffer). */
  #headWritten = false;
  #chunked = false;
  #noBody: boolean;
  #trailers: string | undefined;

  constructor(carrier: ResponseCarrier, req: RawRequest, keepAlive: boolean) {
    super();
    this.#carrier = carrier;
    this.req = req;
    this.socket = carrier.socket;
    this.shouldKeepAlive = keepAlive;
    this.#noBody = req.method === 'HEAD';
  }

  setHeader(name: string, value: FieldValue): this {
    if (this.headersSent)
      throw headerError('ERR_HTTP_HEADERS_SENT', 'Cannot set headers after they are sent to the client');
    checkField(name, value);
    this.#map().set(name.toLowerCase(), [name, value]);
    return this;
  }

  /** The status and fields (merged over those set before); sent with the first body bytes. */
  writeHead(statusCode: number, fields?: Record<string, FieldValue | undefined>): this {
    if (this.headersSent)
      throw headerError('ERR_HTTP_HEADERS_SENT', 'Cannot write headers after they are sent to the client');
    if (!(statusCode >= 100 && statusCode <= 999))
      throw headerError('ERR_HTTP_INVALID_STATUS_CODE', `Invalid status code: ${statusCode}`);
    this.statusCode = statusCode;
    if (fields !== undefined) {
      const flat = this.#fields === undefined ? plainFlat(fields) : undefined;
      if (flat !== undefined) this.#flat = flat;
      else {
        for (const name in fields) {
          const v = fields[name];
          if (v === undefined) continue;
          checkField(name, v);
          this.#map().set(name.toLowerCase(), [name, v]);
        }
      }
    }
    this.headersSent = true;
    return this;
  }

  /**
   * writeHead with fields an llhttp parser produced, as a flat `[name, value, …]` list with lower-case names
   * (headers.ts's clientResponseFields of a relayed answer). They are valid by construction — llhttp's strict mode
   * refuses a name that is not a token and a control character in a value (pinned in llhttp.test.ts) — so they are
   * kept as they are, unchecked; only when fields were set before are they merged as writeHead merges (checked).
   */
  writeHeadParsed(statusCode: number, flat: string[]): this {
    if (this.#fields !== undefined) return this.writeHead(statusCode, headerObject(flat));
    this.writeHead(statusCode);
    this.#flat = flat;
    return this;
  }

  #map(): Map<string, [string, FieldValue]> {
    if (this.#fields === undefined) this.#fields = new Map();
    return this.#fields;
  }

  /** What a field the head must know of (framingField) says: `Connection: close`, the transfer coding. */
  #framing(bit: number, value: FieldValue): number {
    if (bit === CONNECTION && CLOSE.test(String(value))) this.shouldKeepAlive = false;
    else if (bit === TE) this.#chunked = CHUNKED.test(String(value));
    return bit;
  }

  /** The head, with the framing decided: `bodyLength` is the whole body's size when known now, else -1. */
  #head(bodyLength: number): string {
    const status = this.statusCode;
    if (status === 204 || status === 304 || (status >= 100 && status < 200)) this.#noBody = true;
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n`;
    let seen = 0;
    const flat = this.#flat;
    if (flat !== undefined) {
      for (let i = 0; i < flat.length; i += 2) {
        const name = flat[i]!;
        head += `${name}: ${flat[i + 1]}\r\n`;
        const bit = framingField(name);
        if (bit !== 0) seen |= this.#framing(bit, flat[i + 1]!);
      }
    } else if (this.#fields !== undefined) {
      for (const [key, [name, value]] of this.#fields) {
        if (Array.isArray(value)) for (const v of value) head += `${name}: ${v}\r\n`;
        else head += `${name}: ${value}\r\n`;
        const bit = framingField(key);
        if (bit !== 0) seen |= this.#framing(bit, value);
      }
    }
    const date = (seen & DATE) !== 0;
    const connection = (seen & CONNECTION) !== 0;
    let length = (seen & LENGTH) !== 0;
    const te = (seen & TE) !== 0;
    if (!date) head += `Date: ${httpDate()}\r\n`;
    const req = this.req;
    if (!this.#noBody && !length && !te) {
      if (bodyLength >= 0) {
        head += `Content-Length: ${bodyLength}\r\n`;
        length = true;
      } else if (req.httpVersionMinor >= 1 || req.httpVersionMajor > 1) {
        head += 'Transfer-Encoding: chunked\r\n';
        this.#chunked = true;
      } else this.shouldKeepAlive = false; // HTTP/1.0: the body ends where the connection does
    }
    if (!connection) {
      if (!this.shouldKeepAlive) head += 'Connection: close\r\n';
      else {
        head += 'Connection: keep-alive\r\n';
        const s = this.#carrier.keepAliveSeconds;
        if (s >= 0) head += `Keep-Alive: timeout=${s}\r\n`;
      }
    }
    return `${head}\r\n`;
  }

  /** Writes the head (if not yet) and `chunk` framed as decided; returns what the socket's write returned. */
  #send(chunk: Chunk | undefined, last: boolean, cb: (() => void) | undefined): boolean {
    const socket = this.socket;
    let head: string | undefined;
    if (!this.#headWritten) {
      this.#headWritten = true;
      this.headersSent = true;
      head = this.#head(last ? (chunk === undefined ? 0 : byteLength(chunk)) : -1);
    }
    if (this.#noBody) chunk = undefined;
    else if (typeof chunk === 'string') chunk = Buffer.from(chunk);
    const size = chunk === undefined ? 0 : byteLength(chunk);
    let tail: string | undefined;
    if (this.#chunked && last)
      tail = this.#trailers === undefined ? '0\r\n\r\n' : `0\r\n${this.#trailers}\r\n`;
    if (socket.destroyed || !socket.writable) {
      if (cb) nextTick(cb);
      return false;
    }
    if (size === 0 && tail === undefined) {
      if (head === undefined) {
        if (cb) socket.write(EMPTY, cb);
        return !socket.writableNeedDrain;
      }
      holdWrites(socket);
      return socket.write(head, 'latin1', cb);
    }
    if (!this.#chunked) {
      if (head === undefined) return socket.write(chunk!, cb);
      const body = chunk as Uint8Array;
      if (body.length <= COALESCE_BYTES) {
        holdWrites(socket);
        const buf = Buffer.allocUnsafe(head.length + body.length);
        buf.write(head, 0, 'latin1');
        buf.set(body, head.length);
        return socket.write(buf, cb);
      }
      socket.cork();
      socket.write(head, 'latin1');
      const ok = socket.write(body, cb);
      socket.uncork();
      return ok;
    }
    // Chunked: [head] [size CRLF data CRLF] [last-chunk trailers CRLF]
    socket.cork();
    if (head !== undefined) socket.write(head, 'latin1');
    let ok = true;
    if (size > 0) {
      socket.write(`${size.toString(16)}\r\n`, 'latin1');
      socket.write(chunk!);
      ok = socket.write(tail === undefined ? '\r\n' : `\r\n${tail}`, 'latin1', cb);
    } else ok = socket.write(tail!, 'latin1', cb);
    socket.uncork();
    return ok;
  }

  /**
   * write() of a body piece its maker handed over for good (the raw pool's: a fresh ArrayBuffer each, RawPool's
   * `transientChunks`). Once the socket has taken it whole — nothing of this connection left queued in Node or libuv
   * — its memory is given back at once (`ArrayBuffer.prototype.transfer(0)` detaches it) instead of when the
   * collector finds it: V8 counts such memory as external, and 16 KiB answers at 15,000/s otherwise push it into
   * back-to-back major collections (docs/benchmarks.md, "Issue 17, step 6"). Pieces under RELEASE_BYTES are left to
   * the collector (detaching costs more than they weigh), and so is a piece still queued. The caller must not use
   * `chunk` afterwards.
   */
  writeTransient(chunk: Buffer): boolean {
    const ok = this.write(chunk);
    const ab = chunk.buffer;
    if (
      chunk.byteLength >= RELEASE_BYTES &&
      this.socket.writableLength === 0 &&
      chunk.byteOffset === 0 &&
      ab.byteLength === chunk.byteLength &&
      ab instanceof ArrayBuffer
    )
      ab.transfer(0);
    return ok;
  }

  write(chunk: Chunk, encoding?: BufferEncoding | (() => void), cb?: () => void): boolean {
    if (typeof encoding === 'function') cb = encoding;
    if (this.writableEnded || this.destroyed) return false;
    if (typeof chunk === 'string') chunk = toBytes(chunk, encoding);
    if (!this.#headWritten) this.headersSent = true;
    if (byteLength(chunk) === 0 && this.#headWritten) return true;
    return this.#send(chunk, false, cb);
  }

  end(chunk?: Chunk | (() => void), encoding?: BufferEncoding | (() => void), cb?: () => void): this {
    if (typeof chunk === 'function') {
      cb = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') cb = encoding;
    if (this.writableEnded || this.destroyed) return this;
    if (typeof chunk === 'string') chunk = toBytes(chunk, encoding);
    this.writableEnded = true;
    this.headersSent = true;
    const onFlushed = () => {
      cb?.();
      this.#finish();
    };
    if (!this.#headWritten || (chunk !== undefined && byteLength(chunk) > 0) || this.#chunked)
      this.#send(chunk, true, onFlushed);
    else if (this.socket.writableLength === 0) nextTick(onFlushed);
    else this.socket.write(EMPTY, onFlushed);
    return this;
  }

  #finish(): void {
    if (this.writableFinished || this.destroyed) return;
    this.writableFinished = true;
    this.emit('finish');
    this.#carrier.responseDone(this, true);
    this.emit('close');
  }

  /** The connection went away (or the pipeline gave up) before the response was complete. */
  destroy(_err?: unknown): this {
    if (this.destroyed || this.writableFinished) return this;
    this.destroyed = true;
    this.#carrier.responseDone(this, false);
    this.emit('close');
    return this;
  }

  /** Told by the connection when it closed under this response. */
  abort(): void {
    if (this.destroyed || this.writableFinished) return;
    this.destroyed = true;
    this.emit('close');
  }

  /** The socket drained: a paused body may go on. */
  drained(): void {
    this.emit('drain');
  }

  addTrailers(trailers: Record<string, string>): void {
    let t = '';
    for (const name in trailers) {
      checkField(name, trailers[name]);
      t += `${name}: ${trailers[name]}\r\n`;
    }
    this.#trailers = t;
  }

  writeContinue(): void {
    if (!this.#headWritten && this.socket.writable)
      this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
  }

  writeEarlyHints(hints: Record<string, string | string[]>): void {
    if (this.#headWritten || !this.socket.writable) return;
    let head = 'HTTP/1.1 103 Early Hints\r\n';
    for (const name in hints) {
      const v = hints[name]!;
      const value = Array.isArray(v) ? v.join(', ') : v;
      checkField(name, value);
      head += `${name === 'link' ? 'Link' : name}: ${value}\r\n`;
    }
    this.socket.write(`${head}\r\n`, 'latin1');
  }
}

/**
 * Node's own HTTP/1.1 parser (llhttp, the C parser `node:http` runs), reached through the one Node internal the
 * raw data path depends on: `require('_http_common').HTTPParser`. Everything that touches that internal is here,
 * typed; `test/unit/dataplane/proxy/llhttp.test.ts` fails loudly when a Node upgrade changes its shape (the
 * callback slots, their argument order, the error codes), so an upgrade breaks a unit test, not traffic.
 *
 * What it is: a native object per connection. `execute(bytes)` parses and calls back synchronously into the slots
 * below; it returns the bytes consumed or an Error whose `code` is llhttp's (`HPE_INVALID_CONTENT_LENGTH`…).
 * Header lists are flat `[name, value, …]` as received. A head longer than 32 fields arrives in pieces through
 * `kOnHeaders` before `kOnHeadersComplete` (which then gets `undefined`); trailers arrive through `kOnHeaders`
 * after the body. `kOnHeadersComplete` returns 1 to say "no body follows" (a response to HEAD).
 *
 * Why not a parser from npm: the brief forbids hand-written HTTP parsers, and this one is the parser every
 * `node:http` server already trusts (request smuggling fixes land here first).
 */
import { createRequire } from 'node:module';

/** The parser object (internal `HTTPParser` from `_http_common`), as far as edgegate uses it. */
export interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | ParseError;
  finish(): number | ParseError | undefined;
  /** Reads straight from a libuv stream (a socket's `_handle`): no JS `data` events; kOnExecute after each read. */
  consume(handle: object): void;
  /** Gives the stream back to the socket. */
  unconsume(): void;
  /** The bytes of the read being parsed (inside kOnExecute: the read just parsed). */
  getCurrentBuffer(): Buffer;
  close(): void;
  free(): void;
  remove(): void;
  [slot: number]: unknown;
}

export interface ParseError extends Error {
  code: string;
  reason?: string;
  bytesParsed?: number;
}

interface ParserModule {
  /** Method names by the index `kOnHeadersComplete` passes. */
  methods: readonly string[];
  HTTPParser: {
    new (): NativeParser;
    REQUEST: number;
    RESPONSE: number;
    kOnMessageBegin: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
    kOnExecute: number;
    kLenientNone: number;
  };
}

const internal = createRequire(import.meta.url)('_http_common') as ParserModule;
const Native = internal.HTTPParser;

if (
  typeof Native !== 'function' ||
  typeof Native.kOnHeadersComplete !== 'number' ||
  typeof Native.kOnBody !== 'number' ||
  typeof Native.kOnMessageComplete !== 'number' ||
  typeof Native.kOnMessageBegin !== 'number' ||
  typeof Native.kOnExecute !== 'number' ||
  typeof Native.prototype.consume !== 'function' ||
  typeof Native.prototype.getCurrentBuffer !== 'function' ||
  !Array.isArray(internal.methods)
)
  throw new Error(
    `edgegate: this Node.js (${process.version}) has no usable _http_common.HTTPParser; the raw data path needs Node 26 (see docs/data-plane.md)`,
  );

export const REQUEST = Native.REQUEST;
export const RESPONSE = Native.RESPONSE;
export const kOnMessageBegin = Native.kOnMessageBegin;
/** Called after each read of a consumed stream with what `execute()` would have returned. */
export const kOnExecute = Native.kOnExecute;
/** Method names by the index a request's `kOnHeadersComplete` gets. */
export const METHODS: readonly string[] = internal.methods;
export const kOnHeaders = Native.kOnHeaders;
export const kOnHeadersComplete = Native.kOnHeadersComplete;
export const kOnBody = Native.kOnBody;
export const kOnMessageComplete = Native.kOnMessageComplete;
/** Strict parsing: no llhttp leniency flag (no lone LF, no spaces in chunk sizes, no obs-fold relaxations). */
export const STRICT = Native.kLenientNone;

export type OnHeadersComplete = (
  versionMajor: number,
  versionMinor: number,
  headers: string[] | undefined,
  method: number | undefined,
  url: string | undefined,
  statusCode: number,
  statusMessage: string,
  upgrade: boolean,
  shouldKeepAlive: boolean,
) => number;

/** A new parser (for one connection; reused for every message on it). */
export function newParser(): NativeParser {
  return new Native();
}

/** A parse error as returned by `execute()`/`finish()` (they return errors rather than throw them). */
export function isParseError(r: unknown): r is ParseError {
  return r instanceof Error;
}

/** What the raw sides use of a socket's libuv stream (`socket._handle`) and of net's flags on it. */
export interface StreamHandle {
  isStreamBase?: boolean;
  _consumed?: boolean;
  reading?: boolean;
  readStart(): number;
  readStop(): number;
}

/**
 * Detaches a parser from its connection: every callback slot cleared, the stream given back when it was consumed
 * (`handle`), the native state released. Never from inside a parser callback.
 */
export function releaseParser(p: NativeParser, handle: StreamHandle | undefined): void {
  p[Native.kOnMessageBegin] = null;
  p[Native.kOnHeaders] = null;
  p[Native.kOnHeadersComplete] = null;
  p[Native.kOnBody] = null;
  p[Native.kOnMessageComplete] = null;
  if (handle !== undefined) {
    p[Native.kOnExecute] = null;
    p.unconsume();
    handle._consumed = false;
  }
  p.remove();
  p.free();
}

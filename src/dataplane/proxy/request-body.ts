/**
 * Request bodies read before an upstream connection is taken (nginx's `proxy_request_buffering`, bounded): a body
 * of at most `limit` bytes is read completely first, so a slow upload holds a client socket and a few KiB of
 * memory, never a pooled upstream connection. A body without a Content-Length that turns out larger is put back at
 * the head of the request stream and streamed as usual. Between two reads the client has `timeoutMs` (nginx's
 * `client_body_timeout`); a client that stalls longer gets 408.
 *
 * Only requests with a body come here (never a GET); listeners are module-level functions that find their reader
 * through a symbol on the request, so nothing allocates a closure.
 */
import type { IncomingMessage } from 'node:http';

/** Where the outcome goes (the proxy's Exchange). */
export interface BodySink {
  /** The whole body arrived (null: it was empty). */
  bodyComplete(body: Buffer | null): void;
  /** The body is larger than the limit: stream the request (the bytes read so far are back at its head). */
  bodyStreams(): void;
  /** No bytes for `timeoutMs`. */
  bodyTimedOut(): void;
  /** The client went away before the body was complete. */
  bodyAborted(): void;
}

const kReader = Symbol('edgegate.bodyReader');
type Tagged = IncomingMessage & { [kReader]?: BodyReader };

class BodyReader {
  readonly req: Tagged;
  readonly sink: BodySink;
  readonly limit: number;
  chunks: Buffer[] = [];
  size = 0;
  timer: NodeJS.Timeout | undefined;
  done = false;

  constructor(req: Tagged, sink: BodySink, limit: number) {
    this.req = req;
    this.sink = sink;
    this.limit = limit;
  }

  data(chunk: Buffer): void {
    if (this.done) return;
    this.timer?.refresh();
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size <= this.limit) return;
    // Larger than buffering allows: hand the stream on with what was read put back in front.
    const req = this.req;
    req.pause();
    this.finish();
    req.unshift(this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size));
    this.chunks = [];
    this.sink.bodyStreams();
  }

  end(): void {
    if (this.done) return;
    this.finish();
    const c = this.chunks;
    this.chunks = [];
    this.sink.bodyComplete(this.size === 0 ? null : c.length === 1 ? c[0]! : Buffer.concat(c, this.size));
  }

  aborted(): void {
    if (this.done) return;
    this.finish();
    this.chunks = [];
    this.sink.bodyAborted();
  }

  timedOut(): void {
    this.timer = undefined;
    if (this.done) return;
    this.finish();
    this.chunks = [];
    this.sink.bodyTimedOut();
  }

  finish(): void {
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    const req = this.req;
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('close', onClose);
    req.off('error', onError);
    req[kReader] = undefined;
  }
}

function onData(this: Tagged, chunk: Buffer): void {
  this[kReader]?.data(chunk);
}
function onEnd(this: Tagged): void {
  this[kReader]?.end();
}
function onClose(this: Tagged): void {
  this[kReader]?.aborted();
}
function onError(this: Tagged): void {
  this[kReader]?.aborted();
}
function onTimer(r: BodyReader): void {
  r.timedOut();
}

/**
 * Reads the body of `req` up to `limit` bytes, then tells `sink` what happened (once). `timeoutMs` 0: no timeout
 * between reads.
 */
export function readRequestBody(
  req: IncomingMessage,
  sink: BodySink,
  limit: number,
  timeoutMs: number,
): void {
  const r = new BodyReader(req as Tagged, sink, limit);
  const tagged = req as Tagged;
  tagged[kReader] = r;
  if (timeoutMs > 0) r.timer = setTimeout(onTimer, timeoutMs, r);
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('close', onClose);
  req.on('error', onError);
}

/**
 * Whether a body of this declared length is read before the upstream connection is taken: a known length up to
 * the limit, or an unknown one (chunked, or HTTP/2 without Content-Length: read up to the limit, streamed beyond).
 */
export function buffersBody(contentLength: string | undefined, limit: number): boolean {
  if (limit <= 0) return false;
  if (contentLength === undefined) return true;
  const n = Number(contentLength);
  return n >= 0 && n <= limit;
}

/** Small chunks of a streamed HTTP/2 body are gathered up to this size… */
const COALESCE_BYTES = 16 * 1024;
/** …or this many turns of the event loop that each brought more. */
const COALESCE_TURNS = 1024;

/**
 * An HTTP/2 request body as the upstream gets it: the frames that arrive back to back, as one chunk. Node hands a
 * stream's DATA frames to JavaScript one per turn of the event loop (it pauses nghttp2 after each), so a client that
 * sends its body as one-byte DATA frames (a thousand to a TCP segment) would otherwise make the gateway write one
 * upstream chunk, with its chunk header and often its own packet, per byte. A small chunk is held for as long as
 * every next turn brings more (up to 16 KiB or 1,024 turns), and goes as soon as a turn brings nothing: a client
 * that sends one small message and waits for the answer (gRPC streaming) is delayed by one turn. Full-size frames
 * (16 KiB) pass without waiting.
 */
export async function* coalescedBody(req: IncomingMessage): AsyncGenerator<Buffer, void, undefined> {
  for (;;) {
    const first = req.read() as Buffer | null;
    if (first === null) {
      if (req.readableEnded || req.destroyed) {
        if (req.errored) throw req.errored;
        return;
      }
      await nextReadable(req);
      continue;
    }
    if (first.length >= COALESCE_BYTES) {
      yield first;
      continue;
    }
    let parts: Buffer[] | undefined;
    let size = first.length;
    for (let turns = 0; size < COALESCE_BYTES && turns < COALESCE_TURNS; turns++) {
      await new Promise<void>(nextTurn);
      const more = req.read() as Buffer | null;
      if (more === null) break;
      parts ??= [first];
      parts.push(more);
      size += more.length;
    }
    yield parts === undefined ? first : Buffer.concat(parts, size);
  }
}

function nextTurn(resolve: () => void): void {
  setImmediate(resolve);
}

/** Resolves once the stream has data, ends or fails. */
function nextReadable(req: IncomingMessage): Promise<void> {
  return new Promise<void>((resolve) => {
    const go = () => {
      req.off('readable', go);
      req.off('end', go);
      req.off('close', go);
      req.off('error', go);
      resolve();
    };
    req.on('readable', go);
    req.on('end', go);
    req.on('close', go);
    req.on('error', go);
  });
}

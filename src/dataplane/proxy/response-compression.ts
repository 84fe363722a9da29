/**
 * The ResponseCompression filter at response time: decides whether an upstream response is compressed, with which
 * encoding (Accept-Encoding negotiation with q-values), rewrites its headers, and makes the streaming compressor.
 *
 * Never compressed: HEAD requests; 1xx, 204, 206 and 304 responses; responses with Content-Encoding or
 * Content-Range; `Cache-Control: no-transform`; media types outside the list (text/event-stream unless listed by
 * name); a Content-Length below minSize. A compressed response loses Content-Length and Accept-Ranges, gets
 * Content-Encoding and `Vary: Accept-Encoding`, and its strong ETag becomes weak (`W/"…"`). Bodies stream through
 * the compressor chunk by chunk (nothing is buffered whole); an event stream is flushed after every chunk.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Transform } from 'node:stream';
import { constants, createBrotliCompress, createGzip, createZstdCompress } from 'node:zlib';
import type { CompressionData } from '../../table/types.ts';
import { appendVary } from './cors.ts';

export type Encoding = 'zstd' | 'br' | 'gzip';

/** Worker-wide counters (edgegate_compressed_responses_total{encoding}). */
export const compressionCounters = { zstd: 0, br: 0, gzip: 0 };

/** Accept-Encoding entries looked at; the rest of a longer header is ignored. */
const MAX_ENTRIES = 32;
const MAX_HEADER = 4096;
/** RFC 9110 §12.4.2 qvalue: 0 to 1 with at most three decimals. */
const QVALUE = /^(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)$/;

/**
 * The encoding to use among `offered` (server preference order) for this Accept-Encoding, or undefined for
 * identity. Highest q wins, ties go to the server's order; `*` rates every coding not named; q=0 refuses. An
 * entry with a malformed q-value is ignored. No header: identity (RFC 9110 allows any, but old clients that send
 * none often cannot decode).
 */
export function negotiate(
  acceptEncoding: string | string[] | undefined,
  offered: readonly Encoding[],
): Encoding | undefined {
  if (acceptEncoding === undefined) return undefined;
  const header = Array.isArray(acceptEncoding) ? acceptEncoding.join(',') : acceptEncoding;
  if (header.length === 0 || header.length > MAX_HEADER) return undefined;
  let star = -1;
  // q per offered coding, -1: not named.
  const q = [-1, -1, -1];
  let entries = 0;
  for (const part of header.split(',', MAX_ENTRIES)) {
    if (++entries > MAX_ENTRIES) break;
    const semi = part.indexOf(';');
    const coding = (semi < 0 ? part : part.slice(0, semi)).trim().toLowerCase();
    if (coding === '') continue;
    let weight = 1;
    if (semi >= 0) {
      const params = part.slice(semi + 1).trim();
      const m = /^q\s*=\s*([0-9.]+)\s*$/i.exec(params);
      if (!m || !QVALUE.test(m[1]!)) continue;
      weight = Number(m[1]);
    }
    if (coding === '*') star = Math.max(star, weight);
    else {
      const name = coding === 'x-gzip' ? 'gzip' : coding;
      const i = offered.indexOf(name as Encoding);
      if (i >= 0) q[i] = Math.max(q[i]!, weight);
    }
  }
  let best: Encoding | undefined;
  let bestQ = 0;
  for (let i = 0; i < offered.length; i++) {
    const w = q[i]! >= 0 ? q[i]! : star >= 0 ? star : 0;
    if (w > bestQ) {
      best = offered[i];
      bestQ = w;
    }
  }
  return best;
}

function mediaType(value: string | string[] | undefined): string | undefined {
  if (typeof value !== 'string') return undefined;
  const semi = value.indexOf(';');
  return (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export class CompressionPolicy {
  readonly data: CompressionData;
  readonly #exact: Set<string>;
  /** `text/` for `text/*`. */
  readonly #prefixes: string[];
  /** [`application/`, `+json`] for `application/*+json`. */
  readonly #suffixes: [string, string][];

  constructor(data: CompressionData) {
    this.data = data;
    this.#exact = new Set(data.contentTypes.filter((t) => !t.includes('*')));
    this.#prefixes = data.contentTypes.filter((t) => t.endsWith('/*')).map((t) => t.slice(0, -1));
    this.#suffixes = data.contentTypes
      .filter((t) => t.includes('/*+'))
      .map((t) => {
        const slash = t.indexOf('/');
        return [t.slice(0, slash + 1), t.slice(slash + 2)];
      });
  }

  compressible(type: string): boolean {
    if (this.#exact.has(type)) return true;
    // An event stream is compressed only when listed by name (flushed per chunk then).
    if (type === 'text/event-stream') return false;
    for (const p of this.#prefixes) if (type.startsWith(p)) return true;
    for (const [p, s] of this.#suffixes) if (type.startsWith(p) && type.endsWith(s)) return true;
    return false;
  }

  /**
   * Whether this response is compressed: the encoding (headers rewritten), or undefined (headers unchanged but
   * for `Vary: Accept-Encoding` when only the client's preferences stood in the way).
   */
  begin(req: IncomingMessage, status: number, out: Record<string, string | string[]>): Encoding | undefined {
    if (req.method === 'HEAD' || status < 200 || status === 204 || status === 206 || status === 304)
      return undefined;
    if (out['content-encoding'] !== undefined || out['content-range'] !== undefined) return undefined;
    const type = mediaType(out['content-type']);
    if (type === undefined || !this.compressible(type)) return undefined;
    const cc = out['cache-control'];
    if (cc !== undefined && /(^|[\s,])no-transform([\s,]|$)/i.test(Array.isArray(cc) ? cc.join(',') : cc))
      return undefined;
    const length = single(out['content-length']);
    if (length !== undefined && Number(length) < this.data.minSize) return undefined;
    appendVary(out, 'Accept-Encoding');
    const enc = negotiate(req.headers['accept-encoding'], this.data.algorithms);
    if (enc === undefined) return undefined;
    out['content-encoding'] = enc;
    delete out['content-length'];
    delete out['accept-ranges'];
    const etag = single(out.etag);
    if (etag?.startsWith('"')) out.etag = `W/${etag}`;
    compressionCounters[enc]++;
    return enc;
  }

  /**
   * A streaming compressor for `enc` at this filter's level. `sizeHint`: the body's length when known. `flush`:
   * every write is flushed (an event stream: each event reaches the client at once).
   */
  create(enc: Encoding, sizeHint: number | undefined, flush: boolean): Transform {
    const d = this.data;
    if (enc === 'gzip')
      return createGzip({ level: d.gzipLevel, ...(flush ? { flush: constants.Z_SYNC_FLUSH } : {}) });
    if (enc === 'br')
      return createBrotliCompress({
        ...(flush ? { flush: constants.BROTLI_OPERATION_FLUSH } : {}),
        params: {
          [constants.BROTLI_PARAM_QUALITY]: d.brotliQuality,
          // A 512 KiB window (the default is 4 MiB): bounded memory per stream.
          [constants.BROTLI_PARAM_LGWIN]: 19,
          ...(sizeHint !== undefined && sizeHint > 0 ? { [constants.BROTLI_PARAM_SIZE_HINT]: sizeHint } : {}),
        },
      });
    // A known length sizes zstd's tables to the body (a 4 KiB answer costs ~10× less CPU than with the level's
    // default tables, which are allocated and cleared for every stream); an unknown one gets a 512 KiB window.
    return createZstdCompress({
      ...(flush ? { flush: constants.ZSTD_e_flush } : {}),
      ...(sizeHint !== undefined && sizeHint > 0 ? { pledgedSrcSize: sizeHint } : {}),
      params: {
        [constants.ZSTD_c_compressionLevel]: d.zstdLevel,
        ...(sizeHint !== undefined && sizeHint > 0 ? {} : { [constants.ZSTD_c_windowLog]: 19 }),
      },
    });
  }
}

/** The exchange a compressed body reports to. */
export interface CompressionOwner {
  /** The compressor has room again (resume the upstream). */
  drained(): void;
  /** The compressor failed: the response cannot be completed. */
  compressionFailed(): void;
}

/** A response body on its way through a compressor to the client (backpressure both ways, via pipe). */
export class CompressedBody {
  readonly #z: Transform;

  constructor(z: Transform, res: ServerResponse, owner: CompressionOwner) {
    this.#z = z;
    z.on('drain', () => owner.drained());
    z.on('error', () => owner.compressionFailed());
    z.pipe(res);
  }

  write(chunk: Buffer): boolean {
    return this.#z.write(chunk);
  }

  end(): void {
    this.#z.end();
  }

  /** The response is over (or the client left): the compressor's memory goes now, not at the next GC. */
  close(): void {
    if (!this.#z.destroyed) this.#z.destroy();
  }
}

/**
 * The compressed body for this response, when it is compressed (`out` rewritten accordingly), else undefined.
 * Called before the response headers are written.
 */
export function compressedBody(
  policy: CompressionPolicy,
  owner: CompressionOwner,
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  out: Record<string, string | string[]>,
): CompressedBody | undefined {
  const length = single(out['content-length']);
  const enc = policy.begin(req, status, out);
  if (enc === undefined) return undefined;
  const flush = mediaType(out['content-type']) === 'text/event-stream';
  const size = length !== undefined ? Number(length) : undefined;
  return new CompressedBody(policy.create(enc, Number.isFinite(size) ? size : undefined, flush), res, owner);
}

/**
 * HMAC-SHA256 request signatures.
 *
 * The client sends
 *   <header>:          keyId="<id>", signature="<base64 of HMAC-SHA256(key, string to sign)>"
 *   <date header>:     the request time (an HTTP date, or RFC 3339)
 *   Content-Digest:    sha-256=:<base64 of SHA-256(body)>:   (RFC 9530; or the older `Digest: SHA-256=<base64>`)
 *   <nonce header>:    optional, any value; signed when present
 * and the string to sign is, joined by "\n":
 *   EG-HMAC-SHA256, METHOD, path (as sent, which must be the normalized path the gateway matches and forwards),
 *   query (as sent, without "?", may be empty), the date header value, the digest header value, the nonce (empty
 *   when absent).
 *
 * One spelling only: the signature and the digest are the canonical base64 of their 32 bytes (RFC 4648 §4:
 * standard alphabet, padded, no whitespace, zero trailing bits); anything a lenient decoder would also accept —
 * no padding, the URL-safe alphabet, spaces, skipped junk, other trailing bits — is a 401. A path that
 * normalization changes (`/a/../b`, `/%61`, `//x`) is a 401 too: the signature covers exactly the path that is
 * matched and forwarded. The replay cache is keyed on the decoded signature bytes alone (not the text, the key
 * id or the key set), so no re-spelling and no second key id with the same secret makes a captured request new.
 *
 * Verification order: the header, key, date window and HMAC are checked before a byte of the body is read; then
 * the body is read — hashed as it arrives, held in memory up to `maxBodyBytes` (more: 413) — and its digest
 * compared; last, the signature is recorded pod-wide for the clock-skew window (a second use is a replay). Only
 * then is anything sent upstream, with the verified bytes.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { PolicyCoordinator } from '../../cluster/policy-state.ts';
import type { SignatureData } from '../../table/policy-types.ts';
import type { KeyStore } from './key-store.ts';
import { type Denial, deny } from './verdict.ts';

export const SIGNATURE_SCHEME = 'EG-HMAC-SHA256';

export interface SignedParts {
  method: string;
  path: string;
  query: string;
  date: string;
  digest: string;
  nonce: string;
}

export function stringToSign(p: SignedParts): string {
  return [SIGNATURE_SCHEME, p.method, p.path, p.query, p.date, p.digest, p.nonce].join('\n');
}

/** `keyId="k1", signature="…"` (quotes optional) → fields; undefined when malformed. */
export function parseSignatureHeader(value: string): { keyId: string; signature: string } | undefined {
  const fields = new Map<string, string>();
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) return undefined;
    const name = part.slice(0, eq).trim().toLowerCase();
    if (fields.has(name)) return undefined;
    let v = part.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    fields.set(name, v);
  }
  const keyId = fields.get('keyid');
  const signature = fields.get('signature');
  if (!keyId || !signature) return undefined;
  return { keyId, signature };
}

/** Bytes of an HMAC-SHA256 or SHA-256 value. */
const SHA256_BYTES = 32;

/**
 * The bytes of `text` when it is the canonical base64 (RFC 4648 §4, padded) of exactly `length` bytes; undefined
 * for every other spelling, including ones Node's lenient decoder would accept (no padding, `-`/`_`, whitespace,
 * skipped junk, non-zero trailing bits). Re-encoding the decoded bytes must give the text back.
 */
export function decodeCanonicalBase64(text: string, length: number): Buffer | undefined {
  if (text.length !== Math.ceil(length / 3) * 4) return undefined;
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length !== length || bytes.toString('base64') !== text) return undefined;
  return bytes;
}

/** The SHA-256 digest (raw bytes) a Content-Digest or Digest header announces (canonical base64 only). */
export function announcedSha256(
  contentDigest: string | undefined,
  digest: string | undefined,
): Buffer | undefined {
  if (contentDigest !== undefined) {
    for (const item of contentDigest.split(',')) {
      const m = /^\s*sha-256\s*=\s*:([^:]*):\s*$/i.exec(item);
      if (m) return decodeCanonicalBase64(m[1]!, SHA256_BYTES);
    }
    return undefined;
  }
  if (digest !== undefined) {
    for (const item of digest.split(',')) {
      const m = /^\s*sha-256\s*=\s*(\S*)\s*$/i.exec(item);
      if (m) return decodeCanonicalBase64(m[1]!, SHA256_BYTES);
    }
  }
  return undefined;
}

/** `sha-256=:…:` for a body: what clients put in Content-Digest (tests, docs). */
export function contentDigestOf(body: Buffer | string): string {
  return `sha-256=:${createHash('sha256').update(body).digest('base64')}:`;
}

/** Signs a request the way the gateway verifies it (clients, tests, docs). */
export function signRequest(key: Buffer | string, parts: SignedParts): string {
  return createHmac('sha256', key).update(stringToSign(parts)).digest('base64');
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? (v.length === 1 ? v[0] : undefined) : v;
}

export type SignatureResult = { ok: true; body: Buffer } | { ok: false; denial: Denial };

export interface SignatureTarget {
  method: string;
  /** The normalized path: matched, forwarded and signed. */
  path: string;
  /** The path as received; it must equal `path`. */
  rawPath: string;
  query: string;
}

export class SignatureVerifier {
  readonly data: SignatureData;
  readonly #keys: KeyStore;
  readonly #coordinator: PolicyCoordinator;
  readonly #onFailure: (reason: string) => void;
  /** Local replay cache used only when the primary does not answer. */
  readonly #localSeen = new Map<string, number>();

  constructor(
    data: SignatureData,
    keys: KeyStore,
    coordinator: PolicyCoordinator,
    onFailure: (reason: string) => void,
  ) {
    this.data = data;
    this.#keys = keys;
    this.#coordinator = coordinator;
    this.#onFailure = onFailure;
    keys.warm(data.keySet);
  }

  #fail(requestId: string, reason: string, message: string, closeConnection = true): SignatureResult {
    this.#onFailure(reason);
    return {
      ok: false,
      denial: deny('EDGEGATE_SIGNATURE_INVALID', requestId, {
        reason,
        message,
        headers: { 'www-authenticate': SIGNATURE_SCHEME },
        closeConnection,
      }),
    };
  }

  async verify(req: IncomingMessage, target: SignatureTarget, requestId: string): Promise<SignatureResult> {
    const d = this.data;
    const h = req.headers;
    const sigHeader = single(h[d.header]);
    if (sigHeader === undefined) return this.#fail(requestId, 'missing', `missing ${d.header} header`);
    const parsed = parseSignatureHeader(sigHeader);
    if (!parsed) return this.#fail(requestId, 'malformed', `malformed ${d.header} header`);
    const given = decodeCanonicalBase64(parsed.signature, SHA256_BYTES);
    if (!given)
      return this.#fail(
        requestId,
        'malformed',
        'signature must be the canonical base64 of 32 bytes (standard alphabet, padded, nothing else)',
      );
    if (target.rawPath !== target.path)
      return this.#fail(
        requestId,
        'path-not-normalized',
        'a signed request must send its path in normalized form (no "." or ".." segments, no "//", no escaped unreserved characters, upper-case escapes)',
      );
    const key = await this.#keys.hmacKey(d.keySet, parsed.keyId);
    if (!key) return this.#fail(requestId, 'unknown-key', `unknown key id ${JSON.stringify(parsed.keyId)}`);

    const date = single(h[d.dateHeader]);
    const when = date === undefined ? Number.NaN : Date.parse(date);
    if (!Number.isFinite(when))
      return this.#fail(requestId, 'date-missing', `missing or invalid ${d.dateHeader}`);
    const now = Date.now();
    if (Math.abs(now - when) > d.clockSkewMs)
      return this.#fail(requestId, 'date-skew', `${d.dateHeader} is outside the allowed clock skew`);

    const contentDigest = single(h['content-digest']);
    const legacyDigest = single(h.digest);
    const announced = announcedSha256(contentDigest, legacyDigest);
    if (announced === undefined)
      return this.#fail(
        requestId,
        'digest-missing',
        'missing Content-Digest with a sha-256 value (canonical base64 of 32 bytes)',
      );

    const expected = createHmac('sha256', key)
      .update(
        stringToSign({
          method: target.method,
          path: target.path,
          query: target.query,
          date: date!,
          digest: (contentDigest ?? legacyDigest)!,
          nonce: single(h[d.nonceHeader]) ?? '',
        }),
      )
      .digest();
    if (!timingSafeEqual(given, expected))
      return this.#fail(requestId, 'bad-signature', 'signature does not match');

    const declared = h['content-length'];
    if (declared !== undefined && Number(declared) > d.maxBodyBytes) {
      this.#onFailure('body-too-large');
      return {
        ok: false,
        denial: deny('EDGEGATE_BODY_TOO_LARGE', requestId, {
          message: `a signed request body may be at most ${d.maxBodyBytes} bytes`,
          closeConnection: true,
        }),
      };
    }
    const body = await readHashed(req, d.maxBodyBytes);
    if (body === 'too-large') {
      this.#onFailure('body-too-large');
      return {
        ok: false,
        denial: deny('EDGEGATE_BODY_TOO_LARGE', requestId, {
          message: `a signed request body may be at most ${d.maxBodyBytes} bytes`,
          closeConnection: true,
        }),
      };
    }
    if (body === 'aborted') return this.#fail(requestId, 'aborted', 'the request body was cut short');
    if (!timingSafeEqual(body.digest, announced))
      return this.#fail(requestId, 'digest-mismatch', 'the body does not match its Content-Digest', false);

    // Replay: the same signature bytes are accepted once while their date is inside the window, whatever key id
    // or key set they came with (two key ids sharing a secret must not make a captured request new).
    const ttl = Math.max(1000, when + d.clockSkewMs - now + 1000);
    const seenKey = `sig:${given.toString('hex')}`;
    let fresh = await this.#coordinator.firstSeen(seenKey, ttl);
    if (fresh === undefined) fresh = this.#localFirstSeen(seenKey, ttl);
    if (!fresh) return this.#fail(requestId, 'replayed', 'this signed request was already used', false);
    return { ok: true, body: body.bytes };
  }

  #localFirstSeen(key: string, ttlMs: number): boolean {
    const now = Date.now();
    const until = this.#localSeen.get(key);
    if (until !== undefined && until > now) return false;
    if (this.#localSeen.size > 100_000)
      for (const [k, u] of this.#localSeen) if (u <= now) this.#localSeen.delete(k);
    this.#localSeen.set(key, now + ttlMs);
    return true;
  }
}

/** Reads the whole body, hashing as it arrives; stops at `max` bytes. */
function readHashed(
  req: IncomingMessage,
  max: number,
): Promise<{ bytes: Buffer; digest: Buffer } | 'too-large' | 'aborted'> {
  return new Promise((resolve) => {
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (r: { bytes: Buffer; digest: Buffer } | 'too-large' | 'aborted') => {
      if (done) return;
      done = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('aborted', onAborted);
      req.off('error', onAborted);
      resolve(r);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.pause();
        return finish('too-large');
      }
      hash.update(chunk);
      chunks.push(chunk);
    };
    const onEnd = () => finish({ bytes: Buffer.concat(chunks, size), digest: hash.digest() });
    const onAborted = () => finish('aborted');
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('aborted', onAborted);
    req.on('error', onAborted);
    if (req.readableEnded) onEnd();
  });
}

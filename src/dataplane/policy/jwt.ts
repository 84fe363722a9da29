/**
 * Bearer JWT verification with jose. Keys come from a JWKS URL (jwks-cache.ts: fetched by this worker with a size
 * cap and a timeout, cached for `jwksCacheMs`, refetched on an unknown `kid` at most every 30 s, failures cached
 * with backoff) or from a key set under --secrets-dir (one file per `kid`, classified once by key-material.ts: a
 * public key — PEM, DER, certificate, JWK — or a shared secret, never both).
 *
 * A key's type decides which algorithms it verifies: HS256/384/512 only with a shared secret, RS and PS algorithms only
 * with an RSA key, ES algorithms only with an EC key, EdDSA only with an Ed25519/Ed448 key. So with `algorithms: [RS256, HS256]` an
 * HS256 token MACed with the bytes of a public key, certificate or PKCS#1 file of the set is refused (`key-type`)
 * — the key-confusion attack — and a file that mixes kinds is refused when the set is read.
 *
 * Checked: the signature with an algorithm from the rule's explicit allow-list (`none` cannot be listed, and jose
 * never accepts it in jwtVerify), `exp` (required) and `nbf` with the clock skew, `iss`, `aud`. Selected claims
 * are copied into request headers; the client's own copies of those headers are always removed first.
 */
import type { IncomingMessage } from 'node:http';
import { type JWTPayload, type JWTVerifyGetKey, jwtVerify, type KeyObject } from 'jose';
import type { Dispatcher } from 'undici';
import type { JwtData } from '../../table/policy-types.ts';
import { JwksCache, type JwksFetchResult } from './jwks-cache.ts';
import { keyRefusesAlgorithm } from './key-material.ts';
import type { KeyStore } from './key-store.ts';
import { type Denial, deny } from './verdict.ts';

export type JwtResult = { ok: true; add: [string, string][] } | { ok: false; denial: Denial };

/** A key the token's algorithm may not use: `key-type` in the 401. */
class KeyTypeError extends Error {
  readonly code = 'EDGEGATE_JWT_KEY_TYPE';
}

/** jose error → a short reason code for the 401 body and the failure metric. */
export function jwtFailureReason(err: unknown): string {
  const e = err as { code?: string; claim?: string };
  switch (e.code) {
    case 'ERR_JWT_EXPIRED':
      return 'expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (e.claim === 'nbf') return 'not-yet-valid';
      if (e.claim === 'iss') return 'issuer';
      if (e.claim === 'aud') return 'audience';
      if (e.claim === 'exp') return 'expired';
      return 'claims';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'algorithm';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'bad-signature';
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return 'unknown-key';
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_INVALID':
    case 'EDGEGATE_JWKS_UNAVAILABLE':
      return 'jwks-unavailable';
    case 'EDGEGATE_JWT_KEY_TYPE':
      return 'key-type';
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return 'malformed';
    default:
      return (err as Error).message === 'unknown key' ? 'unknown-key' : 'invalid';
  }
}

/** A claim value as a header value: strings as they are, anything else as JSON; CR/LF/NUL never pass. */
function headerValue(v: unknown): string | undefined {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  if (s === undefined || /[\r\n\0]/.test(s) || s.length > 8192) return undefined;
  return s;
}

export class JwtVerifier {
  readonly data: JwtData;
  readonly #resolve: JWTVerifyGetKey;
  readonly #onFailure: (reason: string) => void;

  constructor(
    data: JwtData,
    keys: KeyStore,
    onFailure: (reason: string) => void,
    jwks?: { agent: Dispatcher; onFetch?: (result: JwksFetchResult) => void },
  ) {
    this.data = data;
    this.#onFailure = onFailure;
    if (data.jwksUrl) {
      if (!jwks) throw new Error('a JWKS URL needs an HTTP agent');
      const cache = new JwksCache({
        url: data.jwksUrl,
        cacheMs: data.jwksCacheMs,
        // A token with an unknown kid refetches at most this often (a rotated key is picked up that fast).
        cooldownMs: Math.min(30_000, data.jwksCacheMs),
        agent: jwks.agent,
        onFetch: jwks.onFetch,
      });
      this.#resolve = cache.resolve;
    } else {
      const set = data.keySet!;
      keys.warm(set);
      this.#resolve = async (h) => {
        const all = await keys.materials(set);
        let kid = h.kid;
        if (kid === undefined && all.size === 1) kid = all.keys().next().value;
        const material = kid === undefined ? undefined : all.get(kid);
        if (!material) throw new Error('unknown key');
        const why = keyRefusesAlgorithm(material, h.alg!);
        if (why !== undefined) throw new KeyTypeError(`key ${kid}: ${why}`);
        return material.kind === 'secret' ? material.secret : (material.key as unknown as KeyObject);
      };
    }
  }

  #fail(requestId: string, reason: string, message: string): JwtResult {
    this.#onFailure(reason);
    return {
      ok: false,
      denial: deny('EDGEGATE_JWT_INVALID', requestId, {
        reason,
        message,
        headers: { 'www-authenticate': `Bearer error="invalid_token", error_description="${reason}"` },
      }),
    };
  }

  async verify(req: IncomingMessage, requestId: string): Promise<JwtResult> {
    const d = this.data;
    const raw = req.headers[d.header];
    const value = Array.isArray(raw) ? undefined : raw;
    if (value === undefined) return this.#fail(requestId, 'missing', `missing ${d.header} header`);
    const m = /^Bearer[ \t]+([A-Za-z0-9_\-.=+/]+)\s*$/i.exec(value);
    if (!m) return this.#fail(requestId, 'malformed', `expected "${d.header}: Bearer <token>"`);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(m[1]!, this.#resolve, {
        algorithms: d.algorithms,
        issuer: d.issuer,
        audience: d.audiences.length > 0 ? d.audiences : undefined,
        clockTolerance: Math.round(d.clockSkewMs / 1000),
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      const reason = jwtFailureReason(err);
      return this.#fail(requestId, reason, `token rejected: ${reason}`);
    }
    const add: [string, string][] = [];
    for (const c of d.forwardClaims) {
      const v = headerValue(payload[c.claim]);
      if (v !== undefined) add.push([c.header, v]);
    }
    return { ok: true, add };
  }
}

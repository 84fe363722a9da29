/**
 * Bearer JWT verification with jose. Keys come from a JWKS URL (fetched by this worker, cached for
 * `jwksCacheMs`, refetched on an unknown `kid` at most every 30 s) or from a key set under --secrets-dir (one file
 * per `kid`: a PEM public key, a JWK as JSON, or — for HS256/384/512 only — the raw shared secret).
 *
 * Checked: the signature with an algorithm from the rule's explicit allow-list (`none` cannot be listed, and jose
 * never accepts it in jwtVerify), `exp` (required) and `nbf` with the clock skew, `iss`, `aud`. Selected claims
 * are copied into request headers; the client's own copies of those headers are always removed first.
 */
import type { IncomingMessage } from 'node:http';
import {
  type CryptoKey,
  createRemoteJWKSet,
  importJWK,
  importSPKI,
  type JWSHeaderParameters,
  type JWTPayload,
  jwtVerify,
} from 'jose';
import type { JwtData } from '../../table/policy-types.ts';
import type { KeyStore } from './key-store.ts';
import { type Denial, deny } from './verdict.ts';

export type JwtResult = { ok: true; add: [string, string][] } | { ok: false; denial: Denial };

type KeyResolver = (header: JWSHeaderParameters) => Promise<CryptoKey | Uint8Array>;

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
      return 'jwks-unavailable';
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
  readonly #resolve: KeyResolver;
  readonly #onFailure: (reason: string) => void;

  constructor(data: JwtData, keys: KeyStore, onFailure: (reason: string) => void) {
    this.data = data;
    this.#onFailure = onFailure;
    if (data.jwksUrl) {
      const remote = createRemoteJWKSet(new URL(data.jwksUrl), {
        cacheMaxAge: data.jwksCacheMs,
        // A token with an unknown kid refetches at most this often (a rotated key is picked up that fast).
        cooldownDuration: Math.min(30_000, data.jwksCacheMs),
        timeoutDuration: 5_000,
      });
      this.#resolve = (h) => remote(h);
    } else {
      const set = data.keySet!;
      keys.warm(set);
      const imported = new Map<string, { source: Buffer; key: CryptoKey | Uint8Array }>();
      this.#resolve = async (h) => {
        const all = await keys.all(set);
        let kid = h.kid;
        if (kid === undefined && all.size === 1) kid = all.keys().next().value;
        const source = kid === undefined ? undefined : all.get(kid);
        if (!source || kid === undefined) throw new Error('unknown key');
        const alg = h.alg!;
        const cacheKey = `${kid}|${alg}`;
        const hit = imported.get(cacheKey);
        if (hit?.source.equals(source)) return hit.key;
        const text = source.toString('utf8').trim();
        let key: CryptoKey | Uint8Array;
        if (text.startsWith('-----BEGIN PUBLIC KEY-----')) key = await importSPKI(text, alg);
        else if (text.startsWith('{'))
          key = (await importJWK(JSON.parse(text), alg)) as CryptoKey | Uint8Array;
        else if (alg.startsWith('HS')) key = new Uint8Array(source);
        else throw new Error('unknown key');
        imported.set(cacheKey, { source, key });
        return key;
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

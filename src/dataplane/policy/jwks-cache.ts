/**
 * A JWKS endpoint's keys, fetched by this worker and held for `cacheMs`; replaces jose's createRemoteJWKSet to
 * bound what a JWKS endpoint can cost the gateway:
 *
 * - size: the response body is read up to `maxBytes` (default 256 KiB; a JWKS is a few KiB); a larger
 *   Content-Length is refused before reading, a longer body is cut off and refused;
 * - time: one fetch may take `timeoutMs` in all (headers and body);
 * - failures: a failed fetch is not retried per request. The failure is cached: the next attempt waits a backoff
 *   (lib/backoff: 0.5–1 s, doubling per consecutive failure, at most 60 s), and concurrent requests share one fetch;
 *   until the endpoint answers again, tokens are refused with `jwks-unavailable` (fail closed) — except that keys
 *   fetched before stay usable for one more cache period after they expire (stale-if-error), so a short outage of
 *   the endpoint does not log everyone out;
 * - rotation: a token naming a `kid` the cached set lacks refetches at most once per `cooldownMs`.
 *
 * Key selection within the set is jose's createLocalJWKSet (kid, alg and kty must fit the token).
 */
import {
  createLocalJWKSet,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWTHeaderParameters,
  type JWTVerifyGetKey,
} from 'jose';
import type { Dispatcher } from 'undici';
import { backoffDelay } from '../../lib/backoff.ts';

export const JWKS_MAX_BYTES = 256 * 1024;
export const JWKS_TIMEOUT_MS = 5_000;
/** Failed fetches: lib/backoff's pacing, 0.5–1 s after the first failure, doubling, at most 60 s. */
const BACKOFF = { baseMs: 1_000, maxMs: 60_000 };

export type JwksFetchResult = 'ok' | 'too-large' | 'timeout' | 'status' | 'invalid' | 'error';

export interface JwksCacheOptions {
  url: string;
  cacheMs: number;
  cooldownMs: number;
  agent: Dispatcher;
  timeoutMs?: number;
  maxBytes?: number;
  /** Each fetch's outcome (metrics). */
  onFetch?: (result: JwksFetchResult) => void;
  now?: () => number;
  random?: () => number;
}

/** Thrown when no usable key set is at hand: jwtFailureReason maps the code to `jwks-unavailable`. */
export class JwksUnavailableError extends Error {
  readonly code = 'EDGEGATE_JWKS_UNAVAILABLE';
}

class FetchFailure extends Error {
  readonly result: JwksFetchResult;
  constructor(result: JwksFetchResult, message: string) {
    super(message);
    this.result = result;
  }
}

export class JwksCache {
  readonly #url: URL;
  readonly #o: Required<Omit<JwksCacheOptions, 'onFetch'>> & Pick<JwksCacheOptions, 'onFetch'>;
  #keys: JWTVerifyGetKey | undefined;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #failures = 0;
  #retryAt = 0;
  #inFlight: Promise<void> | undefined;
  #lastError: string | undefined;

  constructor(o: JwksCacheOptions) {
    this.#url = new URL(o.url);
    this.#o = {
      timeoutMs: JWKS_TIMEOUT_MS,
      maxBytes: JWKS_MAX_BYTES,
      now: () => performance.now(),
      random: Math.random,
      ...o,
    };
  }

  /** Why the last fetch failed (undefined after a success). */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** When the next fetch may start after failures (0: no backoff). */
  get retryAt(): number {
    return this.#failures > 0 ? this.#retryAt : 0;
  }

  /** A jose key resolver over the cached set. */
  readonly resolve = async (header: JWTHeaderParameters, token: FlattenedJWSInput) => {
    const o = this.#o;
    if (o.now() - this.#fetchedAt >= o.cacheMs) await this.#refresh();
    const keys = this.#usable();
    if (keys === undefined)
      throw new JwksUnavailableError(`JWKS unavailable${this.#lastError ? `: ${this.#lastError}` : ''}`);
    try {
      return await keys(header, token);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== 'ERR_JWKS_NO_MATCHING_KEY' || o.now() - this.#fetchedAt < o.cooldownMs) throw err;
      await this.#refresh();
      const again = this.#usable();
      if (again === undefined || again === keys) throw err;
      return again(header, token);
    }
  };

  /** The cached set while fresh, or stale for up to one more cache period after it expired. */
  #usable(): JWTVerifyGetKey | undefined {
    return this.#o.now() - this.#fetchedAt < 2 * this.#o.cacheMs ? this.#keys : undefined;
  }

  /** One fetch at a time, none while backing off after a failure. */
  #refresh(): Promise<void> {
    if (this.#inFlight) return this.#inFlight;
    if (this.#failures > 0 && this.#o.now() < this.#retryAt) return Promise.resolve();
    this.#inFlight = this.#fetch().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #fetch(): Promise<void> {
    const o = this.#o;
    try {
      const set = await this.#download();
      this.#keys = createLocalJWKSet(set);
      this.#fetchedAt = o.now();
      this.#failures = 0;
      this.#lastError = undefined;
      o.onFetch?.('ok');
    } catch (err) {
      const result = err instanceof FetchFailure ? err.result : 'error';
      this.#failures++;
      this.#retryAt = o.now() + backoffDelay(this.#failures, BACKOFF, o.random);
      this.#lastError = (err as Error).message;
      o.onFetch?.(result);
    }
  }

  async #download(): Promise<JSONWebKeySet> {
    const o = this.#o;
    const signal = AbortSignal.timeout(o.timeoutMs);
    let res: Dispatcher.ResponseData;
    try {
      res = await o.agent.request({
        origin: this.#url.origin,
        path: this.#url.pathname + this.#url.search,
        method: 'GET',
        headers: { accept: 'application/json' },
        headersTimeout: o.timeoutMs,
        bodyTimeout: o.timeoutMs,
        signal,
      });
    } catch (err) {
      throw signal.aborted
        ? new FetchFailure('timeout', `no answer within ${o.timeoutMs} ms`)
        : new FetchFailure('error', `fetch failed (${(err as { code?: string }).code ?? 'error'})`);
    }
    try {
      if (res.statusCode !== 200) throw new FetchFailure('status', `status ${res.statusCode}`);
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > o.maxBytes)
        throw new FetchFailure('too-large', `Content-Length ${declared} above ${o.maxBytes} bytes`);
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > o.maxBytes) throw new FetchFailure('too-large', `body above ${o.maxBytes} bytes`);
        chunks.push(chunk as Buffer);
      }
      let doc: unknown;
      try {
        doc = JSON.parse(Buffer.concat(chunks, size).toString('utf8'));
      } catch {
        throw new FetchFailure('invalid', 'not JSON');
      }
      const keys = (doc as { keys?: unknown } | null)?.keys;
      if (
        !Array.isArray(keys) ||
        !keys.every((k) => typeof k === 'object' && k !== null && !Array.isArray(k))
      )
        throw new FetchFailure('invalid', 'not a JWK Set ({"keys": [...]})');
      return doc as JSONWebKeySet;
    } catch (err) {
      if (err instanceof FetchFailure) throw err;
      throw signal.aborted
        ? new FetchFailure('timeout', `no complete answer within ${o.timeoutMs} ms`)
        : new FetchFailure(
            'error',
            `reading the answer failed (${(err as { code?: string }).code ?? 'error'})`,
          );
    } finally {
      // An unread body is discarded (undici reports that as an abort error: nobody is waiting for it).
      if (!res.body.destroyed) res.body.on('error', () => {}).destroy();
    }
  }
}

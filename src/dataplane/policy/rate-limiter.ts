/**
 * A rule's rate limit in a worker. The pod-wide token bucket is in the primary (PolicyState); this worker leases
 * tokens from it in small batches (about 20 ms worth of the rate) and spends them locally, so most requests cost
 * no IPC and the pod as a whole never admits more than the bucket holds. A lease that finds the bucket empty
 * returns the wait until the next token: the worker refuses locally until then instead of asking again.
 * Leased tokens not spent within a second are dropped (a worker must not sit on budget another one needs).
 *
 * When the primary does not answer (IPC timeout), the worker decides alone with a local bucket of
 * rate ÷ workers: less accurate, never unlimited.
 *
 * `scope: Global`: the same leases, but the primary takes them from the shared store (Redis, one GCRA script per
 * lease), so the limit holds for every gateway. When the store cannot decide (down, slower than its timeout, not
 * configured) the rule's failureMode does for the next STORE_RETRY_MS without asking again: Open admits,
 * Closed refuses (`storeFailed`), and the next request after that asks the store again.
 */

import type { PolicyCoordinator } from '../../cluster/policy-state.ts';
import { TokenBucket } from '../../lib/token-bucket.ts';
import type { RateLimitData } from '../../table/policy-types.ts';

const LEASE_TTL_MS = 1_000;
const BATCH_MS = 20;
/** After the store could not decide, the failure mode decides this long before the store is asked again. */
const STORE_RETRY_MS = 250;
/** Per-key local states kept at most per rule before idle ones are dropped. */
const MAX_LOCAL_KEYS = 50_000;

export interface RateDecision {
  allowed: boolean;
  /** Refused: seconds until a retry may succeed (≥ 1), for Retry-After and the RateLimit header. */
  retryAfterS: number;
  /** Global scope: the store could not decide; the failure mode did (Open: allowed, Closed: refused). */
  storeFailed?: true;
}

interface LocalState {
  tokens: number;
  expires: number;
  denyUntil: number;
  pending: Promise<void> | undefined;
  waiting: number;
  fallback: TokenBucket | undefined;
}

const ALLOW: RateDecision = { allowed: true, retryAfterS: 0 };
const FAILED_OPEN: RateDecision = { allowed: true, retryAfterS: 0, storeFailed: true };
const FAILED_CLOSED: RateDecision = { allowed: false, retryAfterS: 1, storeFailed: true };

export class RateLimiter {
  readonly data: RateLimitData;
  readonly #id: string;
  /** The bucket's name (pod-wide state or Redis): the rule, key kind and limit; a changed limit is a new bucket. */
  readonly #bucket: string;
  readonly #coordinator: PolicyCoordinator;
  readonly #workers: number;
  readonly #perMs: number;
  readonly #batch: number;
  readonly #states = new Map<string, LocalState>();
  readonly #global: boolean;
  /** Global scope: until then (performance.now() ms) the store is taken as unavailable. */
  #storeDownUntil = 0;

  constructor(ruleId: string, data: RateLimitData, coordinator: PolicyCoordinator, workers: number) {
    this.data = data;
    this.#perMs = data.requests / data.periodMs;
    this.#global = data.scope === 'Global';
    this.#bucket = `${ruleId}|${data.key}:${data.header ?? ''}|${data.requests}/${data.periodMs}/${data.burst}`;
    // The failure mode is part of the object's identity (a changed one needs a new limiter), not of the bucket's.
    this.#id = this.#global ? `${this.#bucket}|global:${data.failureMode}` : this.#bucket;
    this.#coordinator = coordinator;
    this.#workers = Math.max(1, workers);
    this.#batch = Math.max(1, Math.min(data.burst, Math.floor(this.#perMs * BATCH_MS)));
  }

  /** Identity of the limit, so a new table with the same limit keeps this object (and its leases). */
  get id(): string {
    return this.#id;
  }

  async take(key: string): Promise<RateDecision> {
    let st = this.#states.get(key);
    if (!st) {
      if (this.#states.size >= MAX_LOCAL_KEYS) this.#prune();
      st = { tokens: 0, expires: 0, denyUntil: 0, pending: undefined, waiting: 0, fallback: undefined };
      this.#states.set(key, st);
    }
    for (let round = 0; round < 3; round++) {
      const now = performance.now();
      if (st.tokens > 0 && now < st.expires) {
        st.tokens--;
        return ALLOW;
      }
      if (now < st.denyUntil) return this.#deny(st.denyUntil - now);
      if (now < this.#storeDownUntil) return this.data.failureMode === 'Closed' ? FAILED_CLOSED : FAILED_OPEN;
      st.pending ??= this.#fetch(st, key);
      st.waiting++;
      await st.pending;
      st.waiting--;
    }
    return this.#deny(1 / this.#perMs);
  }

  #deny(waitMs: number): RateDecision {
    return { allowed: false, retryAfterS: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  async #fetch(st: LocalState, key: string): Promise<void> {
    try {
      const want = Math.min(this.data.burst, this.#batch + st.waiting);
      const lease = await this.#coordinator.lease({
        key: `${this.#bucket}|${key}`,
        perMs: this.#perMs,
        burst: this.data.burst,
        want,
        ...(this.#global ? { global: true } : {}),
      });
      const now = performance.now();
      if (lease?.unavailable) {
        this.#storeDownUntil = now + STORE_RETRY_MS;
        return;
      }
      if (lease === undefined) {
        // The primary did not answer: decide locally with this worker's share of the rate.
        st.fallback ??= new TokenBucket(
          this.#perMs / this.#workers,
          Math.max(1, Math.floor(this.data.burst / this.#workers)),
          now,
        );
        const got = st.fallback.take(1, now);
        if (got > 0) {
          st.tokens = 1;
          st.expires = now + LEASE_TTL_MS;
        } else st.denyUntil = now + st.fallback.msUntilToken(now);
        return;
      }
      if (lease.granted > 0) {
        st.tokens = lease.granted;
        st.expires = now + LEASE_TTL_MS;
      } else {
        st.denyUntil = now + Math.max(1, lease.waitMs);
      }
    } finally {
      st.pending = undefined;
    }
  }

  #prune(): void {
    const now = performance.now();
    for (const [k, st] of this.#states)
      if (st.pending === undefined && (st.tokens === 0 || now >= st.expires) && now >= st.denyUntil)
        this.#states.delete(k);
  }
}

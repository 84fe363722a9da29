/**
 * Pod-wide policy state: the rate-limit buckets and the replay cache of signed requests. It lives in ONE place —
 * the primary when there are workers (they reach it over IPC, see ipc-coordinator.ts), the process itself with
 * `--workers 0` — so a limit holds for the pod and a signed request is accepted once per pod, whichever worker
 * the kernel hands the connection to.
 */
import { TokenBucket } from '../lib/token-bucket.ts';

export interface LeaseRequest {
  /** Bucket identity: rule, key kind and key value, plus the limit itself (a changed limit is a new bucket). */
  key: string;
  perMs: number;
  burst: number;
  /** Tokens the worker would like to hold (a small batch). */
  want: number;
  /** `rateLimit.scope: Global`: the bucket is in the shared store (Redis), not in this pod. */
  global?: boolean;
}

export interface Lease {
  granted: number;
  /** When nothing was granted: ms until the bucket has a token again. */
  waitMs: number;
  /** Whole tokens left in the pod-wide bucket after this grant. */
  remaining: number;
  /** A global lease the store could not decide (down, slow, or none configured): the rule's failureMode decides. */
  unavailable?: true;
}

/** The shared store of Global limits (rate-limit-store.ts: Redis); undefined answer: it could not decide. */
export interface GlobalLeaseStore {
  lease(key: string, perMs: number, burst: number, want: number): Promise<Lease | undefined>;
}

const UNAVAILABLE: Lease = { granted: 0, waitMs: 0, remaining: 0, unavailable: true };

/** What a worker's policies need from the pod-wide state. */
export interface PolicyCoordinator {
  lease(r: LeaseRequest): Promise<Lease | undefined>;
  /** Records `key` for `ttlMs`; false when it was already recorded and not expired (a replay). */
  firstSeen(key: string, ttlMs: number): Promise<boolean | undefined>;
}

export interface PolicyStateLimits {
  /** Buckets kept at most; full (idle) buckets are dropped first, at the sweep. */
  maxBuckets: number;
  /** Replay-cache entries kept at most; the oldest are dropped beyond it (documented gap). */
  maxReplayEntries: number;
}

const DEFAULT_LIMITS: PolicyStateLimits = { maxBuckets: 200_000, maxReplayEntries: 1_000_000 };

export class PolicyState {
  readonly #buckets = new Map<string, TokenBucket>();
  /** key → expiry (ms on the state's clock); insertion order ≈ expiry order. */
  readonly #seen = new Map<string, number>();
  readonly #now: () => number;
  readonly #limits: PolicyStateLimits;
  #sweepTimer: NodeJS.Timeout | undefined;
  leases = 0;
  replayChecks = 0;
  replaysRefused = 0;

  /** The shared store of Global limits (`--redis-url`); undefined: Global leases are unavailable. */
  store: GlobalLeaseStore | undefined;
  globalLeases = 0;

  constructor(
    opts: { now?: () => number; limits?: Partial<PolicyStateLimits>; store?: GlobalLeaseStore } = {},
  ) {
    this.#now = opts.now ?? (() => performance.now());
    this.#limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.store = opts.store;
  }

  /** A lease from the shared store (scope Global); never rejects, answers within the store's timeout. */
  async leaseGlobal(r: LeaseRequest): Promise<Lease> {
    this.globalLeases++;
    if (!this.store) return UNAVAILABLE;
    return (await this.store.lease(r.key, r.perMs, r.burst, r.want)) ?? UNAVAILABLE;
  }

  /** Periodic clean-up of idle buckets and expired replay entries. */
  startSweeping(intervalMs = 5_000): void {
    this.#sweepTimer ??= setInterval(() => this.sweep(), intervalMs);
    this.#sweepTimer.unref();
  }

  stop(): void {
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
  }

  lease(r: LeaseRequest): Lease {
    this.leases++;
    const now = this.#now();
    let b = this.#buckets.get(r.key);
    if (!b) {
      if (this.#buckets.size >= this.#limits.maxBuckets) this.sweep();
      b = new TokenBucket(r.perMs, r.burst, now);
      this.#buckets.set(r.key, b);
    }
    const granted = b.take(Math.max(1, Math.floor(r.want)), now);
    return { granted, waitMs: granted > 0 ? 0 : b.msUntilToken(now), remaining: b.available(now) };
  }

  firstSeen(key: string, ttlMs: number): boolean {
    this.replayChecks++;
    const now = this.#now();
    const until = this.#seen.get(key);
    if (until !== undefined && until > now) {
      this.replaysRefused++;
      return false;
    }
    if (until !== undefined) this.#seen.delete(key);
    if (this.#seen.size >= this.#limits.maxReplayEntries) {
      const oldest = this.#seen.keys().next();
      if (!oldest.done) this.#seen.delete(oldest.value);
    }
    this.#seen.set(key, now + ttlMs);
    return true;
  }

  sweep(): void {
    const now = this.#now();
    for (const [k, b] of this.#buckets) if (b.full(now)) this.#buckets.delete(k);
    for (const [k, until] of this.#seen) if (until <= now) this.#seen.delete(k);
  }

  stats(): {
    buckets: number;
    replayEntries: number;
    leases: number;
    globalLeases: number;
    replayChecks: number;
    replaysRefused: number;
  } {
    return {
      buckets: this.#buckets.size,
      replayEntries: this.#seen.size,
      leases: this.leases,
      globalLeases: this.globalLeases,
      replayChecks: this.replayChecks,
      replaysRefused: this.replaysRefused,
    };
  }
}

/** The coordinator of a single-process gateway: the state is right here. */
export class LocalCoordinator implements PolicyCoordinator {
  readonly state: PolicyState;
  constructor(state = new PolicyState()) {
    this.state = state;
    state.startSweeping();
  }
  async lease(r: LeaseRequest): Promise<Lease> {
    return r.global ? this.state.leaseGlobal(r) : this.state.lease(r);
  }
  async firstSeen(key: string, ttlMs: number): Promise<boolean> {
    return this.state.firstSeen(key, ttlMs);
  }
}

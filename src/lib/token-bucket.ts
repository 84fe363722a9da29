/**
 * The one token bucket (rate limits, Consul watch pacing, status writes): `burst` tokens at most, refilled at
 * `perMs` tokens per millisecond, on a clock the caller passes in (ms), so it is exact in tests and costs no clock
 * read of its own. The pod-wide rate-limit buckets live in the primary; workers lease tokens from them in batches.
 */
export class TokenBucket {
  readonly perMs: number;
  readonly burst: number;
  #tokens: number;
  #updated: number;

  constructor(perMs: number, burst: number, now: number) {
    this.perMs = perMs;
    this.burst = Math.max(1, burst);
    this.#tokens = this.burst;
    this.#updated = now;
  }

  /** `perSecond` tokens a second. */
  static perSecond(perSecond: number, burst: number, now: number): TokenBucket {
    return new TokenBucket(perSecond / 1000, burst, now);
  }

  #refill(now: number): void {
    if (now > this.#updated) {
      this.#tokens = Math.min(this.burst, this.#tokens + (now - this.#updated) * this.perMs);
      this.#updated = now;
    }
  }

  /** Takes up to `want` whole tokens; returns how many were taken. */
  take(want: number, now: number): number {
    this.#refill(now);
    const n = Math.min(want, Math.floor(this.#tokens));
    this.#tokens -= n;
    return n;
  }

  /** Takes one token if there is one and returns 0; otherwise takes none and returns the ms until there is one. */
  tryTake(now: number): number {
    return this.take(1, now) === 1 ? 0 : this.msUntilToken(now);
  }

  /** Milliseconds until one whole token is there (0: now). */
  msUntilToken(now: number): number {
    this.#refill(now);
    return this.#tokens >= 1 ? 0 : Math.ceil((1 - this.#tokens) / this.perMs);
  }

  /** Whole tokens left now. */
  available(now: number): number {
    this.#refill(now);
    return Math.floor(this.#tokens);
  }

  /** Full again (an idle bucket can be forgotten: a fresh one is the same). */
  full(now: number): boolean {
    this.#refill(now);
    return this.#tokens >= this.burst;
  }
}

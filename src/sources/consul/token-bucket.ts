/**
 * A token bucket per watch: `burst` requests at once, then `perSecond`. Consul's blocking-query guidance: a
 * watch on a key that changes constantly must degrade to polling instead of hammering the servers.
 */
export class TokenBucket {
  readonly #perSecond: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #updated: number;

  constructor(perSecond: number, burst: number, now: () => number = performance.now.bind(performance)) {
    this.#perSecond = perSecond;
    this.#burst = Math.max(1, burst);
    this.#now = now;
    this.#tokens = this.#burst;
    this.#updated = now();
  }

  /** Takes one token now if there is one; otherwise returns how many ms until there will be (and takes none). */
  tryTake(): number {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#updated) / 1000) * this.#perSecond);
    this.#updated = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.#tokens) / this.#perSecond) * 1000);
  }
}

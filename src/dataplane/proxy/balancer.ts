/**
 * Smooth weighted round robin (the nginx algorithm): over any window of sum(weights) picks, each item is chosen
 * exactly weight times, interleaved rather than in bursts. Used for a rule's weighted backends and for the
 * endpoints of a cluster.
 */
export class WeightedRoundRobin<T> {
  readonly items: readonly T[];
  readonly #weights: number[];
  readonly #current: number[];
  readonly #total: number;
  #single: T | undefined;

  constructor(items: readonly T[], weights: readonly number[]) {
    this.items = items;
    this.#weights = [...weights];
    this.#current = weights.map(() => 0);
    this.#total = weights.reduce((a, b) => a + b, 0);
    this.#single = items.length === 1 ? items[0] : undefined;
  }

  get size(): number {
    return this.items.length;
  }

  /** Next item, or undefined when empty. `skip` excludes items (ejected endpoints) for this pick. */
  pick(skip?: (item: T) => boolean): T | undefined {
    if (this.#single !== undefined && !skip?.(this.#single)) return this.#single;
    let best = -1;
    let total = 0;
    for (let i = 0; i < this.items.length; i++) {
      if (skip?.(this.items[i]!)) continue;
      const w = this.#weights[i]!;
      this.#current[i]! += w;
      total += w;
      if (best < 0 || this.#current[i]! > this.#current[best]!) best = i;
    }
    if (best < 0) return undefined;
    this.#current[best]! -= skip ? total : this.#total;
    return this.items[best];
  }

  /**
   * Like pick, with a module-level predicate and its argument instead of a closure (the hot path allocates
   * nothing per pick).
   */
  pickWith<A>(skip: (item: T, arg: A) => boolean, arg: A): T | undefined {
    if (this.#single !== undefined) return skip(this.#single, arg) ? undefined : this.#single;
    let best = -1;
    let total = 0;
    for (let i = 0; i < this.items.length; i++) {
      if (skip(this.items[i]!, arg)) continue;
      const w = this.#weights[i]!;
      this.#current[i]! += w;
      total += w;
      if (best < 0 || this.#current[i]! > this.#current[best]!) best = i;
    }
    if (best < 0) return undefined;
    this.#current[best]! -= total;
    return this.items[best];
  }
}

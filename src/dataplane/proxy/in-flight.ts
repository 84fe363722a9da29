/**
 * The requests a listener has in flight, for drain (`Connection: close` on each, cut at the deadline) and stats.
 *
 * Not a `Set`: a Set that gains and loses one entry per request makes V8 rebuild its hash table every few dozen
 * operations, and the abandoned copies that had reached the old generation keep pointing at finished responses.
 * A scavenge treats every old-to-new pointer as a root, dead holder or not, so those responses and everything
 * they reach (request, headers, buffers, the undici handler) survive and are promoted. Measured on a proxy worker
 * at saturation: ~25 % of each young generation promoted instead of ~1 %, scavenges of ~18 ms instead of ~2 ms,
 * 15.4k instead of 18.4k requests/s (docs/benchmarks.md, "What was made faster").
 *
 * This list links its entries through small nodes and clears a node's links when it leaves, so a finished
 * request is referenced by nothing the list still holds, live or dead.
 */
export interface InFlightEntry<T extends object> {
  value: T | undefined;
  prev: InFlightEntry<T> | undefined;
  next: InFlightEntry<T> | undefined;
}

export class InFlight<T extends object> {
  #head: InFlightEntry<T> | undefined;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Adds a value; pass the returned entry to `delete` exactly when the request is over. */
  add(value: T): InFlightEntry<T> {
    const entry: InFlightEntry<T> = { value, prev: undefined, next: this.#head };
    if (this.#head !== undefined) this.#head.prev = entry;
    this.#head = entry;
    this.#size++;
    return entry;
  }

  /** Removes an entry (a second call for the same entry does nothing). */
  delete(entry: InFlightEntry<T>): void {
    if (entry.value === undefined) return;
    if (entry.prev !== undefined) entry.prev.next = entry.next;
    else this.#head = entry.next;
    if (entry.next !== undefined) entry.next.prev = entry.prev;
    entry.value = undefined;
    entry.prev = undefined;
    entry.next = undefined;
    this.#size--;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    let e = this.#head;
    while (e !== undefined) {
      // Read the successor first: the caller may delete the current entry (deleting others may end the walk early).
      const next = e.next;
      if (e.value !== undefined) yield e.value;
      e = next;
    }
  }
}

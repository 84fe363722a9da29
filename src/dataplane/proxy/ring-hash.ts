/**
 * Consistent hashing with a ring of virtual nodes (Karger et al.; Envoy's ring_hash). Each endpoint owns
 * `vnodes × weight` points placed by hashing its address, so a point's position depends on the endpoint alone:
 * removing one endpoint moves only the keys it owned (≈ 1/n of them), adding one takes ≈ 1/(n+1).
 */

/** FNV-1a 32-bit with a murmur3 finalizer (FNV alone clusters short, similar keys). */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export const DEFAULT_VNODES = 256;

export interface RingMember {
  /** Stable identity on the ring (address:port): never an index, which would shift when members change. */
  readonly ringKey: string;
  readonly weight: number;
}

export class RingHash<T extends RingMember> {
  readonly #points: Uint32Array;
  readonly #owners: T[];

  constructor(members: readonly T[], vnodes = DEFAULT_VNODES) {
    const maxWeight = Math.max(1, ...members.map((m) => m.weight));
    const pairs: { point: number; owner: T }[] = [];
    for (const m of members) {
      if (m.weight <= 0) continue;
      const count = Math.max(1, Math.round((vnodes * m.weight) / maxWeight));
      for (let i = 0; i < count; i++) pairs.push({ point: hash32(`${m.ringKey}#${i}`), owner: m });
    }
    // Ties (rare) ordered by key, so the ring does not depend on member order.
    pairs.sort((a, b) => a.point - b.point || (a.owner.ringKey < b.owner.ringKey ? -1 : 1));
    this.#points = Uint32Array.from(pairs, (p) => p.point);
    this.#owners = pairs.map((p) => p.owner);
  }

  get size(): number {
    return this.#points.length;
  }

  /**
   * The owner of `hash`: the first point at or after it, walking on past members `skip` refuses (ejected
   * endpoints), so their keys spread over the neighbours while everyone else's stay put.
   */
  pick<A>(hash: number, skip: (item: T, arg: A) => boolean, arg: A): T | undefined {
    const points = this.#points;
    const n = points.length;
    if (n === 0) return undefined;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    for (let k = 0; k < n; k++) {
      const owner = this.#owners[(lo + k) % n]!;
      if (!skip(owner, arg)) return owner;
    }
    return undefined;
  }
}

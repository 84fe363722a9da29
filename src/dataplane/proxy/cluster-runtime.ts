/**
 * A cluster as one table version serves it: its upstreams and the balancers over them (built on first use, so a
 * large table swaps in fast), plus the cluster's retry-budget counters, which outlive table versions.
 */
import type { ClusterData, LoadBalancerData } from '../../table/types.ts';
import { WeightedRoundRobin } from './balancer.ts';
import { RingHash } from './ring-hash.ts';
import type { Upstream, UpstreamPools } from './upstream-pools.ts';

/** Counters a cluster keeps across table versions (keyed by cluster id). */
export class ClusterState {
  /** Requests in progress (client side) whose rule sends them to this cluster. */
  active = 0;
  /** Of those, how many are retrying now. */
  retriesActive = 0;
  retries = 0;
  retriesRefusedByBudget = 0;
}

/** Picking modes, as small integers so the hot path compares numbers. */
export const LB_ROUND_ROBIN = 0;
export const LB_LEAST_REQUEST = 1;
export const LB_CONSISTENT_HASH = 2;

export function lbMode(lb: LoadBalancerData | undefined): number {
  if (!lb) return LB_ROUND_ROBIN;
  return lb.type === 'LeastRequest'
    ? LB_LEAST_REQUEST
    : lb.type === 'ConsistentHash'
      ? LB_CONSISTENT_HASH
      : LB_ROUND_ROBIN;
}

/** Not pickable for this try: ejected, left the table, or the endpoint the previous try failed on. */
function unavailable(u: Upstream, exclude: Upstream | undefined): boolean {
  return u.ejected || u.retired || u === exclude;
}
/** Panic mode (every candidate ejected): ejection is ignored, retirement and the failed endpoint are not. */
function gone(u: Upstream, exclude: Upstream | undefined): boolean {
  return u.retired || u === exclude;
}
function retiredOnly(u: Upstream): boolean {
  return u.retired;
}

export class ClusterRuntime {
  readonly data: ClusterData;
  readonly upstreams: Upstream[];
  readonly state: ClusterState;
  #rr: WeightedRoundRobin<Upstream> | undefined;
  #ring: RingHash<Upstream> | undefined;
  #fallback = 0;
  /** The primary of a backend with failover (failover.ts): outlier detection may eject all its endpoints. */
  failoverPrimary = false;

  constructor(data: ClusterData, pools: UpstreamPools, state: ClusterState) {
    this.data = data;
    this.state = state;
    this.upstreams = data.endpoints.map((ep) => pools.get(ep, data.pool));
  }

  /**
   * An upstream for one try. `hash` is used by consistent hashing only (undefined: the request had no key, so it
   * is spread like round robin). `exclude` is the upstream the previous try failed on.
   */
  pick(mode: number, hash: number | undefined, exclude: Upstream | undefined): Upstream | undefined {
    if (this.upstreams.length === 0) return undefined;
    let up: Upstream | undefined;
    if (mode === LB_LEAST_REQUEST) up = this.#leastRequest(exclude);
    else if (mode === LB_CONSISTENT_HASH && hash !== undefined) {
      this.#ring ??= new RingHash(this.upstreams);
      up = this.#ring.pick(hash, unavailable, exclude);
      if (up === undefined) up = this.#ring.pick(hash, gone, exclude);
      return up ?? this.#ring.pick(hash, retiredOnly, undefined);
    } else {
      this.#rr ??= new WeightedRoundRobin(
        this.upstreams,
        this.upstreams.map((u) => u.weight),
      );
      up = this.#rr.pickWith(unavailable, exclude);
    }
    if (up !== undefined) return up;
    this.#rr ??= new WeightedRoundRobin(
      this.upstreams,
      this.upstreams.map((u) => u.weight),
    );
    return this.#rr.pickWith(gone, exclude) ?? this.#rr.pickWith(retiredOnly, undefined);
  }

  /**
   * Power of two choices: two random candidates, the one with fewer in-flight requests per unit of weight wins.
   * Nearly as good as a full scan at O(1), and it never herds every request onto one idle endpoint.
   */
  #leastRequest(exclude: Upstream | undefined): Upstream | undefined {
    const list = this.upstreams;
    const n = list.length;
    if (n === 1) return unavailable(list[0]!, exclude) ? undefined : list[0];
    // Two distinct random candidates.
    const i = (Math.random() * n) | 0;
    let j = (Math.random() * (n - 1)) | 0;
    if (j >= i) j++;
    const a = list[i]!;
    const b = list[j]!;
    const aOk = !unavailable(a, exclude);
    const bOk = !unavailable(b, exclude);
    if (!aOk || !bOk) {
      if (aOk) return a;
      if (bOk) return b;
      // Both out: scan every endpoint once, from a rotating start.
      const start = this.#fallback++;
      for (let k = 0; k < n; k++) {
        const c = list[(start + k) % n]!;
        if (!unavailable(c, exclude)) return c;
      }
      return undefined;
    }
    return a.inFlight * b.weight <= b.inFlight * a.weight ? a : b;
  }
}

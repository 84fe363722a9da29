/**
 * Passive outlier detection: an endpoint that fails `consecutiveFailures` times in a row (5xx answers, connect
 * failures, resets, timeouts) is ejected, i.e. skipped by every balancer, for `baseEjectionMs × ejections`
 * (capped at `maxEjectionMs`), then re-admitted. The ejection count drops back to zero once an endpoint has
 * stayed admitted for a base interval times its count. Never more than `maxEjectionPercent` of a cluster's
 * endpoints are ejected at once, so a cluster-wide problem (the upstream's own dependency down) does not turn
 * into "no healthy upstream" for everyone — except in the primary cluster of a backend with cross-datacenter
 * failover (failover.ts), where ejecting every endpoint sends the traffic to the fallback datacenter. State lives on the Upstream, so it carries across table versions.
 */
import type { ClusterRuntime } from './cluster-runtime.ts';
import type { Upstream } from './upstream-pools.ts';

export interface OutlierSettings {
  /** Failures in a row that eject an endpoint; 0 turns outlier detection off. */
  consecutiveFailures: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
  /** Share of a cluster's endpoints that may be ejected at once (0-100). */
  maxEjectionPercent: number;
}

export const DEFAULT_OUTLIER_SETTINGS: OutlierSettings = {
  consecutiveFailures: 5,
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
  maxEjectionPercent: 50,
};

function readmit(up: Upstream): void {
  up.ejected = false;
  up.consecutiveFailures = 0;
  up.ejectionTimer = undefined;
  up.lastReadmitted = Date.now();
}

/** Per service and datacenter: `service\u0000datacenter` → [ejections, refused by the cap]. */
export type OutlierCounts = Map<string, [number, number]>;

export class OutlierDetector {
  readonly settings: OutlierSettings;
  #ejections = 0;
  #refusedByCap = 0;
  readonly #byService: OutlierCounts = new Map();

  #count(cluster: ClusterRuntime, which: 0 | 1): void {
    const key = `${cluster.data.service}\u0000${cluster.data.datacenter}`;
    let c = this.#byService.get(key);
    if (c === undefined) {
      c = [0, 0];
      this.#byService.set(key, c);
    }
    c[which]++;
  }

  constructor(settings: OutlierSettings) {
    this.settings = settings;
  }

  success(up: Upstream): void {
    up.consecutiveFailures = 0;
  }

  failure(up: Upstream, cluster: ClusterRuntime): void {
    const s = this.settings;
    if (s.consecutiveFailures <= 0 || up.ejected || up.retired) return;
    if (++up.consecutiveFailures < s.consecutiveFailures) return;
    // Rare path from here on: scanning the cluster and reading the clock are fine.
    const list = cluster.upstreams;
    let ejected = 0;
    for (const u of list) if (u.ejected) ejected++;
    // The cap keeps a cluster-wide problem from becoming "no healthy upstream"; a cluster with a fallback
    // datacenter (failover.ts) has somewhere else to go, so all of its endpoints may be ejected.
    if (!cluster.failoverPrimary && ejected + 1 > Math.floor((list.length * s.maxEjectionPercent) / 100)) {
      this.#refusedByCap++;
      this.#count(cluster, 1);
      return;
    }
    const now = Date.now();
    if (up.ejections > 0 && now - up.lastReadmitted >= s.baseEjectionMs * up.ejections) up.ejections = 0;
    up.ejections++;
    up.ejected = true;
    this.#ejections++;
    this.#count(cluster, 0);
    const ms = Math.min(s.baseEjectionMs * up.ejections, s.maxEjectionMs);
    up.ejectionTimer = setTimeout(readmit, ms, up);
    up.ejectionTimer.unref();
  }

  /** Plain counters for metrics (edgegate_outlier_ejections_total, …), in total and per service and datacenter. */
  stats(): { ejections: number; refusedByCap: number; byService: OutlierCounts } {
    return { ejections: this.#ejections, refusedByCap: this.#refusedByCap, byService: this.#byService };
  }
}

/**
 * Cross-datacenter failover in the worker, decided per request: a Consul backend with fallback datacenters goes to
 * its primary cluster while that has an endpoint to pick (in the table, not ejected by outlier detection, not
 * retired), else to the first fallback cluster that has one, else to the primary as before (no healthy upstream,
 * or outlier detection's panic mode). Which datacenter serves each backend, since when and how often it changed
 * are kept per (route, backend) across table versions, for the `edgegate_backend_serving_datacenter` metrics.
 * A rule without failover never reaches this module.
 */
import type { FailoverFigures } from '../../cluster/worker-report.ts';
import type { ClusterRuntime } from './cluster-runtime.ts';

/** Serving state of one backend with failover; outlives table versions. */
export class FailoverState {
  readonly route: string;
  readonly backend: string;
  /** The datacenter serving now ('' before the first decision). */
  datacenter = '';
  /** When `datacenter` last changed (ms since the epoch). */
  since = 0;
  /** Changes of the serving datacenter after the first decision. */
  transitions = 0;

  constructor(route: string, backend: string) {
    this.route = route;
    this.backend = backend;
  }
}

/** True when the cluster has an endpoint a balancer may pick without panic mode. */
export function hasAvailable(c: ClusterRuntime): boolean {
  const list = c.upstreams;
  for (let i = 0; i < list.length; i++) {
    const u = list[i]!;
    if (!u.ejected && !u.retired) return true;
  }
  return false;
}

/** One backend with failover in one table version: its primary cluster and fallbacks, in order. */
export class FailoverTarget {
  readonly chain: readonly ClusterRuntime[];
  readonly state: FailoverState;

  constructor(chain: readonly ClusterRuntime[], state: FailoverState) {
    this.chain = chain;
    this.state = state;
    // Every endpoint of the primary may be ejected: with a fallback to go to, "all ejected" is not an outage.
    chain[0]!.failoverPrimary = true;
  }

  /** The cluster this request goes to. */
  choose(): ClusterRuntime {
    const chain = this.chain;
    let chosen = chain[0]!;
    for (let i = 0; i < chain.length; i++) {
      if (hasAvailable(chain[i]!)) {
        chosen = chain[i]!;
        break;
      }
    }
    if (chosen.data.datacenter !== this.state.datacenter) this.#moved(chosen.data.datacenter);
    return chosen;
  }

  #moved(datacenter: string): void {
    const s = this.state;
    if (s.datacenter !== '') s.transitions++;
    s.datacenter = datacenter;
    s.since = Date.now();
  }
}

/** Failover states by `route\0backend`, kept across tables; the figures the worker reports at scrape time. */
export class FailoverStates {
  readonly #states = new Map<string, FailoverState>();
  /** Targets of the table being served: evaluated at scrape time, so an idle backend still reports the truth. */
  #targets: FailoverTarget[] = [];

  state(route: string, backend: string): FailoverState {
    const key = `${route}\u0000${backend}`;
    let s = this.#states.get(key);
    if (!s) {
      s = new FailoverState(route, backend);
      this.#states.set(key, s);
    }
    return s;
  }

  /** A new table's targets: states of backends no longer in it are dropped. */
  install(targets: FailoverTarget[]): void {
    this.#targets = targets;
    const keep = new Set(targets.map((t) => t.state));
    for (const [k, s] of this.#states) if (!keep.has(s)) this.#states.delete(k);
  }

  figures(): FailoverFigures[] {
    const out: FailoverFigures[] = [];
    const seen = new Set<FailoverState>();
    for (const t of this.#targets) {
      t.choose();
      if (seen.has(t.state)) continue;
      seen.add(t.state);
      const s = t.state;
      out.push({
        route: s.route,
        backend: s.backend,
        datacenter: s.datacenter,
        since: s.since,
        transitions: s.transitions,
      });
    }
    return out;
  }
}

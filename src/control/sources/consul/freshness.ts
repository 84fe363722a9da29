/**
 * How fresh the Consul source's data is, per datacenter: the answering server's lag behind its leader
 * (`X-Consul-LastContact`), whether it knows a leader (`X-Consul-KnownLeader`), the catalog index seen, and whether
 * every watch of the datacenter is in contact. From those, the data's age ("index age": how long ago the data of the
 * datacenter was last known to be current — the server's lag while in contact, plus the time since contact was
 * lost while any watch fails) and whether it is stale: a watch of the datacenter failing (`SourceDown`) or an age
 * over the staleness limit (`Lagging`). The known-leader flag is reported (metric) but does not make data stale by
 * itself: it comes with the last answer of a blocking query, which may be a minute old. The watches of the local agent itself
 * (`agent/self`, the datacenter list) count for the local datacenter. Facts only: what stale data means for
 * routes is compile's and status's business.
 */
import type { DatacenterFreshness, StaleReason } from '../../../api/catalog.ts';
import type { ConsulResponse } from './consul-http.ts';

/** Live figures of one datacenter (metrics, /debug/sources, /debug/routes). */
export interface DatacenterFigures {
  /** Every watch of the datacenter answered its last request. */
  up: boolean;
  /** `X-Consul-LastContact` of the latest answer, in seconds (0 from the leader or a consistent read). */
  lastContactSeconds: number;
  /** `X-Consul-KnownLeader` of the latest answer (true when the header is absent). */
  knownLeader: boolean;
  /** The highest `X-Consul-Index` seen (0: none yet). */
  index: number;
  /** Seconds since the datacenter's data was last known to be current. */
  indexAgeSeconds: number;
  stale: boolean;
  reason?: StaleReason;
  /** When the data became stale (ms since the epoch). */
  staleSince?: number;
}

interface Dc {
  lastContactMs: number;
  knownLeader: boolean;
  index: number;
  /** Failing watch keys of this datacenter. */
  failing: Set<string>;
  /** When the first of them failed (ms), while any does. */
  downSince: number;
  /** When the current stale episode began (ms), while stale. */
  staleSince: number | undefined;
}

/** The datacenter a watch key belongs to: `services@DC`, `health@DC/service`; the agent's own watches: local. */
export function datacenterOfWatch(key: string, local: string | undefined): string | undefined {
  const at = key.indexOf('@');
  if (at < 0) return local;
  const rest = key.slice(at + 1);
  const slash = rest.indexOf('/');
  return slash < 0 ? rest : rest.slice(0, slash);
}

export class FreshnessTracker {
  readonly #dcs = new Map<string, Dc>();
  readonly #staleAfterMs: number;
  readonly #now: () => number;

  /** @param staleAfterMs data older than this is stale (Lagging); 0: only an outage makes it stale. */
  constructor(staleAfterMs: number, now: () => number) {
    this.#staleAfterMs = staleAfterMs;
    this.#now = now;
  }

  #dc(name: string): Dc {
    let d = this.#dcs.get(name);
    if (!d) {
      d = {
        lastContactMs: 0,
        knownLeader: true,
        index: 0,
        failing: new Set(),
        downSince: 0,
        staleSince: undefined,
      };
      this.#dcs.set(name, d);
    }
    return d;
  }

  /** A watch of `dc` answered. */
  answered(dc: string, key: string, res: ConsulResponse): void {
    const d = this.#dc(dc);
    d.failing.delete(key);
    d.lastContactMs = res.lastContactMs ?? 0;
    d.knownLeader = res.knownLeader ?? true;
    if (res.index !== undefined && res.index > d.index) d.index = res.index;
  }

  /** A watch of `dc` failed. */
  failed(dc: string, key: string): void {
    const d = this.#dc(dc);
    if (d.failing.size === 0) d.downSince = this.#now();
    d.failing.add(key);
  }

  /** A watch was stopped (its datacenter or service left the watch set). */
  forget(dc: string, key: string): void {
    this.#dcs.get(dc)?.failing.delete(key);
  }

  /** Only these datacenters are reported. */
  retain(dcs: ReadonlySet<string>): void {
    for (const k of this.#dcs.keys()) if (!dcs.has(k)) this.#dcs.delete(k);
  }

  figures(): Record<string, DatacenterFigures> {
    const now = this.#now();
    const out: Record<string, DatacenterFigures> = {};
    for (const [name, d] of [...this.#dcs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const up = d.failing.size === 0;
      const ageMs = d.lastContactMs + (up ? 0 : Math.max(0, now - d.downSince));
      const reason: StaleReason | undefined = !up
        ? 'SourceDown'
        : this.#staleAfterMs > 0 && ageMs > this.#staleAfterMs
          ? 'Lagging'
          : undefined;
      if (reason === undefined) d.staleSince = undefined;
      else d.staleSince ??= up ? now : d.downSince;
      out[name] = {
        up,
        lastContactSeconds: d.lastContactMs / 1000,
        knownLeader: d.knownLeader,
        index: d.index,
        indexAgeSeconds: ageMs / 1000,
        stale: reason !== undefined,
        ...(reason !== undefined ? { reason, staleSince: d.staleSince } : {}),
      };
    }
    return out;
  }

  /** The part of the figures that goes into the catalog snapshot: it changes only when staleness flips. */
  snapshot(): Record<string, DatacenterFreshness> {
    const out: Record<string, DatacenterFreshness> = {};
    for (const [dc, f] of Object.entries(this.figures()))
      if (f.stale) out[dc] = { reason: f.reason!, since: f.staleSince! };
    return out;
  }
}

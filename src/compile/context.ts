/**
 * What compile's processors share: the compile settings and defaults, the per-route status compile reports (the
 * input of status conditions and of `edgegate validate`), and the context a compile run threads through them.
 */
import type { CatalogSnapshot, KubeServiceSnapshot, StaleReason } from '../api/catalog.ts';
import type { FieldError } from '../api/validate.ts';
import type { ClusterData, PoolData } from '../table/types.ts';

export interface CompileSettings {
  defaultPool: PoolData;
}

export const DEFAULT_POOL: PoolData = {
  maxConnections: 128,
  // Below the 5 s idle timeout of Node's http server and most upstream keep-alive defaults, so the gateway
  // closes an idle connection before the upstream does (no request races a server-side close).
  keepAliveTimeoutMs: 4000,
  pipelining: 1,
  connectTimeoutMs: 5000,
  maxPendingRequests: 1024,
};

export const DEFAULT_SETTINGS: CompileSettings = { defaultPool: DEFAULT_POOL };

/** A route's last valid version: what is served while its current version is invalid. */
export interface LastValidRoute {
  /** The raw object as the source reported it (validated again before use). */
  raw: unknown;
  origin: string;
  /** metadata.generation (Kubernetes). */
  generation?: number;
  /** When this version became the last valid one (ISO time, stamped by the controller; absent in compile). */
  since?: string;
}

export interface BackendStatus {
  /** `consul:billing@dc2[v1]` or `service:shop/billing:8080`. */
  ref: string;
  /** Healthy endpoints per datacenter (`kubernetes` for Services). */
  healthy: Record<string, number>;
  /**
   * A backend with failover: the datacenter the catalog says serves it (the first of the primary and its fallbacks
   * with a healthy endpoint; the primary when none has). Outlier ejections are the workers' part: see the metric.
   */
  serving?: string;
  /** When `serving` last changed (ISO time, stamped by the controller; absent in compile). */
  servingSince?: string;
}

/** What compile learned about one route: the input of status conditions and of `edgegate validate`. */
export interface RouteStatus {
  route: string;
  origin: string;
  generation?: number;
  accepted: boolean;
  /** Accepted=false: every problem, field by field. */
  errors: FieldError[];
  /**
   * ResolvedRefs=false when non-empty: which Consul service or Kubernetes Service does not resolve, and which
   * spec.tls Secret is missing or invalid (`Secret ns/name: …`, see api/certificate-refs.ts).
   */
  unresolved: string[];
  backends: BackendStatus[];
  /**
   * Accepted=false, and the route's last valid version is served in its place (its generation, where it came from,
   * since when). Absent: an accepted route, or an invalid one with no valid version to fall back to (not served).
   */
  fallback?: { generation?: number; origin: string; since?: string };
  /** Matches this route shares with another route on a host (compile/gateway-api/conflicts.ts); absent: none. */
  conflicts?: string[];
  /**
   * The datacenters of the route's Consul backends (fallbacks and catalog datacenters included) whose catalog data
   * is stale (CatalogSnapshot.freshness): ServingStale in the status. Absent: none is.
   */
  stale?: { datacenter: string; reason: StaleReason; since: number }[];
}

export interface Ctx {
  catalog: CatalogSnapshot;
  kube: KubeServiceSnapshot;
  settings: CompileSettings;
  clusters: Map<string, ClusterData>;
  /** Cluster ids the route being compiled uses (its zero-weight backends' too): what its cache entry re-adds. */
  touched: Set<string>;
  /** RouteSource.listenerAddresses of the route being compiled. */
  addresses?: string[] | undefined;
}

export const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

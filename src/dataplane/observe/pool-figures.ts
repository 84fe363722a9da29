/**
 * Per-endpoint upstream figures of one worker, read at scrape time: undici's pool stats (connected, free,
 * pending, queued, running, size), in-flight requests and ejection state, for every endpoint of the served table.
 * Endpoints with no pool yet (no traffic in this worker) report zeros.
 */

import type { EndpointFigures } from '../../cluster/worker-report.ts';
import type { ClusterData, EndpointData, PoolData, TableData } from '../../table/types.ts';

/** What the worker knows of one endpoint's upstream. */
export interface UpstreamState {
  stats?: { connected: number; free: number; pending: number; queued: number; running: number; size: number };
  inFlight?: number;
  ejected?: boolean;
}

export type UpstreamLookup = (endpoint: EndpointData, cluster: ClusterData) => UpstreamState | undefined;

interface PoolLike {
  stats: NonNullable<UpstreamState['stats']>;
}
interface UpstreamLike {
  hasPool: boolean;
  pool: PoolLike;
  inFlight?: number;
  ejected?: boolean;
}

/**
 * A lookup over UpstreamPools' `entries()` (pool key → undici Pool, or → Upstream holding a lazily created pool,
 * in-flight count and ejection state). Built once per scrape.
 */
export function lookupFromPools(
  entries: Iterable<[string, unknown]>,
  poolKey: (ep: EndpointData, pool: PoolData) => string,
): UpstreamLookup {
  const byKey = new Map<string, UpstreamState>();
  for (const [key, value] of entries) {
    const v = value as Partial<UpstreamLike> & Partial<PoolLike>;
    if (typeof v.hasPool === 'boolean') {
      byKey.set(key, {
        stats: v.hasPool ? v.pool!.stats : undefined,
        inFlight: v.inFlight,
        ejected: v.ejected,
      });
    } else if (v.stats) byKey.set(key, { stats: v.stats });
  }
  return (ep, cluster) => byKey.get(poolKey(ep, cluster.pool));
}

export function endpointFigures(table: TableData | undefined, lookup: UpstreamLookup): EndpointFigures[] {
  const out: EndpointFigures[] = [];
  if (!table) return out;
  for (const c of table.clusters) {
    for (const ep of c.endpoints) {
      const st = lookup(ep, c);
      const s = st?.stats;
      out.push({
        service: c.service,
        datacenter: c.datacenter,
        cluster: c.id,
        id: ep.id,
        address: ep.address,
        port: ep.port,
        pool: s !== undefined,
        connected: s?.connected ?? 0,
        free: s?.free ?? 0,
        pending: s?.pending ?? 0,
        queued: s?.queued ?? 0,
        running: s?.running ?? 0,
        size: s?.size ?? 0,
        inFlight: st?.inFlight ?? s?.running ?? 0,
        ejected: st?.ejected ?? false,
      });
    }
  }
  return out;
}

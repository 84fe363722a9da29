/**
 * One undici Pool per upstream endpoint (and pool settings). Pools outlive table versions: an endpoint that stays
 * in the table keeps its warm keep-alive connections; one that leaves is closed gracefully (in-flight requests
 * finish) once no table references it.
 */
import { Pool } from 'undici';
import type { ClusterData, EndpointData, PoolData } from '../table/types.ts';
import { upstreamConnect, upstreamTlsPoolKey } from './upstream-tls.ts';

export function poolKey(ep: EndpointData, pool: PoolData): string {
  return `${ep.address}:${ep.port}|${pool.maxConnections}/${pool.keepAliveTimeoutMs}/${pool.pipelining}/${pool.connectTimeoutMs}${upstreamTlsPoolKey(pool)}`;
}

export function originOf(ep: EndpointData, pool?: PoolData): string {
  const scheme = pool?.tls ? 'https' : 'http';
  return ep.address.includes(':')
    ? `${scheme}://[${ep.address}]:${ep.port}`
    : `${scheme}://${ep.address}:${ep.port}`;
}

export class UpstreamPools {
  readonly #pools = new Map<string, Pool>();

  get size(): number {
    return this.#pools.size;
  }

  /** The pool for an endpoint, created on first use. */
  get(ep: EndpointData, settings: PoolData): Pool {
    const key = poolKey(ep, settings);
    let pool = this.#pools.get(key);
    if (pool === undefined) {
      pool = new Pool(originOf(ep, settings), {
        connections: settings.maxConnections,
        pipelining: settings.pipelining,
        keepAliveTimeout: settings.keepAliveTimeoutMs,
        keepAliveMaxTimeout: settings.keepAliveTimeoutMs,
        connect: upstreamConnect(settings),
        ...(settings.protocol === 'h2' ? { allowH2: true } : {}),
        // The gateway's own timeouts are passed per request.
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      this.#pools.set(key, pool);
    }
    return pool;
  }

  /** Keeps the pools of these clusters; closes the others gracefully. */
  retain(clusters: Iterable<ClusterData>): void {
    const keep = new Set<string>();
    for (const c of clusters) for (const ep of c.endpoints) keep.add(poolKey(ep, c.pool));
    for (const [key, pool] of this.#pools) {
      if (keep.has(key)) continue;
      this.#pools.delete(key);
      pool.close().catch(() => pool.destroy());
    }
  }

  entries(): IterableIterator<[string, Pool]> {
    return this.#pools.entries();
  }

  async close(): Promise<void> {
    const all = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.allSettled(all.map((p) => p.close()));
  }

  async destroy(): Promise<void> {
    const all = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.allSettled(all.map((p) => p.destroy()));
  }
}

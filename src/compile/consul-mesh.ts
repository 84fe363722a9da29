/**
 * The Consul service-mesh (Connect) and cluster-peering parts of compile: where a consul backend's instances come
 * from (`peer` → the peer's exported services; `mesh` → the mesh addresses from /v1/health/connect), the pool of a
 * mesh backend (mTLS with the expected SPIFFE identity) and its intention decision. Pure, like the rest of compile.
 */
import type { CatalogSnapshot, Instance } from '../api/catalog.ts';
import type { PoolData } from '../table/types.ts';

/** Where a consul backend's instances are: a cluster peer (`peer`), and/or over the mesh (`mesh`). */
export interface ConsulWhere {
  peer?: string;
  mesh?: boolean;
}

export function consulWhere(b: { peer?: string | undefined; mesh?: boolean | undefined }): ConsulWhere {
  const w: ConsulWhere = {};
  if (b.peer !== undefined) w.peer = b.peer;
  if (b.mesh) w.mesh = true;
  return w;
}

export interface MeshBackend {
  /** Mesh addresses of the service (undefined: not known to the catalog, or mesh is off). */
  instances: Instance[] | undefined;
  /** The reason the intentions deny the gateway this service; undefined: allowed (or not decided yet). */
  denied: string | undefined;
  /** The pool with mesh mTLS: the expected identity of the upstream. */
  pool(base: PoolData): PoolData;
}

export function meshOf(catalog: CatalogSnapshot, dc: string, service: string): MeshBackend {
  const mesh = catalog.mesh;
  const decision = mesh?.intentions[service];
  return {
    instances: mesh?.services[`${dc}/${service}`],
    denied:
      decision && !decision.allowed
        ? `intentions deny ${mesh!.gatewayService} → ${service}: ${decision.reason}`
        : undefined,
    pool: (base) => ({
      ...base,
      tls: {},
      mesh: { service, namespace: mesh?.namespace ?? 'default', datacenter: dc },
    }),
  };
}

/**
 * The peers a catalog route exposes: peer → service → cluster id, for every exported service of each listed peer
 * whose instances carry the required tags. Undefined when the route lists no peers (the table stays as before).
 */
export function catalogPeers(
  catalog: CatalogSnapshot,
  peers: readonly string[],
  requiredTags: readonly string[],
  cluster: (peer: string, service: string) => { id: string; endpoints: number },
  onHealth: (peer: string, healthy: number) => void,
): Record<string, Record<string, string>> | undefined {
  if (peers.length === 0) return undefined;
  const out: Record<string, Record<string, string>> = {};
  for (const peer of [...new Set(peers)].sort()) {
    const exposed: Record<string, string> = {};
    const services = catalog.peers?.[peer]?.services ?? {};
    for (const svc of Object.keys(services).sort()) {
      if (!(services[svc] ?? []).some((i) => requiredTags.every((t) => i.tags.includes(t)))) continue;
      const c = cluster(peer, svc);
      exposed[svc] = c.id;
      onHealth(peer, c.endpoints);
    }
    out[peer] = exposed;
  }
  return out;
}

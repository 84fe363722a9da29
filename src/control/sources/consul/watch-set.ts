/**
 * Which services to watch in which datacenters, derived from the validated routes and what Consul lists:
 * - every Consul service a backend references (in its datacenter, or the local one, and in its fallback
 *   datacenters when it names some);
 * - every service a catalog route exposes: in its allowed datacenters (all known ones when the list is empty),
 *   each service whose tags (as `/v1/catalog/services` lists them, the union over its instances) include all
 *   the route's required tags; and the same in the route's fallback datacenters, when it names some.
 * The service lists of those datacenters are watched too: they tell a service that does not exist from one
 * with no instance, and they reveal new services for catalog routes. Only known datacenters are watched
 * (Consul answers 500 for an unknown one). Cluster peers (a backend's `peer`, a catalog route's `peers`) are
 * watched like datacenters under the key `peer:<name>` (their reads carry `?peer=`); a mesh backend adds a watch
 * of its mesh addresses (`#mesh`). Pure: only api/ types.
 */
import type { GatewayRoute } from '../../../api/gateway-route.ts';

export interface ConsulView {
  localDatacenter: string;
  /** Datacenters Consul knows (`/v1/catalog/datacenters`). */
  datacenters: readonly string[];
  /** Per datacenter, its services and their tags, where the list is known yet. */
  services: Readonly<Record<string, Readonly<Record<string, readonly string[]>> | undefined>>;
}

export interface ServiceWatchKey {
  /** A datacenter name, or `peer:<name>` for a cluster peer's exported services (`?peer=`). */
  datacenter: string;
  service: string;
  /** Watch the mesh addresses (`/v1/health/connect`) instead of the instances. */
  mesh?: boolean;
}

/** The pseudo-datacenter key of a cluster peer: datacenter names cannot contain `:`. */
export function peerKey(peer: string): string {
  return `peer:${peer}`;
}

/** The peer name of a `peer:<name>` key; undefined for a datacenter. */
export function peerOf(datacenter: string): string | undefined {
  return datacenter.startsWith('peer:') ? datacenter.slice(5) : undefined;
}

export interface WatchSet {
  /** Datacenters whose service list is watched. */
  datacenters: string[];
  /** Service watches, sorted; those a backend names first, then catalog ones. */
  services: ServiceWatchKey[];
}

export function watchKey(k: ServiceWatchKey): string {
  return `${k.datacenter}/${k.service}${k.mesh ? '#mesh' : ''}`;
}

const byKey = (a: ServiceWatchKey, b: ServiceWatchKey) =>
  a.datacenter < b.datacenter
    ? -1
    : a.datacenter > b.datacenter
      ? 1
      : a.service < b.service
        ? -1
        : a.service > b.service
          ? 1
          : Number(a.mesh ?? false) - Number(b.mesh ?? false);

export function deriveWatchSet(routes: readonly GatewayRoute[], view: ConsulView): WatchSet {
  const known = new Set(view.datacenters);
  const dcs = new Set<string>();
  const named = new Map<string, ServiceWatchKey>();
  const exposed = new Map<string, ServiceWatchKey>();
  for (const route of routes) {
    for (const rule of route.spec.rules ?? []) {
      for (const b of rule.backends ?? []) {
        if (!b.consul) continue;
        const peer = b.consul.peer;
        const datacenter = peer !== undefined ? peerKey(peer) : (b.consul.datacenter ?? view.localDatacenter);
        if (peer === undefined && !known.has(datacenter)) continue;
        dcs.add(datacenter);
        const k: ServiceWatchKey = { datacenter, service: b.consul.service };
        if (b.consul.mesh && peer === undefined) k.mesh = true;
        named.set(watchKey(k), k);
        // Fallback datacenters are watched only when a backend names them.
        for (const fdc of b.consul.failover?.datacenters ?? []) {
          if (!known.has(fdc) || fdc === datacenter) continue;
          dcs.add(fdc);
          const f = { datacenter: fdc, service: b.consul.service };
          named.set(watchKey(f), f);
        }
      }
    }
    const c = route.spec.catalog;
    if (!c) continue;
    const allowed = c.datacenters.length > 0 ? c.datacenters.filter((d) => known.has(d)) : view.datacenters;
    // A catalog route's fallback datacenters: the services it would expose there (same tag rule) are watched too.
    const fallbacks = (c.failover?.datacenters ?? []).filter((d) => known.has(d));
    for (const datacenter of new Set([...allowed, ...fallbacks, ...(c.peers ?? []).map(peerKey)])) {
      dcs.add(datacenter);
      const list = view.services[datacenter];
      if (!list) continue;
      for (const [service, tags] of Object.entries(list)) {
        if (!c.requiredTags.every((t) => tags.includes(t))) continue;
        const k = { datacenter, service };
        exposed.set(watchKey(k), k);
      }
    }
  }
  for (const key of named.keys()) exposed.delete(key);
  return {
    datacenters: [...dcs].sort(),
    services: [...[...named.values()].sort(byKey), ...[...exposed.values()].sort(byKey)],
  };
}

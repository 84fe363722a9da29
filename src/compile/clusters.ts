/**
 * compile's cluster processor: a backend (Consul service in a datacenter or peer, mesh or not, or a Kubernetes
 * Service) with its pool settings → one ClusterData (endpoints sorted, id stable), shared by every rule that names
 * the same backend with the same settings; failover chains and the pool/TLS keys that tell clusters apart.
 */
import type { Instance } from '../api/catalog.ts';
import type { BackendTLSSpec, PoolSettingsSpec, RouteBackend } from '../api/gateway-route.ts';
import { parseDuration } from '../lib/duration.ts';
import type { ClusterData, EndpointData, PoolData } from '../table/types.ts';
import { type ConsulWhere, meshOf } from './consul-mesh.ts';
import { type BackendStatus, type Ctx, cmp, type RouteStatus } from './context.ts';
import { INVALID_BACKEND_SERVICE } from './gateway-api/translate.ts';

export function poolOf(spec: PoolSettingsSpec | undefined, base: PoolData): PoolData {
  if (!spec) return base;
  return {
    maxConnections: spec.maxConnections ?? base.maxConnections,
    keepAliveTimeoutMs: spec.keepAliveTimeout
      ? parseDuration(spec.keepAliveTimeout)
      : base.keepAliveTimeoutMs,
    pipelining: spec.pipelining ?? base.pipelining,
    connectTimeoutMs: spec.connectTimeout ? parseDuration(spec.connectTimeout) : base.connectTimeoutMs,
    maxPendingRequests: spec.maxPendingRequests ?? base.maxPendingRequests,
  };
}

export function poolKey(p: PoolData): string {
  return `${p.maxConnections}/${p.keepAliveTimeoutMs}/${p.pipelining}/${p.connectTimeoutMs}/${p.maxPendingRequests}${upstreamTlsKey(p)}${p.protocol === 'h2c' ? '|h2c' : ''}`;
}

/** Backend tls/protocol → pool data; a distinct TLS setup is a distinct cluster (and pool). */
export function withUpstreamTls(
  pool: PoolData,
  tls: BackendTLSSpec | undefined,
  protocol: 'http1' | 'h2' | 'h2c' | undefined,
  namespace: string,
): PoolData {
  if (!tls) return protocol === 'h2c' ? { ...pool, protocol: 'h2c' } : pool;
  const out: PoolData = { ...pool, tls: {} };
  if (tls.serverName !== undefined) out.tls!.serverName = tls.serverName;
  if (tls.caBundle !== undefined) out.tls!.caBundle = tls.caBundle;
  if (tls.clientCertificateRef !== undefined)
    out.tls!.clientCertificate = `${namespace}/${tls.clientCertificateRef.name}`;
  if (protocol === 'h2') out.protocol = 'h2';
  return out;
}

export function upstreamTlsKey(p: PoolData): string {
  if (!p.tls) return '';
  const ca = p.tls.caBundle ? `ca${fnv1a(p.tls.caBundle)}` : 'system';
  const client = p.tls.clientCertificate ? `:client=${p.tls.clientCertificate}` : '';
  const mesh = p.mesh ? `:mesh=${p.mesh.namespace}/${p.mesh.datacenter}/${p.mesh.service}` : '';
  return `|tls:${p.tls.serverName ?? ''}:${ca}${client}${p.protocol === 'h2' ? ':h2' : ''}${mesh}`;
}

/** Short stable digest for ids: cheap, and ids need no collision resistance (the table hash below does). */
export function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16);
}

export function endpointOf(i: Instance): EndpointData {
  return { address: i.address, port: i.port, weight: i.weight, id: i.id };
}

export function sortEndpoints(list: EndpointData[]): EndpointData[] {
  return list.sort((a, b) => cmp(a.address, b.address) || a.port - b.port || cmp(a.id, b.id));
}

/** Health rule: passing always; warning only when passingOnly is false; critical (and maintenance) never. */
export function serves(i: Instance, passingOnly: boolean): boolean {
  return i.health === 'passing' || (!passingOnly && i.health === 'warning');
}

export function hasTags(i: Instance, tags: readonly string[]): boolean {
  for (const t of tags) if (!i.tags.includes(t)) return false;
  return true;
}

export function consulCluster(
  ctx: Ctx,
  dc: string,
  service: string,
  tags: string[],
  passingOnly: boolean,
  basePool: PoolData,
  where: ConsulWhere = {},
): { cluster: ClusterData; known: boolean } {
  const sortedTags = [...new Set(tags)].sort(cmp);
  // A peered service is labelled `peer:<name>` wherever a datacenter would be (status, metrics).
  const label = where.peer !== undefined ? `peer:${where.peer}` : dc;
  const mesh = where.mesh ? meshOf(ctx.catalog, dc, service) : undefined;
  const pool = mesh ? mesh.pool(basePool) : basePool;
  const id = `consul:${service}@${label}${sortedTags.length ? `[${sortedTags.join(',')}]` : ''}${passingOnly ? '' : '~warning'}${mesh ? '~mesh' : ''}|${poolKey(pool)}`;
  const instances = mesh
    ? mesh.instances
    : where.peer !== undefined
      ? ctx.catalog.peers?.[where.peer]?.services[service]
      : ctx.catalog.datacenters[dc]?.services[service];
  const existing = ctx.clusters.get(id);
  ctx.touched.add(id);
  if (existing) return { cluster: existing, known: instances !== undefined };
  const endpoints = sortEndpoints(
    (instances ?? []).filter((i) => serves(i, passingOnly) && hasTags(i, sortedTags)).map(endpointOf),
  );
  const cluster: ClusterData = { id, kind: 'consul', service, datacenter: label, endpoints, pool };
  if (mesh?.denied !== undefined) cluster.meshDenied = mesh.denied;
  ctx.clusters.set(id, cluster);
  return { cluster, known: instances !== undefined };
}

export function kubeCluster(
  ctx: Ctx,
  namespace: string,
  name: string,
  port: number | string,
  pool: PoolData,
): { cluster: ClusterData; known: boolean } {
  const key = `${namespace}/${name}`;
  const id = `kube:${key}:${port}|${poolKey(pool)}`;
  const svc = ctx.kube.services[key];
  const existing = ctx.clusters.get(id);
  ctx.touched.add(id);
  if (existing) return { cluster: existing, known: svc !== undefined };
  const endpoints: EndpointData[] = [];
  if (svc) {
    // A port name names the Service port (and the EndpointSlice port of the same name); a number is the Service
    // port, mapped to its target port when the Service is known, else taken as the endpoint port itself.
    const svcPort = svc.ports.find((p) => (typeof port === 'number' ? p.port === port : p.name === port));
    for (const ep of svc.endpoints) {
      if (!ep.ready) continue;
      let target: number | undefined;
      if (svcPort) target = ep.ports[svcPort.name] ?? svcPort.targetPort;
      else if (typeof port === 'string') target = ep.ports[port];
      else target = Object.values(ep.ports).includes(port) ? port : undefined;
      if (target !== undefined)
        endpoints.push({ address: ep.address, port: target, weight: 1, id: ep.address });
    }
  }
  const cluster: ClusterData = {
    id,
    kind: 'kube',
    service: key,
    datacenter: 'kubernetes',
    endpoints: sortEndpoints(endpoints),
    pool,
  };
  // The Gateway API translation's stand-in for a backendRef that cannot be served: requests to it get 500.
  if (name === INVALID_BACKEND_SERVICE) cluster.invalid = true;
  ctx.clusters.set(id, cluster);
  return { cluster, known: svc !== undefined };
}

/**
 * The clusters of a Consul backend's fallback datacenters, in order (same service, tags, health rule and pool). The
 * primary datacenter is skipped if listed (it may be the implicit local one); a datacenter the catalog does not know
 * is named in the status and skipped.
 */
export function fallbackClusters(
  ctx: Ctx,
  primary: ClusterData,
  datacenters: readonly string[],
  spec: NonNullable<RouteBackend['consul']>,
  pool: PoolData,
  status: RouteStatus,
): ClusterData[] {
  const out: ClusterData[] = [];
  for (const dc of datacenters) {
    if (dc === primary.datacenter) continue;
    const { cluster } = consulCluster(ctx, dc, spec.service, spec.tags ?? [], spec.passingOnly ?? true, pool);
    if (!ctx.catalog.datacenters[dc]) {
      const msg = `failover datacenter ${dc} of Consul service ${spec.service} is not known to the catalog`;
      if (!status.unresolved.includes(msg)) status.unresolved.push(msg);
    }
    out.push(cluster);
  }
  return out;
}

/** Which datacenter the catalog says serves a backend with failover: the first with a healthy endpoint. */
export function setServing(bs: BackendStatus, chain: readonly ClusterData[]): void {
  bs.serving = (chain.find((c) => c.endpoints.length > 0) ?? chain[0]!).datacenter;
}

/**
 * compile: (routes, catalog, settings) → { table, statuses }. Pure: no I/O, no clocks, no globals; the same
 * input in any order gives the same table (byte for byte) and the same statuses.
 */
import type { CatalogSnapshot, Instance, KubeServiceSnapshot, StaleReason } from '../api/catalog.ts';
import {
  type CertificateRefSnapshot,
  certificateRefProblem,
  clientCertificateNames,
} from '../api/certificate-refs.ts';
import type {
  BackendTLSSpec,
  GatewayRoute,
  HeaderModifierSpec,
  LoadBalancerSpec,
  PathModifierSpec,
  PoolSettingsSpec,
  RetrySpec,
  RouteBackend,
  RouteRule,
  TimeoutsSpec,
} from '../api/gateway-route.ts';
import type { RouteSource } from '../api/route-source.ts';
import { type FieldError, routeKey, validateRoute } from '../api/validate.ts';
import { parseDuration } from '../lib/duration.ts';
import { normalizePrefix } from '../table/index.ts';
import {
  type BackendRef,
  type CatalogAction,
  type ClusterData,
  DEFAULT_RETRY,
  type EndpointData,
  type EntryData,
  type HeaderEdits,
  type HostData,
  type LoadBalancerData,
  type MatchData,
  type MirrorData,
  type PathRewrite,
  type PoolData,
  type RetryData,
  type TableData,
  type TimeoutsData,
} from '../table/types.ts';
import { encodeTableBody, rememberWire } from '../table/wire.ts';
import { type ConsulWhere, catalogPeers, consulWhere, meshOf } from './consul-mesh.ts';
import { compressionDataOf, corsDataOf, mirrorShare } from './filters.ts';
import { routeConflicts } from './gateway-api/conflicts.ts';
import { INVALID_BACKEND_SERVICE } from './gateway-api/translate.ts';
import { policyDataOf, routePolicyErrors } from './policies.ts';

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

export interface CompileInput {
  routes: RouteSource[];
  catalog: CatalogSnapshot;
  kube?: KubeServiceSnapshot;
  settings?: CompileSettings;
  /** Secrets named in spec.tls (Kubernetes): a missing or invalid one makes the route's refs unresolved. */
  certificateRefs?: CertificateRefSnapshot;
  /**
   * The last valid version of each route (by `namespace/name`), from the previous compile (`CompileResult.lastValid`)
   * or the last-known-good file. A route whose current version is invalid is compiled from this version instead
   * of being dropped (fail closed: its paths never fall through to a less specific route without its policies).
   */
  lastValid?: ReadonlyMap<string, LastValidRoute>;
  /**
   * Work kept between compiles by the caller, by route object: a source that hands the same `raw` object again for
   * a route that did not change (the kube source does) has it validated once, and compiled once for as long as the
   * catalog, Services and certificate snapshots are the same objects too — a rebuild after one route changed
   * compiles that route, and only sorts and joins the others. Results depend on those inputs alone, and compile
   * never modifies a validated route or a compiled entry.
   */
  memo?: CompileMemo;
}

/** See CompileInput.memo. */
export type CompileMemo = WeakMap<object, Validated>;

interface Validated {
  result: ReturnType<typeof validateRoute>;
  problems: FieldError[];
  /** The route compiled against these snapshots (the same objects: identity, not content). */
  compiled?: CompiledRoute;
}

interface CompiledRoute {
  catalog: CatalogSnapshot;
  kube: KubeServiceSnapshot | undefined;
  settings: CompileSettings;
  certificateRefs: CertificateRefSnapshot | undefined;
  /** Ctx.addresses, joined: the entries carry them. */
  addresses: string;
  entries: EntryData[];
  clusters: ClusterData[];
  unresolved: string[];
  backends: BackendStatus[];
}

function validated(raw: unknown, memo: CompileMemo | undefined): Validated {
  const hit = memo && raw && typeof raw === 'object' ? memo.get(raw) : undefined;
  if (hit) return hit;
  const result = validateRoute(raw);
  const v = { result, problems: result.ok ? routePolicyErrors(result.route.spec) : result.errors };
  if (memo && raw && typeof raw === 'object') memo.set(raw, v);
  return v;
}

/**
 * The routes that are valid (schema and policies), parsed: what the sources whose watches follow the routes need
 * (Consul's watch set, the certificate Secrets). Validated through the same memo as `compile`, so a route is
 * validated once per version whoever asks.
 */
export function validRoutes(routes: readonly RouteSource[], memo?: CompileMemo): GatewayRoute[] {
  const out: GatewayRoute[] = [];
  for (const r of routes) {
    const v = validated(r.raw, memo);
    if (v.result.ok && v.problems.length === 0) out.push(v.result.route);
  }
  return out;
}

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

export interface CompileResult {
  table: TableData;
  statuses: RouteStatus[];
  /**
   * The last valid version of every route in the input (routes no longer in the input are gone: a deleted route is
   * never served again). The input of the next compile's `lastValid`.
   */
  lastValid: Map<string, LastValidRoute>;
}

interface Ctx {
  catalog: CatalogSnapshot;
  kube: KubeServiceSnapshot;
  settings: CompileSettings;
  clusters: Map<string, ClusterData>;
  /** Cluster ids the route being compiled uses (its zero-weight backends' too): what its cache entry re-adds. */
  touched: Set<string>;
  /** RouteSource.listenerAddresses of the route being compiled. */
  addresses?: string[] | undefined;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function poolOf(spec: PoolSettingsSpec | undefined, base: PoolData): PoolData {
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

function poolKey(p: PoolData): string {
  return `${p.maxConnections}/${p.keepAliveTimeoutMs}/${p.pipelining}/${p.connectTimeoutMs}/${p.maxPendingRequests}${upstreamTlsKey(p)}${p.protocol === 'h2c' ? '|h2c' : ''}`;
}

/** Rule traffic settings → table data; undefined when the rule keeps every default (smaller tables). */
function loadBalancerOf(spec: LoadBalancerSpec | undefined): LoadBalancerData | undefined {
  if (!spec || spec.type === 'RoundRobin') return undefined;
  if (spec.type === 'LeastRequest') return { type: 'LeastRequest' };
  const ch = spec.consistentHash ?? {};
  const hash: NonNullable<LoadBalancerData['hash']> = ch.header
    ? { header: ch.header.toLowerCase() }
    : ch.cookie
      ? { cookie: ch.cookie }
      : { sourceIP: true };
  return { type: 'ConsistentHash', hash };
}

function timeoutsOf(spec: TimeoutsSpec | undefined): TimeoutsData | undefined {
  if (!spec) return undefined;
  const out: TimeoutsData = {};
  if (spec.request !== undefined) out.requestMs = parseDuration(spec.request);
  if (spec.backendRequest !== undefined) out.backendRequestMs = parseDuration(spec.backendRequest);
  if (spec.responseHeaders !== undefined) out.responseHeadersMs = parseDuration(spec.responseHeaders);
  if (spec.idle !== undefined) out.idleMs = parseDuration(spec.idle);
  return Object.keys(out).length > 0 ? out : undefined;
}

function retryOf(spec: RetrySpec | undefined): RetryData | undefined {
  if (!spec) return undefined;
  return {
    attempts: spec.attempts ?? DEFAULT_RETRY.attempts,
    on: spec.retryOn ? [...new Set(spec.retryOn)].sort(cmp) : DEFAULT_RETRY.on,
    backoffMs: spec.backoff ? parseDuration(spec.backoff) : DEFAULT_RETRY.backoffMs,
  };
}

/** Sets the traffic fields an entry carries only when a rule changes a default. */
function setTraffic(
  entry: EntryData,
  lb: LoadBalancerData | undefined,
  timeouts: TimeoutsData | undefined,
  retry: RetryData | undefined,
): void {
  if (lb) entry.loadBalancer = lb;
  if (timeouts) entry.timeouts = timeouts;
  if (retry) entry.retry = retry;
}

/** Backend tls/protocol → pool data; a distinct TLS setup is a distinct cluster (and pool). */
function withUpstreamTls(
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

function upstreamTlsKey(p: PoolData): string {
  if (!p.tls) return '';
  const ca = p.tls.caBundle ? `ca${fnv1a(p.tls.caBundle)}` : 'system';
  const client = p.tls.clientCertificate ? `:client=${p.tls.clientCertificate}` : '';
  const mesh = p.mesh ? `:mesh=${p.mesh.namespace}/${p.mesh.datacenter}/${p.mesh.service}` : '';
  return `|tls:${p.tls.serverName ?? ''}:${ca}${client}${p.protocol === 'h2' ? ':h2' : ''}${mesh}`;
}

/** Short stable digest for ids: cheap, and ids need no collision resistance (the table hash below does). */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16);
}

function endpointOf(i: Instance): EndpointData {
  return { address: i.address, port: i.port, weight: i.weight, id: i.id };
}

function sortEndpoints(list: EndpointData[]): EndpointData[] {
  return list.sort((a, b) => cmp(a.address, b.address) || a.port - b.port || cmp(a.id, b.id));
}

/** Health rule: passing always; warning only when passingOnly is false; critical (and maintenance) never. */
function serves(i: Instance, passingOnly: boolean): boolean {
  return i.health === 'passing' || (!passingOnly && i.health === 'warning');
}

function hasTags(i: Instance, tags: readonly string[]): boolean {
  for (const t of tags) if (!i.tags.includes(t)) return false;
  return true;
}

function consulCluster(
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

function kubeCluster(
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
function fallbackClusters(
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
function setServing(bs: BackendStatus, chain: readonly ClusterData[]): void {
  bs.serving = (chain.find((c) => c.endpoints.length > 0) ?? chain[0]!).datacenter;
}

function headerEdits(spec: HeaderModifierSpec | undefined): HeaderEdits | undefined {
  if (!spec) return undefined;
  return {
    set: (spec.set ?? []).map((h) => [h.name.toLowerCase(), h.value] as [string, string]),
    add: (spec.add ?? []).map((h) => [h.name.toLowerCase(), h.value] as [string, string]),
    remove: (spec.remove ?? []).map((h) => h.toLowerCase()),
  };
}

function pathRewrite(spec: PathModifierSpec | undefined): PathRewrite | undefined {
  if (!spec) return undefined;
  if (spec.type === 'ReplaceRegexMatch')
    return { type: 'ReplaceRegexMatch', value: spec.replaceRegexMatch ?? '/' };
  return spec.type === 'ReplaceFullPath'
    ? { type: 'ReplaceFullPath', value: spec.replaceFullPath ?? '/' }
    : { type: 'ReplacePrefixMatch', value: spec.replacePrefixMatch ?? '/' };
}

function matchesOf(rule: RouteRule): MatchData[] {
  const matches = rule.matches && rule.matches.length > 0 ? rule.matches : [{}];
  return matches.map((m) => {
    const md: MatchData = {
      path: m.path ? { type: m.path.type, value: m.path.value } : { type: 'PathPrefix', value: '/' },
      headers: (m.headers ?? []).map((h) => ({ type: h.type, name: h.name, value: h.value })),
      queryParams: (m.queryParams ?? []).map((q) => ({ type: q.type, name: q.name, value: q.value })),
    };
    if (md.path.type === 'PathPrefix') md.path.value = normalizePrefix(md.path.value);
    if (m.method) md.method = m.method;
    if (m.cookies?.length)
      md.cookies = m.cookies.map((c) => ({ type: c.type, name: c.name, value: c.value }));
    return md;
  });
}

function backendRef(b: RouteBackend, namespace: string, localDc: string): string {
  if (b.consul) {
    const tags = b.consul.tags?.length ? `[${[...b.consul.tags].sort(cmp).join(',')}]` : '';
    const where = b.consul.peer !== undefined ? `peer:${b.consul.peer}` : (b.consul.datacenter ?? localDc);
    return `consul:${b.consul.service}@${where}${tags}${b.consul.mesh ? '~mesh' : ''}`;
  }
  return `service:${b.service!.namespace ?? namespace}/${b.service!.name}:${b.service!.port}`;
}

function compileRoute(
  route: GatewayRoute,
  key: string,
  created: number,
  ctx: Ctx,
  status: RouteStatus,
): EntryData[] {
  const namespace = route.metadata.namespace ?? 'default';
  const entries: EntryData[] = [];
  const localDc = ctx.catalog.localDatacenter;
  const backendHealth = new Map<string, BackendStatus>();

  const addHealth = (ref: string, dc: string, count: number) => {
    let bs = backendHealth.get(ref);
    if (!bs) {
      bs = { ref, healthy: {} };
      backendHealth.set(ref, bs);
    }
    bs.healthy[dc] = (bs.healthy[dc] ?? 0) + count;
  };

  if (route.spec.catalog) {
    const c = route.spec.catalog;
    const pool = poolOf(c.pool, ctx.settings.defaultPool);
    const passingOnly = c.passingOnly ?? true;
    const allowed = c.datacenters.length > 0 ? c.datacenters : Object.keys(ctx.catalog.datacenters);
    const services: CatalogAction['services'] = {};
    const catalogFailover: NonNullable<CatalogAction['failover']> = {};
    for (const dc of [...new Set(allowed)].sort(cmp)) {
      const known = ctx.catalog.datacenters[dc];
      if (!known) {
        if (c.datacenters.length > 0) status.unresolved.push(`datacenter ${dc} is not known to the catalog`);
        continue;
      }
      const exposed: Record<string, string> = {};
      for (const svc of Object.keys(known.services).sort(cmp)) {
        const instances = known.services[svc] ?? [];
        if (!instances.some((i) => hasTags(i, c.requiredTags))) continue;
        const { cluster } = consulCluster(ctx, dc, svc, c.requiredTags, passingOnly, pool);
        exposed[svc] = cluster.id;
        addHealth(`catalog:${dc}`, dc, cluster.endpoints.length);
        if (!c.failover) continue;
        // A fallback serves the service only where it is exposed by the same rule (carries the required tags).
        const fallbacks: string[] = [];
        for (const fdc of c.failover.datacenters) {
          if (fdc === dc) continue;
          const there = ctx.catalog.datacenters[fdc]?.services[svc];
          if (!there?.some((i) => hasTags(i, c.requiredTags))) continue;
          fallbacks.push(consulCluster(ctx, fdc, svc, c.requiredTags, passingOnly, pool).cluster.id);
        }
        if (fallbacks.length === 0) continue;
        catalogFailover[dc] ??= {};
        catalogFailover[dc][svc] = fallbacks;
      }
      services[dc] = exposed;
    }
    const peers = catalogPeers(
      ctx.catalog,
      c.peers ?? [],
      c.requiredTags,
      (peer, svc) => {
        const { cluster } = consulCluster(ctx, '', svc, c.requiredTags, passingOnly, pool, { peer });
        return { id: cluster.id, endpoints: cluster.endpoints.length };
      },
      (peer, n) => addHealth(`catalog:peer:${peer}`, `peer:${peer}`, n),
    );
    if (peers && services.peer)
      status.unresolved.push('datacenter peer is hidden by the peers of this catalog route (/peer/{peer}/…)');
    if (c.failover)
      for (const fdc of c.failover.datacenters)
        if (!ctx.catalog.datacenters[fdc])
          status.unresolved.push(`failover datacenter ${fdc} is not known to the catalog`);
    const entry: EntryData = {
      route: key,
      rule: 0,
      match: 0,
      ruleId: `${key}#catalog`,
      created,
      matchData: {
        path: { type: 'PathPrefix', value: normalizePrefix(c.pathPrefix) },
        headers: [],
        queryParams: [],
      },
      catalog: {
        prefix: normalizePrefix(c.pathPrefix),
        services,
        ...(peers ? { peers } : {}),
        ...(Object.keys(catalogFailover).length > 0 ? { failover: catalogFailover } : {}),
      },
    };
    const policies = policyDataOf(c.policies);
    if (policies) entry.policies = policies;
    setTraffic(entry, loadBalancerOf(c.loadBalancer), timeoutsOf(c.timeouts), retryOf(c.retry));
    entries.push(entry);
  }

  (route.spec.rules ?? []).forEach((rule, ri) => {
    const ruleId = `${key}#${rule.name ?? ri}`;
    const filters = rule.filters ?? [];
    const find = <T extends (typeof filters)[number]['type']>(t: T) => filters.find((f) => f.type === t);
    const redirectSpec = find('RequestRedirect')?.requestRedirect;
    const rewriteSpec = find('URLRewrite')?.urlRewrite;
    const requestHeaders = headerEdits(find('RequestHeaderModifier')?.requestHeaderModifier);
    const responseHeaders = headerEdits(find('ResponseHeaderModifier')?.responseHeaderModifier);
    const policies = policyDataOf(rule.policies);
    const lb = loadBalancerOf(rule.loadBalancer);
    const timeouts = timeoutsOf(rule.timeouts);
    const retry = retryOf(rule.retry);
    const cors = corsDataOf(find('CORS')?.cors);
    const compression = compressionDataOf(find('ResponseCompression')?.responseCompression);
    const mirrors: MirrorData[] = [];
    for (const f of filters) {
      const m = f.requestMirror;
      if (!m) continue;
      const pool = ctx.settings.defaultPool;
      const { cluster, known } = m.backendRef.consul
        ? consulCluster(
            ctx,
            m.backendRef.consul.datacenter ?? localDc,
            m.backendRef.consul.service,
            m.backendRef.consul.tags ?? [],
            m.backendRef.consul.passingOnly ?? true,
            pool,
          )
        : kubeCluster(ctx, namespace, m.backendRef.service!.name, m.backendRef.service!.port, pool);
      if (!known) {
        const msg = m.backendRef.consul
          ? `mirror: Consul service ${m.backendRef.consul.service} in datacenter ${m.backendRef.consul.datacenter ?? localDc} not found`
          : `mirror: Service ${namespace}/${m.backendRef.service!.name} not found`;
        if (!status.unresolved.includes(msg)) status.unresolved.push(msg);
      }
      mirrors.push({ cluster: cluster.id, ...mirrorShare(m) });
    }
    let backends: BackendRef[] | undefined;
    if (!redirectSpec) {
      backends = [];
      for (const b of rule.backends ?? []) {
        const pool = withUpstreamTls(poolOf(b.pool, ctx.settings.defaultPool), b.tls, b.protocol, namespace);
        const ref = backendRef(b, namespace, localDc);
        const { cluster, known } = b.consul
          ? consulCluster(
              ctx,
              b.consul.datacenter ?? localDc,
              b.consul.service,
              b.consul.tags ?? [],
              b.consul.passingOnly ?? true,
              pool,
              consulWhere(b.consul),
            )
          : kubeCluster(ctx, b.service!.namespace ?? namespace, b.service!.name, b.service!.port, pool);
        if (b.consul?.mesh && !ctx.catalog.mesh) {
          const msg = `Consul service ${b.consul.service} is a mesh backend but the gateway has no mesh identity (--consul-mesh-service)`;
          if (!status.unresolved.includes(msg)) status.unresolved.push(msg);
        } else if (!known && !cluster.invalid) {
          // (A Gateway API translation's 500 stand-in is reported in the HTTPRoute's own status: compile/gateway-api/.)
          const what = b.consul
            ? `Consul service ${b.consul.service} in ${b.consul.peer !== undefined ? `peer ${b.consul.peer}` : `datacenter ${b.consul.datacenter ?? localDc}`}${b.consul.mesh ? ' (mesh)' : ''}`
            : `Service ${b.service!.namespace ?? namespace}/${b.service!.name}`;
          const msg = `${what} not found`;
          if (!status.unresolved.includes(msg)) status.unresolved.push(msg);
        }
        addHealth(ref, cluster.datacenter, cluster.endpoints.length);
        const failover = b.consul?.failover
          ? fallbackClusters(ctx, cluster, b.consul.failover.datacenters, b.consul, pool, status)
          : undefined;
        if (failover) {
          for (const c of failover) addHealth(ref, c.datacenter, c.endpoints.length);
          setServing(backendHealth.get(ref)!, [cluster, ...failover]);
        }
        if ((b.weight ?? 1) > 0)
          backends.push({
            cluster: cluster.id,
            weight: b.weight ?? 1,
            ...(failover ? { failover: { backend: ref, clusters: failover.map((c) => c.id) } } : {}),
          });
      }
    }
    matchesOf(rule).forEach((matchData, mi) => {
      const entry: EntryData = { route: key, rule: ri, match: mi, ruleId, created, matchData };
      if (ctx.addresses) entry.addresses = ctx.addresses;
      if (requestHeaders) entry.requestHeaders = requestHeaders;
      if (responseHeaders) entry.responseHeaders = responseHeaders;
      if (rule.httpsRedirect !== undefined) entry.httpsRedirect = rule.httpsRedirect;
      if (rewriteSpec) {
        const rw: NonNullable<EntryData['rewrite']> = {};
        if (rewriteSpec.hostname) rw.hostname = rewriteSpec.hostname;
        const p = pathRewrite(rewriteSpec.path);
        if (p) rw.path = p;
        entry.rewrite = rw;
      }
      if (redirectSpec) {
        const rd: NonNullable<EntryData['redirect']> = { statusCode: redirectSpec.statusCode ?? 302 };
        if (redirectSpec.scheme) rd.scheme = redirectSpec.scheme;
        if (redirectSpec.hostname) rd.hostname = redirectSpec.hostname;
        if (redirectSpec.port) rd.port = redirectSpec.port;
        const p = pathRewrite(redirectSpec.path);
        if (p) rd.path = p;
        entry.redirect = rd;
      }
      if (backends) {
        entry.backends = backends;
        if (rule.maxRequestBodySize !== undefined) entry.maxRequestBodyBytes = rule.maxRequestBodySize;
        if (policies) entry.policies = policies;
        setTraffic(entry, lb, timeouts, retry);
        if (cors) entry.cors = cors;
        if (mirrors.length > 0) entry.mirrors = mirrors;
        if (compression) entry.compression = compression;
      }
      entries.push(entry);
    });
  });
  status.backends = [...backendHealth.values()].sort((a, b) => cmp(a.ref, b.ref));
  return entries;
}

const PATH_RANK = { Exact: 0, PathPrefix: 1, RegularExpression: 2 } as const;

/** HTTPRoute precedence within one host: negative when `a` wins. */
export function comparePrecedence(a: EntryData, b: EntryData): number {
  const pa = a.matchData.path;
  const pb = b.matchData.path;
  return (
    PATH_RANK[pa.type] - PATH_RANK[pb.type] ||
    (pa.type !== 'RegularExpression' ? pb.value.length - pa.value.length : 0) ||
    (a.matchData.method ? 0 : 1) - (b.matchData.method ? 0 : 1) ||
    conditionCount(b.matchData) - conditionCount(a.matchData) ||
    b.matchData.queryParams.length - a.matchData.queryParams.length ||
    createdRank(a.created) - createdRank(b.created) ||
    cmp(a.route, b.route) ||
    a.rule - b.rule ||
    a.match - b.match
  );
}

/** Header and cookie matches rank alike: a cookie canary is a header match on one cookie. */
function conditionCount(m: MatchData): number {
  return m.headers.length + (m.cookies?.length ?? 0);
}

/** Unknown creation time (0) sorts after every known one. */
function createdRank(created: number): number {
  return created > 0 ? created : Number.MAX_SAFE_INTEGER;
}

/**
 * spec.tls Secrets and backends' client certificates (`tls.clientCertificateRef`) the certificate sources found
 * missing or invalid → unresolved (no entry: not known yet).
 */
function checkCertificateRefs(
  route: GatewayRoute,
  namespace: string,
  refs: CertificateRefSnapshot | undefined,
  status: RouteStatus,
): void {
  if (!refs) return;
  const names = [...(route.spec.tls ?? []).map((t) => t.secretName), ...clientCertificateNames(route)];
  for (const name of names) {
    const key = `${namespace}/${name}`;
    const state = refs.secrets[key];
    if (!state || state.ok) continue;
    const line = certificateRefProblem(key, state);
    if (!status.unresolved.includes(line)) status.unresolved.push(line);
  }
}

export function compile(input: CompileInput): CompileResult {
  const ctx: Ctx = {
    catalog: input.catalog,
    kube: input.kube ?? { services: {} },
    settings: input.settings ?? DEFAULT_SETTINGS,
    clusters: new Map(),
    touched: new Set(),
  };
  // Deterministic order whatever order the sources reported in: by key, then origin.
  const sources = input.routes
    .map((r) => ({ ...r, key: routeKey(r.raw) }))
    .sort((a, b) => cmp(a.key, b.key) || cmp(a.origin, b.origin));

  const statuses: RouteStatus[] = [];
  const lastValid = new Map<string, LastValidRoute>();
  const entries: EntryData[] = [];
  const hostMap = new Map<string, EntryData[]>();
  const firstOrigin = new Map<string, string>();

  for (const src of sources) {
    const status: RouteStatus = {
      route: src.key,
      origin: src.origin,
      accepted: false,
      errors: [],
      unresolved: [],
      backends: [],
    };
    statuses.push(status);
    const generation = generationOf(src.raw);
    if (generation !== undefined) status.generation = generation;
    const prior = firstOrigin.get(src.key);
    if (prior !== undefined) {
      const line = src.locate?.(['metadata', 'name']);
      status.errors.push({
        path: ['metadata', 'name'],
        message: `duplicate route ${src.key}: already defined at ${prior}`,
        ...(line ? { line } : {}),
      });
      continue;
    }
    firstOrigin.set(src.key, src.origin);
    ctx.addresses =
      src.listenerAddresses && src.listenerAddresses.length > 0
        ? [...src.listenerAddresses].sort()
        : undefined;
    let built = buildRoute(src.raw, src.key, ctx, input, status);
    if (!src.crossNamespaceBackends && !('errors' in built)) {
      const foreign = crossNamespaceBackendErrors(src.raw);
      if (foreign.length > 0) built = { errors: foreign };
    }
    if ('errors' in built) {
      const locate = src.locate;
      status.errors = locate ? built.errors.map((e) => ({ ...e, line: locate(e.path) })) : built.errors;
      // Fail closed: an invalid update keeps the route's last valid version (the same object, for Kubernetes).
      const last = input.lastValid?.get(src.key);
      if (!last || !sameObject(last.raw, src.raw)) continue;
      const fallbackStatus: RouteStatus = { ...status, errors: [], unresolved: [], backends: [] };
      built = buildRoute(last.raw, src.key, ctx, input, fallbackStatus);
      if ('errors' in built) continue;
      status.unresolved = fallbackStatus.unresolved;
      status.backends = fallbackStatus.backends;
      status.fallback = {
        ...(last.generation !== undefined ? { generation: last.generation } : {}),
        origin: last.origin,
        ...(last.since ? { since: last.since } : {}),
      };
      lastValid.set(src.key, last);
    } else {
      status.accepted = true;
      lastValid.set(src.key, {
        raw: src.raw,
        origin: src.origin,
        ...(generation !== undefined ? { generation } : {}),
      });
    }
    for (const e of built.entries) {
      entries.push(e);
      for (const h of built.hosts) {
        const list = hostMap.get(h);
        if (list) list.push(e);
        else hostMap.set(h, [e]);
      }
    }
  }

  entries.sort(comparePrecedence);
  const position = new Map(entries.map((e, i) => [e, i]));
  const hosts: HostData[] = [...hostMap.entries()]
    .sort((a, b) => cmp(a[0], b[0]))
    .map(([host, list]) => ({ host, entries: list.sort(comparePrecedence).map((e) => position.get(e)!) }));
  const clusters = [...ctx.clusters.values()].sort((a, b) => cmp(a.id, b.id));
  const body = { entries, hosts, clusters };
  // Serialized once, here: the hash is over the bytes the primary sends and saves (table/wire.ts).
  const wire = encodeTableBody(body);
  const table: TableData = { hash: wire.hash, version: 0, ...body };
  rememberWire(table, wire);
  const conflicts = routeConflicts(table);
  if (conflicts.size > 0)
    for (const st of statuses) if (conflicts.has(st.route)) st.conflicts = conflicts.get(st.route)!;
  return { table, statuses, lastValid };
}

/** `service.namespace` in a route that is not a translated HTTPRoute: refused, naming the field. */
function crossNamespaceBackendErrors(raw: unknown): FieldError[] {
  const out: FieldError[] = [];
  const rules = (raw as { spec?: { rules?: unknown } } | null)?.spec?.rules;
  if (!Array.isArray(rules)) return out;
  rules.forEach((rule: { backends?: unknown }, ri) => {
    if (!Array.isArray(rule?.backends)) return;
    rule.backends.forEach((b: { service?: { namespace?: unknown } }, bi) => {
      if (b?.service?.namespace !== undefined)
        out.push({
          path: ['spec', 'rules', ri, 'backends', bi, 'service', 'namespace'],
          message: 'a GatewayRoute backend names a Service in its own namespace',
        });
    });
  });
  return out;
}

/** The stale datacenters among those the route's backends use (kube Services have no datacenter to go stale). */
function markStale(status: RouteStatus, catalog: CatalogSnapshot): void {
  const fresh = catalog.freshness;
  if (!fresh) return;
  const dcs = new Set<string>();
  for (const b of status.backends)
    if (!b.ref.startsWith('service:')) for (const dc of Object.keys(b.healthy)) dcs.add(dc);
  const stale = [...dcs]
    .sort(cmp)
    .filter((dc) => fresh[dc] !== undefined)
    .map((dc) => ({ datacenter: dc, reason: fresh[dc]!.reason, since: fresh[dc]!.since }));
  if (stale.length > 0) status.stale = stale;
}

function copyBackendStatus(b: BackendStatus): BackendStatus {
  return {
    ref: b.ref,
    healthy: { ...b.healthy },
    ...(b.serving !== undefined ? { serving: b.serving } : {}),
  };
}

function generationOf(raw: unknown): number | undefined {
  const g = (raw as { metadata?: { generation?: unknown } } | null)?.metadata?.generation;
  return typeof g === 'number' ? g : undefined;
}

/**
 * The fallback is the same object in another version: for Kubernetes, the same uid (a route deleted and created
 * again under its name within one batch is a new route, never valid yet); files have no uid.
 */
function sameObject(last: unknown, current: unknown): boolean {
  const uid = (raw: unknown) => (raw as { metadata?: { uid?: unknown } } | null)?.metadata?.uid;
  const a = uid(last);
  const b = uid(current);
  return a === undefined || b === undefined || a === b;
}

/**
 * Validates one raw route and compiles its entries (against the shared clusters of `ctx`), or returns every problem.
 * An exception while compiling a valid route is that route's problem (reported, and the route falls back), never
 * the end of the whole compile.
 */
function buildRoute(
  raw: unknown,
  key: string,
  ctx: Ctx,
  input: CompileInput,
  status: RouteStatus,
): { entries: EntryData[]; hosts: string[] } | { errors: FieldError[] } {
  const v = validated(raw, input.memo);
  const { result, problems } = v;
  if (!result.ok || problems.length > 0) return { errors: [...problems] };
  const route = result.route;
  const hosts = route.spec.hostnames && route.spec.hostnames.length > 0 ? route.spec.hostnames : ['*'];
  const hit = v.compiled;
  if (
    hit &&
    hit.catalog === input.catalog &&
    hit.kube === input.kube &&
    hit.settings === ctx.settings &&
    hit.certificateRefs === input.certificateRefs &&
    hit.addresses === (ctx.addresses?.join(',') ?? '')
  ) {
    for (const c of hit.clusters) if (!ctx.clusters.has(c.id)) ctx.clusters.set(c.id, c);
    status.unresolved = [...hit.unresolved];
    status.backends = hit.backends.map(copyBackendStatus);
    markStale(status, input.catalog);
    return { entries: hit.entries, hosts };
  }
  const createdIso = route.metadata.creationTimestamp;
  const createdMs = createdIso ? Date.parse(createdIso) : Number.NaN;
  const clustersBefore = ctx.clusters.size;
  ctx.touched = new Set();
  try {
    const entries = compileRoute(route, key, Number.isFinite(createdMs) ? createdMs : 0, ctx, status);
    checkCertificateRefs(route, route.metadata.namespace ?? 'default', input.certificateRefs, status);
    if (input.memo)
      v.compiled = {
        catalog: input.catalog,
        kube: input.kube,
        settings: ctx.settings,
        certificateRefs: input.certificateRefs,
        addresses: ctx.addresses?.join(',') ?? '',
        entries,
        clusters: [...ctx.touched].map((id) => ctx.clusters.get(id)!),
        unresolved: [...status.unresolved],
        backends: status.backends.map(copyBackendStatus),
      };
    markStale(status, input.catalog);
    return { entries, hosts };
  } catch (err) {
    // Clusters this route added before it failed are not part of the table (a Map keeps insertion order).
    let i = 0;
    for (const id of [...ctx.clusters.keys()]) if (i++ >= clustersBefore) ctx.clusters.delete(id);
    status.unresolved = [];
    status.backends = [];
    return { errors: [{ path: ['spec'], message: `cannot be compiled: ${(err as Error).message}` }] };
  }
}

/**
 * compile's rule processor: one validated GatewayRoute → its table entries (matches, filters, traffic settings,
 * policies, redirect/rewrite, backends as cluster references) and what it learned for the route's status.
 */
import type {
  GatewayRoute,
  HeaderModifierSpec,
  LoadBalancerSpec,
  PathModifierSpec,
  RetrySpec,
  RouteBackend,
  RouteRule,
  TimeoutsSpec,
} from '../api/gateway-route.ts';
import { parseDuration } from '../lib/duration.ts';
import { normalizePrefix } from '../table/index.ts';
import {
  type BackendRef,
  type CatalogAction,
  DEFAULT_RETRY,
  type EntryData,
  type HeaderEdits,
  type LoadBalancerData,
  type MatchData,
  type MirrorData,
  type PathRewrite,
  type RetryData,
  type TimeoutsData,
} from '../table/types.ts';
import {
  consulCluster,
  fallbackClusters,
  hasTags,
  kubeCluster,
  poolOf,
  setServing,
  withUpstreamTls,
} from './clusters.ts';
import { catalogPeers, consulWhere } from './consul-mesh.ts';
import { type BackendStatus, type Ctx, cmp, type RouteStatus } from './context.ts';
import { compressionDataOf, corsDataOf, mirrorShare } from './filters.ts';
import { policyDataOf } from './policies.ts';

/** Rule traffic settings → table data; undefined when the rule keeps every default (smaller tables). */
export function loadBalancerOf(spec: LoadBalancerSpec | undefined): LoadBalancerData | undefined {
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

export function timeoutsOf(spec: TimeoutsSpec | undefined): TimeoutsData | undefined {
  if (!spec) return undefined;
  const out: TimeoutsData = {};
  if (spec.request !== undefined) out.requestMs = parseDuration(spec.request);
  if (spec.backendRequest !== undefined) out.backendRequestMs = parseDuration(spec.backendRequest);
  if (spec.responseHeaders !== undefined) out.responseHeadersMs = parseDuration(spec.responseHeaders);
  if (spec.idle !== undefined) out.idleMs = parseDuration(spec.idle);
  return Object.keys(out).length > 0 ? out : undefined;
}

export function retryOf(spec: RetrySpec | undefined): RetryData | undefined {
  if (!spec) return undefined;
  return {
    attempts: spec.attempts ?? DEFAULT_RETRY.attempts,
    on: spec.retryOn ? [...new Set(spec.retryOn)].sort(cmp) : DEFAULT_RETRY.on,
    backoffMs: spec.backoff ? parseDuration(spec.backoff) : DEFAULT_RETRY.backoffMs,
  };
}

/** Sets the traffic fields an entry carries only when a rule changes a default. */
export function setTraffic(
  entry: EntryData,
  lb: LoadBalancerData | undefined,
  timeouts: TimeoutsData | undefined,
  retry: RetryData | undefined,
): void {
  if (lb) entry.loadBalancer = lb;
  if (timeouts) entry.timeouts = timeouts;
  if (retry) entry.retry = retry;
}

export function headerEdits(spec: HeaderModifierSpec | undefined): HeaderEdits | undefined {
  if (!spec) return undefined;
  return {
    set: (spec.set ?? []).map((h) => [h.name.toLowerCase(), h.value] as [string, string]),
    add: (spec.add ?? []).map((h) => [h.name.toLowerCase(), h.value] as [string, string]),
    remove: (spec.remove ?? []).map((h) => h.toLowerCase()),
  };
}

export function pathRewrite(spec: PathModifierSpec | undefined): PathRewrite | undefined {
  if (!spec) return undefined;
  if (spec.type === 'ReplaceRegexMatch')
    return { type: 'ReplaceRegexMatch', value: spec.replaceRegexMatch ?? '/' };
  return spec.type === 'ReplaceFullPath'
    ? { type: 'ReplaceFullPath', value: spec.replaceFullPath ?? '/' }
    : { type: 'ReplacePrefixMatch', value: spec.replacePrefixMatch ?? '/' };
}

export function matchesOf(rule: RouteRule): MatchData[] {
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

export function backendRef(b: RouteBackend, namespace: string, localDc: string): string {
  if (b.consul) {
    const tags = b.consul.tags?.length ? `[${[...b.consul.tags].sort(cmp).join(',')}]` : '';
    const where = b.consul.peer !== undefined ? `peer:${b.consul.peer}` : (b.consul.datacenter ?? localDc);
    return `consul:${b.consul.service}@${where}${tags}${b.consul.mesh ? '~mesh' : ''}`;
  }
  return `service:${b.service!.namespace ?? namespace}/${b.service!.name}:${b.service!.port}`;
}

export function compileRoute(
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

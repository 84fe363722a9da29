/**
 * compile: (routes, catalog, settings) → { table, statuses }. Pure: no I/O, no clocks, no globals; the same
 * input in any order gives the same table (byte for byte) and the same statuses.
 *
 * This file is the driver — validate each route once (memo), fall back to a route's last valid version, join the
 * routes' entries and clusters, order them, serialize and hash the table once. The work per input kind is in its
 * processors: `rules.ts` (a route's rules → entries), `clusters.ts` (backends → clusters and endpoints),
 * `consul-mesh.ts` (the catalog route's peers, mesh backends), `filters.ts`, `policies.ts`, `precedence.ts` (the
 * order within a host) and `gateway-api/` (HTTPRoutes translated into routes, match conflicts).
 */
import type { CatalogSnapshot, KubeServiceSnapshot } from '../api/catalog.ts';
import {
  type CertificateRefSnapshot,
  certificateRefProblem,
  clientCertificateNames,
} from '../api/certificate-refs.ts';
import type { GatewayRoute } from '../api/gateway-route.ts';
import type { RouteSource } from '../api/route-source.ts';
import { type FieldError, routeKey, validateRoute } from '../api/validate.ts';
import type { ClusterData, EntryData, HostData, TableData } from '../table/types.ts';
import { encodeTableBody, rememberWire } from '../table/wire.ts';
import {
  type BackendStatus,
  type CompileSettings,
  type Ctx,
  cmp,
  DEFAULT_SETTINGS,
  type LastValidRoute,
  type RouteStatus,
} from './context.ts';
import { routeConflicts } from './gateway-api/conflicts.ts';
import { routePolicyErrors } from './policies.ts';
import { comparePrecedence } from './precedence.ts';
import { compileRoute } from './rules.ts';

export {
  type BackendStatus,
  type CompileSettings,
  DEFAULT_POOL,
  DEFAULT_SETTINGS,
  type LastValidRoute,
  type RouteStatus,
} from './context.ts';
export { comparePrecedence } from './precedence.ts';

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

export interface CompileResult {
  table: TableData;
  statuses: RouteStatus[];
  /**
   * The last valid version of every route in the input (routes no longer in the input are gone: a deleted route is
   * never served again). The input of the next compile's `lastValid`.
   */
  lastValid: Map<string, LastValidRoute>;
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

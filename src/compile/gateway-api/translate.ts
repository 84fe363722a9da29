/**
 * Gateway API → routing input, pure: GatewayClasses, Gateways, HTTPRoutes, ReferenceGrants and ConsulServices in,
 * out the GatewayRoutes compile reads (one per HTTPRoute attached to at least one of edgegate's listeners) and every
 * status the spec asks for (GatewayClass Accepted; Gateway Accepted/Programmed, addresses, per-listener conditions
 * and attachedRoutes; HTTPRoute parents[] Accepted/ResolvedRefs). No I/O, no clocks: the same snapshot gives the
 * same result. docs/gateway-api.md says what is supported and how.
 *
 * The data plane has no listeners of its own beyond one HTTP and one HTTPS port, so a listener is served when its
 * protocol and port are those of the gateway (settings.httpPort / settings.httpsPort); an HTTPRoute's hostnames are
 * the union, over the listeners it attached to, of its hostnames intersected with the listener's hostname.
 */
import {
  type BackendRefSpec,
  CONSUL_SERVICE_KIND,
  type Condition,
  type ConsulServiceObject,
  GATEWAY_API_GROUP,
  GATEWAY_CONTROLLER_NAME,
  type GatewayApiSnapshot,
  type GatewayClassObject,
  type GatewayObject,
  type GatewayStatus,
  type HTTPRouteObject,
  type HTTPRouteRuleSpec,
  type LabelSelector,
  type ListenerSpec,
  type ListenerStatus,
  type ParentReference,
  type RouteGroupKind,
  type RouteParentStatus,
} from '../../api/gateway-api.ts';
import { API_GROUP, API_VERSION, KIND } from '../../api/gateway-route.ts';
import type { RouteSource } from '../../api/route-source.ts';

export const GATEWAY_API_ORIGIN = 'gateway-api';
/** A backend that cannot be served (invalid kind, not permitted, not found): requests to it get 500. */
export const INVALID_BACKEND_SERVICE = 'edgegate.invalid-backend';
/** Suffix of a translated route's name: `..` never occurs in a Kubernetes name, so no GatewayRoute has it. */
export const HTTPROUTE_SUFFIX = '..httproute';

export interface GatewayApiSettings {
  /** The ports clients reach the gateway's HTTP and HTTPS listeners on (the chart's hostPorts). */
  httpPort: number;
  httpsPort: number | undefined;
  /** The gateway's addresses (the node IP), for Gateway status. */
  addresses: string[];
  /** Namespaces whose Secrets the gateway may read (--tls-secret-namespaces). */
  secretNamespaces: string[];
}

/** What the certificate source knows of a Secret (`namespace/name`); absent: not known yet. */
export type SecretVerdicts = Record<string, { ok: boolean; message?: string }>;

export interface ListenerCertificate {
  /** `namespace/name` of the Secret. */
  secret: string;
  hostname: string | undefined;
}

export interface TranslatedRoute {
  /** `namespace/name` of the HTTPRoute. */
  httpRoute: string;
  source: RouteSource;
  /** The addresses of the Gateways it attached to, when Gateways have addresses of their own (isolation). */
  listenerAddresses?: string[];
}

export interface GatewayApiResult {
  routes: TranslatedRoute[];
  /** Secrets HTTPS listeners name (permitted ones only): what the certificate source should load. */
  certificates: ListenerCertificate[];
  classStatuses: Map<string, { generation?: number; conditions: Condition[] }>;
  gatewayStatuses: Map<string, { generation?: number; status: GatewayStatus }>;
  /** Per HTTPRoute (`namespace/name`): the parents edgegate answers for. */
  routeStatuses: Map<string, { generation?: number; parents: RouteParentStatus[] }>;
}

const HTTPROUTE_KIND: RouteGroupKind = { group: GATEWAY_API_GROUP, kind: 'HTTPRoute' };
const SUPPORTED_FILTERS = new Set([
  'RequestHeaderModifier',
  'ResponseHeaderModifier',
  'RequestRedirect',
  'URLRewrite',
]);

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const nsOf = (m: { namespace?: string }) => m.namespace ?? 'default';
const keyOf = (o: { metadata: { name: string; namespace?: string } }) =>
  `${nsOf(o.metadata)}/${o.metadata.name}`;

function cond(
  type: string,
  ok: boolean,
  reason: string,
  message: string,
  generation: number | undefined,
): Condition {
  return {
    type,
    status: ok ? 'True' : 'False',
    reason,
    message,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
}

/** Gateway API hostname intersection: the more specific of two hostnames when one matches the other. */
export function intersectHostname(route: string, listener: string | undefined): string | undefined {
  if (listener === undefined || listener === '') return route;
  if (route === listener) return route;
  if (listener.startsWith('*.') && wildcardMatches(listener, route)) return route;
  if (route.startsWith('*.') && wildcardMatches(route, listener)) return listener;
  return undefined;
}

/** `*.example.com` matches `a.example.com`, `a.b.example.com` and `*.a.example.com`, never `example.com`. */
function wildcardMatches(wildcard: string, host: string): boolean {
  const suffix = wildcard.slice(1); // ".example.com"
  return host.length > suffix.length && host.endsWith(suffix);
}

function selectorMatches(sel: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const values = e.values ?? [];
    if (e.operator === 'In' && !(has && values.includes(labels[e.key]!))) return false;
    if (e.operator === 'NotIn' && has && values.includes(labels[e.key]!)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

interface ListenerState {
  spec: ListenerSpec;
  /** Routes may attach (protocol and port are edgegate's, no conflict); its certificates may still be missing. */
  accepted: boolean;
  /** Accepted and every reference resolved: Programmed. */
  valid: boolean;
  kinds: RouteGroupKind[];
  status: ListenerStatus;
}

interface GatewayState {
  obj: GatewayObject;
  listeners: ListenerState[];
  /** Its address (assignAddresses); undefined: none left in the pool. */
  address?: string | undefined;
}

/**
 * One address per Gateway when the pool has more than one (Gateways isolated by address): a Gateway keeps the
 * address its status already shows while the pool has it and no older Gateway holds it; the others get the free
 * ones in pool order, oldest Gateway first; none left: no address (Programmed=False, AddressNotAssigned). With one
 * address (the default: the node's), every Gateway has it.
 */
function assignAddresses(gateways: GatewayState[], pool: string[]): void {
  if (pool.length <= 1) {
    for (const g of gateways) g.address = pool[0];
    return;
  }
  const created = (g: GatewayState) => {
    const c = g.obj.metadata.creationTimestamp;
    return c instanceof Date ? c.toISOString() : (c ?? '');
  };
  const order = [...gateways].sort((a, b) => cmp(created(a), created(b)) || cmp(keyOf(a.obj), keyOf(b.obj)));
  const taken = new Set<string>();
  for (const g of order) {
    const shown = (g.obj.status as { addresses?: { value?: string }[] } | undefined)?.addresses?.[0]?.value;
    if (shown && pool.includes(shown) && !taken.has(shown)) {
      g.address = shown;
      taken.add(shown);
    }
  }
  for (const g of order) {
    if (g.address !== undefined) continue;
    g.address = pool.find((a) => !taken.has(a));
    if (g.address !== undefined) taken.add(g.address);
  }
}

/** A ReferenceGrant in `toNamespace` lets objects of `fromKind` in `fromNamespace` refer to `toKind` `toName`. */
function granted(
  snap: GatewayApiSnapshot,
  fromGroup: string,
  fromKind: string,
  fromNamespace: string,
  toGroup: string,
  toKind: string,
  toNamespace: string,
  toName: string,
): boolean {
  return snap.grants.some(
    (g) =>
      nsOf(g.metadata) === toNamespace &&
      g.spec.from.some(
        (f) => f.group === fromGroup && f.kind === fromKind && f.namespace === fromNamespace,
      ) &&
      g.spec.to.some((t) => t.group === toGroup && t.kind === toKind && (!t.name || t.name === toName)),
  );
}

export function ourClasses(classes: GatewayClassObject[]): Set<string> {
  return new Set(
    classes.filter((c) => c.spec.controllerName === GATEWAY_CONTROLLER_NAME).map((c) => c.metadata.name),
  );
}

export function translateGatewayApi(
  snap: GatewayApiSnapshot,
  settings: GatewayApiSettings,
  secrets: SecretVerdicts,
): GatewayApiResult {
  const result: GatewayApiResult = {
    routes: [],
    certificates: [],
    classStatuses: new Map(),
    gatewayStatuses: new Map(),
    routeStatuses: new Map(),
  };
  const classes = ourClasses(snap.classes);
  for (const c of snap.classes) {
    if (!classes.has(c.metadata.name)) continue;
    const g = c.metadata.generation;
    result.classStatuses.set(c.metadata.name, {
      ...(g !== undefined ? { generation: g } : {}),
      conditions: [cond('Accepted', true, 'Accepted', `accepted by ${GATEWAY_CONTROLLER_NAME}`, g)],
    });
  }
  const nsLabels = new Map(snap.namespaces.map((n) => [n.metadata.name, n.metadata.labels ?? {}]));

  // ── Gateways and their listeners ──
  const gateways = new Map<string, GatewayState>();
  for (const gw of [...snap.gateways].sort((a, b) => cmp(keyOf(a), keyOf(b)))) {
    if (!classes.has(gw.spec.gatewayClassName)) continue;
    const state = gatewayState(gw, snap, settings, secrets, result.certificates);
    gateways.set(keyOf(gw), state);
  }

  assignAddresses([...gateways.values()], settings.addresses);
  const isolated = settings.addresses.length > 1;

  // ── HTTPRoutes ──
  const consul = new Map<string, ConsulServiceObject>(snap.consulServices.map((c) => [keyOf(c), c]));
  const sorted = snap.routes.map((r) => ({ r, k: keyOf(r) })).sort((a, b) => cmp(a.k, b.k));
  for (const { r: route, k: routeKey } of sorted) {
    const routeNs = nsOf(route.metadata);
    const gen = route.metadata.generation;
    const parents: RouteParentStatus[] = [];
    const hostnames = new Set<string>();
    const addresses = new Set<string>();
    let catchAll = false;
    const unsupported = unsupportedFields(route);
    const backends = translateRules(route, snap, consul);
    for (const ref of route.spec.parentRefs ?? []) {
      if ((ref.group ?? GATEWAY_API_GROUP) !== GATEWAY_API_GROUP || (ref.kind ?? 'Gateway') !== 'Gateway')
        continue;
      const gw = gateways.get(`${ref.namespace ?? routeNs}/${ref.name}`);
      if (!gw) continue; // not a Gateway of ours: its controller answers, not us
      const attach = attachTo(route, ref, gw, nsLabels);
      let accepted = attach.listeners.length > 0;
      let acceptedCond: Condition;
      if (!accepted) acceptedCond = cond('Accepted', false, attach.reason, attach.message, gen);
      else if (unsupported) {
        accepted = false;
        acceptedCond = cond('Accepted', false, 'UnsupportedValue', unsupported, gen);
      } else acceptedCond = cond('Accepted', true, 'Accepted', 'attached', gen);
      if (accepted) {
        if (gw.address !== undefined) addresses.add(gw.address);
        for (const l of attach.listeners) {
          l.status.attachedRoutes++;
          const hs = route.spec.hostnames ?? [];
          if (hs.length === 0) {
            if (l.spec.hostname) hostnames.add(l.spec.hostname);
            else catchAll = true;
          } else
            for (const h of hs) {
              const x = intersectHostname(h, l.spec.hostname);
              if (x) hostnames.add(x);
            }
        }
      }
      const resolved = backends.problem
        ? cond('ResolvedRefs', false, backends.problem.reason, backends.problem.message, gen)
        : cond('ResolvedRefs', true, 'ResolvedRefs', 'every backendRef resolved', gen);
      parents.push({
        parentRef: parentRefOut(ref),
        controllerName: GATEWAY_CONTROLLER_NAME,
        conditions: [acceptedCond, resolved],
      });
    }
    if (parents.length === 0) continue;
    result.routeStatuses.set(routeKey, { ...(gen !== undefined ? { generation: gen } : {}), parents });
    if (!catchAll && hostnames.size === 0) continue;
    // Isolated Gateways: a route attached only to Gateways without an address is served nowhere.
    if (isolated && addresses.size === 0) continue;
    const metadata: Record<string, unknown> = {
      name: `${route.metadata.name}${HTTPROUTE_SUFFIX}`,
      namespace: routeNs,
    };
    if (gen !== undefined) metadata.generation = gen;
    if (route.metadata.uid !== undefined) metadata.uid = route.metadata.uid;
    const created = route.metadata.creationTimestamp;
    if (created !== undefined)
      metadata.creationTimestamp = created instanceof Date ? created.toISOString() : created;
    const spec: Record<string, unknown> = { rules: backends.rules };
    if (!catchAll) spec.hostnames = [...hostnames].sort(cmp);
    result.routes.push({
      httpRoute: routeKey,
      source: {
        raw: { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: KIND, metadata, spec },
        origin: `${GATEWAY_API_ORIGIN}:HTTPRoute ${routeKey}`,
      },
      ...(isolated ? { listenerAddresses: [...addresses].sort(cmp) } : {}),
    });
  }

  for (const [key, gw] of gateways) {
    const g = gw.obj.metadata.generation;
    const anyValid = gw.listeners.some((l) => l.valid);
    const allValid = gw.listeners.every((l) => l.valid);
    const addressed = gw.address !== undefined;
    const unsupportedAddress = (gw.obj.spec.addresses ?? []).length > 0;
    const status: GatewayStatus = {
      conditions: [
        unsupportedAddress
          ? cond('Accepted', false, 'UnsupportedAddress', 'spec.addresses is not supported', g)
          : allValid
            ? cond('Accepted', true, 'Accepted', 'accepted', g)
            : anyValid
              ? cond('Accepted', true, 'ListenersNotValid', 'some listeners are not valid', g)
              : cond('Accepted', false, 'ListenersNotValid', 'no listener is valid', g),
        !addressed
          ? cond('Programmed', false, 'AddressNotAssigned', 'the gateway has no address yet', g)
          : anyValid && !unsupportedAddress
            ? cond('Programmed', true, 'Programmed', 'programmed', g)
            : cond('Programmed', false, 'Invalid', 'no listener is valid', g),
      ],
      listeners: gw.listeners.map((l) => l.status),
    };
    if (gw.address !== undefined) status.addresses = [{ type: addressType(gw.address), value: gw.address }];
    result.gatewayStatuses.set(key, { ...(g !== undefined ? { generation: g } : {}), status });
  }
  return result;
}

function addressType(value: string): string {
  return /^[0-9.]+$/.test(value) || value.includes(':') ? 'IPAddress' : 'Hostname';
}

function parentRefOut(ref: ParentReference): ParentReference {
  const out: ParentReference = {
    group: ref.group ?? GATEWAY_API_GROUP,
    kind: ref.kind ?? 'Gateway',
    name: ref.name,
  };
  if (ref.namespace !== undefined) out.namespace = ref.namespace;
  if (ref.sectionName !== undefined) out.sectionName = ref.sectionName;
  if (ref.port !== undefined) out.port = ref.port;
  return out;
}

function gatewayState(
  gw: GatewayObject,
  snap: GatewayApiSnapshot,
  settings: GatewayApiSettings,
  secrets: SecretVerdicts,
  certificates: ListenerCertificate[],
): GatewayState {
  const g = gw.metadata.generation;
  const gwNs = nsOf(gw.metadata);
  const listeners: ListenerState[] = [];
  // Conflicts: two listeners on one port with one hostname.
  const seen = new Map<string, number>();
  for (const l of gw.spec.listeners ?? []) {
    const k = `${l.port}|${l.hostname ?? ''}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
  }
  for (const l of gw.spec.listeners ?? []) {
    const conditions: Condition[] = [];
    let valid = true;
    // Route kinds.
    const wanted = l.allowedRoutes?.kinds;
    const kinds: RouteGroupKind[] = [];
    let badKinds = false;
    if (!wanted || wanted.length === 0) kinds.push(HTTPROUTE_KIND);
    else
      for (const k of wanted) {
        if ((k.group ?? GATEWAY_API_GROUP) === GATEWAY_API_GROUP && k.kind === 'HTTPRoute') {
          if (!kinds.some((x) => x.kind === 'HTTPRoute')) kinds.push(HTTPROUTE_KIND);
        } else badKinds = true;
      }
    // Protocol and port.
    const protocolOk = l.protocol === 'HTTP' || (l.protocol === 'HTTPS' && settings.httpsPort !== undefined);
    const portOk = l.protocol === 'HTTP' ? l.port === settings.httpPort : l.port === settings.httpsPort;
    const conflicted = (seen.get(`${l.port}|${l.hostname ?? ''}`) ?? 0) > 1;
    // A listener edgegate cannot serve supports no route kind.
    if (!protocolOk) kinds.length = 0;
    // TLS certificates.
    let refProblem: { reason: string; message: string } | undefined;
    if (l.protocol === 'HTTPS' && protocolOk) {
      const mode = l.tls?.mode ?? 'Terminate';
      const refs = l.tls?.certificateRefs ?? [];
      if (mode !== 'Terminate') {
        refProblem = { reason: 'InvalidCertificateRef', message: `tls.mode ${mode} is not supported` };
      } else if (refs.length === 0) {
        refProblem = {
          reason: 'InvalidCertificateRef',
          message: 'an HTTPS listener needs tls.certificateRefs',
        };
      }
      for (const ref of refs) {
        if (refProblem) break;
        const ns = ref.namespace ?? gwNs;
        const key = `${ns}/${ref.name}`;
        if ((ref.group ?? '') !== '' || (ref.kind ?? 'Secret') !== 'Secret')
          refProblem = {
            reason: 'InvalidCertificateRef',
            message: `certificateRef ${ref.group ?? ''}/${ref.kind} ${key} is not a Secret`,
          };
        else if (
          ns !== gwNs &&
          !granted(snap, GATEWAY_API_GROUP, 'Gateway', gwNs, '', 'Secret', ns, ref.name)
        )
          refProblem = {
            reason: 'RefNotPermitted',
            message: `Secret ${key} is in another namespace and no ReferenceGrant allows it`,
          };
        else if (!settings.secretNamespaces.includes(ns))
          refProblem = {
            reason: 'InvalidCertificateRef',
            message: `Secret ${key}: the gateway may not read Secrets in namespace ${ns} (--tls-secret-namespaces)`,
          };
        else {
          certificates.push({ secret: key, hostname: l.hostname });
          const verdict = secrets[key];
          if (verdict && !verdict.ok)
            refProblem = {
              reason: 'InvalidCertificateRef',
              message: verdict.message ?? `Secret ${key} is not a valid TLS Secret`,
            };
        }
      }
    }
    if (!protocolOk) {
      valid = false;
      conditions.push(
        cond('Accepted', false, 'UnsupportedProtocol', `protocol ${l.protocol} is not supported`, g),
      );
    } else if (!portOk) {
      valid = false;
      conditions.push(
        cond(
          'Accepted',
          false,
          'PortUnavailable',
          `edgegate serves ${l.protocol} on port ${l.protocol === 'HTTP' ? settings.httpPort : settings.httpsPort}`,
          g,
        ),
      );
    } else conditions.push(cond('Accepted', true, 'Accepted', 'accepted', g));
    conditions.push(
      conflicted
        ? cond('Conflicted', true, 'HostnameConflict', 'another listener has this port and hostname', g)
        : cond('Conflicted', false, 'NoConflicts', 'no conflict', g),
    );
    if (conflicted) valid = false;
    if (badKinds)
      conditions.push(
        cond(
          'ResolvedRefs',
          false,
          'InvalidRouteKinds',
          'only HTTPRoute is supported in allowedRoutes.kinds',
          g,
        ),
      );
    else if (refProblem)
      conditions.push(cond('ResolvedRefs', false, refProblem.reason, refProblem.message, g));
    else conditions.push(cond('ResolvedRefs', true, 'ResolvedRefs', 'resolved', g));
    if (refProblem) valid = false;
    conditions.push(
      valid
        ? cond('Programmed', true, 'Programmed', 'programmed', g)
        : cond('Programmed', false, 'Invalid', 'the listener is not valid', g),
    );
    listeners.push({
      spec: l,
      accepted: protocolOk && portOk && !conflicted,
      valid,
      kinds,
      status: { name: l.name, supportedKinds: kinds, attachedRoutes: 0, conditions },
    });
  }
  return { obj: gw, listeners };
}

/** The listeners of `gw` a route attaches to through `ref`, or why none. */
function attachTo(
  route: HTTPRouteObject,
  ref: ParentReference,
  gw: GatewayState,
  nsLabels: Map<string, Record<string, string>>,
): { listeners: ListenerState[]; reason: string; message: string } {
  const routeNs = nsOf(route.metadata);
  const gwNs = nsOf(gw.obj.metadata);
  const candidates = gw.listeners.filter(
    (l) =>
      (ref.sectionName === undefined || l.spec.name === ref.sectionName) &&
      (ref.port === undefined || l.spec.port === ref.port),
  );
  if (candidates.length === 0)
    return {
      listeners: [],
      reason: 'NoMatchingParent',
      message: `Gateway ${gwNs}/${gw.obj.metadata.name} has no listener${ref.sectionName ? ` named ${ref.sectionName}` : ''}${ref.port ? ` on port ${ref.port}` : ''}`,
    };
  const allowed = candidates.filter((l) => {
    if (!l.kinds.some((k) => k.kind === 'HTTPRoute')) return false;
    const from = l.spec.allowedRoutes?.namespaces?.from ?? 'Same';
    if (from === 'All') return true;
    if (from === 'Same') return routeNs === gwNs;
    return selectorMatches(l.spec.allowedRoutes?.namespaces?.selector, nsLabels.get(routeNs) ?? {});
  });
  if (allowed.length === 0)
    return {
      listeners: [],
      reason: 'NotAllowedByListeners',
      message: `no listener of Gateway ${gwNs}/${gw.obj.metadata.name} allows HTTPRoutes from namespace ${routeNs}`,
    };
  const hs = route.spec.hostnames ?? [];
  const matching = allowed.filter(
    (l) => hs.length === 0 || hs.some((h) => intersectHostname(h, l.spec.hostname) !== undefined),
  );
  if (matching.length === 0)
    return {
      listeners: [],
      reason: 'NoMatchingListenerHostname',
      message: 'no listener hostname intersects the route hostnames',
    };
  // A listener whose certificates do not resolve still counts its routes (attachedRoutes); it is not Programmed.
  const accepted = matching.filter((l) => l.accepted);
  if (accepted.length === 0)
    return {
      listeners: [],
      reason: 'NotAllowedByListeners',
      message: 'the matching listeners are not accepted',
    };
  return { listeners: accepted, reason: 'Accepted', message: '' };
}

/** A field edgegate cannot honour, named; undefined when every field is supported. */
function unsupportedFields(route: HTTPRouteObject): string | undefined {
  for (const [ri, rule] of (route.spec.rules ?? []).entries()) {
    for (const [fi, f] of (rule.filters ?? []).entries())
      if (!SUPPORTED_FILTERS.has(f.type))
        return `spec.rules[${ri}].filters[${fi}]: filter type ${f.type} is not supported`;
    for (const [bi, b] of (rule.backendRefs ?? []).entries())
      if ((b.filters ?? []).length > 0)
        return `spec.rules[${ri}].backendRefs[${bi}].filters: per-backend filters are not supported`;
    for (const k of ['retry', 'sessionPersistence', 'cors'])
      if (rule[k] !== undefined) return `spec.rules[${ri}].${k} is not supported`;
  }
  return undefined;
}

/** The route's rules as GatewayRoute rules, and the first backendRef problem (ResolvedRefs). */
function translateRules(
  route: HTTPRouteObject,
  snap: GatewayApiSnapshot,
  consul: Map<string, ConsulServiceObject>,
): { rules: unknown[]; problem?: { reason: string; message: string } } {
  const routeNs = nsOf(route.metadata);
  let problem: { reason: string; message: string } | undefined;
  const rules = (route.spec.rules ?? []).map((rule) => {
    const out: Record<string, unknown> = {};
    if (rule.name) out.name = rule.name;
    if (rule.matches && rule.matches.length > 0) out.matches = rule.matches.map(matchOf);
    const filters = (rule.filters ?? []).filter((f) => SUPPORTED_FILTERS.has(f.type)).map(filterOf);
    if (filters.length > 0) out.filters = filters;
    const timeouts = timeoutsOf(rule);
    if (timeouts) out.timeouts = timeouts;
    if (filters.some((f) => f.type === 'RequestRedirect')) return out;
    const backends: Record<string, unknown>[] = [];
    for (const b of rule.backendRefs ?? []) {
      const r = backendOf(b, routeNs, snap, consul);
      if ('problem' in r) {
        problem ??= r.problem;
        backends.push({ service: { name: INVALID_BACKEND_SERVICE, port: 1 }, weight: b.weight ?? 1 });
      } else backends.push(r.backend);
    }
    // No backend, or only zero weights: every request gets 500 (the spec's answer for a rule that cannot route).
    if (!backends.some((b) => (b.weight as number | undefined) !== 0))
      backends.push({ service: { name: INVALID_BACKEND_SERVICE, port: 1 }, weight: 1 });
    out.backends = backends;
    return out;
  });
  return problem ? { rules, problem } : { rules };
}

function matchOf(m: HTTPRouteRuleSpec['matches'] extends (infer T)[] | undefined ? T : never): unknown {
  const out: Record<string, unknown> = {};
  if (m.path) out.path = { type: m.path.type ?? 'PathPrefix', value: m.path.value ?? '/' };
  if (m.headers?.length)
    out.headers = m.headers.map((h) => ({ type: h.type ?? 'Exact', name: h.name, value: h.value }));
  if (m.queryParams?.length)
    out.queryParams = m.queryParams.map((q) => ({ type: q.type ?? 'Exact', name: q.name, value: q.value }));
  if (m.method) out.method = m.method;
  return out;
}

function filterOf(f: HTTPRouteRuleSpec['filters'] extends (infer T)[] | undefined ? T : never): {
  type: string;
  [k: string]: unknown;
} {
  const field =
    f.type === 'URLRewrite' ? 'urlRewrite' : `${f.type.charAt(0).toLowerCase()}${f.type.slice(1)}`;
  return { type: f.type, [field]: f[field] };
}

function timeoutsOf(rule: HTTPRouteRuleSpec): Record<string, string> | undefined {
  const t = rule.timeouts;
  if (!t) return undefined;
  const out: Record<string, string> = {};
  if (t.request !== undefined) out.request = t.request;
  if (t.backendRequest !== undefined) out.backendRequest = t.backendRequest;
  return Object.keys(out).length > 0 ? out : undefined;
}

function backendOf(
  b: BackendRefSpec,
  routeNs: string,
  snap: GatewayApiSnapshot,
  consul: Map<string, ConsulServiceObject>,
): { backend: Record<string, unknown> } | { problem: { reason: string; message: string } } {
  const group = b.group ?? '';
  const kind = b.kind ?? 'Service';
  const ns = b.namespace ?? routeNs;
  const key = `${ns}/${b.name}`;
  const weight = b.weight ?? 1;
  const isService = (group === '' || group === 'core') && kind === 'Service';
  const isConsul = group === API_GROUP && kind === CONSUL_SERVICE_KIND;
  if (!isService && !isConsul)
    return {
      problem: {
        reason: 'InvalidKind',
        message: `backendRef ${group}/${kind} ${key}: kind is not supported`,
      },
    };
  if (
    ns !== routeNs &&
    !granted(snap, GATEWAY_API_GROUP, 'HTTPRoute', routeNs, isService ? '' : API_GROUP, kind, ns, b.name)
  )
    return {
      problem: {
        reason: 'RefNotPermitted',
        message: `backendRef ${kind} ${key} is in another namespace and no ReferenceGrant allows it`,
      },
    };
  if (isConsul) {
    const cs = consul.get(key);
    if (!cs) return { problem: { reason: 'BackendNotFound', message: `ConsulService ${key} not found` } };
    const c: Record<string, unknown> = { service: cs.spec.service };
    if (cs.spec.datacenter) c.datacenter = cs.spec.datacenter;
    if (cs.spec.tags?.length) c.tags = cs.spec.tags;
    if (cs.spec.passingOnly !== undefined) c.passingOnly = cs.spec.passingOnly;
    return { backend: { consul: c, weight } };
  }
  const ports = snap.services[key];
  if (!ports) return { problem: { reason: 'BackendNotFound', message: `Service ${key} not found` } };
  if (b.port === undefined)
    return { problem: { reason: 'UnsupportedValue', message: `backendRef Service ${key} needs a port` } };
  const service: Record<string, unknown> = { name: b.name, port: b.port };
  if (ns !== routeNs) service.namespace = ns;
  return { backend: { service, weight } };
}

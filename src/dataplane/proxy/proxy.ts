/**
 * The request pipeline of a worker: normalize → match → redirect | pick backend → hand the request to an Exchange
 * (pick endpoint per try, forward over the endpoint's undici Pool, stream both ways with backpressure, retries,
 * timeouts). Tables arrive whole and are swapped in between requests: a request keeps the table it started with.
 * Per-endpoint state (pools, in-flight counts, outlier ejection) and per-cluster retry budgets outlive tables.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { EJECTIONS_BY_SERVICE, REFUSED_BY_SERVICE } from '../../cluster/worker-report.ts';
import type { GatewayErrorCode } from '../../lib/errors.ts';
import { grpcRequestMs, isGrpcRequest } from '../../lib/grpc-status.ts';
import { type CompiledEntry, cookieOf, normalizeHost, RoutingTable } from '../../table/index.ts';
import {
  DEFAULT_RETRY,
  type EntryData,
  type PathRewrite,
  type RetryData,
  type TableData,
} from '../../table/types.ts';
import { type RequestObserver, recordOf } from '../observe/request-observer.ts';
import { clientAddress as policyClientAddress } from '../policy/client-address.ts';
import { applyPassHeaders } from '../policy/pass-headers.ts';
import type { PolicyRequest, PolicyRuntime, RuleGate } from '../policy/policy-runtime.ts';
import { type Pass, respondDenial } from '../policy/verdict.ts';
import type { AdmissionProtocol } from './admission.ts';
import { WeightedRoundRobin } from './balancer.ts';
import { declaredTooLarge, readLimitedBody, refuseDeclaredBody } from './body-limit.ts';
import { parsePeerPath } from './catalog-peer-path.ts';
import { ClusterRuntime, ClusterState, LB_CONSISTENT_HASH, lbMode } from './cluster-runtime.ts';
import { CorsPolicy, corsCounters } from './cors.ts';
import {
  Exchange,
  type ExchangeContext,
  ProxyCounters,
  RETRY_ON_BITS,
  type RulePolicy,
  sendError,
} from './exchange.ts';
import { FailoverStates, FailoverTarget } from './failover.ts';
import { filterCounterValues } from './filter-counters.ts';
import { requestHasBody, requestProto } from './h2-compat.ts';
import { acceptableRequestId, upstreamRequestHeaders } from './headers.ts';
import { normalizePath } from './normalize-path.ts';
import { DEFAULT_OUTLIER_SETTINGS, OutlierDetector, type OutlierSettings } from './outlier.ts';
import { answerHandlerError, answerUpgradeError } from './refusal-response.ts';
import { buffersBody, readRequestBody } from './request-body.ts';
import { type MirrorTarget, RequestMirrors } from './request-mirror.ts';
import { CompressionPolicy, compressionCounters } from './response-compression.ts';
import { hash32 } from './ring-hash.ts';
import { type UpstreamClient, UpstreamPools } from './upstream-pools.ts';
import {
  denyTunnel,
  Http1TunnelClient,
  proxyWebSocket,
  refuseTunnel,
  type TunnelClient,
} from './websocket.ts';
import { Http2TunnelClient, http1HandshakeHeaders } from './websocket-h2.ts';

const EMPTY = Buffer.alloc(0);

export { sendError };

export interface ProxySettings {
  /** How many proxies in front of the gateway are trusted to set X-Forwarded-For (0: none, the peer is the client). */
  trustedHops: number;
  /** Default per try: time for the upstream to send response headers (route: timeouts.responseHeaders). */
  upstreamHeadersTimeoutMs: number;
  /** Default per try: longest pause between two chunks of the upstream's response body (route: timeouts.idle). */
  upstreamBodyTimeoutMs: number;
  /** Default whole-request timeout, retries included; 0: none (route: timeouts.request). */
  requestTimeoutMs: number;
  /** Default per-try timeout until the response is complete; 0: none (route: timeouts.backendRequest). */
  backendRequestTimeoutMs: number;
  /** Retry policy of rules that set none. */
  retry: RetryData;
  /** Retries in progress per cluster may be at most this share of its active requests… */
  retryBudgetPercent: number;
  /** …or this many, whichever is larger (so a quiet cluster can still retry). */
  retryBudgetMinConcurrent: number;
  outlier: OutlierSettings;
  /** A proxied WebSocket with no traffic either way for this long is closed. */
  websocketIdleTimeoutMs: number;
  /** Keep `%2F` / `%5C` in paths (opaque) instead of refusing them with 400. */
  allowEncodedSlash: boolean;
  /** Scheme of the listener, for X-Forwarded-Proto and redirects. */
  proto: 'http' | 'https';
  /** Longest pause between two reads of a request body (nginx's `client_body_timeout`) → 408; 0: none. */
  clientBodyTimeoutMs: number;
  /**
   * Request bodies up to this many bytes are read completely before an upstream connection is taken (nginx's
   * `proxy_request_buffering`, bounded); larger ones are streamed. 0: every body is streamed.
   */
  requestBufferBytes: number;
  /** A response the client reads nothing of for this long is abandoned (nginx's `send_timeout`); 0: never. */
  sendTimeoutMs: number;
  /** Requests with an upstream try in flight per client connection; more wait (then 429). 0: no cap. */
  maxUpstreamRequestsPerConnection: number;
  /** RequestMirror copies in flight per worker; more are dropped (edgegate_mirror_dropped_total{reason="in_flight"}). */
  mirrorMaxInFlight: number;
  /** A mirror copy not answered completely within this is aborted. */
  mirrorTimeoutMs: number;
  /** HTTP client of cleartext HTTP/1.1 upstreams (upstream-pools.ts). */
  upstreamClient: UpstreamClient;
}

export const DEFAULT_PROXY_SETTINGS: ProxySettings = {
  trustedHops: 0,
  upstreamHeadersTimeoutMs: 60_000,
  upstreamBodyTimeoutMs: 60_000,
  requestTimeoutMs: 0,
  backendRequestTimeoutMs: 0,
  retry: DEFAULT_RETRY,
  retryBudgetPercent: 20,
  retryBudgetMinConcurrent: 3,
  outlier: DEFAULT_OUTLIER_SETTINGS,
  websocketIdleTimeoutMs: 300_000,
  allowEncodedSlash: false,
  proto: 'http',
  clientBodyTimeoutMs: 10_000,
  requestBufferBytes: 64 * 1024,
  sendTimeoutMs: 30_000,
  maxUpstreamRequestsPerConnection: 32,
  mirrorMaxInFlight: 128,
  mirrorTimeoutMs: 10_000,
  upstreamClient: 'raw',
};

/** Methods that may be sent twice (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

function policyOf(e: EntryData, s: ProxySettings): RulePolicy {
  const t = e.timeouts ?? {};
  const retry = e.retry ?? s.retry;
  let retryMask = 0;
  for (const on of retry.on) retryMask |= RETRY_ON_BITS[on] ?? 0;
  return {
    mode: lbMode(e.loadBalancer),
    hashHeader: e.loadBalancer?.hash?.header,
    hashCookie: e.loadBalancer?.hash?.cookie,
    hashSourceIP: e.loadBalancer?.hash?.sourceIP === true,
    requestMs: t.requestMs ?? s.requestTimeoutMs,
    backendRequestMs: t.backendRequestMs ?? s.backendRequestTimeoutMs,
    responseHeadersMs: t.responseHeadersMs ?? s.upstreamHeadersTimeoutMs,
    idleMs: t.idleMs ?? s.upstreamBodyTimeoutMs,
    attempts: retry.attempts,
    retryMask,
    backoffMs: retry.backoffMs,
    responseHeaders: e.responseHeaders,
    cors: e.cors ? new CorsPolicy(e.cors) : undefined,
    compression: e.compression ? new CompressionPolicy(e.compression) : undefined,
  };
}

/** What a rule needs at request time, built once per table. */
interface RuleRuntime {
  policy: RulePolicy;
  backends: WeightedRoundRobin<ClusterRuntime> | undefined;
  /** Request policies (IP, limits, shedding, auth) run before the exchange; undefined: none. */
  gate: RuleGate | undefined;
  /** RequestMirror filters; undefined: none. */
  mirrors: MirrorTarget[] | undefined;
  /** Backends with cross-datacenter failover, by primary cluster (failover.ts); undefined: none. */
  failover: Map<ClusterRuntime, FailoverTarget> | undefined;
}

/** A table made ready for serving: the index plus rule policies and cluster runtimes. */
class ServedTable {
  readonly table: RoutingTable;
  readonly clusters = new Map<string, ClusterRuntime>();
  readonly #rules = new Map<string, RuleRuntime>();

  constructor(
    data: TableData,
    pools: UpstreamPools,
    states: Map<string, ClusterState>,
    settings: ProxySettings,
    policies: PolicyRuntime | undefined,
    failover: FailoverStates,
  ) {
    this.table = new RoutingTable(data);
    const targets: FailoverTarget[] = [];
    const gates = policies?.buildGates(data.entries);
    for (const c of data.clusters) {
      let state = states.get(c.id);
      if (!state) {
        state = new ClusterState();
        states.set(c.id, state);
      }
      this.clusters.set(c.id, new ClusterRuntime(c, pools, state));
    }
    for (const e of data.entries) {
      if (this.#rules.has(e.ruleId) || (!e.backends && !e.catalog)) continue;
      const backends = e.backends
        ? new WeightedRoundRobin(
            e.backends.map((b) => this.clusters.get(b.cluster)!),
            e.backends.map((b) => b.weight),
          )
        : undefined;
      const mirrors = e.mirrors?.map((m) => ({
        cluster: this.clusters.get(m.cluster)!,
        fraction: m.fraction,
        maxBodyBytes: m.maxBodyBytes,
      }));
      this.#rules.set(e.ruleId, {
        policy: policyOf(e, settings),
        backends,
        gate: gates?.get(e.ruleId),
        mirrors,
        failover: this.#failoverOf(e, failover, targets),
      });
    }
    failover.install(targets);
  }

  /** The rule's backends with failover (rare: only routes that ask for it), by primary cluster. */
  #failoverOf(
    e: TableData['entries'][number],
    states: FailoverStates,
    targets: FailoverTarget[],
  ): Map<ClusterRuntime, FailoverTarget> | undefined {
    if (!e.catalog?.failover && !e.backends?.some((b) => b.failover !== undefined)) return undefined;
    let map: Map<ClusterRuntime, FailoverTarget> | undefined;
    const add = (primary: string, fallbacks: readonly string[], backend: string) => {
      const chain = [primary, ...fallbacks].map((id) => this.clusters.get(id)!);
      const t = new FailoverTarget(chain, states.state(e.route, backend));
      map ??= new Map();
      map.set(chain[0]!, t);
      targets.push(t);
    };
    for (const b of e.backends ?? []) if (b.failover) add(b.cluster, b.failover.clusters, b.failover.backend);
    const c = e.catalog;
    if (c?.failover)
      for (const [dc, services] of Object.entries(c.failover))
        for (const [svc, fallbacks] of Object.entries(services))
          if (c.services[dc]?.[svc]) add(c.services[dc][svc], fallbacks, `catalog:${dc}/${svc}`);
    return map;
  }

  rule(entry: CompiledEntry): RuleRuntime | undefined {
    return this.#rules.get(entry.data.ruleId);
  }
}

function clientAddressOf(req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

function rewritePath(path: string, rewrite: PathRewrite, entry: CompiledEntry): string {
  if (rewrite.type === 'ReplaceFullPath') return rewrite.value;
  if (rewrite.type === 'ReplaceRegexMatch')
    return substituteGroups(rewrite.value, entry.pathRegex?.exec(path));
  const rest = path.slice(entry.prefixLength);
  const base = rewrite.value.endsWith('/') ? rewrite.value.slice(0, -1) : rewrite.value;
  const joined = base + (rest === '' || rest.startsWith('/') ? rest : `/${rest}`);
  return joined === '' ? '/' : joined;
}

/** ingress-nginx rewrite-target: `$1`…`$9` in the new path are the path regex's capture groups ('' if unset). */
function substituteGroups(value: string, groups: RegExpExecArray | null | undefined): string {
  if (!value.includes('$')) return value;
  return value.replace(/\$([1-9])/g, (_, n: string) => groups?.[Number(n)] ?? '');
}

/** The origin-form part of a request target: `/p?q` as is; `http://h/p?q` → `/p?q`; anything else ''. */
export function originForm(target: string): string {
  if (target.charCodeAt(0) === 0x2f) return target;
  const scheme = target.startsWith('http://') ? 7 : target.startsWith('https://') ? 8 : -1;
  if (scheme < 0) return '';
  let i = scheme;
  while (i < target.length && target[i] !== '/' && target[i] !== '?') i++;
  if (i === target.length) return '/';
  return target[i] === '?' ? `/${target.slice(i)}` : target.slice(i);
}

/** Where a matched request goes: an error, a redirect, or a rule + cluster + upstream path. */
interface Routed {
  error: GatewayErrorCode | undefined;
  message: string | undefined;
  entry: CompiledEntry | undefined;
  rule: RuleRuntime | undefined;
  cluster: ClusterRuntime | undefined;
  /** Normalized request path (redirects) or upstream path (forwarding); no query. */
  path: string;
  /** The normalized request path routes matched (before rewrites): what policies, auth and logs see. */
  requestPath: string;
  /** The request path as received (origin form): a signature policy refuses it when it differs from requestPath. */
  rawPath: string;
  rawQuery: string;
  host: string;
}

/** A request that matched a route but cannot be forwarded: the route's policies still run first. */
function failedAfterMatch(r: Routed, code: GatewayErrorCode, message?: string): Routed {
  r.error = code;
  r.message = message;
  return r;
}

function failed(code: GatewayErrorCode, message?: string): Routed {
  return {
    error: code,
    message,
    entry: undefined,
    rule: undefined,
    cluster: undefined,
    path: '',
    requestPath: '',
    rawPath: '',
    rawQuery: '',
    host: '',
  };
}

export class ProxyPipeline {
  readonly settings: ProxySettings;
  readonly pools: UpstreamPools;
  readonly outlier: OutlierDetector;
  readonly counters = new ProxyCounters();
  readonly mirrors: RequestMirrors;
  /** Metrics and access log (observe/): set before the first table. */
  observer: RequestObserver | undefined;
  readonly #states = new Map<string, ClusterState>();
  /** Serving datacenter of each backend with failover, across tables. */
  readonly failover = new FailoverStates();
  readonly #ctx: ExchangeContext;
  readonly #policies: PolicyRuntime | undefined;
  #served: ServedTable | undefined;

  constructor(settings: Partial<ProxySettings> = {}, policies?: PolicyRuntime) {
    this.settings = { ...DEFAULT_PROXY_SETTINGS, ...settings };
    this.pools = new UpstreamPools(this.settings.upstreamClient);
    this.#policies = policies;
    this.outlier = new OutlierDetector(this.settings.outlier);
    this.mirrors = new RequestMirrors({
      maxInFlight: this.settings.mirrorMaxInFlight,
      timeoutMs: this.settings.mirrorTimeoutMs,
    });
    this.#ctx = {
      outlier: this.outlier,
      budgetPercent: this.settings.retryBudgetPercent,
      budgetMinConcurrent: this.settings.retryBudgetMinConcurrent,
      counters: this.counters,
      sendTimeoutMs: this.settings.sendTimeoutMs,
      clientBodyTimeoutMs: this.settings.clientBodyTimeoutMs,
      maxPerConnection: this.settings.maxUpstreamRequestsPerConnection,
    };
  }

  get version(): number {
    return this.#served?.table.version ?? 0;
  }

  get table(): RoutingTable | undefined {
    return this.#served?.table;
  }

  /** Swap in a new table. Requests already running keep the table they started with. */
  setTable(data: TableData): void {
    this.observer?.recorder.install(data);
    const states = new Map<string, ClusterState>();
    for (const c of data.clusters) {
      const prior = this.#states.get(c.id);
      if (prior) states.set(c.id, prior);
    }
    this.#served = new ServedTable(data, this.pools, states, this.settings, this.#policies, this.failover);
    this.#states.clear();
    for (const [id, st] of states) this.#states.set(id, st);
    this.pools.retain(data.clusters);
  }

  /** Worker-wide counters by the names observe/ turns into metrics (COUNTER_METRICS). */
  counterValues(): Record<string, number> {
    const c = this.counters;
    const o = this.outlier.stats();
    return {
      requests: c.requests,
      tries: c.tries,
      retries: c.retries,
      retriesRefusedByBudget: c.retriesRefusedByBudget,
      overloaded: c.overloaded,
      tryTimeouts: c.tryTimeouts,
      requestTimeouts: c.requestTimeouts,
      upstreamErrors: c.upstreamErrors,
      clientBodyTimeouts: c.clientBodyTimeouts,
      responsesAbandoned: c.responsesAbandoned,
      connectionQueued: c.connectionQueued,
      connectionRefused: c.connectionRefused,
      cancelledBeforeUpstream: c.cancelledBeforeUpstream,
      cancelledDrained: c.cancelledDrained,
      cancelledClosed: c.cancelledClosed,
      unsendable: c.unsendable,
      ejections: o.ejections,
      ejectionsRefusedByCap: o.refusedByCap,
      ...filterCounterValues(this.mirrors.counters, corsCounters, compressionCounters),
      // Per service and datacenter, as `name\u0000service\u0000datacenter` (summed across workers like the rest).
      ...Object.fromEntries(
        [...o.byService].flatMap(([key, [ejected, refused]]) => [
          [`${EJECTIONS_BY_SERVICE}\u0000${key}`, ejected],
          [`${REFUSED_BY_SERVICE}\u0000${key}`, refused],
        ]),
      ),
    };
  }

  /** Retry-budget counters of a cluster (metrics, tests). */
  clusterState(id: string): ClusterState | undefined {
    return this.#states.get(id);
  }

  #route(served: ServedTable, req: IncomingMessage, method = req.method ?? 'GET'): Routed {
    const target = originForm(req.url ?? '');
    const q = target.indexOf('?');
    const rawPath = q < 0 ? target : target.slice(0, q);
    const rawQuery = q < 0 ? '' : target.slice(q + 1);
    const path = normalizePath(rawPath, { allowEncodedSlash: this.settings.allowEncodedSlash });
    if (path === undefined) return failed('EDGEGATE_BAD_REQUEST', 'invalid request path');

    const host = normalizeHost(req.headers.host);
    const headers = req.headers;
    const entry = served.table.match({
      host,
      path,
      method,
      rawQuery,
      header: (name) => {
        const v = headers[name];
        return Array.isArray(v) ? v.join(', ') : v;
      },
      // Only for a table with address-scoped entries (Gateways isolated by address): nothing to read otherwise.
      localAddress: served.table.scoped ? plainAddress(req.socket.localAddress) : undefined,
    });
    if (!entry) return failed('EDGEGATE_NO_ROUTE');
    const data = entry.data;
    const routed: Routed = {
      error: undefined,
      message: undefined,
      entry,
      rule: undefined,
      cluster: undefined,
      path,
      requestPath: path,
      rawPath,
      rawQuery,
      host,
    };
    if (data.redirect) return routed;
    const rule = served.rule(entry);
    routed.rule = rule;
    if (data.catalog) {
      const rest = data.catalog.prefix === '/' ? path : path.slice(data.catalog.prefix.length);
      const s1 = rest.indexOf('/', 1);
      const dc = s1 < 0 ? rest.slice(1) : rest.slice(1, s1);
      const s2 = s1 < 0 ? -1 : rest.indexOf('/', s1 + 1);
      const service = s1 < 0 ? '' : s2 < 0 ? rest.slice(s1 + 1) : rest.slice(s1 + 1, s2);
      // Lookup failures are answered after the route's policies: a denied client learns nothing of the catalog,
      // and probing for services counts against a rate limit.
      if (dc === '' || service === '')
        return failedAfterMatch(
          routed,
          'EDGEGATE_NO_ROUTE',
          `expected ${data.catalog.prefix === '/' ? '' : data.catalog.prefix}/{datacenter}/{service}/{path}`,
        );
      // `{prefix}/peer/{peer}/{service}/…` when the route exposes cluster peers (docs/consul.md).
      if (dc === 'peer' && data.catalog.peers) {
        const pp = parsePeerPath(rest, s1);
        if (!pp)
          return failedAfterMatch(
            routed,
            'EDGEGATE_NO_ROUTE',
            `expected ${data.catalog.prefix === '/' ? '' : data.catalog.prefix}/peer/{peer}/{service}/{path}`,
          );
        const exported = data.catalog.peers[pp.peer];
        if (!exported)
          return failedAfterMatch(
            routed,
            'EDGEGATE_CATALOG_UNKNOWN_DATACENTER',
            `peer ${pp.peer} is unknown or not exposed`,
          );
        const peerCluster = exported[pp.service];
        if (!peerCluster)
          return failedAfterMatch(
            routed,
            'EDGEGATE_CATALOG_UNKNOWN_SERVICE',
            `service ${pp.service} is unknown or not exposed by peer ${pp.peer}`,
          );
        routed.cluster = served.clusters.get(peerCluster);
        routed.path = pp.path;
      } else {
        const services = data.catalog.services[dc];
        if (!services)
          return failedAfterMatch(
            routed,
            'EDGEGATE_CATALOG_UNKNOWN_DATACENTER',
            `datacenter ${dc} is unknown or not exposed`,
          );
        const clusterId = services[service];
        if (!clusterId)
          return failedAfterMatch(
            routed,
            'EDGEGATE_CATALOG_UNKNOWN_SERVICE',
            `service ${service} is unknown or not exposed in datacenter ${dc}`,
          );
        routed.cluster = served.clusters.get(clusterId);
        routed.path = s2 < 0 ? '/' : rest.slice(s2);
      }
    } else {
      routed.cluster = rule?.backends?.pick();
      if (data.rewrite?.path) routed.path = rewritePath(path, data.rewrite.path, entry);
    }
    if (rule?.failover !== undefined && routed.cluster !== undefined)
      routed.cluster = rule.failover.get(routed.cluster)?.choose() ?? routed.cluster;
    if (!rule) return failed('EDGEGATE_NO_HEALTHY_UPSTREAM');
    if (!routed.cluster) return failedAfterMatch(routed, 'EDGEGATE_NO_HEALTHY_UPSTREAM');
    if (routed.cluster.data.meshDenied !== undefined)
      return failedAfterMatch(routed, 'EDGEGATE_MESH_INTENTION_DENIED', routed.cluster.data.meshDenied);
    return routed;
  }

  #redirect(req: IncomingMessage, res: ServerResponse, r: Routed, requestId: string): void {
    const hostHeader = req.headers.host ?? '';
    const rd = r.entry!.data.redirect!;
    const proto = requestProto(req, this.settings.proto);
    const scheme = rd.scheme ?? proto;
    const colon = hostHeader.lastIndexOf(':');
    const requestPort = colon > hostHeader.lastIndexOf(']') && colon >= 0 ? hostHeader.slice(colon + 1) : '';
    // Gateway API: without a port, a redirect that names a scheme goes to that scheme's well-known port (80/443);
    // one that names none keeps the port the client used.
    const port = rd.port !== undefined ? String(rd.port) : rd.scheme ? '' : requestPort;
    const defaultPort = (scheme === 'https' && port === '443') || (scheme === 'http' && port === '80');
    const location = `${scheme}://${rd.hostname ?? r.host}${port && !defaultPort ? `:${port}` : ''}${
      rd.path ? rewritePath(r.path, rd.path, r.entry!) : r.path
    }${r.rawQuery ? `?${r.rawQuery}` : ''}`;
    res.writeHead(rd.statusCode, { location, 'content-length': 0, 'x-request-id': requestId });
    res.end();
  }

  /** The rule's httpsRedirect: same host, path and query on HTTPS's well-known port (like a scheme-only redirect). */
  #httpsRedirect(res: ServerResponse, r: Routed, statusCode: number, requestId: string): void {
    if (r.host === '') return sendError(res, 'EDGEGATE_BAD_REQUEST', requestId, 'no Host to redirect to');
    const location = `https://${r.host}${r.requestPath}${r.rawQuery ? `?${r.rawQuery}` : ''}`;
    res.writeHead(statusCode, { location, 'content-length': 0, 'x-request-id': requestId });
    res.end();
  }

  #upstreamHeaders(req: IncomingMessage, r: Routed, requestId: string, clientAddress: string): string[] {
    const h = req.headers;
    const hostHeader = h.host ?? '';
    const data = r.entry!.data;
    // From an untrusted peer (trustedHops 0, the default) every forwarded header is rebuilt from what the
    // gateway saw; from a trusted proxy the chain is extended and its scheme and host are kept.
    const trusted = this.settings.trustedHops > 0;
    const xff = h['x-forwarded-for'];
    const xfp = h['x-forwarded-proto'];
    const xfh = h['x-forwarded-host'];
    return upstreamRequestHeaders(
      req.rawHeaders,
      {
        host: data.rewrite?.hostname ?? (hostHeader || r.cluster!.data.service),
        clientAddress,
        proto: trusted && (xfp === 'https' || xfp === 'http') ? xfp : requestProto(req, this.settings.proto),
        originalHost: trusted && typeof xfh === 'string' && xfh !== '' ? xfh : hostHeader,
        requestId,
        priorForwardedFor: trusted && typeof xff === 'string' ? xff : undefined,
      },
      data.requestHeaders,
    );
  }

  #hashOf(policy: RulePolicy, req: IncomingMessage): number | undefined {
    let key: string | undefined;
    if (policy.hashHeader !== undefined) {
      const v = req.headers[policy.hashHeader];
      key = Array.isArray(v) ? v[0] : v;
    } else if (policy.hashCookie !== undefined) key = cookieOf(req.headers.cookie, policy.hashCookie);
    // The client address IP rules and rate limits use (trusted hops), not the TCP peer: forty clients behind one
    // trusted proxy are forty keys.
    else if (policy.hashSourceIP)
      key = policyClientAddress(
        req.socket.remoteAddress,
        req.headers['x-forwarded-for'],
        this.settings.trustedHops,
      ).text;
    return key === undefined || key === '' ? undefined : hash32(key);
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const incomingId = req.headers['x-request-id'];
    const requestId =
      typeof incomingId === 'string' && acceptableRequestId(incomingId) ? incomingId : randomUUID();
    const record = recordOf(res);
    if (record !== undefined) record.requestId = requestId;
    const served = this.#served;
    if (!served) return sendError(res, 'EDGEGATE_NO_ROUTE', requestId, 'no routing table yet');
    const r = this.#route(served, req);
    if (record !== undefined) {
      record.entry = r.entry?.data;
      record.cluster = r.cluster?.data;
      if (r.entry !== undefined) record.path = r.requestPath;
    }
    // The policy hook: after the match, before an endpoint is picked (order: src/dataplane/policy/policy-runtime.ts). A
    // matched request that cannot be forwarded (unknown catalog service, no healthy upstream) meets the policies
    // first, then gets its error.
    // A CORS preflight is answered here, before the policies (it carries no credentials) and whatever the upstream.
    const cors = r.rule?.policy.cors;
    if (cors !== undefined) {
      if (req.method === 'OPTIONS' && cors.preflight(req, res, requestId)) return;
      cors.preset(res, req.headers.origin);
    }
    const gate = r.rule?.gate;
    // A body limit is checked first, as nginx does (client_max_body_size, in its find-config phase).
    const maxBody = r.entry?.data.maxRequestBodyBytes;
    if (maxBody !== undefined && declaredTooLarge(req.headers['content-length'], maxBody))
      return refuseDeclaredBody(res, requestId, maxBody);
    // ingress-nginx ssl-redirect: before the policies, as nginx redirects in its rewrite phase (before access).
    if (r.entry?.data.httpsRedirect !== undefined && requestProto(req, this.settings.proto) === 'http')
      return this.#httpsRedirect(res, r, r.entry.data.httpsRedirect, requestId);
    if (r.error && gate === undefined) return sendError(res, r.error, requestId, r.message);
    if (r.entry!.data.redirect) return this.#redirect(req, res, r, requestId);
    if (gate === undefined) {
      const shed = this.#policies?.shedUngated(r.entry!.data.ruleId, requestId);
      if (shed !== undefined) return respondDenial(res, shed, requestId);
      return this.#forward(req, res, r, requestId, undefined);
    }
    const trace = record?.trace;
    trace?.policiesStart();
    gate.run(this.#policyRequest(req, requestId, r)).then(
      (v) => {
        if (trace !== undefined)
          trace.policiesEnd(v.allowed, v.allowed ? undefined : v.code, v.allowed ? undefined : v.reason);
        // After the listener's guard: an exception here answers this request, never ends the process.
        try {
          if (!v.allowed) return respondDenial(res, v, requestId);
          if (v.release) res.once('close', v.release);
          if (res.destroyed) return v.release?.();
          if (r.error) return sendError(res, r.error, requestId, r.message);
          this.#forward(req, res, r, requestId, v);
        } catch (err) {
          answerHandlerError(res, err, 'request');
        }
      },
      () => sendError(res, 'EDGEGATE_INTERNAL', requestId, 'policy evaluation failed'),
    );
  }

  /** What the policies see: the normalized path routes matched (never the raw target), the query as forwarded. */
  #policyRequest(
    req: IncomingMessage,
    requestId: string,
    r: Routed,
    method = req.method ?? 'GET',
  ): PolicyRequest {
    return {
      req,
      requestId,
      method,
      path: r.requestPath,
      rawPath: r.rawPath,
      rawQuery: r.rawQuery,
      host: r.host,
      proto: this.settings.proto,
    };
  }

  #forward(
    req: IncomingMessage,
    res: ServerResponse,
    r: Routed,
    requestId: string,
    pass: Pass | undefined,
    buffered?: Buffer | null,
  ): void {
    const hasBody = requestHasBody(req);
    const maxBody = r.entry!.data.maxRequestBodyBytes;
    if (
      maxBody !== undefined &&
      buffered === undefined &&
      hasBody &&
      pass?.body === undefined &&
      req.headers['content-length'] === undefined
    )
      return readLimitedBody(req, res, requestId, maxBody, this.settings.clientBodyTimeoutMs, (body) =>
        this.#forward(req, res, r, requestId, pass, body),
      );
    const policy = r.rule!.policy;
    const record = recordOf(res);
    const clientAddress = clientAddressOf(req);
    // gRPC bodies are message streams (client streaming, bidi): forwarded as they come, never buffered first.
    const grpc = hasBody && isGrpcRequest(req);
    const method = req.method ?? 'GET';
    const cluster = r.cluster!;
    let upstreamHeaders = this.#upstreamHeaders(req, r, requestId, clientAddress);
    if (pass) upstreamHeaders = applyPassHeaders(upstreamHeaders, pass);
    // gRPC needs `TE: trailers` end to end over HTTP/2 (the only TE value HTTP/2 allows).
    if (cluster.data.pool.protocol !== undefined && req.headers.te === 'trailers')
      upstreamHeaders.push('te', 'trailers');
    const exchange = new Exchange(this.#ctx, {
      req,
      res,
      policy,
      cluster,
      requestId,
      path: r.rawQuery ? `${r.path}?${r.rawQuery}` : r.path,
      method,
      headers: upstreamHeaders,
      body: buffered !== undefined ? buffered : (pass?.body ?? (hasBody ? req : null)),
      retryable: !hasBody && IDEMPOTENT.has(method),
      hash: policy.mode === LB_CONSISTENT_HASH ? this.#hashOf(policy, req) : undefined,
      record,
      grpc,
      // A gRPC call's deadline bounds it at the gateway too: DEADLINE_EXCEEDED then, even from a client that does
      // not cancel, and the upstream stream is cancelled.
      requestMs: grpc ? grpcRequestMs(req.headers['grpc-timeout'], policy.requestMs) : undefined,
    });
    // A small body is read whole before any upstream resource is taken (a slow upload holds no pooled connection).
    const s = this.settings;
    const mirrors = r.rule!.mirrors;
    const pending =
      mirrors === undefined
        ? undefined
        : this.mirrors.start(
            req,
            mirrors,
            method,
            r.rawQuery ? `${r.path}?${r.rawQuery}` : r.path,
            upstreamHeaders,
            hasBody,
            req.headers['content-length'],
          );
    if (pending !== undefined && hasBody && pass?.body === undefined) {
      // A mirrored body is read up to the larger of the two bounds (the copy needs it whole), then both go.
      const limit = Math.max(s.requestBufferBytes, pending.limit);
      if (buffersBody(req.headers['content-length'], limit)) {
        exchange.start(true);
        readRequestBody(req, pending.sinkFor(exchange), limit, s.clientBodyTimeoutMs);
      } else {
        exchange.start();
        pending.skip();
      }
      return;
    }
    if (
      hasBody &&
      !grpc &&
      pass?.body === undefined &&
      buffered === undefined &&
      buffersBody(req.headers['content-length'], s.requestBufferBytes)
    ) {
      exchange.start(true);
      readRequestBody(req, exchange, s.requestBufferBytes, s.clientBodyTimeoutMs);
    } else exchange.start();
    // After the request itself went: a copy never goes first.
    if (pending !== undefined) pending.send(hasBody ? pass!.body! : null, exchange);
  }

  /**
   * A WebSocket upgrade over HTTP/1.1 (the listeners only route `Upgrade: websocket` here): same matching and
   * balancing as plain requests, then a byte tunnel once the upstream answers 101.
   */
  handleUpgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    protocol: AdmissionProtocol = 'http1',
  ): void {
    const client = new Http1TunnelClient(socket, protocol);
    if (req.method !== 'GET') {
      const requestId = this.#requestIdOf(req);
      return refuseTunnel(client, 'EDGEGATE_BAD_REQUEST', requestId, 'a WebSocket upgrade must be a GET');
    }
    this.#tunnel(req, client, head, 'GET');
  }

  /**
   * A WebSocket over HTTP/2 (RFC 8441): an extended CONNECT with `:protocol websocket`, admitted by the listener.
   * Routed and checked like the GET it stands for; the upstream gets an HTTP/1.1 upgrade (with a fresh
   * Sec-WebSocket-Key: HTTP/2 clients send none) and the HTTP/2 stream becomes the tunnel.
   */
  handleExtendedConnect(req: IncomingMessage, res: ServerResponse, protocol: AdmissionProtocol): void {
    this.#tunnel(req, new Http2TunnelClient(res, protocol), EMPTY, 'GET');
  }

  #requestIdOf(req: IncomingMessage): string {
    const incomingId = req.headers['x-request-id'];
    return typeof incomingId === 'string' && acceptableRequestId(incomingId) ? incomingId : randomUUID();
  }

  #tunnel(req: IncomingMessage, client: TunnelClient, head: Buffer, method: string): void {
    const requestId = this.#requestIdOf(req);
    const served = this.#served;
    if (!served) return refuseTunnel(client, 'EDGEGATE_NO_ROUTE', requestId, 'no routing table yet');
    const r = this.#route(served, req, method);
    // As for plain requests: a matched route's policies run before its lookup errors.
    const gate = r.rule?.gate;
    // A route that sends plain HTTP to HTTPS takes no plain-HTTP WebSocket either (as its redirect routes refuse one).
    if (r.entry?.data.httpsRedirect !== undefined && requestProto(req, this.settings.proto) === 'http')
      return refuseTunnel(client, 'EDGEGATE_BAD_REQUEST', requestId, 'this route is served over HTTPS only');
    if (r.error && gate === undefined) return refuseTunnel(client, r.error, requestId, r.message);
    if (r.entry!.data.redirect)
      return refuseTunnel(client, 'EDGEGATE_BAD_REQUEST', requestId, 'this route redirects');
    if (gate === undefined) {
      const shed = this.#policies?.shedUngated(r.entry!.data.ruleId, requestId);
      if (shed !== undefined) return denyTunnel(client, shed, requestId);
      return this.#forwardUpgrade(req, client, head, r, requestId, undefined);
    }
    const socket = client.socket;
    gate.run(this.#policyRequest(req, requestId, r, method)).then(
      (v) => {
        try {
          if (!v.allowed) return denyTunnel(client, v, requestId);
          if (v.release) socket.once('close', v.release);
          if (socket.destroyed) return v.release?.();
          if (r.error) return refuseTunnel(client, r.error, requestId, r.message);
          this.#forwardUpgrade(req, client, head, r, requestId, v);
        } catch (err) {
          answerUpgradeError(socket, err);
        }
      },
      () => refuseTunnel(client, 'EDGEGATE_INTERNAL', requestId, 'policy evaluation failed'),
    );
  }

  #forwardUpgrade(
    req: IncomingMessage,
    client: TunnelClient,
    head: Buffer,
    r: Routed,
    requestId: string,
    pass: Pass | undefined,
  ): void {
    const clientAddress = clientAddressOf(req);
    const policy = r.rule!.policy;
    const hash = policy.mode === LB_CONSISTENT_HASH ? this.#hashOf(policy, req) : undefined;
    const up = r.cluster!.pick(policy.mode, hash, undefined);
    if (!up) return refuseTunnel(client, 'EDGEGATE_NO_HEALTHY_UPSTREAM', requestId);
    // The tunnel is an HTTP/1.1 upgrade upstream: an HTTP/2-only backend cannot carry it.
    if (up.settings.protocol !== undefined)
      return refuseTunnel(
        client,
        'EDGEGATE_UPSTREAM_PROTOCOL',
        requestId,
        `a WebSocket needs an HTTP/1.1 backend; this one is ${up.settings.protocol}`,
      );
    let headers = this.#upstreamHeaders(req, r, requestId, clientAddress);
    if (client instanceof Http2TunnelClient) headers = http1HandshakeHeaders(headers);
    proxyWebSocket({
      client,
      head,
      upstream: up,
      path: r.rawQuery ? `${r.path}?${r.rawQuery}` : r.path,
      headers: pass ? applyPassHeaders(headers, pass) : headers,
      requestId,
      connectTimeoutMs: policy.responseHeadersMs,
      idleTimeoutMs: this.settings.websocketIdleTimeoutMs,
      responseHeaders: policy.responseHeaders,
    });
  }

  async close(): Promise<void> {
    await Promise.all([this.pools.close(), this.#policies?.close()]);
  }
}

/** An IPv4 address as a dual-stack socket reports it (`::ffff:203.0.113.2`) → `203.0.113.2`. */
function plainAddress(address: string | undefined): string | undefined {
  return address?.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

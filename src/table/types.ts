/**
 * The RoutingTable as data: what compile/ produces, the primary sends to workers (cluster/) and persists as
 * last-known-good (control/last-known-good.ts),
 * and workers index for the hot path (index.ts). Plain JSON-safe values only, no classes, no functions.
 */

import type { PolicyData } from './policy-types.ts';

export type PathMatchType = 'Exact' | 'PathPrefix' | 'RegularExpression';
export type StringMatchType = 'Exact' | 'RegularExpression';

export interface MatchData {
  path: { type: PathMatchType; value: string };
  headers: { type: StringMatchType; name: string; value: string }[];
  queryParams: { type: StringMatchType; name: string; value: string }[];
  method?: string;
  /** Cookie matches (absent: none); cookie names are case-sensitive. */
  cookies?: { type: StringMatchType; name: string; value: string }[];
}

export interface HeaderEdits {
  set: [string, string][];
  add: [string, string][];
  remove: string[];
}

export interface PathRewrite {
  /** ReplaceRegexMatch: `value` with $1…$9 replaced by the capture groups of the entry's path regex. */
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch' | 'ReplaceRegexMatch';
  value: string;
}

export interface RedirectData {
  scheme?: 'http' | 'https';
  hostname?: string;
  port?: number;
  path?: PathRewrite;
  statusCode: number;
}

export interface PoolData {
  maxConnections: number;
  keepAliveTimeoutMs: number;
  pipelining: number;
  connectTimeoutMs: number;
  /** Requests allowed to wait for a connection beyond maxConnections × pipelining; more get a fast 503. */
  maxPendingRequests: number;
  /** Upstream TLS (absent: plain HTTP). */
  tls?: UpstreamTlsData;
  /** `h2`: HTTP/2 over TLS to the upstream (gRPC); `h2c`: cleartext HTTP/2, prior knowledge; absent: HTTP/1.1. */
  protocol?: 'h2' | 'h2c';
  /** Consul service mesh (Connect) mTLS: the identity the upstream must present (absent: not a mesh pool). */
  mesh?: MeshPoolData;
}

/**
 * A mesh upstream's expected identity: `spiffe://<trust domain>/ns/<namespace>/dc/<datacenter>/svc/<service>`
 * (the trust domain comes with the CA roots in the certificate set, not the table).
 */
export interface MeshPoolData {
  service: string;
  namespace: string;
  datacenter: string;
}

/** How the gateway connects to a TLS upstream. CA certificates are public: they may live in the table. */
export interface UpstreamTlsData {
  /** SNI and the name to verify (absent: the endpoint address). */
  serverName?: string;
  /** PEM CA bundle (absent: the system trust store). */
  caBundle?: string;
  /**
   * Client certificate to present (mTLS), by key `namespace/name`: the certificate and key travel in the workers'
   * certificate set (`CertSet.clients`), never in the table.
   */
  clientCertificate?: string;
}

/** How a rule picks an endpoint inside a backend. Absent: weighted round robin. */
export interface LoadBalancerData {
  type: 'RoundRobin' | 'LeastRequest' | 'ConsistentHash';
  /** ConsistentHash only: exactly one key source. `header` and `cookie` names are lower-case / as written. */
  hash?: { header?: string; cookie?: string; sourceIP?: boolean };
}

/** Per-rule timeouts in ms; 0 disables one. Absent fields take the worker's defaults (ProxySettings). */
export interface TimeoutsData {
  /** Whole exchange as the client sees it, retries included. */
  requestMs?: number;
  /** One try, from dispatch to the end of the upstream response (the per-try timeout). */
  backendRequestMs?: number;
  /** One try, until the upstream's response headers. */
  responseHeadersMs?: number;
  /** Longest pause between two chunks of the upstream's response body. */
  idleMs?: number;
}

export type RetryOn = 'connect-failure' | 'reset' | 'timeout' | '5xx' | '502' | '503' | '504';

export interface RetryData {
  /** Retries after the first try (0: off). */
  attempts: number;
  on: RetryOn[];
  /** Pause before each retry. */
  backoffMs: number;
}

/** Retry policy of a rule that sets none (and the base of one that sets some fields): nginx-like, safe. */
export const DEFAULT_RETRY: RetryData = { attempts: 1, on: ['connect-failure', 'reset'], backoffMs: 0 };

export interface EndpointData {
  address: string;
  port: number;
  weight: number;
  /** Instance id in its catalog (Consul service id, pod name…), for debugging and status. */
  id: string;
}

/** A set of endpoints the gateway balances over: one Consul service subset or one Kubernetes Service port. */
export interface ClusterData {
  id: string;
  kind: 'consul' | 'kube';
  /** Consul service name or `namespace/name` of the Kubernetes Service: the `service` metric label. */
  service: string;
  datacenter: string;
  endpoints: EndpointData[];
  pool: PoolData;
  /** A mesh backend the intentions deny: why (requests get 403). Absent: allowed, or not a mesh backend. */
  meshDenied?: string;
  /** A Gateway API backendRef that cannot be served (not found, not permitted, unknown kind): answered 500. */
  invalid?: true;
}

export interface BackendRef {
  cluster: string;
  weight: number;
  /** Cross-datacenter failover of a Consul backend (absent: none). */
  failover?: FailoverData;
}

/** A Consul backend's fallback datacenters (docs/consul.md "Failover across datacenters"). */
export interface FailoverData {
  /** The backend as the route status names it (`consul:billing@dc1`): the `backend` metric label. */
  backend: string;
  /** One cluster per fallback datacenter, in order; each request goes to the first with an endpoint to pick. */
  clusters: string[];
}

export interface CatalogAction {
  /** Normalized prefix ("/" or "/edge", never a trailing slash). */
  prefix: string;
  /** datacenter → service → cluster id, for every exposed service. */
  services: Record<string, Record<string, string>>;
  /** peer → service → cluster id, served at `{prefix}/peer/{peer}/{service}/…` (absent: no peers exposed). */
  peers?: Record<string, Record<string, string>>;
  /** datacenter → service → fallback cluster ids in order, for services whose route asks for failover. */
  failover?: Record<string, Record<string, string[]>>;
}

/** A rule's CORS filter (Gateway API HTTPCORSFilter), as the data plane applies it (dataplane/proxy/cors.ts). */
export interface CorsData {
  /** Lower-cased origin patterns (`*`, `https://*.example.com`, `http://a.example:8080`); empty: none allowed. */
  allowOrigins: string[];
  allowCredentials: boolean;
  /** Methods, or `['*']`; empty: the header is not sent. */
  allowMethods: string[];
  /** Lower-cased header names, or `['*']`. */
  allowHeaders: string[];
  exposeHeaders: string[];
  /** Seconds (Access-Control-Max-Age). */
  maxAge: number;
}

/** A RequestMirror filter: copies of a share of the rule's requests go to `cluster`. */
export interface MirrorData {
  cluster: string;
  /** Share mirrored, 0..1. */
  fraction: number;
  /** Bodies up to this many bytes are mirrored; a larger one skips the mirror. */
  maxBodyBytes: number;
}

/** A ResponseCompression filter (dataplane/proxy/response-compression.ts). */
export interface CompressionData {
  /** Server preference among equally rated encodings. */
  algorithms: ('zstd' | 'br' | 'gzip')[];
  minSize: number;
  /** Lower-case media ranges: `type/sub`, `type/*`, `type/*+suffix`. */
  contentTypes: string[];
  gzipLevel: number;
  brotliQuality: number;
  zstdLevel: number;
}

/** One (rule, match) pair: the unit of precedence. */
export interface EntryData {
  /** `namespace/name` of the route. */
  route: string;
  /**
   * Only requests that arrived on one of these local addresses (a Gateway API route attached to Gateways with
   * addresses of their own: Gateways isolated by address). Absent: every address.
   */
  addresses?: string[];
  rule: number;
  match: number;
  /** Stable id for logs and metrics: `namespace/name#rule` or `namespace/name#<rule name>`. */
  ruleId: string;
  /** Creation time in ms since the epoch (0 when unknown): older routes win ties. */
  created: number;
  matchData: MatchData;
  requestHeaders?: HeaderEdits;
  responseHeaders?: HeaderEdits;
  rewrite?: { hostname?: string; path?: PathRewrite };
  redirect?: RedirectData;
  backends?: BackendRef[];
  catalog?: CatalogAction;
  /** Request policies of the rule (src/dataplane/policy/); absent: none. Never holds key material. */
  policies?: PolicyData;
  loadBalancer?: LoadBalancerData;
  timeouts?: TimeoutsData;
  retry?: RetryData;
  /** Filters that act on requests and responses; absent: off (no per-request cost). */
  cors?: CorsData;
  mirrors?: MirrorData[];
  compression?: CompressionData;
  /** Request bodies above this many bytes get 413 (dataplane/proxy/body-limit.ts). */
  maxRequestBodyBytes?: number;
  /** A plain-HTTP request gets this redirect to HTTPS (same host, path, query); HTTPS requests are forwarded. */
  httpsRedirect?: number;
}

/** Entries for one hostname key: exact host, `*.suffix` or `*` (every host), as indexes into `entries`, sorted by precedence. */
export interface HostData {
  host: string;
  entries: number[];
}

export interface TableData {
  /** Content hash: equal hashes mean equal tables (the version counter is assigned on publish). */
  hash: string;
  /** Publish counter, set by control/ (0 until published). */
  version: number;
  entries: EntryData[];
  hosts: HostData[];
  clusters: ClusterData[];
}

/**
 * Request policies as table data: what compile/ writes on an entry (`EntryData.policies`) and what a worker builds
 * its policy objects from. Plain JSON-safe values only — and no secrets: keys are named (a key set under
 * `--secrets-dir`), never carried, so neither the IPC hand-off nor the last-known-good file ever holds one.
 */

/** Overload priorities, lowest first. A rule without one is `Normal`; `Critical` is never shed. */
export const PRIORITIES = ['Low', 'Normal', 'High', 'Critical'] as const;
export type Priority = (typeof PRIORITIES)[number];

/** Index of a priority in PRIORITIES (0 = Low … 3 = Critical). */
export function priorityRank(p: Priority | undefined): number {
  return PRIORITIES.indexOf(p ?? 'Normal');
}

export interface RateLimitData {
  /** Tokens added per `periodMs` (the sustained rate). */
  requests: number;
  periodMs: number;
  /** Bucket size: how many requests may come at once after a quiet period. */
  burst: number;
  /** What a bucket is per: the whole rule, each client address, or each value of a header. */
  key: 'Route' | 'ClientAddress' | 'Header';
  /** Lower-case header name (key Header). */
  header?: string;
  /** Global: the bucket is in the shared store (Redis) for every gateway; absent: this pod's (Node). */
  scope?: 'Global';
  /** Global only: the store is down or slow → Open lets requests through, Closed answers 503. */
  failureMode?: 'Open' | 'Closed';
}

export interface SignatureData {
  /** Key set: a directory under --secrets-dir, one file per key id (a mounted Kubernetes Secret). */
  keySet: string;
  /** Lower-case name of the header carrying `keyId=…, signature=…`. */
  header: string;
  /** Lower-case name of the signed date header. */
  dateHeader: string;
  /** Lower-case name of the optional nonce header (signed; empty when absent). */
  nonceHeader: string;
  clockSkewMs: number;
  /** Bodies are buffered (and hashed as they arrive) up to this size before verification; larger ones get 413. */
  maxBodyBytes: number;
}

export interface ClaimHeaderData {
  claim: string;
  /** Lower-case header name. */
  header: string;
}

export interface JwtData {
  /** JWKS endpoint (https, or http for loopback and in-cluster services). One of jwksUrl / keySet. */
  jwksUrl?: string;
  /** How long fetched keys are reused before a refetch. */
  jwksCacheMs: number;
  /** Static keys: a key set under --secrets-dir, one file per `kid` (PEM public key, JWK JSON, or HMAC secret). */
  keySet?: string;
  issuer?: string;
  audiences: string[];
  /** Explicit allow-list (`none` can never be listed). */
  algorithms: string[];
  clockSkewMs: number;
  /** Lower-case header carrying `Bearer <token>`. */
  header: string;
  /** Claims copied into request headers (client-sent copies of these headers are always removed). */
  forwardClaims: ClaimHeaderData[];
}

/** Headers the gateway sends the auth service itself: `requestHeaders` can never pass a client's copy. */
export const AUTH_REQUEST_HEADERS = [
  'x-forwarded-method',
  'x-forwarded-uri',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-for',
  'x-original-uri',
  'x-original-url',
  'x-original-method',
  'x-request-id',
  'host',
] as const;

export interface ExternalAuthData {
  url: string;
  timeoutMs: number;
  /** Closed: an unreachable or slow auth service refuses the request (503); Open: lets it through. */
  failureMode: 'Open' | 'Closed';
  /** Lower-case request headers sent to the auth service. */
  requestHeaders: string[];
  /** Lower-case headers copied from a 2xx auth response into the upstream request. */
  responseHeaders: string[];
  /** A denial's body is passed to the client up to this size. */
  maxResponseBytes: number;
}

/** Every policy of one rule. Absent fields: that policy is off. */
export interface PolicyData {
  priority?: Priority;
  /** CIDRs, canonical (IPv4-mapped IPv6 prefixes already turned into IPv4). */
  ipAllow?: string[];
  ipDeny?: string[];
  rateLimit?: RateLimitData;
  /** Cap on requests in flight for the rule across the pod (divided among workers). */
  maxConcurrentRequests?: number;
  signature?: SignatureData;
  jwt?: JwtData;
  externalAuth?: ExternalAuthData;
}

/** Pod-wide policy settings (CLI flags / env), given to every worker. */
export interface PolicySettings {
  /** Proxies in front of the gateway whose X-Forwarded-For entries are trusted (0: the peer is the client). */
  trustedHops: number;
  /** Global CIDR lists, checked before any rule's. */
  ipAllow: string[];
  ipDeny: string[];
  /** Where key sets live (one directory per set, one file per key id). */
  secretsDir: string | undefined;
  /** Event-loop delay (p99 over a 500 ms window) at which shedding starts; 0: off. */
  overloadDelayMs: number;
  /** Resident memory at which Low and Normal rules are shed; 0: off. */
  overloadMemoryBytes: number;
  /** Worker processes sharing per-rule budgets (concurrency caps are divided among them). */
  workers: number;
  /** EDGEGATE_TEST_HOOKS=1: test-only hooks (busy event loop) are available. */
  testHooks: boolean;
}

export const DEFAULT_POLICY_SETTINGS: PolicySettings = {
  trustedHops: 0,
  ipAllow: [],
  ipDeny: [],
  secretsDir: undefined,
  overloadDelayMs: 200,
  overloadMemoryBytes: 0,
  workers: 1,
  testHooks: false,
};

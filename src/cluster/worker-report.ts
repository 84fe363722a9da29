/**
 * What a worker reports to the primary (the `stats` answer at scrape time), in one place: both wings agree on these
 * shapes, the bucket layouts and the label values by index, so they live at the seam. The worker fills them
 * (dataplane/worker-metrics.ts, observe/traffic-recorder.ts, tls/tls-stats.ts, policy/policy-runtime.ts); the
 * primary sums and renders them (control/metrics/). Plain data: it crosses the IPC channel as a structured clone.
 */
import { type GatewayErrorCode, GatewayErrors } from '../lib/errors.ts';

/** Request duration buckets, seconds. */
export const DURATION_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
] as const;
/** Upstream response-header time buckets, seconds. */
export const UPSTREAM_BUCKETS = DURATION_BUCKETS;

const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const GATEWAY_CODES = Object.keys(GatewayErrors) as GatewayErrorCode[];
/** Values of the `code` label, by index: status classes of forwarded answers, then the gateway's own error codes. */
export const CODE_LABELS: readonly string[] = [...STATUS_CLASSES, ...GATEWAY_CODES];

/** An OpenMetrics exemplar of a histogram bucket: the latest traced (sampled) request that fell in it. */
export interface BucketExemplar {
  traceId: string;
  spanId: string;
  /** The observed value (seconds). */
  value: number;
  /** When (Unix seconds). */
  timestamp: number;
}

export interface HistogramSnapshot {
  /** Non-cumulative counts per bucket, +Inf last. */
  counts: number[];
  sum: number;
  /** Per bucket (same indices as `counts`), when tracing recorded any: null where the bucket has none. */
  exemplars?: (BucketExemplar | null)[];
}

export interface TrafficSeries {
  route: string;
  service: string;
  datacenter: string;
  /** Counts by CODE_LABELS index. */
  codes: number[];
  duration: HistogramSnapshot;
  bytesIn: number;
  bytesOut: number;
  retries: number;
}

export interface UpstreamSeries {
  service: string;
  datacenter: string;
  headerTime: HistogramSnapshot;
  connectionsOpened: number;
  connectionFailures: number;
}

export interface TrafficSnapshot {
  /** Requests started and not finished (a gauge). */
  active: number;
  traffic: TrafficSeries[];
  upstream: UpstreamSeries[];
}

export interface EndpointFigures {
  service: string;
  datacenter: string;
  cluster: string;
  id: string;
  address: string;
  port: number;
  /** A pool exists (the endpoint got traffic in this worker). */
  pool: boolean;
  connected: number;
  free: number;
  pending: number;
  queued: number;
  running: number;
  size: number;
  inFlight: number;
  ejected: boolean;
}

export interface TlsStatsSnapshot {
  /** Completed handshakes since start, by negotiated protocol: `h2`, `http/1.1`. */
  handshakes: Record<string, number>;
  /** Failed handshakes since start, by reason (see `handshakeErrorReason`). */
  handshakeErrors: Record<string, number>;
  /** HTTP/2 sessions torn down for flooding (rapid reset, invalid frames, refused streams). */
  floodsStopped: number;
  /** The same by reason (FLOOD_REASONS). */
  floodsByReason: Record<string, number>;
}

/**
 * Why an HTTP/2 session was torn down: `rapid_reset` (the session's own reset budget), `rapid_reset_address` (its
 * client address's budget over all its sessions), `invalid_frames` (Node's `maxSessionInvalidFrames` /
 * `maxSessionRejectedStreams`), `nghttp2` (Node's HTTP/2 library ended it: an outbound flood of PING or SETTINGS
 * answers the client does not read, its own stream-reset rate limit, a protocol error).
 */
export const FLOOD_REASONS = ['rapid_reset', 'rapid_reset_address', 'invalid_frames', 'nghttp2'] as const;
export type FloodReason = (typeof FLOOD_REASONS)[number];

/** Counters of one rule (plain numbers; control/metrics/policy-metrics.ts renders them as edgegate_policy_* metrics). */
export interface RuleCounters {
  /** 403 by an IP rule (global or the rule's). */
  ipDenied: number;
  /** 429 by the rate limit. */
  rateLimited: number;
  /** 503 by the overload guard. */
  shed: number;
  /** 503 by the concurrency cap. */
  concurrencyLimited: number;
  /** 401 / 413 / auth-service denials, by policy and reason: `signature:replayed`, `jwt:expired`, `external:status-403`. */
  authFailures: Record<string, number>;
  /** Requests every policy let through. */
  passed: number;
  /** Requests whose chosen X-Forwarded-For entry was not an address (the nearest trusted address was used). */
  forwardedForInvalid: number;
  /** JWKS fetches of the rule's JWT policy, by result (`ok`, `too-large`, `timeout`, `status`, `invalid`, `error`). */
  jwksFetches: Record<string, number>;
  /**
   * `rateLimit.scope: Global` decisions by outcome: `allowed`, `limited`, `failed_open` (the store could not decide,
   * let through), `failed_closed` (… refused with 503). Absent for rules without a Global limit.
   */
  globalDecisions?: Record<string, number>;
}

/** One key set of a worker's key store. */
export interface KeySetStats {
  /** Usable keys. */
  keys: number;
  /** Key id → why its file was refused (left out of the set). */
  refused?: Record<string, string>;
  /** Why the set could not be read (the last good keys are kept). */
  error?: string;
}

export interface PolicyRuntimeStats {
  overload: { level: number; delayMs: number; rssBytes: number; windowsAtLevel: number[] };
  rules: Record<string, RuleCounters & { inFlight: number }>;
  keySets: Record<string, KeySetStats>;
}

/** Counter keys of edge refusals and caught exceptions: `requestsRefused\0protocol\0reason` and
 * `requestHandlerErrors\0site` (summed across workers; dataplane/proxy/edge-events.ts counts them). */
export const REFUSED_COUNTER = 'requestsRefused';
export const HANDLER_ERRORS_COUNTER = 'requestHandlerErrors';
/** `websocketUpgrades\0protocol\0result`: WebSocket upgrade outcomes (opened, or why not). */
export const WEBSOCKET_COUNTER = 'websocketUpgrades';
/** `upstreamH2SessionErrors\0protocol\0reason`: HTTP/2 upstream connections (h2, h2c) that failed or broke. */
export const UPSTREAM_H2_SESSION_COUNTER = 'upstreamH2SessionErrors';

/** Counter keys of the route filters (dataplane/proxy/filter-counters.ts): `mirrorDropped\0reason`,
 * `corsPreflights\0result`, `compressedResponses\0encoding`; the mirror sent / error counts have no label. */
export const MIRROR_SENT_COUNTER = 'mirrorSent';
export const MIRROR_ERRORS_COUNTER = 'mirrorErrors';
export const MIRROR_DROPPED_COUNTER = 'mirrorDropped';
export const CORS_PREFLIGHTS_COUNTER = 'corsPreflights';
export const COMPRESSED_COUNTER = 'compressedResponses';

/** Counter keys of the tracing figures (dataplane/observe/tracing.ts): spans exported, and
 * `tracingSpansDropped\0reason` (queue_full, export_failed). */
export const TRACING_EXPORTED_COUNTER = 'tracingSpansExported';
export const TRACING_DROPPED_COUNTER = 'tracingSpansDropped';

/** Counter-name prefixes of the per-service outlier counters (control/metrics/metrics.ts turns them into labels). */
export const EJECTIONS_BY_SERVICE = 'ejectionsBy';
export const REFUSED_BY_SERVICE = 'ejectionsRefusedBy';

/** One metric family of prom-client's JSON form (default process metrics). */
export interface ProcessMetric {
  name: string;
  help: string;
  type: string;
  values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
}

/** Which datacenter serves one backend with cross-datacenter failover (dataplane/proxy/failover.ts). */
export interface FailoverFigures {
  /** `namespace/name` of the route. */
  route: string;
  /** The backend as the route status names it (`consul:billing@dc1`, `catalog:dc1/billing`). */
  backend: string;
  datacenter: string;
  /** When this worker's serving datacenter last changed (ms since the epoch). */
  since: number;
  /** Changes of the serving datacenter in this worker. */
  transitions: number;
}

export interface WorkerSnapshot extends TrafficSnapshot {
  /** `worker` label: the worker slot ("0", "1"…), stable across restarts of the slot. */
  worker: string;
  pid: number;
  /** Table version this process serves. */
  version: number;
  endpoints: EndpointFigures[];
  /** Monotonic worker-wide counters by name (see COUNTER_METRICS in control/metrics/metrics.ts). */
  counters: Record<string, number>;
  process: ProcessMetric[];
  /** Policy counters of this worker (dataplane/policy/policy-runtime.ts `stats()`), summed by the primary. */
  policies?: PolicyRuntimeStats;
  /** TLS handshake counters of this worker's HTTPS listener (absent: no HTTPS listener). */
  tls?: TlsStatsSnapshot;
  /** Backends with cross-datacenter failover in the served table (absent: none). */
  failover?: FailoverFigures[];
}

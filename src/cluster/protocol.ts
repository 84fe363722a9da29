/**
 * The primary ⇄ worker IPC protocol, in one place. Every message is a plain object with a `type` discriminator;
 * the channel uses `serialization: 'advanced'` (structured clone), and the table travels as ONE JSON string
 * serialized once in the primary, so a large table costs a memcpy per worker rather than a structured clone of
 * thousands of objects (see docs/processes.md for the measurements).
 *
 * Life of a worker:
 *   worker → `hello`            once its IPC handler is installed
 *   primary → `table`           the current table, if any (again for every new version)
 *   worker → `table-ack`        the version it now serves (or `table-error`)
 *   worker → `listening`        after its FIRST table is in place: it never accepts traffic without one
 *   primary → `drain`           on SIGTERM/SIGINT; the worker answers `draining`, then exits 0 when done
 *   primary → `stats-request`   any time; the worker answers `stats` with the same `id` (metrics at scrape time)
 *   worker → `policy-call`      pod-wide policy state: a rate-limit token lease or a replay-cache check; the
 *                               primary answers `policy-reply` with the same `id` (src/cluster/policy-state.ts)
 *   worker → `heartbeat`        every `watchdog.heartbeatMs` from the worker's event loop: a worker whose beats stop
 *                               for longer than the primary's block timeout is reported and replaced
 *                               (cluster/watchdog.ts)
 *   primary → `test-busy`       EDGEGATE_TEST_HOOKS=1 only: hold the event loop busy (overload and watchdog tests)
 */

import type { CertSet } from '../api/certificate.ts';
import type { Lease, LeaseRequest } from './policy-state.ts';
import type { TlsStatsSnapshot, WorkerSnapshot } from './worker-report.ts';

/**
 * A worker's start-up configuration travels as JSON in this environment variable. Its shape is the data plane's
 * own (`WorkerConfig`, src/dataplane/worker-config.ts): the supervisor hands it over without reading it.
 */
export const WORKER_CONFIG_ENV = 'EDGEGATE_WORKER_CONFIG';

/** The part of a worker's start-up configuration the supervisor itself adds. */
export interface SupervisedConfig {
  /** Heartbeats to the primary's watchdog (absent or 0: none, the watchdog is off). */
  watchdog?: { heartbeatMs: number };
}

// ── primary → worker ────────────────────────────────────────────────────────────────────────────────────────

export interface TableMessage {
  type: 'table';
  version: number;
  /** Content hash of `json` (table/wire.ts): the hash the primary computed over these very bytes. */
  hash: string;
  /** The table body (entries, hosts, clusters) as JSON text, serialized once per version (table/wire.ts). */
  json: string;
  /** Primary's `Date.now()` when it sent the message, for hand-off timing in logs. */
  sentAt: number;
}

export interface DrainMessage {
  type: 'drain';
  /** Keep accepting connections this long (so endpoint removal propagates upstream). */
  delayMs: number;
  /** Total budget from the start of the drain; in-flight requests still running then are cut. */
  timeoutMs: number;
}

export interface StatsRequestMessage {
  type: 'stats-request';
  id: number;
}

/** Scrape time: the worker answers `metrics` with its counters and gauges (observe/worker-metrics.ts). */
export interface MetricsRequestMessage {
  type: 'metrics-request';
  id: number;
}

export interface PolicyReplyMessage {
  type: 'policy-reply';
  id: number;
  lease?: Lease;
  /** Replay check: true when the key was not seen within its window. */
  fresh?: boolean;
}

/** Test hook (EDGEGATE_TEST_HOOKS=1): block the event loop `blockMs` at a time, for `ms` in total. */
export interface TestBusyMessage {
  type: 'test-busy';
  ms: number;
  blockMs: number;
}

/**
 * The certificates for the HTTPS listener, whole. Separate from the table on purpose: the table is persisted to
 * disk as last-known-good and private keys must not be; certificates are re-read from their sources on start.
 */
export interface CertsMessage {
  type: 'certs';
  set: CertSet;
}

export type PrimaryMessage =
  | TableMessage
  | DrainMessage
  | StatsRequestMessage
  | CertsMessage
  | MetricsRequestMessage
  | PolicyReplyMessage
  | TestBusyMessage;

// ── worker → primary ────────────────────────────────────────────────────────────────────────────────────────

export interface HelloMessage {
  type: 'hello';
  pid: number;
}

export interface TableAckMessage {
  type: 'table-ack';
  version: number;
  /** Time spent in the worker: JSON.parse + building the RoutingTable + swap. */
  applyMs: number;
}

export interface TableErrorMessage {
  type: 'table-error';
  version: number;
  message: string;
}

export interface ListeningMessage {
  type: 'listening';
  address: { address: string; port: number; family: string };
  reusePort: boolean;
  /** The HTTPS listener's address, when the worker has one. */
  tlsAddress?: { address: string; port: number; family: string };
}

export interface ListenErrorMessage {
  type: 'listen-error';
  message: string;
  code?: string;
}

export interface DrainingMessage {
  type: 'draining';
}

/** Sent from the worker's event loop every `watchdog.heartbeatMs`: proof that the loop turns. */
export interface HeartbeatMessage {
  type: 'heartbeat';
}

/** A worker's figures, polled by the primary (e.g. for /metrics); extend with more fields as needed. */
export interface WorkerStats {
  pid: number;
  version: number;
  /** Requests received by this worker since it started. */
  requests: number;
  /** Requests whose response has not finished yet. */
  inFlight: number;
  /** Open client connections. */
  connections: number;
  draining: boolean;
  /** Pools currently open (one per upstream endpoint and pool settings). */
  pools: number;
  memory: { rss: number; heapUsed: number };
  /** Per-rule policy counters (limited, shed, denied, auth failures by reason) and the overload level. */
  policies?: unknown;
  /** HTTPS listener figures (absent without one). */
  tls?: TlsStatsSnapshot & { requests: number; inFlight: number; connections: number; certVersion: number };
}

export interface StatsMessage {
  type: 'stats';
  id: number;
  stats: WorkerStats;
}

export interface MetricsMessage {
  type: 'metrics';
  id: number;
  snapshot: WorkerSnapshot;
}

export interface PolicyCallMessage {
  type: 'policy-call';
  id: number;
  lease?: LeaseRequest;
  seen?: { key: string; ttlMs: number };
}

export type WorkerMessage =
  | HelloMessage
  | TableAckMessage
  | TableErrorMessage
  | ListeningMessage
  | ListenErrorMessage
  | DrainingMessage
  | HeartbeatMessage
  | StatsMessage
  | MetricsMessage
  | PolicyCallMessage;

const PRIMARY_TYPES = new Set<string>([
  'table',
  'drain',
  'stats-request',
  'certs',
  'metrics-request',
  'policy-reply',
  'test-busy',
]);
const WORKER_TYPES = new Set<string>([
  'hello',
  'table-ack',
  'table-error',
  'listening',
  'listen-error',
  'draining',
  'heartbeat',
  'stats',
  'metrics',
  'policy-call',
]);

/** Narrowing guards for messages off the wire: anything else (e.g. Node's internal cluster traffic) is ignored. */
export function isPrimaryMessage(m: unknown): m is PrimaryMessage {
  return typeof m === 'object' && m !== null && PRIMARY_TYPES.has((m as { type?: unknown }).type as string);
}

export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === 'object' && m !== null && WORKER_TYPES.has((m as { type?: unknown }).type as string);
}

/** What the metrics hub is given: how to ask the workers, and the control plane's figures it renders. */
import type { CatalogSnapshot } from '../../api/catalog.ts';
import type { WorkerSnapshot } from '../../cluster/worker-report.ts';
import type { TableData } from '../../table/types.ts';
import type { ConsulDatacenterFigures, LastKnownGoodFigures } from './consul-metrics.ts';
import type { SourceHealth } from './source-health.ts';

export interface WorkerCollection {
  answers: WorkerSnapshot[];
  /** Pids of the workers alive now. */
  live: number[];
}

export interface WorkerCounts {
  /** Worker processes alive. */
  live: number;
  /** Of those, serving the current table version. */
  current: number;
  /** Workers replaced after an exit since start. */
  restarts: number;
  /** Of those, workers the watchdog replaced because their event loop was blocked (cluster only). */
  blocked?: number;
  /** Seconds since each live worker (by slot) last sent a heartbeat (cluster only). */
  heartbeatAges?: Record<string, number>;
}

export interface ConsulFigures {
  /** Blocking-query watches running. */
  watches: number;
  /** The cap on service watches (EDGEGATE_CONSUL_MAX_WATCHES) and the services it leaves unwatched now. */
  watchLimit: number;
  watchesOverLimit: number;
  /** Failed watch requests since start, by kind (network, timeout, forbidden, http, invalid). */
  watchErrors: Record<string, number>;
  /** Lag, leader and data age per datacenter (consul-metrics.ts). */
  datacenters?: Record<string, ConsulDatacenterFigures>;
}

export interface KubeFigures {
  /** Informer → synced (finished its first list and is watching). */
  informers: Record<string, boolean>;
  /**
   * Status writes by result: `ok` (written), `unchanged` (checked: already current), `not_found` (the route was
   * deleted before its write: 404), `error` (failed, retried).
   */
  statusWrites: Record<string, number>;
  /** Routes waiting for a status write or check (the leader's queue; 0 elsewhere). */
  statusQueue?: number;
  /** With --ingress (docs/ingress.md). */
  ingress?: { refused: number; unsupported: number; statusWrites: { ok: number; error: number } };
  /** With --gateway-api: status writes by result (ok, unchanged, error) and HTTPRoute parents not accepted. */
  gatewayApi?: { statusWrites: Record<string, number>; parentsNotAccepted: number };
}

export interface MetricsHubOptions {
  /** Ask the workers for their snapshots (bounded by `timeoutMs`). */
  collect: (timeoutMs: number) => Promise<WorkerCollection>;
  table: () => TableData | undefined;
  /** Routes by state: accepted, fallback (invalid; its last valid version is served), invalid (not served). */
  routes?: () => Record<string, number>;
  /** Routes in the table whose current form not every live worker serves yet (control/route-versions.ts). */
  routesAwaitingWorkers?: () => number;
  catalog?: () => CatalogSnapshot | undefined;
  workers: () => WorkerCounts;
  sources: SourceHealth;
  consul?: () => ConsulFigures | undefined;
  kube?: () => KubeFigures | undefined;
  /** Served certificates and their expiry (absent: no HTTPS listener). */
  certificates?: () => { hostname: string; notAfterSeconds: number }[];
  /** Per-worker answer timeout at scrape time (default 1000 ms). */
  scrapeTimeoutMs?: number;
  /** The last-known-good table found at start, if one was (consul-metrics.ts). */
  lastKnownGood?: () => LastKnownGoodFigures | undefined;
}

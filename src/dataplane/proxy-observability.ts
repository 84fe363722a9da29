/**
 * Wires metrics and the access log into one proxy process: the recording layer on the pipeline, connection
 * events, and the snapshot the primary asks for at scrape time. Used by every process that proxies (a cluster
 * worker, or the single process of `--workers 0`).
 */

import type { PolicyRuntimeStats, TlsStatsSnapshot } from '../cluster/worker-report.ts';
import type { TableData } from '../table/types.ts';
import { AccessLog, type AccessLogSettings, DEFAULT_ACCESS_LOG } from './observe/access-log.ts';
import { watchUpstreamConnections } from './observe/pool-events.ts';
import { endpointFigures, lookupFromPools } from './observe/pool-figures.ts';
import { RequestObserver } from './observe/request-observer.ts';
import { Tracing, type TracingLog } from './observe/tracing.ts';
import type { TracingSettings } from './observe/tracing-settings.ts';
import { TrafficRecorder } from './observe/traffic-recorder.ts';
import { edgeEvents } from './proxy/edge-events.ts';
import type { ProxyPipeline } from './proxy/proxy.ts';
import { poolKey } from './proxy/upstream-pools.ts';
import { WorkerMetrics } from './worker-metrics.ts';

export interface ProxyObservabilityOptions {
  proxy: ProxyPipeline;
  /** The table the pipeline serves (its data), for per-endpoint figures. */
  table: () => TableData | undefined;
  /** `worker` label of this process. */
  worker: string;
  accessLog?: AccessLogSettings;
  /** Report Node's default metrics of this process (off when the primary is this same process). */
  processMetrics: boolean;
  /** Worker-wide proxy counters (see COUNTER_METRICS). */
  counters?: () => Record<string, number>;
  /** Policy counters of this process. */
  policies?: () => PolicyRuntimeStats;
  /** TLS counters of this process's HTTPS listener (undefined: none). */
  tls?: () => TlsStatsSnapshot | undefined;
  /** Tracing (absent or disabled: off, no per-request trace objects). */
  tracing?: TracingSettings;
  log?: TracingLog;
}

export interface ProxyObservability {
  metrics: WorkerMetrics;
  /** Exports the spans still held (drain); resolves at once when tracing is off. */
  flush(): Promise<void>;
  stop(): void;
}

export function observeProxy(opts: ProxyObservabilityOptions): ProxyObservability {
  const recorder = new TrafficRecorder();
  const settings = opts.accessLog ?? DEFAULT_ACCESS_LOG;
  const accessLog = settings.enabled ? new AccessLog(settings) : undefined;
  const tracing = opts.tracing?.enabled ? new Tracing(opts.tracing, opts.log) : undefined;
  opts.proxy.observer = new RequestObserver(recorder, accessLog, tracing);
  const current = opts.table();
  if (current) recorder.install(current);
  const unwatch = watchUpstreamConnections(recorder);
  const metrics = new WorkerMetrics({
    recorder,
    worker: opts.worker,
    version: () => opts.proxy.version,
    endpoints: () => endpointFigures(opts.table(), lookupFromPools(opts.proxy.pools.entries(), poolKey)),
    counters:
      opts.counters ??
      (() => ({
        ...opts.proxy.counterValues(),
        ...edgeEvents.counterValues(),
        ...tracing?.counterValues(),
      })),
    processMetrics: opts.processMetrics,
    failover: () => opts.proxy.failover.figures(),
    ...(opts.policies ? { policies: opts.policies } : {}),
    ...(opts.tls ? { tls: opts.tls } : {}),
  });
  let flushed: Promise<void> | undefined;
  const flush = () => {
    flushed ??= tracing?.shutdown().catch(() => {}) ?? Promise.resolve();
    return flushed;
  };
  return {
    metrics,
    flush,
    stop() {
      unwatch();
      accessLog?.close();
      void flush();
    },
  };
}

/**
 * What one proxy process reports at scrape time: its traffic slots, per-endpoint pool figures, plain proxy
 * counters, and Node's default process metrics (from a prom-client registry of its own). Plain data: it crosses
 * the IPC channel to the primary, which sums every worker (aggregate.ts).
 */

import { collectDefaultMetrics, Registry } from 'prom-client';
import type {
  EndpointFigures,
  FailoverFigures,
  PolicyRuntimeStats,
  ProcessMetric,
  TlsStatsSnapshot,
  WorkerSnapshot,
} from '../cluster/worker-report.ts';
import type { TrafficRecorder } from './observe/traffic-recorder.ts';

export interface WorkerMetricsOptions {
  recorder: TrafficRecorder;
  worker: string;
  version: () => number;
  endpoints: () => EndpointFigures[];
  counters?: () => Record<string, number>;
  policies?: () => PolicyRuntimeStats;
  tls?: () => TlsStatsSnapshot | undefined;
  /** Backends with cross-datacenter failover: which datacenter serves each. */
  failover?: () => FailoverFigures[];
  /** Collect Node's default metrics in this process (default true). */
  processMetrics?: boolean;
}

function tlsOf(read: (() => TlsStatsSnapshot | undefined) | undefined): { tls?: TlsStatsSnapshot } {
  const tls = read?.();
  return tls ? { tls } : {};
}

function failoverOf(read: (() => FailoverFigures[]) | undefined): { failover?: FailoverFigures[] } {
  const list = read?.();
  return list && list.length > 0 ? { failover: list } : {};
}

export class WorkerMetrics {
  readonly #opts: WorkerMetricsOptions;
  readonly #registry: Registry | undefined;

  constructor(opts: WorkerMetricsOptions) {
    this.#opts = opts;
    if (opts.processMetrics !== false) {
      this.#registry = new Registry();
      collectDefaultMetrics({ register: this.#registry });
    }
  }

  async snapshot(): Promise<WorkerSnapshot> {
    const o = this.#opts;
    const process_ = this.#registry
      ? ((await this.#registry.getMetricsAsJSON()) as unknown as ProcessMetric[])
      : [];
    return {
      ...o.recorder.snapshot(),
      worker: o.worker,
      pid: process.pid,
      version: o.version(),
      endpoints: o.endpoints(),
      counters: o.counters?.() ?? {},
      ...(o.policies ? { policies: o.policies() } : {}),
      ...tlsOf(o.tls),
      ...failoverOf(o.failover),
      process: process_.map((m) => ({
        name: m.name,
        help: m.help,
        type: m.type,
        values: m.values.map((v) => ({
          value: v.value,
          labels: { ...v.labels },
          ...(v.metricName ? { metricName: v.metricName } : {}),
        })),
      })),
    };
  }
}

/**
 * What one proxy process reports at scrape time: its traffic slots, per-endpoint pool figures, plain proxy
 * counters, and Node's default process metrics (from a prom-client registry of its own). Plain data: it crosses
 * the IPC channel to the primary, which sums every worker (aggregate.ts).
 */

import { collectDefaultMetrics, Registry } from 'prom-client';
import type { EndpointFigures } from './observe/pool-figures.ts';
import type { TrafficRecorder, TrafficSnapshot } from './observe/traffic-recorder.ts';
import type { PolicyRuntimeStats } from './policy/policy-runtime.ts';
import type { TlsStatsSnapshot } from './tls/tls-stats.ts';

/** One metric family of prom-client's JSON form (default process metrics). */
export interface ProcessMetric {
  name: string;
  help: string;
  type: string;
  values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
}

export interface WorkerSnapshot extends TrafficSnapshot {
  /** `worker` label: the worker slot ("0", "1"…), stable across restarts of the slot. */
  worker: string;
  pid: number;
  /** Table version this process serves. */
  version: number;
  endpoints: EndpointFigures[];
  /** Monotonic worker-wide counters by name (see COUNTER_METRICS in metrics.ts). */
  counters: Record<string, number>;
  process: ProcessMetric[];
  /** Policy counters of this worker (policy/policy-runtime.ts `stats()`), summed by the primary. */
  policies?: PolicyRuntimeStats;
  /** TLS handshake counters of this worker's HTTPS listener (absent: no HTTPS listener). */
  tls?: TlsStatsSnapshot;
}

export interface WorkerMetricsOptions {
  recorder: TrafficRecorder;
  worker: string;
  version: () => number;
  endpoints: () => EndpointFigures[];
  counters?: () => Record<string, number>;
  policies?: () => PolicyRuntimeStats;
  tls?: () => TlsStatsSnapshot | undefined;
  /** Collect Node's default metrics in this process (default true). */
  processMetrics?: boolean;
}

function tlsOf(read: (() => TlsStatsSnapshot | undefined) | undefined): { tls?: TlsStatsSnapshot } {
  const tls = read?.();
  return tls ? { tls } : {};
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

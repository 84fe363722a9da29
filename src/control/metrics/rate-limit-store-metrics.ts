/**
 * The shared rate-limit store (Redis, `rateLimit.scope: Global`) as Prometheus families of the primary:
 * its state, the latency and result of every call, reconnects. The per-request decisions by outcome are the
 * workers' (`edgegate_rate_limit_global_decisions_total`, policy-metrics.ts).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { RateLimitStoreStats, StoreCallResult } from '../../cluster/rate-limit-store.ts';

export interface RateLimitStoreMetrics {
  /** Give this to the store (`onCall`): one observation per call. */
  onCall(c: StoreCallResult): void;
}

export function registerRateLimitStoreMetrics(
  registry: Registry,
  stats: () => RateLimitStoreStats | undefined,
): RateLimitStoreMetrics {
  new Gauge({
    name: 'edgegate_rate_limit_store_up',
    help: 'The shared rate-limit store (--redis-url) is connected and its last call answered in time: 1, else 0 (connecting, down, or slow: its last call timed out).',
    registers: [registry],
    collect() {
      this.set(stats()?.state === 'up' ? 1 : 0);
    },
  });
  new Counter({
    name: 'edgegate_rate_limit_store_reconnects_total',
    help: 'Reconnection attempts to the shared rate-limit store.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats()?.reconnects ?? 0);
    },
  });
  const calls = new Counter({
    name: 'edgegate_rate_limit_store_calls_total',
    help: 'Calls to the shared rate-limit store (one per token lease), by result: ok, timeout (no answer within --redis-timeout), error (Redis error or broken connection), unavailable (not connected: answered at once without a call).',
    labelNames: ['result'],
    registers: [registry],
  });
  for (const r of ['ok', 'timeout', 'error', 'unavailable']) calls.inc({ result: r }, 0);
  const duration = new Histogram({
    name: 'edgegate_rate_limit_store_call_duration_seconds',
    help: 'Duration of calls to the shared rate-limit store (a timeout counts its full wait).',
    labelNames: ['result'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  return {
    onCall(c) {
      calls.inc({ result: c.result });
      duration.observe({ result: c.result }, c.ms / 1000);
    },
  };
}

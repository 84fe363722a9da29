/**
 * The catalogue of the metric families the primary renders from the workers' snapshots — which worker counter
 * becomes which `edgegate_*` family, with its help text and labels — and the pieces every family is built from: a
 * family computed at scrape time (ComputedMetric) and the samples of a bucketed histogram (with its exemplars).
 */
import {
  COMPRESSED_COUNTER,
  CORS_PREFLIGHTS_COUNTER,
  EJECTIONS_BY_SERVICE,
  HANDLER_ERRORS_COUNTER,
  type HistogramSnapshot,
  MIRROR_DROPPED_COUNTER,
  MIRROR_ERRORS_COUNTER,
  MIRROR_SENT_COUNTER,
  REFUSED_BY_SERVICE,
  REFUSED_COUNTER,
  TRACING_DROPPED_COUNTER,
  TRACING_EXPORTED_COUNTER,
  UPSTREAM_H2_SESSION_COUNTER,
  WEBSOCKET_COUNTER,
} from '../../cluster/worker-report.ts';

export type Labels = Record<string, string>;
export interface Sample {
  metricName?: string;
  labels: Labels;
  value: number;
  /** Rendered only in OpenMetrics (prom-client's registry): a bucket's trace exemplar. */
  exemplar?: { labelSet: Labels; value: number; timestamp: number };
}
export type MetricType = 'counter' | 'gauge' | 'histogram';

/** Worker-wide proxy counters (WorkerSnapshot.counters) and the metric each one becomes. */
export const COUNTER_METRICS: Record<string, { name: string; help: string }> = {
  tries: {
    name: 'edgegate_upstream_tries_total',
    help: 'Tries sent to upstream endpoints (first tries and retries).',
  },
  retriesRefusedByBudget: {
    name: 'edgegate_retries_refused_total',
    help: 'Retries not attempted because the cluster retry budget was used up.',
  },
  tryTimeouts: {
    name: 'edgegate_upstream_try_timeouts_total',
    help: 'Tries that hit a per-try timeout (response headers, idle body or per-try limit).',
  },
  requestTimeouts: {
    name: 'edgegate_request_timeouts_total',
    help: 'Requests that hit their whole-request timeout.',
  },
  clientBodyTimeouts: {
    name: 'edgegate_client_body_timeouts_total',
    help: 'Requests answered 408 because their body stalled longer than the client body timeout.',
  },
  responsesAbandoned: {
    name: 'edgegate_responses_abandoned_total',
    help: 'Responses abandoned because the client read nothing of them for the send timeout (upstream connection released).',
  },
  connectionQueued: {
    name: 'edgegate_connection_cap_queued_total',
    help: 'Requests that waited because their client connection already held its cap of upstream requests.',
  },
  connectionRefused: {
    name: 'edgegate_connection_cap_refused_total',
    help: 'Requests refused (429) because their client connection held its cap of upstream requests and its queue was full.',
  },
  cancelledBeforeUpstream: {
    name: 'edgegate_requests_cancelled_before_upstream_total',
    help: 'Requests whose client left before they were written upstream: never sent.',
  },
  cancelledDrained: {
    name: 'edgegate_upstream_cancel_drains_total',
    help: 'Requests cancelled in flight whose upstream response was drained so the connection went back to the pool.',
  },
  cancelledClosed: {
    name: 'edgegate_upstream_cancel_closes_total',
    help: 'Requests cancelled in flight whose upstream try was aborted (body still streaming, or not drained within 1 s / 64 KiB).',
  },
  [TRACING_EXPORTED_COUNTER]: {
    name: 'edgegate_tracing_spans_exported_total',
    help: 'Spans the OTLP exporter delivered to the collector (tracing on; see docs/observability.md).',
  },
  unsendable: {
    name: 'edgegate_upstream_unsendable_requests_total',
    help: 'Requests the HTTP client refused to send upstream (invalid header or Host value): answered 400, never counted against the upstream.',
  },
};

/** Per service and datacenter counters (WorkerSnapshot.counters keys `prefix\0service\0datacenter`). */
export const SERVICE_COUNTER_METRICS = [
  {
    prefix: EJECTIONS_BY_SERVICE,
    name: 'edgegate_outlier_ejections_total',
    help: 'Upstream endpoints ejected by passive outlier detection, by service and datacenter.',
  },
  {
    prefix: REFUSED_BY_SERVICE,
    name: 'edgegate_outlier_ejections_refused_total',
    help: 'Ejections not done because the cluster already had its maximum share of endpoints ejected, by service and datacenter.',
  },
];

/** Edge counters with their own labels (WorkerSnapshot.counters keys `prefix\0label1\0label2…`), from edgeEvents. */
export const EDGE_COUNTER_METRICS = [
  {
    prefix: REFUSED_COUNTER,
    name: 'edgegate_requests_refused_total',
    help: 'Requests and connections refused at the edge before routing (admission checks, HTTP/1 parser errors, client header timeouts, connections over the cap), by listener protocol (http1, https1, h2) and reason.',
    labels: ['protocol', 'reason'],
    always: [] as string[][],
  },
  {
    prefix: HANDLER_ERRORS_COUNTER,
    name: 'edgegate_request_handler_errors_total',
    help: 'Exceptions caught while handling a request (answered 500 EDGEGATE_INTERNAL or closed) or by the process-level safety net; the process kept serving. Any non-zero value is a gateway bug worth a report.',
    labels: ['site'],
    always: [['request'], ['upgrade'], ['uncaught_exception'], ['unhandled_rejection']],
  },
  {
    prefix: MIRROR_SENT_COUNTER,
    name: 'edgegate_mirror_requests_total',
    help: 'Request copies sent by RequestMirror filters (their answers are discarded).',
    labels: [] as string[],
    always: [[]] as string[][],
  },
  {
    prefix: MIRROR_DROPPED_COUNTER,
    name: 'edgegate_mirror_dropped_total',
    help: 'Request copies a RequestMirror filter did not send, by reason: in_flight (the worker bound of copies in flight), body_too_large, no_endpoint, overloaded (the mirror endpoint at its pool capacity), cancelled (an HTTP/2 stream reset before it was forwarded).',
    labels: ['reason'],
    always: [['in_flight'], ['body_too_large'], ['no_endpoint'], ['overloaded'], ['cancelled']],
  },
  {
    prefix: MIRROR_ERRORS_COUNTER,
    name: 'edgegate_mirror_errors_total',
    help: 'Request copies that failed (connect error, reset, timeout); the request itself is never affected.',
    labels: [] as string[],
    always: [[]] as string[][],
  },
  {
    prefix: CORS_PREFLIGHTS_COUNTER,
    name: 'edgegate_cors_preflights_total',
    help: 'CORS preflights answered by the gateway, by result: allowed (CORS headers sent) or refused (origin not allowed: 204 without them).',
    labels: ['result'],
    always: [['allowed'], ['refused']],
  },
  {
    prefix: COMPRESSED_COUNTER,
    name: 'edgegate_compressed_responses_total',
    help: 'Responses compressed by a ResponseCompression filter, by encoding.',
    labels: ['encoding'],
    always: [['zstd'], ['br'], ['gzip']],
  },
  {
    prefix: TRACING_DROPPED_COUNTER,
    name: 'edgegate_tracing_spans_dropped_total',
    help: 'Sampled spans never delivered to the collector, by reason: queue_full (the worker already held --tracing-queue-size spans), export_failed (the collector did not take the batch: down, slow, refused).',
    labels: ['reason'],
    always: [['queue_full'], ['export_failed']],
  },
  {
    prefix: WEBSOCKET_COUNTER,
    name: 'edgegate_websocket_upgrades_total',
    help: 'WebSocket upgrades by client protocol (http1, https1: Upgrade over HTTP/1.1; h2, h2c: RFC 8441 extended CONNECT) and result: opened, or why no tunnel opened (bad_request, no_route, policy_denied, no_healthy_upstream, upstream_refused: the upstream answered without 101, upstream_error, internal).',
    labels: ['protocol', 'result'],
    always: [] as string[][],
  },
  {
    prefix: UPSTREAM_H2_SESSION_COUNTER,
    name: 'edgegate_upstream_http2_session_errors_total',
    help: 'HTTP/2 connections to upstreams (protocol h2 over TLS, h2c cleartext) that could not be opened (connect) or ended with an error: goaway (the upstream sent GOAWAY with an error code), protocol (a protocol or framing error), closed (reset or closed under way).',
    labels: ['protocol', 'reason'],
    always: [] as string[][],
  },
];

export const POOL_FIGURES = [
  ['connected', 'Open connections to the upstream endpoints.'],
  ['free', 'Open connections that are idle (keep-alive, ready for a request).'],
  ['pending', 'Requests waiting in the pools for a connection.'],
  ['queued', 'Requests queued in the pools (pending plus running).'],
  ['running', 'Requests being processed on upstream connections.'],
  ['size', 'Requests the pools hold (queued and running).'],
] as const;

/** A metric family computed at scrape time from the current aggregate. */
export class ComputedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly aggregator = 'sum';
  readonly #values: () => Sample[];

  constructor(name: string, help: string, type: MetricType, values: () => Sample[]) {
    this.name = name;
    this.help = help;
    this.type = type;
    this.#values = values;
  }

  async get() {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.#values(),
    };
  }
}

export function histogramSamples(
  name: string,
  labels: Labels,
  h: HistogramSnapshot,
  buckets: readonly number[],
): Sample[] {
  const out: Sample[] = [];
  let cumulative = 0;
  for (let i = 0; i <= buckets.length; i++) {
    cumulative += h.counts[i] ?? 0;
    const sample: Sample = {
      metricName: `${name}_bucket`,
      labels: { ...labels, le: i < buckets.length ? String(buckets[i]) : '+Inf' },
      value: cumulative,
    };
    const e = h.exemplars?.[i];
    if (e)
      sample.exemplar = {
        labelSet: { trace_id: e.traceId, span_id: e.spanId },
        value: e.value,
        timestamp: e.timestamp,
      };
    out.push(sample);
  }
  out.push({ metricName: `${name}_sum`, labels, value: h.sum });
  out.push({ metricName: `${name}_count`, labels, value: cumulative });
  return out;
}

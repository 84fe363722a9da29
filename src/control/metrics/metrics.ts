/**
 * The primary's Prometheus registry (prom-client), served on the admin port's /metrics. At scrape time it asks
 * every worker for its snapshot (a short timeout; a worker that does not answer is reported as stale, never
 * awaited), sums them (aggregate.ts), and exposes the sums together with the control plane's own figures and Node's
 * default process metrics of the primary and every worker (label `worker`).
 *
 * Labels stay bounded: route and service names, datacenters, status classes and gateway error codes, worker
 * slots — never paths, hosts or client addresses. Every metric name starts with `edgegate_`, except Node's
 * default metrics (`process_*`, `nodejs_*`), which keep their usual names so stock dashboards work.
 */

import { collectDefaultMetrics, Histogram, type OpenMetricsContentType, Registry } from 'prom-client';
import type { CatalogSnapshot } from '../../api/catalog.ts';
import {
  CODE_LABELS,
  COMPRESSED_COUNTER,
  CORS_PREFLIGHTS_COUNTER,
  DURATION_BUCKETS,
  EJECTIONS_BY_SERVICE,
  HANDLER_ERRORS_COUNTER,
  type HistogramSnapshot,
  MIRROR_DROPPED_COUNTER,
  MIRROR_ERRORS_COUNTER,
  MIRROR_SENT_COUNTER,
  type ProcessMetric,
  REFUSED_BY_SERVICE,
  REFUSED_COUNTER,
  type TlsStatsSnapshot,
  TRACING_DROPPED_COUNTER,
  TRACING_EXPORTED_COUNTER,
  UPSTREAM_BUCKETS,
  UPSTREAM_H2_SESSION_COUNTER,
  WEBSOCKET_COUNTER,
  type WorkerSnapshot,
} from '../../cluster/worker-report.ts';
import type { TableData } from '../../table/types.ts';
import { type AggregateView, mergeExemplars, SnapshotAggregator } from './aggregate.ts';
import {
  type ConsulDatacenterFigures,
  FRESHNESS_METRICS,
  type LastKnownGoodFigures,
} from './consul-metrics.ts';
import { type AggregatedPolicyStats, aggregatePolicyStats, POLICY_METRICS } from './policy-metrics.ts';
import type { SourceHealth } from './source-health.ts';

type Labels = Record<string, string>;
interface Sample {
  metricName?: string;
  labels: Labels;
  value: number;
  /** Rendered only in OpenMetrics (prom-client's registry): a bucket's trace exemplar. */
  exemplar?: { labelSet: Labels; value: number; timestamp: number };
}
type MetricType = 'counter' | 'gauge' | 'histogram';

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
const SERVICE_COUNTER_METRICS = [
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
const EDGE_COUNTER_METRICS = [
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

const POOL_FIGURES = [
  ['connected', 'Open connections to the upstream endpoints.'],
  ['free', 'Open connections that are idle (keep-alive, ready for a request).'],
  ['pending', 'Requests waiting in the pools for a connection.'],
  ['queued', 'Requests queued in the pools (pending plus running).'],
  ['running', 'Requests being processed on upstream connections.'],
  ['size', 'Requests the pools hold (queued and running).'],
] as const;

/** A metric family computed at scrape time from the current aggregate. */
class ComputedMetric {
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

function histogramSamples(
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

export class MetricsHub {
  readonly registry = new Registry();
  readonly #opts: MetricsHubOptions;
  readonly #aggregator = new SnapshotAggregator();
  readonly #process = new Registry();
  readonly compileDuration: Histogram;
  readonly consulBlockingQuery: Histogram;
  #view: AggregateView | undefined;
  #lastPublish = 0;
  #scrape: Promise<unknown> = Promise.resolve();

  constructor(opts: MetricsHubOptions) {
    this.#opts = opts;
    collectDefaultMetrics({ register: this.#process, labels: { worker: 'primary' } });
    this.compileDuration = new Histogram({
      name: 'edgegate_compile_duration_seconds',
      help: 'Time to compile routes and catalog into a routing table.',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [this.registry],
    });
    this.consulBlockingQuery = new Histogram({
      name: 'edgegate_consul_blocking_query_seconds',
      help: 'Duration of Consul blocking queries (long polls: close to the wait time when nothing changes).',
      buckets: [0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600],
      registers: [this.registry],
    });
    this.#defineTraffic();
    this.#defineUpstreams();
    this.#defineControlPlane();
    this.#definePolicies();
    this.#defineTls();
    for (const f of FRESHNESS_METRICS)
      this.#add(f.name, f.help, f.type, () =>
        f.samples({
          workers: this.#view_().workers,
          consul: opts.consul?.()?.datacenters,
          lastKnownGood: opts.lastKnownGood?.(),
        }),
      );
  }

  /**
   * edgegate_tls_*: the workers' handshake counters, summed (a replaced worker's counts restart from 0, as for
   * the policy counters), and the expiry of every served certificate from the primary's certificate set.
   */
  #defineTls(): void {
    const o = this.#opts;
    const sum = (pick: (t: TlsStatsSnapshot) => Record<string, number>, label: string): Sample[] => {
      const totals = new Map<string, number>();
      for (const w of this.#view_().workers)
        if (w.tls) for (const [k, n] of Object.entries(pick(w.tls))) totals.set(k, (totals.get(k) ?? 0) + n);
      return [...totals].map(([k, value]) => ({ labels: { [label]: k }, value }));
    };
    this.#add(
      'edgegate_tls_handshakes_total',
      'Completed TLS handshakes on the HTTPS listener, by negotiated protocol (h2, http/1.1).',
      'counter',
      () => sum((t) => t.handshakes, 'protocol'),
    );
    this.#add(
      'edgegate_tls_handshake_errors_total',
      'Failed TLS handshakes, by reason: unknown_servername, no_shared_cipher, unsupported_protocol, plain_http, no_alpn_match, client_alert, client_reset, timeout, other.',
      'counter',
      () => sum((t) => t.handshakeErrors, 'reason'),
    );
    this.#add(
      'edgegate_http2_floods_stopped_total',
      'HTTP/2 connections torn down for flooding, by reason: rapid_reset (the connection’s reset budget), rapid_reset_address (its client address’s budget), invalid_frames (invalid frames or refused streams), nghttp2 (Node’s HTTP/2 library ended it: outbound flood, its own reset limit, protocol error).',
      'counter',
      () => sum((t) => t.floodsByReason ?? {}, 'reason'),
    );
    this.#add(
      'edgegate_tls_certificate_expiry_seconds',
      'Expiry (notAfter, seconds since the epoch) of the certificate served for each hostname ("(default)": the default certificate).',
      'gauge',
      () =>
        (o.certificates?.() ?? []).map((c) => ({
          labels: { hostname: c.hostname },
          value: c.notAfterSeconds,
        })),
    );
  }

  /** edgegate_policy_*: the workers' policy counters, summed (a replaced worker's counts restart from 0). */
  #definePolicies(): void {
    let at: AggregateView | undefined;
    let sum: AggregatedPolicyStats | undefined;
    const current = () => {
      const v = this.#view_();
      if (v !== at || !sum) {
        at = v;
        sum = aggregatePolicyStats(v.workers.map((w) => w.policies));
      }
      return sum;
    };
    for (const f of POLICY_METRICS) this.#add(f.name, f.help, f.type, () => f.samples(current()));
  }

  /** A table version was published (for edgegate_table_last_publish_timestamp_seconds). */
  published(now = Date.now()): void {
    this.#lastPublish = now / 1000;
  }

  #add(name: string, help: string, type: MetricType, values: () => Sample[]): void {
    this.registry.registerMetric(new ComputedMetric(name, help, type, values) as never);
  }

  #view_(): AggregateView {
    return (
      this.#view ?? {
        traffic: [],
        upstream: [],
        counters: {},
        gatewayErrors: new Map(),
        active: 0,
        workers: [],
        stale: 0,
      }
    );
  }

  #defineTraffic(): void {
    const v = () => this.#view_();
    this.#add(
      'edgegate_requests_total',
      'Requests answered, by route, backend service and datacenter, and code: the status class of a forwarded answer (2xx…) or the gateway error code (EDGEGATE_…) of an answer the gateway generated.',
      'counter',
      () => {
        const out: Sample[] = [];
        for (const t of v().traffic)
          for (let i = 0; i < CODE_LABELS.length; i++) {
            const n = t.codes[i] ?? 0;
            if (n > 0)
              out.push({
                labels: {
                  route: t.route,
                  service: t.service,
                  datacenter: t.datacenter,
                  code: CODE_LABELS[i]!,
                },
                value: n,
              });
          }
        return out;
      },
    );
    this.#add(
      'edgegate_request_duration_seconds',
      'Request duration as the client sees it (first byte received to last byte sent), by route.',
      'histogram',
      () => {
        const byRoute = new Map<string, HistogramSnapshot>();
        for (const t of v().traffic) {
          let h = byRoute.get(t.route);
          if (!h) {
            h = { counts: new Array(DURATION_BUCKETS.length + 1).fill(0), sum: 0 };
            byRoute.set(t.route, h);
          }
          for (let i = 0; i < t.duration.counts.length; i++) h.counts[i]! += t.duration.counts[i]!;
          h.sum += t.duration.sum;
          mergeExemplars(h, t.duration);
        }
        return [...byRoute].flatMap(([route, h]) =>
          histogramSamples('edgegate_request_duration_seconds', { route }, h, DURATION_BUCKETS),
        );
      },
    );
    const perBackend = (pick: (t: AggregateView['traffic'][number]) => number) => () =>
      v().traffic.map((t) => ({
        labels: { route: t.route, service: t.service, datacenter: t.datacenter },
        value: pick(t),
      }));
    this.#add(
      'edgegate_request_bytes_total',
      'Request bytes (headers and body) received from clients.',
      'counter',
      perBackend((t) => t.bytesIn),
    );
    this.#add(
      'edgegate_response_bytes_total',
      'Response bytes (headers and body) sent to clients.',
      'counter',
      perBackend((t) => t.bytesOut),
    );
    this.#add(
      'edgegate_retries_total',
      'Retries (tries after the first) of requests, by route, service and datacenter.',
      'counter',
      perBackend((t) => t.retries),
    );
    this.#add('edgegate_active_requests', 'Requests in progress in all workers.', 'gauge', () => [
      { labels: {}, value: v().active },
    ]);
    this.#add(
      'edgegate_gateway_errors_total',
      'Answers the gateway generated itself, by gateway error code (see docs/observability.md).',
      'counter',
      () => [...v().gatewayErrors].map(([code, value]) => ({ labels: { code }, value })),
    );
    for (const [key, m] of Object.entries(COUNTER_METRICS))
      this.#add(m.name, m.help, 'counter', () => [{ labels: {}, value: v().counters[key] ?? 0 }]);
    for (const m of EDGE_COUNTER_METRICS)
      this.#add(m.name, m.help, 'counter', () => {
        const seen = new Map<string, Sample>();
        for (const values of m.always)
          seen.set(values.join('\u0000'), {
            labels: Object.fromEntries(m.labels.map((l, i) => [l, values[i]!])),
            value: 0,
          });
        for (const [key, value] of Object.entries(v().counters)) {
          const parts = key.split('\u0000');
          if (parts[0] !== m.prefix || parts.length !== m.labels.length + 1) continue;
          seen.set(parts.slice(1).join('\u0000'), {
            labels: Object.fromEntries(m.labels.map((l, i) => [l, parts[i + 1]!])),
            value,
          });
        }
        return [...seen.values()];
      });
    for (const m of SERVICE_COUNTER_METRICS)
      this.#add(m.name, m.help, 'counter', () => {
        const out: Sample[] = [];
        for (const [key, value] of Object.entries(v().counters)) {
          const [prefix, service, datacenter] = key.split('\u0000');
          if (prefix === m.prefix && service !== undefined && datacenter !== undefined)
            out.push({ labels: { service, datacenter }, value });
        }
        return out;
      });
  }

  #defineUpstreams(): void {
    const v = () => this.#view_();
    this.#add(
      'edgegate_upstream_response_header_seconds',
      'Time from sending a try to an upstream to receiving its response headers, by service and datacenter.',
      'histogram',
      () =>
        v().upstream.flatMap((u) =>
          histogramSamples(
            'edgegate_upstream_response_header_seconds',
            { service: u.service, datacenter: u.datacenter },
            u.headerTime,
            UPSTREAM_BUCKETS,
          ),
        ),
    );
    this.#add(
      'edgegate_upstream_connections_opened_total',
      'TCP connections opened to upstream endpoints.',
      'counter',
      () =>
        v().upstream.map((u) => ({
          labels: { service: u.service, datacenter: u.datacenter },
          value: u.connectionsOpened,
        })),
    );
    this.#add(
      'edgegate_upstream_connection_failures_total',
      'Failed attempts to open a connection to an upstream endpoint (refused, unreachable, connect timeout).',
      'counter',
      () =>
        v().upstream.map((u) => ({
          labels: { service: u.service, datacenter: u.datacenter },
          value: u.connectionFailures,
        })),
    );
    for (const [figure, help] of POOL_FIGURES) {
      this.#add(
        `edgegate_upstream_pool_${figure}`,
        `${help} Summed over the endpoints of a service and datacenter and over workers (undici Pool stats).`,
        'gauge',
        () => this.#poolSamples(figure),
      );
    }
    this.#add(
      'edgegate_upstream_in_flight',
      'Requests dispatched to upstream endpoints and not settled, by service and datacenter.',
      'gauge',
      () => this.#poolSamples('inFlight'),
    );
    this.#add(
      'edgegate_upstream_endpoints',
      'Endpoints of a service and datacenter, by state: total (in the catalog), healthy (in the served table), ejected (ejected by outlier detection in at least one worker).',
      'gauge',
      () => this.#endpointSamples(),
    );
  }

  #poolSamples(figure: (typeof POOL_FIGURES)[number][0] | 'inFlight'): Sample[] {
    const sums = new Map<string, Sample>();
    for (const w of this.#view_().workers) {
      // An endpoint in two clusters of the same service (tag subsets) shares one pool: count it once.
      const seen = new Set<string>();
      for (const e of w.endpoints) {
        const id = `${e.service}\u0000${e.datacenter}\u0000${e.address}\u0000${e.port}`;
        if (seen.has(id)) continue;
        seen.add(id);
        const k = `${e.service}\u0000${e.datacenter}`;
        let s = sums.get(k);
        if (!s) {
          s = { labels: { service: e.service, datacenter: e.datacenter }, value: 0 };
          sums.set(k, s);
        }
        s.value += e[figure];
      }
    }
    return [...sums.values()];
  }

  #endpointSamples(): Sample[] {
    const table = this.#opts.table();
    if (!table) return [];
    const catalog = this.#opts.catalog?.();
    const healthy = new Map<string, Set<string>>();
    const labels = new Map<string, Labels>();
    for (const c of table.clusters) {
      const k = `${c.service}\u0000${c.datacenter}`;
      labels.set(k, { service: c.service, datacenter: c.datacenter });
      let set = healthy.get(k);
      if (!set) {
        set = new Set();
        healthy.set(k, set);
      }
      for (const ep of c.endpoints) set.add(`${ep.address}:${ep.port}`);
    }
    const ejected = new Map<string, Set<string>>();
    for (const w of this.#view_().workers)
      for (const e of w.endpoints) {
        if (!e.ejected) continue;
        const k = `${e.service}\u0000${e.datacenter}`;
        let set = ejected.get(k);
        if (!set) {
          set = new Set();
          ejected.set(k, set);
        }
        set.add(`${e.address}:${e.port}`);
      }
    const out: Sample[] = [];
    for (const [k, l] of labels) {
      const inCatalog = catalog?.datacenters[l.datacenter!]?.services[l.service!]?.length;
      const h = healthy.get(k)?.size ?? 0;
      out.push({ labels: { ...l, state: 'total' }, value: inCatalog ?? h });
      out.push({ labels: { ...l, state: 'healthy' }, value: h });
      out.push({ labels: { ...l, state: 'ejected' }, value: ejected.get(k)?.size ?? 0 });
    }
    return out;
  }

  #defineControlPlane(): void {
    const o = this.#opts;
    this.#add('edgegate_table_version', 'Version of the routing table last published.', 'gauge', () => [
      { labels: {}, value: o.table()?.version ?? 0 },
    ]);
    this.#add(
      'edgegate_routes_awaiting_workers',
      'Routes whose current rules not every live proxy worker serves yet (their Programmed condition is Pending); stays above 0 when workers do not acknowledge tables.',
      'gauge',
      () => [{ labels: {}, value: o.routesAwaitingWorkers?.() ?? 0 }],
    );
    this.#add(
      'edgegate_table_last_publish_timestamp_seconds',
      'When the routing table was last published (Unix time; 0: never).',
      'gauge',
      () => [{ labels: {}, value: this.#lastPublish }],
    );
    this.#add(
      'edgegate_routes',
      'Routes by state: accepted; fallback (the current version is invalid, the last valid one is served); invalid (never valid, not served).',
      'gauge',
      () => Object.entries(o.routes?.() ?? {}).map(([state, value]) => ({ labels: { state }, value })),
    );
    this.#add('edgegate_workers', 'Proxy worker processes alive.', 'gauge', () => [
      { labels: {}, value: o.workers().live },
    ]);
    this.#add(
      'edgegate_workers_current',
      'Proxy worker processes serving the current table version.',
      'gauge',
      () => [{ labels: {}, value: o.workers().current }],
    );
    this.#add(
      'edgegate_worker_restarts_total',
      'Proxy worker processes replaced after they exited.',
      'counter',
      () => [{ labels: {}, value: o.workers().restarts }],
    );
    this.#add(
      'edgegate_worker_blocked_total',
      'Proxy worker processes replaced by the watchdog because their event loop was blocked longer than --worker-block-timeout (also counted in edgegate_worker_restarts_total).',
      'counter',
      () => [{ labels: {}, value: o.workers().blocked ?? 0 }],
    );
    this.#add(
      'edgegate_worker_heartbeat_age_seconds',
      'Seconds since each proxy worker (by slot) last sent its event-loop heartbeat to the primary.',
      'gauge',
      () =>
        Object.entries(o.workers().heartbeatAges ?? {}).map(([worker, value]) => ({
          labels: { worker },
          value,
        })),
    );
    this.#add(
      'edgegate_metrics_stale_workers',
      'Workers that did not answer the last scrape in time (their previous counts were used).',
      'gauge',
      () => [{ labels: {}, value: this.#view_().stale }],
    );
    this.#add(
      'edgegate_metrics_missed_answers_total',
      'Worker answers missed at scrape time (one per worker per scrape).',
      'counter',
      () => [{ labels: {}, value: this.#aggregator.missedAnswers }],
    );
    this.#add(
      'edgegate_source_up',
      'Whether an input source (routes, catalog, kube, consul) is connected and delivering (1) or not (0).',
      'gauge',
      () => o.sources.list().map((s) => ({ labels: { source: s.name }, value: s.up ? 1 : 0 })),
    );
    this.#add(
      'edgegate_source_data_age_seconds',
      'Seconds since a source last delivered or confirmed its data (-1: never).',
      'gauge',
      () => {
        const now = Date.now();
        return o.sources.list().map((s) => ({
          labels: { source: s.name },
          value: s.lastUpdate > 0 ? (now - s.lastUpdate) / 1000 : -1,
        }));
      },
    );
    this.#add('edgegate_source_updates_total', 'Snapshots delivered by each input source.', 'counter', () =>
      o.sources.list().map((s) => ({ labels: { source: s.name }, value: s.updates })),
    );
    this.#add('edgegate_consul_watches', 'Consul blocking-query watches running.', 'gauge', () => [
      { labels: {}, value: o.consul?.()?.watches ?? 0 },
    ]);
    const consulGauge = (name: string, help: string, pick: (c: ConsulFigures) => number) =>
      this.#add(name, help, 'gauge', () => {
        const c = o.consul?.();
        return c ? [{ labels: {}, value: pick(c) }] : [];
      });
    consulGauge(
      'edgegate_consul_watch_limit',
      'The cap on concurrent Consul service watches (EDGEGATE_CONSUL_MAX_WATCHES).',
      (c) => c.watchLimit,
    );
    consulGauge(
      'edgegate_consul_watches_over_limit',
      'Services the routes need that are not watched because of the cap (their instances are not served).',
      (c) => c.watchesOverLimit,
    );
    this.#add(
      'edgegate_consul_watch_errors_total',
      'Failed Consul watch requests, by kind: network, timeout, forbidden (403: the ACL token), http, invalid.',
      'counter',
      () =>
        Object.entries(o.consul?.()?.watchErrors ?? {}).map(([kind, value]) => ({ labels: { kind }, value })),
    );
    this.#add(
      'edgegate_kube_informer_synced',
      'Whether a Kubernetes informer finished its first list and is watching (1) or not (0).',
      'gauge',
      () =>
        Object.entries(o.kube?.()?.informers ?? {}).map(([resource, synced]) => ({
          labels: { resource },
          value: synced ? 1 : 0,
        })),
    );
    this.#add(
      'edgegate_kube_status_writes_total',
      'GatewayRoute status writes by result: ok (written), unchanged (checked, already current), not_found (the route was deleted before its write), error (failed, retried).',
      'counter',
      () =>
        Object.entries(o.kube?.()?.statusWrites ?? {}).map(([result, value]) => ({
          labels: { result },
          value,
        })),
    );
    this.#add(
      'edgegate_ingress_refused',
      'Ingresses of edgegate’s classes that are not served: a snippet, access control edgegate cannot honour, or an invalid annotation value (Events say which).',
      'gauge',
      () => {
        const i = o.kube?.()?.ingress;
        return i ? [{ labels: {}, value: i.refused }] : [];
      },
    );
    this.#add(
      'edgegate_ingress_unsupported_annotations',
      'ingress-nginx annotations on served Ingresses that edgegate does not honour (served without them; Events say which).',
      'gauge',
      () => {
        const i = o.kube?.()?.ingress;
        return i ? [{ labels: {}, value: i.unsupported }] : [];
      },
    );
    this.#add(
      'edgegate_ingress_status_writes_total',
      'Ingress status.loadBalancer writes by the leader: ok, error (retried).',
      'counter',
      () => {
        const i = o.kube?.()?.ingress;
        return i
          ? Object.entries(i.statusWrites).map(([result, value]) => ({ labels: { result }, value }))
          : [];
      },
    );
    this.#add(
      'edgegate_kube_status_queue',
      'GatewayRoutes waiting for a status write or check by the leader; a queue that stays long means writes are slower than changes (raise --status-write-rate).',
      'gauge',
      () => {
        const k = o.kube?.();
        return k ? [{ labels: {}, value: k.statusQueue ?? 0 }] : [];
      },
    );
    this.#add(
      'edgegate_gateway_api_status_writes_total',
      'Gateway API status writes (GatewayClass, Gateway, HTTPRoute) by result: ok (written), unchanged (checked, already current), error (failed, retried).',
      'counter',
      () =>
        Object.entries(o.kube?.()?.gatewayApi?.statusWrites ?? {}).map(([result, value]) => ({
          labels: { result },
          value,
        })),
    );
    this.#add(
      'edgegate_gateway_api_route_parents_not_accepted',
      'HTTPRoute parentRefs to edgegate Gateways that are not Accepted (not allowed by a listener, no matching listener or hostname, an unsupported field): those routes are not served there.',
      'gauge',
      () => {
        const g = o.kube?.()?.gatewayApi;
        return g ? [{ labels: {}, value: g.parentsNotAccepted }] : [];
      },
    );
  }

  /**
   * Collects from every worker and renders the exposition: the Prometheus text format, or OpenMetrics 1.0.0 (with
   * the trace exemplars of the request-duration buckets) when `openMetrics`. Concurrent scrapes run one after the
   * other.
   */
  scrape(openMetrics = false): Promise<{ contentType: string; body: string }> {
    const run = this.#scrape.then(() => this.#doScrape(openMetrics));
    this.#scrape = run.catch(() => {});
    return run;
  }

  async #doScrape(openMetrics: boolean): Promise<{ contentType: string; body: string }> {
    const { answers, live } = await this.#opts.collect(this.#opts.scrapeTimeoutMs ?? 1000);
    this.#aggregator.update(answers, live);
    this.#view = this.#aggregator.view();
    if (openMetrics) {
      // One OpenMetrics body (one `# EOF`). prom-client renames counter families for OpenMetrics in place, so the
      // families are registered as fresh views of the same metrics, never the Prometheus registry's own objects.
      const om = new Registry<OpenMetricsContentType>();
      om.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
      const view = (m: { name: string; help: string; type: string; get(): Promise<object> }) => {
        const family = {
          name: m.name,
          help: m.help,
          type: m.type,
          aggregator: 'sum',
          // The family's own (possibly renamed) name, not the Prometheus registry's.
          get: async () => ({ ...(await m.get()), name: family.name }),
        };
        om.registerMetric(family as never);
      };
      for (const m of this.registry.getMetricsAsArray()) view(m as never);
      for (const m of (await this.#processFamilies(this.#view.workers)).getMetricsAsArray()) view(m as never);
      return { contentType: om.contentType, body: await om.metrics() };
    }
    const main = await this.registry.metrics();
    const process_ = `\n${await (await this.#processFamilies(this.#view.workers)).metrics()}`;
    return { contentType: this.registry.contentType, body: main + process_ };
  }

  /** Node's default metrics of the primary and each worker, one family per name with a `worker` label. */
  async #processFamilies(workers: WorkerSnapshot[]): Promise<Registry> {
    const families = new Map<string, ProcessMetric>();
    const add = (m: ProcessMetric, worker: string | undefined) => {
      let f = families.get(m.name);
      if (!f) {
        f = { name: m.name, help: m.help, type: m.type, values: [] };
        families.set(m.name, f);
      }
      for (const val of m.values)
        f.values.push({ ...val, labels: worker === undefined ? val.labels : { ...val.labels, worker } });
    };
    for (const m of (await this.#process.getMetricsAsJSON()) as unknown as ProcessMetric[]) add(m, undefined);
    for (const w of workers) for (const m of w.process) add(m, w.worker);
    // prom-client's nodejs_active_{handles,requests,resources}_total are gauges named like counters (promtool
    // flags them); nodejs_active_handles & co. carry the same figures by type.
    for (const [name, f] of families)
      if (f.type !== 'counter' && name.endsWith('_total')) families.delete(name);
    const r = new Registry();
    for (const f of families.values())
      r.registerMetric(
        new ComputedMetric(f.name, f.help, f.type as MetricType, () =>
          f.values.map((val) => ({
            labels: Object.fromEntries(Object.entries(val.labels).map(([k, x]) => [k, String(x)])),
            value: val.value,
            ...(val.metricName ? { metricName: val.metricName } : {}),
          })),
        ) as never,
      );
    return r;
  }

  /** The latest aggregate (after a scrape), for /debug/upstreams. */
  async upstreams(): Promise<unknown> {
    const { answers, live } = await this.#opts.collect(this.#opts.scrapeTimeoutMs ?? 1000);
    const table = this.#opts.table();
    const byEndpoint = new Map<string, Record<string, unknown>>();
    for (const c of table?.clusters ?? [])
      for (const ep of c.endpoints)
        byEndpoint.set(`${c.id}\u0000${ep.address}\u0000${ep.port}`, {
          address: ep.address,
          port: ep.port,
          id: ep.id,
          weight: ep.weight,
          health: 'healthy',
          ejected: false,
          pool: { connected: 0, free: 0, pending: 0, queued: 0, running: 0, size: 0 },
          inFlight: 0,
          workers: [] as unknown[],
        });
    for (const w of answers)
      for (const e of w.endpoints) {
        const row = byEndpoint.get(`${e.cluster}\u0000${e.address}\u0000${e.port}`);
        if (!row) continue;
        const pool = row.pool as Record<string, number>;
        for (const [f] of POOL_FIGURES) pool[f]! += e[f];
        row.inFlight = (row.inFlight as number) + e.inFlight;
        if (e.ejected) row.ejected = true;
        (row.workers as unknown[]).push({
          worker: w.worker,
          pid: w.pid,
          ejected: e.ejected,
          inFlight: e.inFlight,
          pool: e.pool
            ? {
                connected: e.connected,
                free: e.free,
                pending: e.pending,
                queued: e.queued,
                running: e.running,
                size: e.size,
              }
            : null,
        });
      }
    return {
      version: table?.version ?? 0,
      workers: { answered: answers.length, live: live.length },
      clusters: (table?.clusters ?? []).map((c) => ({
        id: c.id,
        kind: c.kind,
        service: c.service,
        datacenter: c.datacenter,
        pool: c.pool,
        endpoints: c.endpoints.map((ep) => byEndpoint.get(`${c.id}\u0000${ep.address}\u0000${ep.port}`)),
      })),
    };
  }
}

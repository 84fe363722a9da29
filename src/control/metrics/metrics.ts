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
import {
  CODE_LABELS,
  DURATION_BUCKETS,
  type HistogramSnapshot,
  type ProcessMetric,
  type TlsStatsSnapshot,
  UPSTREAM_BUCKETS,
  type WorkerSnapshot,
} from '../../cluster/worker-report.ts';
import { type AggregateView, mergeExemplars, SnapshotAggregator } from './aggregate.ts';
import { FRESHNESS_METRICS } from './consul-metrics.ts';
import { defineControlPlaneMetrics } from './control-plane-metrics.ts';
import {
  COUNTER_METRICS,
  ComputedMetric,
  EDGE_COUNTER_METRICS,
  histogramSamples,
  type Labels,
  type MetricType,
  POOL_FIGURES,
  type Sample,
  SERVICE_COUNTER_METRICS,
} from './families.ts';
import type { MetricsHubOptions } from './hub-options.ts';
import { type AggregatedPolicyStats, aggregatePolicyStats, POLICY_METRICS } from './policy-metrics.ts';

export type {
  ConsulFigures,
  KubeFigures,
  MetricsHubOptions,
  WorkerCollection,
  WorkerCounts,
} from './hub-options.ts';

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
    defineControlPlaneMetrics((name, help, type, values) => this.#add(name, help, type, values), opts, {
      lastPublish: () => this.#lastPublish,
      view: () => this.#view_(),
      missedAnswers: () => this.#aggregator.missedAnswers,
    });
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

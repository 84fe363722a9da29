/**
 * The control plane's own metric families (table versions and publishes, routes by state, sources, Consul and
 * Kubernetes figures, certificates, scrape health), defined on the primary's registry by the metrics hub.
 */
import type { AggregateView } from './aggregate.ts';
import type { MetricType, Sample } from './families.ts';
import type { ConsulFigures, MetricsHubOptions } from './hub-options.ts';

/** Registers one family computed at scrape time. */
export type AddFamily = (name: string, help: string, type: MetricType, values: () => Sample[]) => void;

/** What only the hub knows at scrape time. */
export interface HubFigures {
  /** When the table was last published (Unix seconds; 0: never). */
  lastPublish: () => number;
  view: () => AggregateView;
  missedAnswers: () => number;
}

export function defineControlPlaneMetrics(add: AddFamily, o: MetricsHubOptions, live: HubFigures): void {
  add('edgegate_table_version', 'Version of the routing table last published.', 'gauge', () => [
    { labels: {}, value: o.table()?.version ?? 0 },
  ]);
  add(
    'edgegate_routes_awaiting_workers',
    'Routes whose current rules not every live proxy worker serves yet (their Programmed condition is Pending); stays above 0 when workers do not acknowledge tables.',
    'gauge',
    () => [{ labels: {}, value: o.routesAwaitingWorkers?.() ?? 0 }],
  );
  add(
    'edgegate_table_last_publish_timestamp_seconds',
    'When the routing table was last published (Unix time; 0: never).',
    'gauge',
    () => [{ labels: {}, value: live.lastPublish() }],
  );
  add(
    'edgegate_routes',
    'Routes by state: accepted; fallback (the current version is invalid, the last valid one is served); invalid (never valid, not served).',
    'gauge',
    () => Object.entries(o.routes?.() ?? {}).map(([state, value]) => ({ labels: { state }, value })),
  );
  add('edgegate_workers', 'Proxy worker processes alive.', 'gauge', () => [
    { labels: {}, value: o.workers().live },
  ]);
  add(
    'edgegate_workers_current',
    'Proxy worker processes serving the current table version.',
    'gauge',
    () => [{ labels: {}, value: o.workers().current }],
  );
  add(
    'edgegate_worker_restarts_total',
    'Proxy worker processes replaced after they exited.',
    'counter',
    () => [{ labels: {}, value: o.workers().restarts }],
  );
  add(
    'edgegate_worker_blocked_total',
    'Proxy worker processes replaced by the watchdog because their event loop was blocked longer than --worker-block-timeout (also counted in edgegate_worker_restarts_total).',
    'counter',
    () => [{ labels: {}, value: o.workers().blocked ?? 0 }],
  );
  add(
    'edgegate_worker_heartbeat_age_seconds',
    'Seconds since each proxy worker (by slot) last sent its event-loop heartbeat to the primary.',
    'gauge',
    () =>
      Object.entries(o.workers().heartbeatAges ?? {}).map(([worker, value]) => ({
        labels: { worker },
        value,
      })),
  );
  add(
    'edgegate_metrics_stale_workers',
    'Workers that did not answer the last scrape in time (their previous counts were used).',
    'gauge',
    () => [{ labels: {}, value: live.view().stale }],
  );
  add(
    'edgegate_metrics_missed_answers_total',
    'Worker answers missed at scrape time (one per worker per scrape).',
    'counter',
    () => [{ labels: {}, value: live.missedAnswers() }],
  );
  add(
    'edgegate_source_up',
    'Whether an input source (routes, catalog, kube, consul) is connected and delivering (1) or not (0).',
    'gauge',
    () => o.sources.list().map((s) => ({ labels: { source: s.name }, value: s.up ? 1 : 0 })),
  );
  add(
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
  add('edgegate_source_updates_total', 'Snapshots delivered by each input source.', 'counter', () =>
    o.sources.list().map((s) => ({ labels: { source: s.name }, value: s.updates })),
  );
  add('edgegate_consul_watches', 'Consul blocking-query watches running.', 'gauge', () => [
    { labels: {}, value: o.consul?.()?.watches ?? 0 },
  ]);
  const consulGauge = (name: string, help: string, pick: (c: ConsulFigures) => number) =>
    add(name, help, 'gauge', () => {
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
  add(
    'edgegate_consul_watch_errors_total',
    'Failed Consul watch requests, by kind: network, timeout, forbidden (403: the ACL token), http, invalid.',
    'counter',
    () =>
      Object.entries(o.consul?.()?.watchErrors ?? {}).map(([kind, value]) => ({ labels: { kind }, value })),
  );
  add(
    'edgegate_kube_informer_synced',
    'Whether a Kubernetes informer finished its first list and is watching (1) or not (0).',
    'gauge',
    () =>
      Object.entries(o.kube?.()?.informers ?? {}).map(([resource, synced]) => ({
        labels: { resource },
        value: synced ? 1 : 0,
      })),
  );
  add(
    'edgegate_kube_status_writes_total',
    'GatewayRoute status writes by result: ok (written), unchanged (checked, already current), not_found (the route was deleted before its write), error (failed, retried).',
    'counter',
    () =>
      Object.entries(o.kube?.()?.statusWrites ?? {}).map(([result, value]) => ({
        labels: { result },
        value,
      })),
  );
  add(
    'edgegate_ingress_refused',
    'Ingresses of edgegate’s classes that are not served: a snippet, access control edgegate cannot honour, or an invalid annotation value (Events say which).',
    'gauge',
    () => {
      const i = o.kube?.()?.ingress;
      return i ? [{ labels: {}, value: i.refused }] : [];
    },
  );
  add(
    'edgegate_ingress_unsupported_annotations',
    'ingress-nginx annotations on served Ingresses that edgegate does not honour (served without them; Events say which).',
    'gauge',
    () => {
      const i = o.kube?.()?.ingress;
      return i ? [{ labels: {}, value: i.unsupported }] : [];
    },
  );
  add(
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
  add(
    'edgegate_kube_status_queue',
    'GatewayRoutes waiting for a status write or check by the leader; a queue that stays long means writes are slower than changes (raise --status-write-rate).',
    'gauge',
    () => {
      const k = o.kube?.();
      return k ? [{ labels: {}, value: k.statusQueue ?? 0 }] : [];
    },
  );
  add(
    'edgegate_gateway_api_status_writes_total',
    'Gateway API status writes (GatewayClass, Gateway, HTTPRoute) by result: ok (written), unchanged (checked, already current), error (failed, retried).',
    'counter',
    () =>
      Object.entries(o.kube?.()?.gatewayApi?.statusWrites ?? {}).map(([result, value]) => ({
        labels: { result },
        value,
      })),
  );
  add(
    'edgegate_gateway_api_route_parents_not_accepted',
    'HTTPRoute parentRefs to edgegate Gateways that are not Accepted (not allowed by a listener, no matching listener or hostname, an unsupported field): those routes are not served there.',
    'gauge',
    () => {
      const g = o.kube?.()?.gatewayApi;
      return g ? [{ labels: {}, value: g.parentsNotAccepted }] : [];
    },
  );
}

/**
 * `edgegate run`: wires the sources (files, Consul, Kubernetes) → controller → proxy, and the admin server.
 *
 * Two shapes: `runClusterGateway` (the production one: this process is the primary — sources, compile, publish,
 * admin — and N worker processes proxy) and `runGateway` (`--workers 0`: everything in this one process, for
 * tests and debugging).
 */
import { once } from 'node:events';
import type { Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import type { CatalogSnapshot } from './api/catalog.ts';
import type { CertSet } from './api/certificate.ts';
import type { CertificateRefSnapshot } from './api/certificate-refs.ts';
import { formatPath } from './api/validate.ts';
import { LocalCoordinator } from './cluster/policy-state.ts';
import { ClusterPrimary } from './cluster/primary.ts';
import { DEFAULT_BLOCK_TIMEOUT_MS, watchdogSettings } from './cluster/watchdog.ts';
import type { RouteStatus } from './compile/compile.ts';
import { type AdminState, openAdminListeners } from './control/admin.ts';
import { CertManager } from './control/certificates/cert-manager.ts';
import {
  type CertFileSpec,
  type ClientCertFileSpec,
  FileCertSource,
} from './control/certificates/file-certs.ts';
import { Controller, type SourceName } from './control/controller.ts';
import { LastKnownGood } from './control/last-known-good.ts';
import {
  DEFAULT_LAST_KNOWN_GOOD_AGE,
  judgeLastKnownGood,
  type LastKnownGoodAgePolicy,
  type LastKnownGoodVerdict,
} from './control/last-known-good-age.ts';
import { MetricsHub, type MetricsHubOptions } from './control/metrics/metrics.ts';
import { SourceHealth } from './control/metrics/source-health.ts';
import { RouteVersions } from './control/route-versions.ts';
import type { ConsulSettings } from './control/sources/consul/settings.ts';
import { startConsulSource } from './control/sources/consul/start-consul-source.ts';
import { FileCatalogSource, FileRouteSource } from './control/sources/file/file-source.ts';
import { certificateRefsOf } from './control/sources/kube/secret-certs.ts';
import { type KubeOptions, type KubeSources, startKubeSources } from './control/start-kube.ts';
import { desiredStatus } from './control/status/status-conditions.ts';
import type { AccessLogSettings } from './dataplane/observe/access-log.ts';
import { holdEventLoopBusy } from './dataplane/policy/overload-guard.ts';
import { PolicyRuntime } from './dataplane/policy/policy-runtime.ts';
import { installProcessSafetyNet } from './dataplane/proxy/edge-events.ts';
import { ProxyPipeline, type ProxySettings } from './dataplane/proxy/proxy.ts';
import { createProxyServer, drainServer, type ListenerSettings } from './dataplane/proxy/server.ts';
import { observeProxy } from './dataplane/proxy-observability.ts';
import { HttpsRedirector } from './dataplane/tls/https-redirect.ts';
import { TlsListener } from './dataplane/tls/tls-listener.ts';
import type { TlsListenerSettings } from './dataplane/tls/tls-settings.ts';
import type { WorkerConfig } from './dataplane/worker-config.ts';
import { ConfigError } from './lib/errors.ts';
import { createLogger, type Logger } from './lib/log.ts';
import type { PolicySettings } from './table/policy-types.ts';
import type { TableData } from './table/types.ts';

export interface RunOptions {
  listen: string;
  /** `/healthz`, `/readyz`, `/metrics` (and `/debug/*` when this is a loopback address). */
  admin: string;
  /** `/debug/*`: an address, `off`, or undefined (loopback `--admin`, else 127.0.0.1:9902); see observe/admin.ts. */
  adminDebug?: string;
  routes?: string;
  catalog?: string;
  /** Discover services from Consul (exclusive with `catalog`). */
  consul?: ConsulSettings;
  stateDir?: string;
  /** Age limit of the last-known-good table at start (`--last-known-good-max-age`, `--last-known-good-when-stale`). */
  lastKnownGoodAge?: LastKnownGoodAgePolicy;
  logLevel: string;
  /** Local datacenter for consul backends without one (standalone: default dc1). */
  datacenter?: string;
  trustedHops?: number;
  /** Pod-wide policy settings: global IP lists, secrets dir, overload thresholds, test hooks. */
  policy?: Partial<PolicySettings>;
  logger?: Logger;
  /** HTTPS listener address (default `:8443`); it opens only when certificates are configured. */
  listenTls?: string;
  /** `--tls-cert` values, parsed. */
  tlsCerts?: CertFileSpec[];
  /** `--tls-default-cert`, parsed. */
  tlsDefaultCert?: CertFileSpec;
  /** Edge flags (src/dataplane/proxy/edge-flags.ts): client timeouts, limits and request checks of the listener. */
  listenerSettings?: Partial<ListenerSettings>;
  /** Edge flags: upstream timeouts, retry budget, WebSocket idle time, encoded slashes. */
  proxySettings?: Partial<ProxySettings>;
  /** `--upstream-client-cert NAMESPACE/NAME=CERT,KEY`, parsed: client certificates for mTLS to upstreams. */
  upstreamClientCerts?: ClientCertFileSpec[];
  tlsSettings?: Partial<TlsListenerSettings>;
  /** `--https-redirect`: the HTTP listener redirects everything to HTTPS. */
  httpsRedirect?: { statusCode: 301 | 308; port: number };
  /** GatewayRoutes (and Services' endpoints) from Kubernetes instead of --routes. */
  kube?: KubeOptions;
  /** Access log settings (default: on, every request, user-agent only). */
  accessLog?: AccessLogSettings;
}

export interface DrainSettings {
  /** Listeners stay open this long after readiness fails, so endpoint removal propagates upstream. */
  delayMs: number;
  /** Total budget from the signal: in-flight requests still running then are cut. */
  timeoutMs: number;
}

export const DEFAULT_DRAIN: DrainSettings = { delayMs: 5_000, timeoutMs: 25_000 };

export interface ClusterRunOptions extends RunOptions {
  /** Proxy worker processes (≥ 1). */
  workers: number;
  /** SO_REUSEPORT listeners (default: on Linux, FreeBSD; elsewhere the cluster's shared handle). */
  reusePort?: boolean;
  /** What a worker does when it alone gets SIGTERM (the primary's drain normally decides). */
  drain?: DrainSettings;
  /** `--worker-block-timeout`: a worker whose event loop is blocked this long is replaced (0: never; default 5 s). */
  workerBlockTimeoutMs?: number;
}

interface Running {
  adminAddress: AddressInfo;
  /** The loopback debug listener (`--admin-debug`), when it is separate from `--admin`. */
  adminDebugAddress: AddressInfo | undefined;
  controller: Controller;
  /** The Kubernetes source, leader election and status writer (with --kube). */
  kube?: KubeSources;
  /** Readiness fails at once; listeners close after the delay; in-flight requests finish up to the timeout. */
  drain(settings: DrainSettings): Promise<{ clean: boolean }>;
  stop(): Promise<void>;
}

export interface RunningGateway extends Running {
  proxyAddress: AddressInfo;
  proxy: ProxyPipeline;
  /** HTTPS listener address (undefined: no certificates configured, no listener). */
  tlsAddress: AddressInfo | undefined;
  tls: TlsListener;
  certificates: CertManager | undefined;
}

export interface RunningCluster extends Running {
  proxyAddress: { address: string; port: number };
  primary: ClusterPrimary;
  certificates: CertManager | undefined;
}

/** `:8080`, `8080`, `127.0.0.1:8080`, `[::1]:8080` → host (undefined: every interface) and port. */
export function parseListen(value: string, flag: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*))?:?(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new ConfigError(
      `${flag}: invalid address ${JSON.stringify(value)} (expected :PORT, HOST:PORT or [IPv6]:PORT)`,
    );
  }
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? undefined : m[2]);
  return { host, port };
}

/** Where SO_REUSEPORT exists (Node: Linux 3.9+, FreeBSD 12+, DragonFlyBSD, Solaris 11.4, AIX 7.2.5). */
export function platformHasReusePort(platform: NodeJS.Platform = process.platform): boolean {
  return ['linux', 'freebsd', 'sunos', 'aix'].includes(platform);
}

async function listen(server: Server, value: string, flag: string, reusePort = false): Promise<AddressInfo> {
  const { host, port } = parseListen(value, flag);
  server.listen({ port, host, reusePort });
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([err]) => {
      throw new ConfigError(`${flag}: cannot listen on ${value}: ${(err as Error).message}`);
    }),
  ]);
  return server.address() as AddressInfo;
}

/** One log line per problem, naming the route, the file and line, and the field. */
export function describeStatus(s: RouteStatus): string[] {
  const file = s.origin.replace(/:\d+$/, '');
  const lines = s.errors.map(
    (e) =>
      `${e.line !== undefined ? `${file}:${e.line}` : s.origin}: ${s.route}: ${formatPath(e.path)}: ${e.message}`,
  );
  for (const u of s.unresolved) lines.push(`${s.origin}: ${s.route}: unresolved: ${u}`);
  if (s.fallback) lines.push(`${s.origin}: ${s.route}: ${fallbackText(s.fallback)}`);
  return lines;
}

/** What is served for an invalid route that was valid before (fail closed). */
function fallbackText(f: NonNullable<RouteStatus['fallback']>): string {
  const which = f.generation !== undefined ? `generation ${f.generation}` : `the version from ${f.origin}`;
  return `still serving its last valid version (${which}${f.since ? `, valid since ${f.since}` : ''})`;
}

/** Routes by state, for edgegate_routes: accepted, fallback (invalid, last valid version served), invalid. */
function routeStates(statuses: readonly RouteStatus[]): Record<'accepted' | 'fallback' | 'invalid', number> {
  const out = { accepted: 0, fallback: 0, invalid: 0 };
  for (const s of statuses) out[s.accepted ? 'accepted' : s.fallback ? 'fallback' : 'invalid']++;
  return out;
}

/** Each Kubernetes informer → synced, from the kube source's figures (metrics and readiness). */
function kubeInformersSynced(st: Record<string, number | boolean>): Record<string, boolean> {
  return Object.fromEntries(
    Object.entries(st)
      .filter(([k]) => k.startsWith('synced_'))
      .map(([k, v]) => [k.slice('synced_'.length), v === true]),
  );
}

/** Sources → controller, with route problems logged once each. Shared by both process shapes. */
function createControlPlane(
  opts: RunOptions,
  log: Logger,
  publish: (table: TableData) => void,
  certificates: CertManager | undefined,
  /** True when publishing is serving (one process); workers report serving through `served()` instead. */
  servedOnPublish = true,
) {
  if (!opts.routes && !opts.kube)
    throw new ConfigError('no route source: give --routes PATH (standalone) or --kube');
  if (opts.routes && opts.kube) throw new ConfigError('--routes and --kube cannot be combined');
  const expect: SourceName[] = ['routes'];
  if (opts.catalog || opts.consul) expect.push('catalog');
  if (opts.kube) expect.push('kube');
  let kube: KubeSources | undefined;
  // Metrics: source health (file sources report here; consul and kube are read from their stats()), the last
  // catalog (endpoint totals), compile and publish events.
  const sources = new SourceHealth();
  if (opts.routes) sources.expect('routes');
  if (opts.catalog) sources.expect('catalog');
  let catalog: CatalogSnapshot | undefined;
  let hub: MetricsHub | undefined;
  const reported = new Map<string, string>();
  // Which table version serves each route's current form, and whether every worker serves it (Programmed).
  const versions = new RouteVersions();
  const served = (version: number) => {
    const now = versions.served(version);
    if (now.length > 0) kube?.served(now);
  };
  let lkgVerdict: LastKnownGoodVerdict | undefined;
  const controller = new Controller({
    expect,
    lastKnownGood: opts.stateDir ? new LastKnownGood(opts.stateDir) : undefined,
    admitLastKnownGood: (savedAt) => {
      const v = judgeLastKnownGood(savedAt, Date.now(), opts.lastKnownGoodAge ?? DEFAULT_LAST_KNOWN_GOOD_AGE);
      lkgVerdict = v;
      if (v.warning)
        log.error(v.warning, { savedAt: v.savedAt, maxAgeSeconds: v.maxAgeSeconds, whenStale: v.whenStale });
      return !v.refused;
    },
    onCompiled: (ms) => hub?.compileDuration.observe(ms / 1000),
    publish: (table) => {
      publish(table);
      versions.published(table);
      hub?.published();
      // Programmed: in one process the published table is the served one; with workers, once all acknowledged it.
      if (servedOnPublish) served(table.version);
      log.info('table published', {
        version: table.version,
        hash: table.hash,
        entries: table.entries.length,
        clusters: table.clusters.length,
      });
    },
    onStatuses: (statuses) => {
      kube?.onStatuses(statuses);
      // Log each route's problems once, when they change.
      const seen = new Set<string>();
      for (const s of statuses) {
        seen.add(s.route + s.origin);
        // Most routes have nothing to report: no text to build for them on every rebuild.
        const text = s.errors.length === 0 && s.unresolved.length === 0 ? '' : describeStatus(s).join('\n');
        if (reported.get(s.route + s.origin) === text) continue;
        reported.set(s.route + s.origin, text);
        if (!s.accepted && s.fallback)
          log.error(`route ${s.route} is invalid; ${fallbackText(s.fallback)}`, {
            route: s.route,
            problems: describeStatus(s),
            ...(s.fallback.generation !== undefined ? { servedGeneration: s.fallback.generation } : {}),
          });
        else if (!s.accepted)
          log.error(`route ${s.route} is invalid and skipped`, {
            route: s.route,
            problems: describeStatus(s),
          });
        else if (s.unresolved.length > 0)
          log.warn(`route ${s.route} has unresolved backends`, {
            route: s.route,
            problems: describeStatus(s),
          });
        else if (text === '' && reported.has(s.route + s.origin)) log.debug(`route ${s.route} accepted`);
      }
      for (const k of reported.keys()) if (!seen.has(k)) reported.delete(k);
    },
    onError: (err) => log.error(`rebuild failed: ${(err as Error).stack ?? err}`),
  });
  const routeSource = opts.routes ? new FileRouteSource(opts.routes, log) : undefined;
  // Standalone, a backend's client certificate (mTLS to the upstream) comes from --upstream-client-cert: a route
  // that names one no flag gives gets it in its status (ResolvedRefs), as a missing Secret does with --kube.
  if (!opts.kube) {
    const given = new Set((opts.upstreamClientCerts ?? []).map((c) => c.key));
    controller.onRoutes((routes) => {
      const secrets: CertificateRefSnapshot['secrets'] = {};
      for (const r of certificateRefsOf(routes))
        if (r.client)
          secrets[r.secret] = given.has(r.secret)
            ? { ok: true }
            : {
                ok: false,
                reason: 'NotFound',
                message: `no --upstream-client-cert ${r.secret}=CERT.pem,KEY.pem is given`,
              };
      controller.setCertificateRefs({ secrets });
    });
  }
  const catalogSource = opts.catalog ? new FileCatalogSource(opts.catalog, log, opts.datacenter) : undefined;
  let consul: ReturnType<typeof startConsulSource> | undefined;
  return {
    controller,
    /** The workers serve this version (Programmed in the routes' status). */
    served,
    async start() {
      const restored = await controller.restore();
      if (restored)
        log.info('serving the last-known-good table until sources sync', { version: restored.version });
      if (catalogSource)
        await catalogSource.start((c) => {
          catalog = c;
          sources.reported('catalog');
          controller.setCatalog(c);
        });
      if (opts.consul) {
        const sink = {
          setCatalog: (c: CatalogSnapshot) => {
            catalog = c;
            controller.setCatalog(c);
          },
          onRoutes: controller.onRoutes.bind(controller),
        };
        // The hub exists by now (metrics() is called before start()); a query answered before it does is not counted.
        const source = startConsulSource(sink, opts.consul, log, (seconds) =>
          hub?.consulBlockingQuery.observe(seconds),
        );
        consul = source;
        sources.register('consul', () => {
          const st = source.stats();
          return {
            up: st.up === 1,
            lastUpdate: Date.now() - st.dataAgeSeconds * 1000,
            updates: st.snapshots,
          };
        });
      }
      await routeSource?.start((r) => {
        sources.reported('routes');
        controller.setRoutes(r);
      });
      // Informers sync in the background: an API server down at start-up leaves the last-known-good table.
      if (opts.kube) {
        const k = startKubeSources(
          controller,
          opts.kube,
          log,
          certificates && {
            bundles: (bundles) => certificates.set('secrets', bundles),
            clients: (clients) => certificates.setClients('secrets', clients),
          },
          (route) => versions.isServed(route),
        );
        kube = k;
        sources.register('kube', () => {
          const st = k.stats();
          // Synced informers watch continuously: their data is current while synced.
          return {
            up: st.synced === true,
            lastUpdate: st.synced ? Date.now() : 0,
            updates: Number(st.snapshots ?? 0),
          };
        });
      }
      await controller.rebuild();
    },
    get kube() {
      return kube;
    },
    /** Resolves once the leader Lease is released (graceful shutdown). */
    async stop() {
      controller.stop();
      routeSource?.stop();
      catalogSource?.stop();
      void consul?.stop();
      await kube?.stop();
    },
    sourcesView() {
      return { consul: consul?.stats(), kube: kube?.stats(), lastKnownGood: lkgVerdict };
    },
    /** The age check of the last-known-good table found at start (undefined: none was found). */
    get lastKnownGood() {
      return lkgVerdict;
    },
    /**
     * Readiness while nothing is served yet (`version` 0): the sources the first table waits for, the Kubernetes
     * informers not synced named. Both process shapes add these lines to their own reasons.
     */
    waitingReasons(version: number): string[] {
      if (version !== 0) return [];
      // With --kube the routes come from the kube source: naming it says it.
      const waiting = controller.pending
        .filter((s) => !(opts.kube && s === 'routes'))
        .map((s) => {
          if (s !== 'kube' || !kube) return s;
          const synced = kubeInformersSynced(kube.stats());
          const behind = Object.keys(synced).filter((r) => !synced[r]);
          return behind.length > 0 ? `kube (${behind.join(', ')} not synced; see the log)` : s;
        });
      return waiting.length > 0 ? [`waiting for ${waiting.join(', ')}`] : [];
    },
    /** The primary's registry; `collect` asks the proxy processes for their snapshots. */
    metrics(collect: MetricsHubOptions['collect'], workers: MetricsHubOptions['workers']): MetricsHub {
      hub = new MetricsHub({
        collect,
        workers,
        sources,
        table: () => controller.current,
        routes: () => routeStates(controller.statuses),
        routesAwaitingWorkers: () => versions.waiting,
        catalog: () => catalog,
        lastKnownGood: () => lkgVerdict,
        ...(certificates ? { certificates: () => certificates.expiry() } : {}),
        consul: () => {
          const st = consul?.stats();
          return (
            st && {
              watches: st.serviceWatches + st.serviceListWatches,
              watchLimit: st.serviceWatchLimit,
              watchesOverLimit: st.serviceWatchesOverLimit,
              watchErrors: st.errorsByKind,
              datacenters: st.freshness,
            }
          );
        },
        kube: () => {
          const st = kube?.stats();
          if (!st) return undefined;
          const n = (k: string) => Number(st[k] ?? 0);
          return {
            informers: kubeInformersSynced(st),
            statusWrites: {
              ok: n('status_writes'),
              unchanged: n('status_unchanged'),
              not_found: n('status_notFound'),
              error: n('status_failures'),
            },
            statusQueue: n('status_pending'),
          };
        },
      });
      return hub;
    },
    routesView(version: number) {
      // Which table version serves a route is here, not in its status (it would rewrite every status on every
      // publish): tableVersion is the first version with the route's current form, programmed whether every
      // live worker serves it.
      return {
        version,
        servedVersion: versions.servedVersion,
        table: controller.current,
        statuses: controller.statuses.map((s) => {
          const since = versions.since(s.route);
          const live = freshnessOf(s, consul?.stats().freshness);
          const programmed = (s.accepted || s.fallback !== undefined) && versions.isServed(s.route);
          return {
            ...s,
            ...(live ? { datacenters: live } : {}),
            // The GatewayRoute status the leader writes for this route (files have no object to write it to).
            status: desiredStatus(s, programmed, [], new Date().toISOString()),
            problems: describeStatus(s),
            ...(since !== undefined ? { tableVersion: since } : {}),
            programmed: (s.accepted || s.fallback !== undefined) && versions.isServed(s.route),
          };
        }),
      };
    },
  };
}

/** Values no debug view may show, wherever they turn up (observe/redact.ts). */
function secretValues(opts: RunOptions): string[] {
  return opts.consul?.token ? [opts.consul.token] : [];
}

/** Certificates from Kubernetes Secrets (spec.tls of GatewayRoutes) are on: `--kube --tls-secret-namespaces`. */
function secretCertificatesOn(opts: RunOptions): boolean {
  return (opts.kube?.tlsSecretNamespaces?.length ?? 0) > 0;
}

/**
 * Certificate files (and, through the Kubernetes source, Secrets) → CertManager → `publish` (workers or the
 * in-process listener). Undefined: no certificates configured, no HTTPS.
 */
async function startCertificates(opts: RunOptions, log: Logger, publish: (set: CertSet) => void) {
  const files = new FileCertSource(opts.tlsCerts ?? [], opts.tlsDefaultCert, log);
  const clientSpecs = opts.upstreamClientCerts ?? [];
  const clientFiles = new FileCertSource(clientSpecs, undefined, log);
  if (!files.configured && !secretCertificatesOn(opts) && !clientFiles.configured) return undefined;
  const manager = new CertManager((set) => {
    publish(set);
    log.info('certificates published', {
      version: set.version,
      certificates: set.bundles.length,
      clientCertificates: Object.keys(set.clients ?? {}).length,
    });
  });
  if (files.configured) await files.start((bundles, def) => manager.set('files', bundles, def));
  if (clientFiles.configured)
    await clientFiles.start((bundles) => {
      // Bundles come back in spec order, each tagged with its spec's key.
      const clients: Record<string, { certPem: string; keyPem: string }> = {};
      for (const b of bundles) if (b.key) clients[b.key] = { certPem: b.certPem, keyPem: b.keyPem };
      manager.setClients('files', clients);
    });
  return {
    manager,
    /** Certificates to serve (an HTTPS listener): files or Secrets; client certificates alone open none. */
    serving: files.configured || secretCertificatesOn(opts),
    stop: () => {
      files.stop();
      clientFiles.stop();
    },
  };
}

/**
 * Readiness means "serving a table". A node that restarted during a Consul or API-server outage serves its
 * last-known-good table and stays ready (the edge must not go dark); the note says so.
 */
function lastKnownGoodNotes(
  controller: Controller,
  served: number,
  verdict: LastKnownGoodVerdict | undefined,
): string[] {
  if (controller.synced) return [];
  if (served === 0) return verdict?.refused ? [verdict.warning!] : [];
  const stale = verdict?.stale ? ` — STALE: ${verdict.warning}` : '';
  return [`serving the last-known-good table (version ${served}) until the sources sync${stale}`];
}

/** Live freshness of the Consul datacenters a route's backends use, for /debug/routes (undefined: none). */
function freshnessOf(
  s: RouteStatus,
  figures: Record<string, { indexAgeSeconds: number; stale: boolean; reason?: string }> | undefined,
): Record<string, { indexAgeSeconds: number; stale: boolean; reason?: string }> | undefined {
  if (!figures) return undefined;
  const out: Record<string, { indexAgeSeconds: number; stale: boolean; reason?: string }> = {};
  for (const b of s.backends) {
    if (b.ref.startsWith('service:')) continue;
    for (const dc of Object.keys(b.healthy)) {
      const f = figures[dc];
      if (f)
        out[dc] = {
          indexAgeSeconds: f.indexAgeSeconds,
          stale: f.stale,
          ...(f.reason ? { reason: f.reason } : {}),
        };
    }
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Everything in this process (`--workers 0`): tests, debugging, platforms without fork. */
export async function runGateway(opts: RunOptions): Promise<RunningGateway> {
  const log = opts.logger ?? createLogger(opts.logLevel);
  installProcessSafetyNet(log);
  const policies = new PolicyRuntime(
    { ...opts.policy, trustedHops: opts.trustedHops ?? 0, workers: 1 },
    new LocalCoordinator(),
    log,
  );
  const proxy = new ProxyPipeline({ ...opts.proxySettings, trustedHops: opts.trustedHops ?? 0 }, policies);
  const tls = new TlsListener(proxy, opts.tlsSettings ?? {}, log, opts.listenerSettings);
  const certs = await startCertificates(opts, log, (set) => {
    tls.applyCerts(set);
    proxy.pools.clientCertificates.set(set.clients);
  });
  const plane = createControlPlane(opts, log, (table) => proxy.setTable(table), certs?.manager);
  const { controller } = plane;
  const observed = observeProxy({
    proxy,
    table: () => controller.current,
    worker: '0',
    accessLog: opts.accessLog,
    processMetrics: false,
    policies: () => policies.stats(),
    // The HTTPS listener exists only with certificates.
    tls: () => (certs?.serving ? tls.stats.snapshot() : undefined),
  });
  const hub = plane.metrics(
    async () => ({ answers: [await observed.metrics.snapshot()], live: [process.pid] }),
    () => ({ live: 1, current: proxy.version === (controller.current?.version ?? -1) ? 1 : 0, restarts: 0 }),
  );
  await plane.start();

  const proxyServer = createProxyServer(
    opts.httpsRedirect ? new HttpsRedirector(opts.httpsRedirect.statusCode, opts.httpsRedirect.port) : proxy,
    opts.listenerSettings,
  );
  let draining = false;
  const adminState: AdminState = {
    secrets: () => secretValues(opts),
    readiness: () => {
      const reasons: string[] = [];
      if (draining) reasons.push('draining: the gateway is shutting down');
      if (proxy.version === 0) reasons.push('no routing table served yet');
      reasons.push(...plane.waitingReasons(proxy.version));
      return {
        ready: reasons.length === 0,
        reasons,
        notes: lastKnownGoodNotes(controller, proxy.version, plane.lastKnownGood),
      };
    },
    routes: () => plane.routesView(proxy.version),
    workers: () => ({
      mode: 'single-process',
      pid: process.pid,
      version: proxy.version,
      policies: policies.stats(),
    }),
    sources: () => plane.sourcesView(),
    metrics: () => hub.scrape(),
    upstreams: () => hub.upstreams(),
    ...(policies.settings.testHooks
      ? { testBusy: (ms: number, blockMs: number) => holdEventLoopBusy(ms, blockMs) }
      : {}),
  };
  const proxyAddress = await listen(proxyServer, opts.listen, '--listen');
  const tlsAddress = certs?.serving
    ? await tls
        .listen({ ...parseListen(opts.listenTls ?? ':8443', '--listen-tls'), reusePort: false })
        .catch((err: Error) => {
          throw new ConfigError(`--listen-tls: cannot listen on ${opts.listenTls}: ${err.message}`);
        })
    : undefined;
  const admin = await openAdminListeners(adminState, opts, parseListen, (m, meta) => log.warn(m, meta));
  const adminAddress = admin.address;
  log.info('edgegate is serving', {
    listen: proxyAddress,
    listenTls: tlsAddress,
    admin: adminAddress,
    adminDebug: admin.debugAddress ?? admin.debug,
    workers: 0,
  });

  return {
    proxyAddress,
    tlsAddress,
    tls,
    certificates: certs?.manager,
    adminAddress,
    adminDebugAddress: admin.debugAddress,
    controller,
    ...(plane.kube ? { kube: plane.kube } : {}),
    proxy,
    async drain(settings) {
      draining = true;
      log.info('draining', { ...settings });
      certs?.stop();
      await plane.stop();
      const [r, rt] = await Promise.all([
        drainServer(proxyServer, settings),
        tlsAddress ? tls.drain(settings) : undefined,
      ]);
      r.cut += rt?.cut ?? 0;
      if (r.cut > 0) log.warn('drain timeout: cut requests still running', { cut: r.cut });
      log.info('drained', { ms: r.ms, cut: r.cut });
      return { clean: r.cut === 0 };
    },
    async stop() {
      certs?.stop();
      tls.close();
      await plane.stop();
      proxyServer.close();
      admin.close();
      proxyServer.closeIdleConnections();
      await proxy.close();
      proxyServer.closeAllConnections();
      observed.stop();
    },
  };
}

/** A free TCP port on this host, for `--listen :0` with SO_REUSEPORT workers (each must bind the same one). */
async function pickPort(host: string | undefined): Promise<number> {
  const probe = createNetServer();
  probe.listen({ host, port: 0 });
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  await new Promise((r) => probe.close(r));
  return port;
}

/** The production shape: this process is the primary; `workers` processes proxy. */
export async function runClusterGateway(opts: ClusterRunOptions): Promise<RunningCluster> {
  const log = opts.logger ?? createLogger(opts.logLevel);
  const listenAt = parseListen(opts.listen, '--listen');
  const reusePort = opts.reusePort ?? platformHasReusePort();
  // Port 0: every SO_REUSEPORT worker must bind the same port, so choose it once here.
  if (listenAt.port === 0 && reusePort) listenAt.port = await pickPort(listenAt.host);
  const hasCerts =
    (opts.tlsCerts?.length ?? 0) > 0 || opts.tlsDefaultCert !== undefined || secretCertificatesOn(opts);
  const tlsAt = hasCerts ? parseListen(opts.listenTls ?? ':8443', '--listen-tls') : undefined;
  if (tlsAt && tlsAt.port === 0 && reusePort) tlsAt.port = await pickPort(tlsAt.host);
  const config: WorkerConfig = {
    host: listenAt.host,
    port: listenAt.port,
    reusePort,
    proxy: { ...opts.proxySettings, trustedHops: opts.trustedHops ?? 0 },
    policy: { ...opts.policy, trustedHops: opts.trustedHops ?? 0, workers: opts.workers },
    listener: opts.listenerSettings ?? {},
    logLevel: opts.logLevel,
    drain: opts.drain ?? DEFAULT_DRAIN,
    accessLog: opts.accessLog,
    ...(tlsAt ? { tls: { host: tlsAt.host, port: tlsAt.port, settings: opts.tlsSettings ?? {} } } : {}),
    ...(opts.httpsRedirect ? { httpsRedirect: opts.httpsRedirect } : {}),
  };
  let plane: ReturnType<typeof createControlPlane> | undefined;
  const primary = new ClusterPrimary({
    workers: opts.workers,
    config,
    log,
    watchdog: watchdogSettings(opts.workerBlockTimeoutMs ?? DEFAULT_BLOCK_TIMEOUT_MS),
    onServed: (version) => plane?.served(version),
  });
  const certs = await startCertificates(opts, log, (set) => primary.publishCerts(set));
  plane = createControlPlane(opts, log, (table) => primary.publish(table), certs?.manager, false);
  const { controller } = plane;
  const hub = plane.metrics(
    (timeoutMs) => primary.collectWorkerMetrics(timeoutMs),
    () => {
      const all = primary.workers();
      const current = primary.version;
      return {
        live: all.filter((w) => w.pid !== undefined).length,
        current: all.filter((w) => w.pid !== undefined && current !== 0 && w.version === current).length,
        restarts: primary.restarts,
        blocked: primary.blockedReplacements,
        heartbeatAges: primary.heartbeatAges(),
      };
    },
  );
  primary.start();
  await plane.start();

  const adminState: AdminState = {
    secrets: () => secretValues(opts),
    sources: () => plane.sourcesView(),
    readiness: () => {
      const r = primary.readiness();
      r.reasons.push(...plane.waitingReasons(primary.version));
      return {
        ready: r.reasons.length === 0,
        reasons: r.reasons,
        notes: [...lastKnownGoodNotes(controller, primary.version, plane.lastKnownGood), ...primary.notes()],
      };
    },
    routes: () => plane.routesView(primary.version),
    workers: async () => {
      // Live figures from each worker (asked over IPC), beside what the primary knows of it.
      const live = new Map((await primary.collectWorkerStats(500)).map((s) => [s.pid, s]));
      return {
        mode: 'cluster',
        pid: process.pid,
        ...primary.stats(),
        workers: primary.workers().map((w) => ({ ...w, stats: w.pid ? live.get(w.pid) : undefined })),
        policyState: primary.policyState.stats(),
      };
    },
    metrics: () => hub.scrape(),
    upstreams: () => hub.upstreams(),
    ...(opts.policy?.testHooks
      ? {
          testBusy: (ms: number, blockMs: number, slot?: number) => primary.testBusy(ms, blockMs, slot),
        }
      : {}),
  };
  let admin: Awaited<ReturnType<typeof openAdminListeners>>;
  try {
    admin = await openAdminListeners(adminState, { ...opts, reusePort }, parseListen, (m, meta) =>
      log.warn(m, meta),
    );
  } catch (err) {
    await primary.drain({ delayMs: 0, timeoutMs: 1000 });
    await plane.stop();
    throw err;
  }
  const adminAddress = admin.address;
  let proxyAddress: { address: string; port: number };
  try {
    proxyAddress = await primary.listening();
  } catch (err) {
    await primary.drain({ delayMs: 0, timeoutMs: 1000 });
    admin.close();
    await plane.stop();
    throw new ConfigError(`--listen: cannot listen on ${opts.listen}: ${(err as Error).message}`);
  }
  log.info('edgegate is serving', {
    listen: proxyAddress,
    admin: adminAddress,
    adminDebug: admin.debugAddress ?? admin.debug,
    workers: opts.workers,
    reusePort,
  });

  return {
    proxyAddress,
    adminAddress,
    adminDebugAddress: admin.debugAddress,
    controller,
    ...(plane.kube ? { kube: plane.kube } : {}),
    primary,
    certificates: certs?.manager,
    async drain(settings) {
      log.info('draining', { ...settings, workers: primary.stats().live });
      certs?.stop();
      await plane.stop();
      const r = await primary.drain(settings);
      log.info('drained', { clean: r.clean });
      return r;
    },
    async stop() {
      certs?.stop();
      await plane.stop();
      await primary.drain({ delayMs: 0, timeoutMs: 2000 });
      admin.close();
    },
  };
}

/**
 * The primary's one assembly: sources (route files, catalog file, Consul, Kubernetes) → controller (compile,
 * last-known-good) → `publish` → status (leader-only writes) and the figures of all of it (metrics, readiness,
 * the debug views). Both process shapes build it: `runClusterGateway` publishes to the worker processes (and marks
 * a version served when every worker acknowledged it), `runGateway` (`--workers 0`) to the proxy in its own process.
 *
 * The flow a change takes, all of it visible here: a source reports facts (`controller.setRoutes`, `setCatalog`,
 * `setCertificateRefs`) → the controller compiles (pure) and calls `publish(table)` → `versions.published` →
 * the workers acknowledge → `served(version)` → `versions.served` names the routes now served → the Kubernetes
 * status writer (leader only) writes Programmed. Route problems go the other way: `onStatuses` → status writer
 * and one log line per change.
 */
import type { CatalogSnapshot } from '../api/catalog.ts';
import type { CertSet } from '../api/certificate.ts';
import type { CertificateRefSnapshot } from '../api/certificate-refs.ts';
import { formatPath } from '../api/validate.ts';
import type { RateLimitStoreSettings } from '../cluster/rate-limit-store.ts';
import type { RouteStatus } from '../compile/compile.ts';
import { ConfigError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import type { TableData } from '../table/types.ts';
import { CertManager } from './certificates/cert-manager.ts';
import { type CertFileSpec, type ClientCertFileSpec, FileCertSource } from './certificates/file-certs.ts';
import { Controller, type SourceName } from './controller.ts';
import { LastKnownGood } from './last-known-good.ts';
import {
  DEFAULT_LAST_KNOWN_GOOD_AGE,
  judgeLastKnownGood,
  type LastKnownGoodAgePolicy,
  type LastKnownGoodVerdict,
} from './last-known-good-age.ts';
import { MetricsHub, type MetricsHubOptions } from './metrics/metrics.ts';
import { SourceHealth } from './metrics/source-health.ts';
import { rateLimitStoreSecrets } from './rate-limit-store-setup.ts';
import { RouteVersions } from './route-versions.ts';
import type { ConsulSettings } from './sources/consul/settings.ts';
import { startConsulSource } from './sources/consul/start-consul-source.ts';
import { FileCatalogSource, FileRouteSource } from './sources/file/file-source.ts';
import { certificateRefsOf } from './sources/kube/secret-certs.ts';
import { type KubeOptions, type KubeSources, startKubeSources } from './start-kube.ts';
import { desiredStatus } from './status/status-conditions.ts';

/** What the control plane reads of `edgegate run`'s options. */
export interface ControlPlaneOptions {
  routes?: string;
  catalog?: string;
  /** Discover services from Consul (exclusive with `catalog`). */
  consul?: ConsulSettings;
  stateDir?: string;
  /** Age limit of the last-known-good table at start (`--last-known-good-max-age`, `--last-known-good-when-stale`). */
  lastKnownGoodAge?: LastKnownGoodAgePolicy;
  /** Local datacenter for consul backends without one (standalone: default dc1). */
  datacenter?: string;
  /** `--tls-cert` values, parsed. */
  tlsCerts?: CertFileSpec[];
  /** `--tls-default-cert`, parsed. */
  tlsDefaultCert?: CertFileSpec;
  /** `--upstream-client-cert NAMESPACE/NAME=CERT,KEY`, parsed: client certificates for mTLS to upstreams. */
  upstreamClientCerts?: ClientCertFileSpec[];
  /** GatewayRoutes (and Services' endpoints) from Kubernetes instead of --routes. */
  kube?: KubeOptions;
  /** The shared store of `rateLimit.scope: Global` limits (`--redis-url`); absent: Global limits are unavailable. */
  redis?: RateLimitStoreSettings;
}

/** The control plane of either process shape. */
export type ControlPlane = ReturnType<typeof createControlPlane>;

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

/** Sources → controller, with route problems logged once each. Shared by both process shapes. */
export function createControlPlane(
  opts: ControlPlaneOptions,
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
        const source = startConsulSource(
          sink,
          opts.consul,
          log,
          (seconds) => hub?.consulBlockingQuery.observe(seconds),
          (identity) => certificates?.setMesh(identity),
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
            gatewayBundles: (bundles, def) => certificates.set('gateway-api', bundles, def),
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
            updates: st.snapshots,
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
          const st = kube.stats();
          const synced: Record<string, boolean> = {
            ...st.informersSynced,
            ...st.ingress?.source.informersSynced,
          };
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
          return {
            informers: { ...st.informersSynced, ...st.ingress?.source.informersSynced },
            statusWrites: {
              ok: st.status.writes,
              unchanged: st.status.unchanged,
              not_found: st.status.notFound,
              error: st.status.failures,
            },
            statusQueue: st.status.pending,
            ...(st.ingress
              ? {
                  ingress: {
                    refused: st.ingress.status.refused,
                    unsupported: st.ingress.status.unsupported,
                    statusWrites: {
                      ok: st.ingress.status.statusWrites,
                      error: st.ingress.status.statusFailures,
                    },
                  },
                }
              : {}),
            ...(st.gatewayApi
              ? {
                  gatewayApi: {
                    statusWrites: {
                      ok: st.gatewayApi.status.writes,
                      unchanged: st.gatewayApi.status.unchanged,
                      error: st.gatewayApi.status.failures,
                    },
                    parentsNotAccepted: st.gatewayApi.parentsNotAccepted,
                  },
                }
              : {}),
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
            programmed,
          };
        }),
      };
    },
  };
}

/** Values no debug view may show, wherever they turn up (control/redact.ts). */
export function secretValues(opts: ControlPlaneOptions): string[] {
  return [...(opts.consul?.token ? [opts.consul.token] : []), ...rateLimitStoreSecrets(opts.redis)];
}

/** Certificates from Kubernetes Secrets (spec.tls of GatewayRoutes) are on: `--kube --tls-secret-namespaces`. */
export function secretCertificatesOn(opts: ControlPlaneOptions): boolean {
  return (opts.kube?.tlsSecretNamespaces?.length ?? 0) > 0;
}

/**
 * Certificate files (and, through the Kubernetes source, Secrets) → CertManager → `publish` (workers or the
 * in-process listener). Undefined: no certificates configured, no HTTPS.
 */
export async function startCertificates(
  opts: ControlPlaneOptions,
  log: Logger,
  publish: (set: CertSet) => void,
) {
  const files = new FileCertSource(opts.tlsCerts ?? [], opts.tlsDefaultCert, log);
  const clientSpecs = opts.upstreamClientCerts ?? [];
  const clientFiles = new FileCertSource(clientSpecs, undefined, log);
  const mesh = Boolean(opts.consul?.meshService); // the Consul mesh identity travels in the certificate set
  if (!files.configured && !secretCertificatesOn(opts) && !clientFiles.configured && !mesh) return undefined;
  const manager = new CertManager((set) => {
    publish(set);
    log.info('certificates published', {
      version: set.version,
      certificates: set.bundles.length,
      clientCertificates: Object.keys(set.clients ?? {}).length,
      ...(set.mesh ? { meshRoot: set.mesh.activeRootId, meshLeafSerial: set.mesh.leafSerial } : {}),
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
export function lastKnownGoodNotes(
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
type FreshnessView = { indexAgeSeconds: number; stale: boolean; reason?: string };

function freshnessOf(
  s: RouteStatus,
  figures: Record<string, FreshnessView> | undefined,
): Record<string, FreshnessView> | undefined {
  if (!figures) return undefined;
  const out: Record<string, FreshnessView> = {};
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

/**
 * `edgegate run --kube`: wires the Kubernetes source, leader election and the status writer to a controller.
 * Every pod serves traffic from the informers' view; only the Lease holder writes status and Events.
 */

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import type { KubeServiceSnapshot } from '../api/catalog.ts';
import type { CertBundle } from '../api/certificate.ts';
import type { RouteSource } from '../api/route-source.ts';
import type { RouteStatus } from '../compile/compile.ts';
import { GATEWAY_API_ORIGIN } from '../compile/gateway-api/translate.ts';
import { DurationError, parseDurationSetting } from '../lib/duration.ts';
import { ConfigError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import type { Controller } from './controller.ts';
import { mergeKubeSnapshots } from './sources/gateway-api/merge.ts';
import { clientNodeIngressInformers, IngressSource } from './sources/ingress/ingress-source.ts';
import { clientNodeInformers, KubeSource } from './sources/kube/kube-source.ts';
import {
  clientNodeSecretWatches,
  SecretCertSource,
  type SecretCertStats,
} from './sources/kube/secret-certs.ts';
import {
  type GatewayApiHandle,
  type GatewayApiOptions,
  type GatewayApiStats,
  startGatewayApi,
} from './start-gateway-api.ts';
import {
  clientNodeIngressStatusApi,
  type IngressStatusStats,
  IngressStatusWriter,
} from './status/ingress-status-writer.ts';
import { clientNodeLeaseApi, LEASE_DEFAULTS, LeaderElector } from './status/leader-election.ts';
import {
  clientNodeStatusApi,
  DEFAULT_STATUS_QPS,
  StatusWriter,
  type StatusWriterStats,
} from './status/status-writer.ts';

export interface KubeOptions {
  /** kubeconfig file; without it, the in-cluster service account (KUBERNETES_SERVICE_HOST). */
  kubeconfig?: string;
  /** Namespaces to watch for GatewayRoutes (and their Services); empty: all. */
  namespaces?: string[];
  /** Namespace of the leader Lease (default: POD_NAMESPACE, else the kubeconfig context's, else default). */
  leaseNamespace?: string;
  leaseName?: string;
  /** This pod in the Lease (default: POD_NAME, else hostname + random suffix). */
  identity?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** `--status-write-rate`: status writes per second, sustained (default 100); the burst is twice that. */
  statusQps?: number;
  /** How long a route that waits only for the workers is held before Programmed=Pending is written (1000 ms). */
  statusPendingGraceMs?: number;
  /**
   * `--tls-secret-namespaces`: namespaces whose spec.tls Secrets the gateway reads (the chart grants exactly
   * these). Empty or unset: TLS from Secrets is off, and a route naming a Secret gets ResolvedRefs=False.
   */
  tlsSecretNamespaces?: string[];
  /**
   * `--ingress`: serve networking.k8s.io/v1 Ingresses of edgegate's IngressClasses (docs/ingress.md), in the watched
   * namespaces. `legacyClassName` (`--ingress-class`) is the value of the legacy kubernetes.io/ingress.class
   * annotation edgegate answers to; `publish` (`--ingress-publish-address`) is written to status.loadBalancer.
   */
  ingress?: { legacyClassName?: string; publish?: string[] };
  /** `--gateway-api`: also serve GatewayClasses/Gateways/HTTPRoutes (docs/gateway-api.md). */
  gatewayApi?: GatewayApiOptions;
}

export interface KubeSources {
  /** Pass the controller's onStatuses here: only routes whose own status changed are written. */
  onStatuses(statuses: RouteStatus[]): void;
  /** These routes' current forms are now served by every worker (RouteVersions.served): Programmed. */
  served(routes: string[]): void;
  readonly isLeader: boolean;
  readonly identity: string;
  stats(): KubeStats;
  stop(): Promise<void>;
}

/** The Kubernetes side's figures, typed (metrics, readiness, /debug/sources). */
export interface KubeStats extends ReturnType<KubeSource['stats']> {
  status: StatusWriterStats;
  leader: boolean;
  leaderTransitions: number;
  tlsSecrets: SecretCertStats;
  /** With `--ingress`: the Ingress source and its status writer. */
  ingress?: { source: ReturnType<IngressSource['stats']>; status: IngressStatusStats };
  /** With `--gateway-api`. */
  gatewayApi?: GatewayApiStats;
}

export const DEFAULT_LEASE_NAME = 'edgegate-controller';

export function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (file) kc.loadFromFile(file);
    else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else
      throw new ConfigError(
        '--kube outside a cluster needs --kubeconfig FILE (no KUBERNETES_SERVICE_HOST set)',
      );
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`--kubeconfig ${file}: ${(err as Error).message}`);
  }
  if (!kc.getCurrentCluster()) throw new ConfigError(`--kubeconfig ${file}: no current cluster`);
  return kc;
}

/** An optional duration flag (src/lib/duration.ts), refused as a ConfigError naming it. */
export function parseDurationMs(value: string | undefined, flag: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  try {
    return parseDurationSetting(value, flag);
  } catch (err) {
    if (err instanceof DurationError) throw new ConfigError(err.message);
    throw err;
  }
}

/**
 * @param certificates where the spec.tls Secrets' certificates go (`CertManager.set('secrets', …)`); undefined
 * when the gateway has no HTTPS listener.
 * @param programmed every live worker serves the route's current compiled form (control/route-versions.ts).
 */
export function startKubeSources(
  controller: Controller,
  opts: KubeOptions,
  log: Logger,
  certificates:
    | {
        bundles: (bundles: CertBundle[]) => void;
        clients: (clients: Record<string, { certPem: string; keyPem: string }>) => void;
        /** Certificates of Gateway API HTTPS listeners (their own provider). */
        gatewayBundles?: (bundles: CertBundle[], defaultBundle: CertBundle | undefined) => void;
      }
    | undefined,
  programmed: (route: string) => boolean,
): KubeSources {
  const kc = loadKubeConfig(opts.kubeconfig);
  const identity = opts.identity ?? process.env.POD_NAME ?? `${hostname()}-${randomBytes(3).toString('hex')}`;
  const leaseNamespace =
    opts.leaseNamespace ??
    process.env.POD_NAMESPACE ??
    kc.getContextObject(kc.getCurrentContext())?.namespace ??
    'default';

  const secrets = new SecretCertSource({
    namespaces: opts.tlsSecretNamespaces ?? [],
    factory: clientNodeSecretWatches(kc),
    onBundles: (bundles) => certificates?.bundles(bundles),
    onClients: (clients) => certificates?.clients(clients),
    onRefs: (refs) => controller.setCertificateRefs(refs),
    log,
  });
  controller.onRoutes((routes) => secrets.setRoutes(routes));
  // GatewayRoutes and (with --gateway-api) translated HTTPRoutes: the controller gets both once both reported.
  const parts: { routes: RouteSource[][]; kube: KubeServiceSnapshot[] } = { routes: [], kube: [] };
  const setRoutes = (i: number, routes: RouteSource[]) => {
    parts.routes[i] = routes;
    if (opts.gatewayApi && (!parts.routes[0] || !parts.routes[1])) return;
    controller.setRoutes(opts.gatewayApi ? [...parts.routes[0]!, ...parts.routes[1]!] : routes);
  };
  const setKube = (i: number, kube: KubeServiceSnapshot) => {
    parts.kube[i] = kube;
    if (opts.gatewayApi && (!parts.kube[0] || !parts.kube[1])) return;
    controller.setKube(opts.gatewayApi ? mergeKubeSnapshots(parts.kube[0]!, parts.kube[1]!) : kube);
  };
  let elector: LeaderElector | undefined;
  const ingressWriter = opts.ingress
    ? new IngressStatusWriter({
        api: clientNodeIngressStatusApi(kc, identity),
        isLeader: () => elector?.isLeader ?? false,
        current: (ns, name) => ingresses?.ingress(ns, name),
        publish: opts.ingress.publish ?? [],
        log,
      })
    : undefined;
  const ingresses = opts.ingress
    ? new IngressSource({
        ...(opts.namespaces ? { namespaces: opts.namespaces } : {}),
        ...(opts.ingress.legacyClassName ? { legacyClassName: opts.ingress.legacyClassName } : {}),
        factory: clientNodeIngressInformers(kc),
        onSnapshot: (snap) => {
          source.setExtraRoutes(snap.routes, snap.services);
          ingressWriter?.update(snap.served);
        },
        log,
      })
    : undefined;
  const source = new KubeSource({
    extraRoutes: ingresses !== undefined,
    ...(opts.namespaces ? { namespaces: opts.namespaces } : {}),
    factory: clientNodeInformers(kc),
    // The Secrets to watch follow the controller's routes: those reported plus the last valid version of each
    // invalid one (still served, so its certificates are still needed).
    onRoutes: (routes) => setRoutes(0, routes),
    onKube: (kube) => setKube(0, kube),
    log,
  });
  let gatewayApi: GatewayApiHandle | undefined;
  const writer = new StatusWriter({
    api: clientNodeStatusApi(kc, identity),
    current: (ns, name) => source.route(ns, name),
    isLeader: () => elector?.isLeader ?? false,
    programmed,
    log,
    ...(opts.statusQps ? { qps: opts.statusQps } : {}),
    ...(opts.statusPendingGraceMs !== undefined ? { pendingGraceMs: opts.statusPendingGraceMs } : {}),
  });
  elector = new LeaderElector({
    api: clientNodeLeaseApi(kc),
    namespace: leaseNamespace,
    name: opts.leaseName ?? DEFAULT_LEASE_NAME,
    identity,
    leaseDurationMs: opts.leaseDurationMs ?? LEASE_DEFAULTS.leaseDurationMs,
    renewDeadlineMs: opts.renewDeadlineMs ?? LEASE_DEFAULTS.renewDeadlineMs,
    retryPeriodMs: opts.retryPeriodMs ?? LEASE_DEFAULTS.retryPeriodMs,
    onStartedLeading: () => {
      writer.resync();
      ingressWriter?.resync();
      gatewayApi?.resync();
    },
    log,
  });

  log.info('kubernetes source starting', {
    server: kc.getCurrentCluster()?.server,
    namespaces: opts.namespaces && opts.namespaces.length > 0 ? opts.namespaces : 'all',
    lease: `${leaseNamespace}/${opts.leaseName ?? DEFAULT_LEASE_NAME}`,
    identity,
    tlsSecretNamespaces: opts.tlsSecretNamespaces ?? [],
    statusWriteRate: opts.statusQps ?? DEFAULT_STATUS_QPS,
  });
  source.start();
  ingresses?.start();
  if (opts.gatewayApi)
    gatewayApi = startGatewayApi({
      kc,
      opts: opts.gatewayApi,
      secretNamespaces: opts.tlsSecretNamespaces ?? [],
      identity,
      isLeader: () => elector?.isLeader ?? false,
      log,
      onRoutes: (routes) => setRoutes(1, routes),
      onKube: (kube) => setKube(1, kube),
      certificates: certificates?.gatewayBundles,
    });
  elector.start();

  return {
    onStatuses: (statuses) => {
      ingressWriter?.routeStatuses(statuses);
      if (!gatewayApi) return writer.update(statuses);
      writer.update(statuses.filter((s) => !s.origin.startsWith(GATEWAY_API_ORIGIN)));
      gatewayApi.onStatuses(statuses);
    },
    served: (routes) => writer.recheck(routes),
    get isLeader() {
      return elector?.isLeader ?? false;
    },
    identity,
    stats: () => ({
      ...source.stats(),
      status: writer.stats(),
      leader: elector?.isLeader ?? false,
      leaderTransitions: elector?.stats().transitions ?? 0,
      tlsSecrets: secrets.stats(),
      ...(ingresses && ingressWriter
        ? { ingress: { source: ingresses.stats(), status: ingressWriter.stats() } }
        : {}),
      ...(gatewayApi ? { gatewayApi: gatewayApi.stats() } : {}),
    }),
    async stop() {
      writer.stop();
      ingressWriter?.stop();
      await elector?.stop();
      await Promise.all([source.stop(), secrets.stop(), ingresses?.stop(), gatewayApi?.stop()]);
    },
  };
}

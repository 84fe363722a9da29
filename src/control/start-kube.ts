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
import { clientNodeInformers, KubeSource } from './sources/kube/kube-source.ts';
import { clientNodeSecretWatches, SecretCertSource } from './sources/kube/secret-certs.ts';
import { type GatewayApiHandle, type GatewayApiOptions, startGatewayApi } from './start-gateway-api.ts';
import { clientNodeLeaseApi, LEASE_DEFAULTS, LeaderElector } from './status/leader-election.ts';
import { clientNodeStatusApi, DEFAULT_STATUS_QPS, StatusWriter } from './status/status-writer.ts';

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
  stats(): Record<string, number | boolean>;
  stop(): Promise<void>;
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
  const source = new KubeSource({
    ...(opts.namespaces ? { namespaces: opts.namespaces } : {}),
    factory: clientNodeInformers(kc),
    // The Secrets to watch follow the controller's routes: those reported plus the last valid version of each
    // invalid one (still served, so its certificates are still needed).
    onRoutes: (routes) => setRoutes(0, routes),
    onKube: (kube) => setKube(0, kube),
    log,
  });
  let elector: LeaderElector | undefined;
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
      ...Object.fromEntries(Object.entries(writer.stats()).map(([k, v]) => [`status_${k}`, v])),
      leader: elector?.isLeader ?? false,
      leaderTransitions: elector?.stats().transitions ?? 0,
      ...Object.fromEntries(Object.entries(secrets.stats()).map(([k, v]) => [`tlsSecret_${k}`, v])),
      ...Object.fromEntries(
        Object.entries(gatewayApi?.stats() ?? {}).map(([k, v]) => [`gatewayApi_${k}`, v]),
      ),
    }),
    async stop() {
      writer.stop();
      await elector?.stop();
      await Promise.all([source.stop(), secrets.stop(), gatewayApi?.stop()]);
    },
  };
}

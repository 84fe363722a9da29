/**
 * `edgegate run --kube --gateway-api`: wires the Gateway API source (sources/gateway-api/), the pure translation
 * (compile/gateway-api/), the Secrets of HTTPS listeners (a SecretCertSource of its own) and the Gateway API
 * status writer (leader only) together. It hands start-kube.ts the translated routes and the endpoints of the
 * Services they name; start-kube merges them with the GatewayRoutes' before the controller sees them.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeServiceSnapshot } from '../api/catalog.ts';
import type { CertBundle } from '../api/certificate.ts';
import type { CertificateRefSnapshot } from '../api/certificate-refs.ts';
import { emptyGatewayApiSnapshot, type GatewayApiSnapshot } from '../api/gateway-api.ts';
import { API_GROUP, API_VERSION, KIND } from '../api/gateway-route.ts';
import type { RouteSource } from '../api/route-source.ts';
import { type RouteStatus, validRoutes } from '../compile/compile.ts';
import { gatewayApiStatuses } from '../compile/gateway-api/status.ts';
import {
  type GatewayApiResult,
  type GatewayApiSettings,
  type SecretVerdicts,
  translateGatewayApi,
} from '../compile/gateway-api/translate.ts';
import type { Logger } from '../lib/log.ts';
import {
  clientNodeGatewayApiInformers,
  GatewayApiSource,
  type ServiceView,
} from './sources/gateway-api/gateway-api-source.ts';
import { buildKubeSnapshot } from './sources/kube/kube-source.ts';
import { clientNodeSecretWatches, SecretCertSource } from './sources/kube/secret-certs.ts';
import {
  clientNodeGatewayApiStatusApi,
  GatewayApiStatusWriter,
  type StatusKind,
} from './status/gateway-api-status-writer.ts';

export interface GatewayApiOptions {
  /** The ports clients reach the HTTP and HTTPS listeners on (Gateway listeners must use them). */
  httpPort: number;
  httpsPort?: number;
  /** The gateway's addresses, written in Gateway status (the chart passes the node IP). */
  addresses: string[];
}

export interface GatewayApiHandle {
  /** Compile's statuses of the translated routes (and every other route, for conflicts). */
  onStatuses(statuses: RouteStatus[]): void;
  /** The lease was won: check every status. */
  resync(): void;
  stats(): GatewayApiStats;
  stop(): Promise<void>;
}

/** The Gateway API side's figures, typed (metrics, /debug/sources). */
export interface GatewayApiStats extends ReturnType<GatewayApiSource['stats']> {
  /** HTTPRoute parents whose Accepted condition is not True. */
  parentsNotAccepted: number;
  status: ReturnType<GatewayApiStatusWriter['stats']>;
}

export function startGatewayApi(deps: {
  kc: KubeConfig;
  opts: GatewayApiOptions;
  secretNamespaces: string[];
  identity: string;
  isLeader: () => boolean;
  log: Logger;
  onRoutes: (routes: RouteSource[]) => void;
  onKube: (kube: KubeServiceSnapshot) => void;
  certificates: ((bundles: CertBundle[], defaultBundle: CertBundle | undefined) => void) | undefined;
}): GatewayApiHandle {
  const { opts, log } = deps;
  const settings: GatewayApiSettings = {
    httpPort: opts.httpPort,
    httpsPort: opts.httpsPort,
    addresses: opts.addresses,
    secretNamespaces: deps.secretNamespaces,
  };
  let snapshot: GatewayApiSnapshot = emptyGatewayApiSnapshot();
  let view: ServiceView = { services: [], slices: [] };
  let verdicts: SecretVerdicts = {};
  let result: GatewayApiResult | undefined;
  let lastCompiled: RouteStatus[] = [];
  // The same raw object for an unchanged translated route: compile's memo then skips it.
  let rawCache = new Map<string, unknown>();
  let lastKube = '';
  let lastCertRoutes = '';
  let listenerBundles: CertBundle[] = [];
  let defaultBundle: CertBundle | undefined;

  const secrets = new SecretCertSource({
    namespaces: deps.secretNamespaces,
    factory: clientNodeSecretWatches(deps.kc),
    onBundles: (bundles) => {
      listenerBundles = bundles;
      deps.certificates?.(listenerBundles, defaultBundle);
    },
    // A listener without a hostname serves its certificate to every SNI no other certificate claims: the default.
    // The Secret source reports such Secrets as client certificates (the stand-in route names them so).
    onClients: (clients) => {
      const first = result?.certificates.find((c) => c.hostname === undefined && clients[c.secret]);
      const c = first && clients[first.secret];
      defaultBundle = c && first ? { source: `secret:${first.secret}`, hostnames: [], ...c } : undefined;
      deps.certificates?.(listenerBundles, defaultBundle);
    },
    onRefs: (refs: CertificateRefSnapshot) => {
      const next: SecretVerdicts = {};
      for (const [k, v] of Object.entries(refs.secrets))
        next[k] = v.ok ? { ok: true } : { ok: false, message: `Secret ${k}: ${v.message}` };
      if (JSON.stringify(next) === JSON.stringify(verdicts)) return;
      verdicts = next;
      rebuild();
    },
    log,
  });

  const writer = new GatewayApiStatusWriter({
    api: clientNodeGatewayApiStatusApi(deps.kc, deps.identity),
    current: (kind: StatusKind, ns, name) =>
      source.object(kind, ns, name) as { status?: unknown } | undefined,
    isLeader: deps.isLeader,
    log,
  });

  const writeStatuses = () => {
    if (!result) return;
    writer.update(gatewayApiStatuses(result, lastCompiled));
  };

  function rebuild(): void {
    result = translateGatewayApi(snapshot, settings, verdicts);
    const nextCache = new Map<string, unknown>();
    const routes: RouteSource[] = result.routes.map((r) => {
      const text = JSON.stringify(r.source.raw);
      const raw = rawCache.get(text) ?? r.source.raw;
      nextCache.set(text, raw);
      return {
        raw,
        origin: r.source.origin,
        crossNamespaceBackends: true,
        ...(r.listenerAddresses ? { listenerAddresses: r.listenerAddresses } : {}),
      };
    });
    rawCache = nextCache;
    // Listener certificates: the Secret source reads `spec.tls` of routes; hand it one stand-in route per Secret.
    const certRoutes = result.certificates.map((c, i) => {
      const [namespace, name] = c.secret.split('/') as [string, string];
      return {
        raw: {
          apiVersion: `${API_GROUP}/${API_VERSION}`,
          kind: KIND,
          metadata: { name: `listener-${i}..gateway`, namespace },
          spec: c.hostname
            ? {
                hostnames: [c.hostname],
                rules: [{ backends: [{ service: { name: 'unused', port: 1 } }] }],
                tls: [{ secretName: name }],
              }
            : {
                rules: [
                  {
                    backends: [
                      { service: { name: 'unused', port: 1 }, tls: { clientCertificateRef: { name } } },
                    ],
                  },
                ],
              },
        },
        origin: 'gateway-api:listener',
      };
    });
    const certKey = JSON.stringify(certRoutes.map((r) => r.raw));
    if (certKey !== lastCertRoutes) {
      lastCertRoutes = certKey;
      secrets.setRoutes(validRoutes(certRoutes));
    }
    const wanted = new Set<string>();
    for (const r of routes) {
      const ns = (r.raw as { metadata: { namespace: string } }).metadata.namespace;
      for (const rule of (
        r.raw as { spec: { rules: { backends?: { service?: { name: string; namespace?: string } }[] }[] } }
      ).spec.rules)
        for (const b of rule.backends ?? [])
          if (b.service) wanted.add(`${b.service.namespace ?? ns}/${b.service.name}`);
    }
    const kube = buildKubeSnapshot(wanted, view.services, view.slices);
    const kubeKey = JSON.stringify(kube);
    if (kubeKey !== lastKube) {
      lastKube = kubeKey;
      deps.onKube(kube);
    }
    deps.onRoutes(routes);
    writeStatuses();
  }

  const source = new GatewayApiSource({
    factory: clientNodeGatewayApiInformers(deps.kc),
    onSnapshot: (snap, services) => {
      snapshot = snap;
      view = services;
      rebuild();
    },
    log,
  });
  source.start();
  log.info('gateway api source starting', { ...opts });

  return {
    onStatuses(statuses) {
      lastCompiled = statuses;
      writeStatuses();
    },
    resync: () => writer.resync(),
    stats: () => ({
      ...source.stats(),
      parentsNotAccepted: [...(result?.routeStatuses.values() ?? [])]
        .flatMap((r) => r.parents)
        .filter((p) => p.conditions.some((c) => c.type === 'Accepted' && c.status !== 'True')).length,
      status: writer.stats(),
    }),
    async stop() {
      writer.stop();
      await Promise.all([source.stop(), secrets.stop()]);
    },
  };
}

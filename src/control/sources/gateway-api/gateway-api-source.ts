/**
 * The Gateway API source: informers (all namespaces) for GatewayClasses, Gateways, HTTPRoutes, ReferenceGrants,
 * edgegate's ConsulServices, Namespaces (for allowedRoutes selectors), Services and EndpointSlices. It reports full
 * snapshots of its own view only: the raw Gateway API objects (the caller translates them, compile/gateway-api/)
 * and the endpoints of the Services the translated routes name. Nothing is reported before every informer has
 * listed once; events are batched (at most one report every REPORT_GAP_MS while they keep coming).
 */
import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  type KubeConfig,
  type KubernetesObject,
  ListWatch,
  type V1EndpointSlice,
  type V1Service,
  Watch,
} from '@kubernetes/client-node';
import {
  CONSUL_SERVICE_PLURAL,
  type ConsulServiceObject,
  GATEWAY_API_GROUP,
  type GatewayApiSnapshot,
  type GatewayClassObject,
  type GatewayObject,
  type HTTPRouteObject,
  type NamespaceObject,
  type ReferenceGrantObject,
} from '../../../api/gateway-api.ts';
import { API_GROUP, API_VERSION } from '../../../api/gateway-route.ts';
import type { BackoffOptions } from '../../../lib/backoff.ts';
import type { Logger } from '../../../lib/log.ts';
import { describeError, LIST_TIMEOUT_MS, REPORT_GAP_MS, withTimeout } from '../kube/kube-source.ts';
import { pooledApiClient } from '../kube/pooled-api.ts';
import { type InformerLike, ResilientInformer } from '../kube/resilient-informer.ts';

export type GatewayApiKind =
  | 'gatewayclasses'
  | 'gateways'
  | 'httproutes'
  | 'referencegrants'
  | 'consulservices'
  | 'namespaces'
  | 'services'
  | 'endpointslices';

const KINDS: GatewayApiKind[] = [
  'gatewayclasses',
  'gateways',
  'httproutes',
  'referencegrants',
  'consulservices',
  'namespaces',
  'services',
  'endpointslices',
];

/** Where each kind is listed (all namespaces). */
export const GATEWAY_API_PATHS: Record<GatewayApiKind, { group: string; version: string; plural: string }> = {
  gatewayclasses: { group: GATEWAY_API_GROUP, version: 'v1', plural: 'gatewayclasses' },
  gateways: { group: GATEWAY_API_GROUP, version: 'v1', plural: 'gateways' },
  httproutes: { group: GATEWAY_API_GROUP, version: 'v1', plural: 'httproutes' },
  referencegrants: { group: GATEWAY_API_GROUP, version: 'v1beta1', plural: 'referencegrants' },
  consulservices: { group: API_GROUP, version: API_VERSION, plural: CONSUL_SERVICE_PLURAL },
  namespaces: { group: '', version: 'v1', plural: 'namespaces' },
  services: { group: '', version: 'v1', plural: 'services' },
  endpointslices: { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices' },
};

export type GatewayApiInformerFactory = (kind: GatewayApiKind) => InformerLike<KubernetesObject>;

/** The informers client-node gives for a kubeconfig (plain list + watch of each path, all namespaces). */
export function clientNodeGatewayApiInformers(kc: KubeConfig): GatewayApiInformerFactory {
  const custom = pooledApiClient(kc, CustomObjectsApi);
  const core = pooledApiClient(kc, CoreV1Api);
  const discovery = pooledApiClient(kc, DiscoveryV1Api);
  const watch = new Watch(kc);
  return (kind) => {
    const p = GATEWAY_API_PATHS[kind];
    const path =
      p.group === '' ? `/api/${p.version}/${p.plural}` : `/apis/${p.group}/${p.version}/${p.plural}`;
    // biome-ignore lint/suspicious/noExplicitAny: client-node's list functions return model classes or `any`.
    let list: () => Promise<any>;
    if (kind === 'namespaces') list = () => core.listNamespace();
    else if (kind === 'services') list = () => core.listServiceForAllNamespaces();
    else if (kind === 'endpointslices') list = () => discovery.listEndpointSliceForAllNamespaces();
    else
      list = () => custom.listClusterCustomObject({ group: p.group, version: p.version, plural: p.plural });
    const timedList = () => withTimeout(list(), LIST_TIMEOUT_MS, `list ${path}`);
    return new ListWatch<KubernetesObject>(path, watch, timedList, false);
  };
}

export interface GatewayApiSourceOptions {
  factory: GatewayApiInformerFactory;
  /** Every report: the whole Gateway API view. */
  onSnapshot: (snapshot: GatewayApiSnapshot, services: ServiceView) => void;
  log: Logger;
  backoff?: BackoffOptions;
}

/** The Services and EndpointSlices seen, for buildKubeSnapshot. */
export interface ServiceView {
  services: V1Service[];
  slices: V1EndpointSlice[];
}

export class GatewayApiSource {
  readonly #opts: GatewayApiSourceOptions;
  readonly #informers = new Map<GatewayApiKind, ResilientInformer>();
  #timer: NodeJS.Timeout | undefined;
  #lastReport = Number.NEGATIVE_INFINITY;
  #stopped = false;
  #reports = 0;
  /**
   * Kinds whose list answers 404 (their CRD is not installed): they count as synced and empty, so that GatewayRoutes
   * are not held back by a missing Gateway API CRD; the informer keeps retrying and picks the kind up once it exists.
   */
  readonly #absent = new Set<GatewayApiKind>();

  constructor(opts: GatewayApiSourceOptions) {
    this.#opts = opts;
    for (const kind of KINDS) {
      this.#informers.set(
        kind,
        new ResilientInformer({
          name: `${kind} (gateway api)`,
          create: () => opts.factory(kind),
          onChange: () => {
            this.#absent.delete(kind);
            this.#schedule();
          },
          onError: (err, delayMs) => {
            const e = err as { code?: unknown; statusCode?: unknown };
            if ((e.code ?? e.statusCode) === 404 && !this.#absent.has(kind)) {
              this.#absent.add(kind);
              opts.log.error(
                `${GATEWAY_API_PATHS[kind].plural}.${GATEWAY_API_PATHS[kind].group} is not served by the API server (CRD not installed?): none are read until it is`,
              );
              this.#schedule();
              return;
            }
            opts.log.warn(`gateway api informer ${kind} failed; restarting in ${delayMs} ms`, {
              error: describeError(err),
            });
          },
          ...(opts.backoff ? { backoff: opts.backoff } : {}),
        }),
      );
    }
  }

  start(): void {
    for (const i of this.#informers.values()) i.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await Promise.all([...this.#informers.values()].map((i) => i.stop()));
  }

  get synced(): boolean {
    return [...this.#informers].every(([kind, i]) => i.synced || this.#absent.has(kind));
  }

  /** The cached object (with its current status), for the status writer. */
  object(kind: GatewayApiKind, namespace: string | undefined, name: string): KubernetesObject | undefined {
    return this.#informers.get(kind)?.get(name, namespace);
  }

  stats(): {
    synced: boolean;
    reports: number;
    informerRestarts: number;
    informerErrors: number;
    absentKinds: number;
  } {
    const all = [...this.#informers.values()].map((i) => i.stats());
    return {
      synced: this.synced,
      absentKinds: this.#absent.size,
      reports: this.#reports,
      informerRestarts: all.reduce((n, s) => n + s.restarts, 0),
      informerErrors: all.reduce((n, s) => n + s.errors, 0),
    };
  }

  #schedule(): void {
    if (this.#timer || this.#stopped) return;
    const wait = Math.max(0, this.#lastReport + REPORT_GAP_MS - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#emit();
    }, wait);
  }

  #list<T>(kind: GatewayApiKind): T[] {
    return (this.#informers.get(kind)?.list() ?? []) as unknown as T[];
  }

  #emit(): void {
    if (!this.synced || this.#stopped) return;
    this.#lastReport = performance.now();
    const services = this.#list<V1Service>('services');
    const ports: Record<string, number[]> = {};
    for (const s of services)
      ports[`${s.metadata?.namespace ?? 'default'}/${s.metadata?.name}`] = (s.spec?.ports ?? []).map(
        (p) => p.port,
      );
    const snapshot: GatewayApiSnapshot = {
      classes: this.#list<GatewayClassObject>('gatewayclasses'),
      gateways: this.#list<GatewayObject>('gateways'),
      routes: this.#list<HTTPRouteObject>('httproutes'),
      grants: this.#list<ReferenceGrantObject>('referencegrants'),
      consulServices: this.#list<ConsulServiceObject>('consulservices'),
      namespaces: this.#list<NamespaceObject>('namespaces'),
      services: ports,
    };
    this.#reports++;
    this.#opts.onSnapshot(snapshot, { services, slices: this.#list<V1EndpointSlice>('endpointslices') });
  }
}

/**
 * The Kubernetes source: informers for GatewayRoutes, Services and EndpointSlices (all namespaces, or one set
 * per watched namespace). It reports full snapshots only — the routes (RouteSource, origin `kube`) and the
 * ready endpoints of the Services those routes reference — and nothing before every informer has finished its
 * first list, so the controller never publishes a table built from half a view.
 *
 * The snapshots are kept up to date one watch event at a time (route-index.ts, service-index.ts): an event costs
 * in proportion to its object, and one that changes nothing compile reads (a status write — the gateway's own
 * among them —, a new resourceVersion, a Service no route names) reports nothing. Reports are batched: at most one
 * every REPORT_GAP_MS while events keep coming (the first one at once), each the size of the route list.
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
import type { KubeService, KubeServiceSnapshot } from '../../../api/catalog.ts';
import { CRD_PLURAL } from '../../../api/crd.ts';
import { API_GROUP, API_VERSION, KIND } from '../../../api/gateway-route.ts';
import type { RouteSource } from '../../../api/route-source.ts';
import type { BackoffOptions } from '../../../lib/backoff.ts';
import type { Logger } from '../../../lib/log.ts';
import { pooledApiClient } from './pooled-api.ts';
import { type InformerLike, ResilientInformer } from './resilient-informer.ts';
import { type GatewayRouteObject, RouteIndex } from './route-index.ts';
import { ServiceIndex } from './service-index.ts';

export const KUBE_ORIGIN = 'kube';

/** While events keep coming, reports go out at most this often (the first of a burst at once). */
export const REPORT_GAP_MS = 50;

export type { GatewayRouteObject } from './route-index.ts';

type Kind = 'routes' | 'services' | 'slices';

/** Builds the informer for one kind in one namespace (undefined: all namespaces). Replaceable in unit tests. */
export type InformerFactory = (kind: Kind, namespace: string | undefined) => InformerLike<KubernetesObject>;

export interface KubeSourceOptions {
  /** Namespaces to watch; empty or undefined: all. */
  namespaces?: string[];
  onRoutes: (routes: RouteSource[]) => void;
  onKube: (kube: KubeServiceSnapshot) => void;
  log: Logger;
  factory: InformerFactory;
  backoff?: BackoffOptions;
  /**
   * Another source makes routes too (the Ingress source): nothing is reported before its first setExtraRoutes, and
   * its routes and Services are reported and watched with the GatewayRoutes'.
   */
  extraRoutes?: boolean;
}

/** The informers client-node gives for a kubeconfig. */
export function clientNodeInformers(kc: KubeConfig): InformerFactory {
  const custom = pooledApiClient(kc, CustomObjectsApi);
  const core = pooledApiClient(kc, CoreV1Api);
  const discovery = pooledApiClient(kc, DiscoveryV1Api);
  const watch = new Watch(kc);
  return (kind, namespace) => {
    const ns = namespace ? `/namespaces/${namespace}` : '';
    // biome-ignore lint/suspicious/noExplicitAny: client-node's list functions return model classes or `any`.
    let list: () => Promise<any>;
    let path: string;
    if (kind === 'routes') {
      path = `/apis/${API_GROUP}/${API_VERSION}${ns}/${CRD_PLURAL}`;
      const group = { group: API_GROUP, version: API_VERSION, plural: CRD_PLURAL };
      list = namespace
        ? () => custom.listNamespacedCustomObject({ ...group, namespace })
        : () => custom.listClusterCustomObject(group);
    } else if (kind === 'services') {
      path = `/api/v1${ns}/services`;
      list = namespace
        ? () => core.listNamespacedService({ namespace })
        : () => core.listServiceForAllNamespaces();
    } else {
      path = `/apis/discovery.k8s.io/v1${ns}/endpointslices`;
      list = namespace
        ? () => discovery.listNamespacedEndpointSlice({ namespace })
        : () => discovery.listEndpointSliceForAllNamespaces();
    }
    // A list that never answers (a blackholed API server) would stall the informer for good: time it out, so
    // the error path restarts it.
    const timedList = () => withTimeout(list(), LIST_TIMEOUT_MS, `list ${path}`);
    return new ListWatch<KubernetesObject>(path, watch, timedList, false);
  };
}

export const LIST_TIMEOUT_MS = 60_000;

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function portNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && /^[0-9]+$/.test(value)) return Number(value);
  return undefined;
}

/** Services named by `service` backends, as `namespace/name`. */
export function referencedServices(routes: ReadonlyArray<GatewayRouteObject>): Set<string> {
  const out = new Set<string>();
  for (const r of routes) {
    const ns = r.metadata?.namespace ?? 'default';
    const rules = (r.spec as { rules?: unknown } | undefined)?.rules;
    if (!Array.isArray(rules)) continue;
    for (const rule of rules) {
      const backends = (rule as { backends?: unknown } | null)?.backends;
      if (!Array.isArray(backends)) continue;
      for (const b of backends) {
        const name = (b as { service?: { name?: unknown } } | null)?.service?.name;
        if (typeof name === 'string') out.add(`${ns}/${name}`);
      }
    }
  }
  return out;
}

/**
 * Services (for ports and existence) and EndpointSlices (for endpoints) → the snapshot compile reads. Only ready
 * endpoints (a missing `ready` condition means ready, as the EndpointSlice API says); IP address types only.
 */
export function buildKubeSnapshot(
  wanted: Set<string>,
  services: ReadonlyArray<V1Service>,
  slices: ReadonlyArray<V1EndpointSlice>,
): KubeServiceSnapshot {
  const out: Record<string, KubeService> = {};
  const svcByKey = new Map(services.map((s) => [`${s.metadata?.namespace}/${s.metadata?.name}`, s]));
  const slicesByKey = new Map<string, V1EndpointSlice[]>();
  for (const slice of slices) {
    const svc = slice.metadata?.labels?.['kubernetes.io/service-name'];
    if (!svc) continue;
    const key = `${slice.metadata?.namespace}/${svc}`;
    if (!wanted.has(key)) continue;
    const list = slicesByKey.get(key);
    if (list) list.push(slice);
    else slicesByKey.set(key, [slice]);
  }
  for (const key of [...wanted].sort()) {
    const svc = svcByKey.get(key);
    const own = slicesByKey.get(key) ?? [];
    if (!svc && own.length === 0) continue; // unresolved: compile says "Service … not found"
    const ports = new Map<string, { name: string; port: number; targetPort: number }>();
    for (const p of svc?.spec?.ports ?? []) {
      const name = p.name ?? '';
      // A named targetPort is resolved per endpoint by the EndpointSlice port of the Service port's name.
      ports.set(name, { name, port: p.port, targetPort: portNumber(p.targetPort) ?? p.port });
    }
    const endpoints = new Map<string, KubeService['endpoints'][number]>();
    for (const slice of own) {
      if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') continue;
      const slicePorts: Record<string, number> = {};
      for (const p of slice.ports ?? []) {
        if (p.port === undefined || (p.protocol ?? 'TCP') !== 'TCP') continue;
        slicePorts[p.name ?? ''] = p.port;
        // No Service object (or it lacks this port): the slice's port stands for itself.
        if (!ports.has(p.name ?? ''))
          ports.set(p.name ?? '', { name: p.name ?? '', port: p.port, targetPort: p.port });
      }
      for (const ep of slice.endpoints ?? []) {
        if (ep.conditions?.ready === false) continue;
        for (const address of ep.addresses ?? []) {
          const id = `${address}|${JSON.stringify(slicePorts)}`;
          endpoints.set(id, { address, ports: { ...slicePorts }, ready: true });
        }
      }
    }
    out[key] = {
      ports: [...ports.values()].sort((a, b) => a.name.localeCompare(b.name) || a.port - b.port),
      endpoints: [...endpoints.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([, e]) => e),
    };
  }
  return { services: out };
}

/** The raw route compile validates: what the user wrote plus the metadata precedence and status need. */
export function routeSourceOf(obj: GatewayRouteObject): RouteSource {
  const m = obj.metadata ?? {};
  const metadata: Record<string, unknown> = { name: m.name, namespace: m.namespace ?? 'default' };
  if (m.generation !== undefined) metadata.generation = m.generation;
  if (m.creationTimestamp !== undefined)
    metadata.creationTimestamp =
      m.creationTimestamp instanceof Date ? m.creationTimestamp.toISOString() : m.creationTimestamp;
  if (m.uid !== undefined) metadata.uid = m.uid;
  return {
    raw: { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: KIND, metadata, spec: obj.spec },
    origin: KUBE_ORIGIN,
  };
}

export class KubeSource {
  readonly #opts: KubeSourceOptions;
  readonly #routes: ResilientInformer[] = [];
  readonly #services: ResilientInformer[] = [];
  readonly #slices: ResilientInformer[] = [];
  readonly #routeIndex = new RouteIndex({
    sourceOf: routeSourceOf,
    servicesOf: (obj) => referencedServices([obj]),
  });
  readonly #serviceIndex = new ServiceIndex();
  /** The indexes were filled from the full lists (once every informer had synced). */
  #built = false;
  #routesDirty = false;
  #kubeDirty = false;
  #timer: NodeJS.Timeout | undefined;
  #lastReport = Number.NEGATIVE_INFINITY;
  #lastKube = '';
  #emits = 0;
  #stopped = false;
  /** The other source's routes and the Services they name (`namespace/name`): see KubeSourceOptions.extraRoutes. */
  #extra: { routes: RouteSource[]; services: Set<string> } | undefined;

  constructor(opts: KubeSourceOptions) {
    this.#opts = opts;
    const scopes =
      opts.namespaces && opts.namespaces.length > 0 ? [...new Set(opts.namespaces)] : [undefined];
    for (const ns of scopes) {
      for (const [kind, into] of [
        ['routes', this.#routes],
        ['services', this.#services],
        ['slices', this.#slices],
      ] as const) {
        const name = `${kind === 'routes' ? CRD_PLURAL : kind === 'slices' ? 'endpointslices' : 'services'} (${ns ?? 'all namespaces'})`;
        into.push(
          new ResilientInformer({
            name,
            create: () => opts.factory(kind, ns),
            onChange: (verb, obj) => this.#changed(kind, verb, obj),
            onError: (err, delayMs) =>
              opts.log.warn(`kube informer ${name} failed; restarting in ${delayMs} ms`, {
                error: describeError(err),
              }),
            ...(opts.backoff ? { backoff: opts.backoff } : {}),
          }),
        );
      }
    }
  }

  start(): void {
    for (const i of this.#all()) i.start();
  }

  /** The other source's full snapshot (KubeSourceOptions.extraRoutes): reported with the next batch. */
  setExtraRoutes(routes: RouteSource[], services: Set<string>): void {
    const before = this.#extra?.services;
    this.#extra = { routes, services };
    this.#routesDirty = true;
    if (!before || before.size !== services.size || [...services].some((k) => !before.has(k)))
      this.#kubeDirty = true;
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await Promise.all(this.#all().map((i) => i.stop()));
  }

  /** True once every informer finished its first list. */
  get synced(): boolean {
    return this.#all().every((i) => i.synced);
  }

  /** The cached GatewayRoute, with its current status (the status writer compares against it). */
  route(namespace: string, name: string): GatewayRouteObject | undefined {
    for (const inf of this.#routes) {
      const found = inf.get(name, namespace);
      if (found) return found as GatewayRouteObject;
    }
    return undefined;
  }

  stats(): {
    informerRestarts: number;
    informerErrors: number;
    snapshots: number;
    synced: boolean;
    /** Per resource (every namespace's informer of it finished its first list): edgegate_kube_informer_synced. */
    informersSynced: Record<'gatewayroutes' | 'services' | 'endpointslices', boolean>;
  } {
    const all = this.#all().map((i) => i.stats());
    const every = (list: ResilientInformer[]) => list.every((i) => i.synced);
    return {
      informerRestarts: all.reduce((n, s) => n + s.restarts, 0),
      informerErrors: all.reduce((n, s) => n + s.errors, 0),
      snapshots: this.#emits,
      synced: this.synced,
      informersSynced: {
        gatewayroutes: every(this.#routes),
        services: every(this.#services),
        endpointslices: every(this.#slices),
      },
    };
  }

  #all(): ResilientInformer[] {
    return [...this.#routes, ...this.#services, ...this.#slices];
  }

  /** One informer event (or an informer's first list, without an object): update the index it concerns. */
  #changed(
    kind: Kind,
    verb: 'add' | 'update' | 'delete' | undefined,
    obj: KubernetesObject | undefined,
  ): void {
    // Before the indexes are built from the full lists, there is nothing to update: the build reads the lists.
    if (!this.#built || verb === undefined || obj === undefined) {
      this.#schedule();
      return;
    }
    if (kind === 'routes') {
      const change = this.#routeIndex.apply(verb, obj as GatewayRouteObject);
      if (change.changed) this.#routesDirty = true;
      if (change.servicesChanged) this.#kubeDirty = true;
    } else if (kind === 'services') {
      const key = this.#serviceIndex.applyService(verb, obj as V1Service);
      if (this.#referenced(key)) this.#kubeDirty = true;
    } else {
      for (const key of this.#serviceIndex.applySlice(verb, obj as V1EndpointSlice))
        if (this.#referenced(key)) this.#kubeDirty = true;
    }
    if (this.#routesDirty || this.#kubeDirty) this.#schedule();
  }

  #referenced(service: string): boolean {
    return this.#routeIndex.references(service) || (this.#extra?.services.has(service) ?? false);
  }

  /** The first report of a burst goes out at once; later ones at most every REPORT_GAP_MS. */
  #schedule(): void {
    if (this.#timer || this.#stopped) return;
    const wait = Math.max(0, this.#lastReport + REPORT_GAP_MS - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#emit();
    }, wait);
  }

  #emit(): void {
    if (!this.synced || this.#stopped || (this.#opts.extraRoutes && !this.#extra)) return;
    const first = !this.#built;
    if (first) {
      this.#routeIndex.reset(this.#routes.flatMap((i) => i.list()) as GatewayRouteObject[]);
      this.#serviceIndex.reset(
        this.#services.flatMap((i) => i.list()) as V1Service[],
        this.#slices.flatMap((i) => i.list()) as V1EndpointSlice[],
      );
      this.#built = true;
    }
    this.#lastReport = performance.now();
    // Both snapshots the first time (the controller waits for both); then only what changed.
    if (first || this.#kubeDirty) {
      this.#kubeDirty = false;
      const wanted = new Set(this.#routeIndex.services());
      for (const k of this.#extra?.services ?? []) wanted.add(k);
      const { services, slices } = this.#serviceIndex.select(wanted);
      const kube = buildKubeSnapshot(wanted, services, slices);
      const kubeKey = JSON.stringify(kube);
      if (first || kubeKey !== this.#lastKube) {
        this.#lastKube = kubeKey;
        this.#opts.onKube(kube);
      }
    }
    if (first || this.#routesDirty) {
      this.#routesDirty = false;
      const routes = this.#routeIndex.routes();
      this.#opts.onRoutes(this.#extra ? [...routes, ...this.#extra.routes] : routes);
    }
    this.#emits++;
  }
}

export function describeError(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { code?: unknown; statusCode?: unknown; message?: unknown; body?: unknown };
    const code = e.statusCode ?? e.code;
    const status = apiStatusOf(e.body);
    // The API server's Status says what was refused and why; client-node's message around it does not.
    if (status) return `${code ?? status.code ?? ''} ${status.reason ?? ''}: ${status.message}`.trim();
    const msg = typeof e.message === 'string' ? e.message : String(err);
    return code !== undefined ? `${code}: ${msg}` : msg;
  }
  return String(err);
}

/** A Kubernetes `Status` object from an error body (object or JSON text), if it is one with a message. */
function apiStatusOf(body: unknown): { code?: number; reason?: string; message: string } | undefined {
  let b = body;
  if (typeof b === 'string') {
    try {
      b = JSON.parse(b);
    } catch {
      return undefined;
    }
  }
  if (!b || typeof b !== 'object') return undefined;
  const st = b as { kind?: unknown; code?: unknown; reason?: unknown; message?: unknown };
  if (st.kind !== 'Status' || typeof st.message !== 'string') return undefined;
  return {
    message: st.message,
    ...(typeof st.code === 'number' ? { code: st.code } : {}),
    ...(typeof st.reason === 'string' ? { reason: st.reason } : {}),
  };
}

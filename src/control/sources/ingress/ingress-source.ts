/**
 * The Ingress source: informers for `networking.k8s.io/v1` Ingresses (all namespaces, or each watched one) and
 * IngressClasses (cluster-scoped). On every change it selects the Ingresses edgegate serves (api/ingress/ingress-class.ts)
 * and translates them all (api/ingress/ingress-translate.ts) into GatewayRoutes, reported as RouteSources of origin
 * `ingress` with the Services they name — through the kube source (KubeSource.setExtraRoutes), so they share its
 * Service and EndpointSlice watches and its first report. It also reports what became of each Ingress (notes,
 * routes) for the Ingress status writer. Nothing before both informers have listed once; reports are batched like
 * the kube source's.
 *
 * A route whose translation did not change keeps its raw object, so compile's memo keeps its work.
 */
import {
  type KubeConfig,
  type KubernetesObject,
  ListWatch,
  NetworkingV1Api,
  type V1Ingress,
  Watch,
} from '@kubernetes/client-node';
import { parseAnnotations } from '../../../api/ingress/ingress-annotations.ts';
import { classSelection, servesIngress } from '../../../api/ingress/ingress-class.ts';
import { type IngressResult, translateIngresses } from '../../../api/ingress/ingress-translate.ts';
import type { IngressClassObject, IngressObject } from '../../../api/ingress/ingress-types.ts';
import type { RouteSource } from '../../../api/route-source.ts';
import type { BackoffOptions } from '../../../lib/backoff.ts';
import type { Logger } from '../../../lib/log.ts';
import { describeError, LIST_TIMEOUT_MS, referencedServices, withTimeout } from '../kube/kube-source.ts';
import { pooledApiClient } from '../kube/pooled-api.ts';
import { type InformerLike, ResilientInformer } from '../kube/resilient-informer.ts';

export const INGRESS_ORIGIN = 'ingress';
/** Prefix of the routes made from Ingresses: `ingress.<name>.<host>` never takes a GatewayRoute's name by accident. */
export const INGRESS_ROUTE_PREFIX = 'ingress.';
const REPORT_GAP_MS = 50;

type Kind = 'ingresses' | 'ingressclasses';
export type IngressInformerFactory = (
  kind: Kind,
  namespace: string | undefined,
) => InformerLike<KubernetesObject>;

export interface IngressSnapshot {
  routes: RouteSource[];
  /** Services the routes name, `namespace/name`. */
  services: Set<string>;
  /** Every Ingress edgegate serves, with what became of it. */
  served: { ingress: V1Ingress; result: IngressResult }[];
}

export interface IngressSourceOptions {
  namespaces?: string[];
  /** `--ingress-class`: the name the legacy `kubernetes.io/ingress.class` annotation may use. */
  legacyClassName?: string;
  onSnapshot: (snapshot: IngressSnapshot) => void;
  log: Logger;
  factory: IngressInformerFactory;
  backoff?: BackoffOptions;
}

export function clientNodeIngressInformers(kc: KubeConfig): IngressInformerFactory {
  const api = pooledApiClient(kc, NetworkingV1Api);
  const watch = new Watch(kc);
  return (kind, namespace) => {
    let path: string;
    // biome-ignore lint/suspicious/noExplicitAny: client-node's list functions return model classes.
    let list: () => Promise<any>;
    if (kind === 'ingressclasses') {
      path = '/apis/networking.k8s.io/v1/ingressclasses';
      list = () => api.listIngressClass();
    } else {
      path = `/apis/networking.k8s.io/v1${namespace ? `/namespaces/${namespace}` : ''}/ingresses`;
      list = namespace
        ? () => api.listNamespacedIngress({ namespace })
        : () => api.listIngressForAllNamespaces();
    }
    return new ListWatch<KubernetesObject>(
      path,
      watch,
      () => withTimeout(list(), LIST_TIMEOUT_MS, `list ${path}`),
      false,
    );
  };
}

export class IngressSource {
  readonly #opts: IngressSourceOptions;
  readonly #ingresses: ResilientInformer[] = [];
  readonly #classes: ResilientInformer;
  #timer: NodeJS.Timeout | undefined;
  #lastReport = Number.NEGATIVE_INFINITY;
  #stopped = false;
  /** The raw route objects last reported, by route key, with their JSON: unchanged routes keep their object. */
  #prior = new Map<string, { json: string; source: RouteSource }>();
  /** uid → the last version of each served Ingress that was not refused (served in place of a refused update). */
  #lastGood = new Map<string, IngressObject>();
  #reports = 0;

  constructor(opts: IngressSourceOptions) {
    this.#opts = opts;
    const scopes =
      opts.namespaces && opts.namespaces.length > 0 ? [...new Set(opts.namespaces)] : [undefined];
    const informer = (kind: Kind, ns: string | undefined) => {
      const name = `${kind} (${ns ?? (kind === 'ingressclasses' ? 'cluster' : 'all namespaces')})`;
      return new ResilientInformer({
        name,
        create: () => opts.factory(kind, ns),
        onChange: () => this.#schedule(),
        onError: (err, delayMs) =>
          opts.log.warn(`kube informer ${name} failed; restarting in ${delayMs} ms`, {
            error: describeError(err),
          }),
        ...(opts.backoff ? { backoff: opts.backoff } : {}),
      });
    };
    for (const ns of scopes) this.#ingresses.push(informer('ingresses', ns));
    this.#classes = informer('ingressclasses', undefined);
  }

  start(): void {
    for (const i of this.#all()) i.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await Promise.all(this.#all().map((i) => i.stop()));
  }

  get synced(): boolean {
    return this.#all().every((i) => i.synced);
  }

  /** The cached Ingress (with its current status), if any. */
  ingress(namespace: string, name: string): V1Ingress | undefined {
    for (const inf of this.#ingresses) {
      const found = inf.get(name, namespace);
      if (found) return found as V1Ingress;
    }
    return undefined;
  }

  stats(): { snapshots: number; informersSynced: Record<'ingresses' | 'ingressclasses', boolean> } {
    return {
      snapshots: this.#reports,
      informersSynced: {
        ingresses: this.#ingresses.every((i) => i.synced),
        ingressclasses: this.#classes.synced,
      },
    };
  }

  #all(): ResilientInformer[] {
    return [...this.#ingresses, this.#classes];
  }

  #schedule(): void {
    if (this.#timer || this.#stopped) return;
    const wait = Math.max(0, this.#lastReport + REPORT_GAP_MS - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.synced || this.#stopped) return;
      this.#lastReport = performance.now();
      try {
        this.#opts.onSnapshot(this.snapshot());
        this.#reports++;
      } catch (err) {
        this.#opts.log.error('ingress translation failed', { error: (err as Error).message });
      }
    }, wait);
  }

  /** The current view, translated (public for tests). */
  snapshot(): IngressSnapshot {
    const sel = classSelection(
      this.#classes.list() as IngressClassObject[],
      this.#opts.legacyClassName ?? 'edgegate',
    );
    const all = this.#ingresses.flatMap((i) => i.list()) as V1Ingress[];
    const served = all.filter((ing) => servesIngress(ing as IngressObject, sel));
    // Fail closed, as for GatewayRoutes: an update that is refused (a snippet added, an invalid value) keeps the
    // Ingress's last valid version serving; an Ingress never valid is not served.
    const refusedNow = new Set<number>();
    const input = served.map((ing, i) => {
      const obj = ing as IngressObject;
      const uid = obj.metadata?.uid;
      if (!parseAnnotations(obj.metadata?.annotations).refused) {
        if (uid) this.#lastGood.set(uid, obj);
        return obj;
      }
      refusedNow.add(i);
      return (uid && this.#lastGood.get(uid)) || obj;
    });
    const live = new Set(served.map((ing) => ing.metadata?.uid));
    for (const uid of this.#lastGood.keys()) if (!live.has(uid)) this.#lastGood.delete(uid);
    const t = translateIngresses(input, { namePrefix: INGRESS_ROUTE_PREFIX, keepIdentity: true });
    for (const i of refusedNow) {
      if (input[i] === served[i]) continue;
      const result = t.results[i]!;
      result.notes = [
        ...parseAnnotations(served[i]!.metadata?.annotations).notes,
        {
          kind: 'refused',
          message: `this update is refused; the last valid version (generation ${input[i]!.metadata?.generation ?? '?'}) keeps serving`,
        },
      ];
      result.refused = true;
    }
    const prior = this.#prior;
    const next = new Map<string, { json: string; source: RouteSource }>();
    const routes: RouteSource[] = [];
    for (const r of t.routes) {
      const key = `${r.metadata.namespace}/${r.metadata.name}`;
      const json = JSON.stringify(r);
      const old = prior.get(key);
      const source = old && old.json === json ? old.source : { raw: r, origin: INGRESS_ORIGIN };
      next.set(key, { json, source });
      routes.push(source);
    }
    this.#prior = next;
    return {
      routes,
      services: referencedServices(
        t.routes.map((r) => ({ metadata: { namespace: r.metadata.namespace }, spec: r.spec })),
      ),
      served: served.map((ingress, i) => ({ ingress, result: t.results[i]! })),
    };
  }
}

/**
 * The kube source's view of GatewayRoutes, kept up to date one watch event at a time: each route as the
 * RouteSource compile reads, a digest of that (so an event that changes only status, resourceVersion or
 * managedFields — the gateway's own status writes among them — changes nothing), and which Services the routes
 * name (counted, so a route's change updates the set in proportion to that route). The cost of an event is the
 * cost of its one route; the full list is read once, when every informer has synced.
 */
import { hash } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { RouteSource } from '../../../api/route-source.ts';

/** A GatewayRoute as the API server returns it (spec unvalidated: compile validates). */
export interface GatewayRouteObject extends KubernetesObject {
  spec?: unknown;
  status?: unknown;
}

/** How a route object is read (kube-source.ts's routeSourceOf and referencedServices). */
export interface RouteReader {
  sourceOf(obj: GatewayRouteObject): RouteSource;
  servicesOf(obj: GatewayRouteObject): Iterable<string>;
}

interface Indexed {
  source: RouteSource;
  /** Digest of `source.raw`: what compile reads of the object. */
  digest: string;
  /** `namespace/name` of the Services its backends name. */
  services: string[];
}

export interface RouteChange {
  /** What compile reads of the route changed (added, removed, spec, generation…). */
  changed: boolean;
  /** The set of Services the routes name changed. */
  servicesChanged: boolean;
}

const UNCHANGED: RouteChange = { changed: false, servicesChanged: false };

function keyOf(obj: GatewayRouteObject): string {
  return `${obj.metadata?.namespace ?? 'default'}/${obj.metadata?.name ?? ''}`;
}

export class RouteIndex {
  readonly #read: RouteReader;
  readonly #routes = new Map<string, Indexed>();
  /** Service key → how many routes name it. */
  readonly #refs = new Map<string, number>();

  constructor(read: RouteReader) {
    this.#read = read;
  }

  /** Starts over from a full list (the first sync). */
  reset(objects: Iterable<GatewayRouteObject>): void {
    this.#routes.clear();
    this.#refs.clear();
    for (const obj of objects) this.#set(obj);
  }

  /** One watch event (or one difference of a relist). */
  apply(verb: 'add' | 'update' | 'delete', obj: GatewayRouteObject): RouteChange {
    if (verb !== 'delete') return this.#set(obj);
    const prior = this.#routes.get(keyOf(obj));
    if (!prior) return UNCHANGED;
    this.#routes.delete(keyOf(obj));
    return { changed: true, servicesChanged: this.#unref(prior.services) };
  }

  get size(): number {
    return this.#routes.size;
  }

  /** Every route, as compile reads them (in no particular order: compile sorts). */
  routes(): RouteSource[] {
    return Array.from(this.#routes.values(), (r) => r.source);
  }

  /** Services (`namespace/name`) some route names. */
  services(): IterableIterator<string> {
    return this.#refs.keys();
  }

  references(service: string): boolean {
    return this.#refs.has(service);
  }

  #set(obj: GatewayRouteObject): RouteChange {
    const key = keyOf(obj);
    const source = this.#read.sourceOf(obj);
    const digest = hash('sha1', JSON.stringify(source.raw), 'base64');
    const prior = this.#routes.get(key);
    if (prior && prior.digest === digest) return UNCHANGED;
    const services = [...this.#read.servicesOf(obj)];
    let servicesChanged = this.#ref(services);
    if (prior) servicesChanged = this.#unref(prior.services) || servicesChanged;
    this.#routes.set(key, { source, digest, services });
    return { changed: true, servicesChanged };
  }

  /** Counts the names; true when one was not named before. */
  #ref(services: string[]): boolean {
    let added = false;
    for (const s of services) {
      const n = this.#refs.get(s) ?? 0;
      if (n === 0) added = true;
      this.#refs.set(s, n + 1);
    }
    return added;
  }

  /** Uncounts the names; true when one is named no more. */
  #unref(services: string[]): boolean {
    let removed = false;
    for (const s of services) {
      const n = (this.#refs.get(s) ?? 0) - 1;
      if (n <= 0) {
        this.#refs.delete(s);
        removed = true;
      } else this.#refs.set(s, n);
    }
    return removed;
  }
}

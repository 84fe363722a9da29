/**
 * The kube source's view of Services and EndpointSlices, kept up to date one watch event at a time and indexed by
 * the Service (`namespace/name`) they belong to, so that an event tells at once which Service it concerns (a
 * Service no route names changes nothing) and a snapshot reads only the Services routes name.
 */
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';

type Verb = 'add' | 'update' | 'delete';

function objectKey(o: { metadata?: { namespace?: string; name?: string } }): string {
  return `${o.metadata?.namespace ?? 'default'}/${o.metadata?.name ?? ''}`;
}

/** The Service an EndpointSlice belongs to (its `kubernetes.io/service-name` label), if any. */
function ownerOf(slice: V1EndpointSlice): string | undefined {
  const svc = slice.metadata?.labels?.['kubernetes.io/service-name'];
  return svc ? `${slice.metadata?.namespace ?? 'default'}/${svc}` : undefined;
}

export class ServiceIndex {
  readonly #services = new Map<string, V1Service>();
  /** Service key → its slices by slice key. */
  readonly #slices = new Map<string, Map<string, V1EndpointSlice>>();
  /** Slice key → the Service key it was filed under (a slice's label could change). */
  readonly #owners = new Map<string, string>();

  reset(services: Iterable<V1Service>, slices: Iterable<V1EndpointSlice>): void {
    this.#services.clear();
    this.#slices.clear();
    this.#owners.clear();
    for (const s of services) this.#services.set(objectKey(s), s);
    for (const s of slices) this.#fileSlice(s);
  }

  /** A Service event; returns the Service's key. */
  applyService(verb: Verb, svc: V1Service): string {
    const key = objectKey(svc);
    if (verb === 'delete') this.#services.delete(key);
    else this.#services.set(key, svc);
    return key;
  }

  /** An EndpointSlice event; returns the keys of the Services it concerned (before and after). */
  applySlice(verb: Verb, slice: V1EndpointSlice): string[] {
    const key = objectKey(slice);
    const before = this.#owners.get(key);
    if (before !== undefined) {
      const list = this.#slices.get(before);
      list?.delete(key);
      if (list?.size === 0) this.#slices.delete(before);
      this.#owners.delete(key);
    }
    const after = verb === 'delete' ? undefined : this.#fileSlice(slice);
    return [before, after].filter((k): k is string => k !== undefined);
  }

  /** The Services named by `wanted` and their slices, as buildKubeSnapshot takes them. */
  select(wanted: Iterable<string>): { services: V1Service[]; slices: V1EndpointSlice[] } {
    const services: V1Service[] = [];
    const slices: V1EndpointSlice[] = [];
    for (const key of wanted) {
      const svc = this.#services.get(key);
      if (svc) services.push(svc);
      const own = this.#slices.get(key);
      if (own) slices.push(...own.values());
    }
    return { services, slices };
  }

  #fileSlice(slice: V1EndpointSlice): string | undefined {
    const owner = ownerOf(slice);
    if (owner === undefined) return undefined;
    const key = objectKey(slice);
    let list = this.#slices.get(owner);
    if (!list) {
      list = new Map();
      this.#slices.set(owner, list);
    }
    list.set(key, slice);
    this.#owners.set(key, owner);
    return owner;
  }
}

/**
 * What edgegate says back about the Ingresses it serves:
 *
 * - `status.loadBalancer.ingress` = the published addresses (`--ingress-publish-address`: IPs as `ip`, names as
 *   `hostname`), merge-patched on the status subresource of every served Ingress whose status differs — by the
 *   Lease holder only, one write at a time, retried after a failure; a new leader checks every Ingress.
 * - every annotation note of the translation (unsupported: served without it; refused: not served) and every
 *   translated route compile rejected: a log line on every pod when it appears, and a Kubernetes Event on the
 *   Ingress (type Warning, reason UnsupportedAnnotation / Refused / RouteInvalid) written by the leader, once per
 *   Ingress and distinct set of notes.
 */
import { isIP } from 'node:net';
import {
  EventsV1Api,
  type KubeConfig,
  NetworkingV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1Ingress,
  type V1IngressLoadBalancerIngress,
} from '@kubernetes/client-node';
import type { IngressResult } from '../../api/ingress/ingress-translate.ts';
import { formatPath } from '../../api/validate.ts';
import type { RouteStatus } from '../../compile/compile.ts';
import type { Logger } from '../../lib/log.ts';
import { INGRESS_ORIGIN } from '../sources/ingress/ingress-source.ts';
import { describeError } from '../sources/kube/kube-source.ts';
import { pooledApiClient } from '../sources/kube/pooled-api.ts';
import { microTime } from './leader-election.ts';

export interface IngressEvent {
  namespace: string;
  name: string;
  uid?: string;
  reason: 'UnsupportedAnnotation' | 'Refused' | 'RouteInvalid';
  note: string;
}

export interface IngressStatusApi {
  patchLoadBalancer(namespace: string, name: string, ingress: V1IngressLoadBalancerIngress[]): Promise<void>;
  createEvent(e: IngressEvent): Promise<void>;
}

export function clientNodeIngressStatusApi(kc: KubeConfig, identity: string): IngressStatusApi {
  const net = pooledApiClient(kc, NetworkingV1Api);
  const events = pooledApiClient(kc, EventsV1Api);
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  const fieldManager = `edgegate-${identity}`.slice(0, 128);
  return {
    async patchLoadBalancer(namespace, name, ingress) {
      await net.patchNamespacedIngressStatus(
        { namespace, name, body: { status: { loadBalancer: { ingress } } }, fieldManager },
        mergePatch,
      );
    },
    async createEvent(e) {
      await events.createNamespacedEvent({
        namespace: e.namespace,
        body: {
          apiVersion: 'events.k8s.io/v1',
          kind: 'Event',
          metadata: { generateName: `${e.name}-`, namespace: e.namespace },
          eventTime: microTime(new Date()),
          reportingController: 'edgegate.io/ingress-controller',
          reportingInstance: identity.slice(0, 128),
          action: 'Translate',
          reason: e.reason,
          type: 'Warning',
          note: e.note.slice(0, 1024),
          regarding: {
            apiVersion: 'networking.k8s.io/v1',
            kind: 'Ingress',
            namespace: e.namespace,
            name: e.name,
            ...(e.uid ? { uid: e.uid } : {}),
          },
        },
      });
    },
  };
}

/** `--ingress-publish-address` entries → status.loadBalancer.ingress. */
export function loadBalancerIngress(addresses: string[]): V1IngressLoadBalancerIngress[] {
  return addresses.map((a) => (isIP(a) ? { ip: a } : { hostname: a }));
}

export interface IngressStatusWriterOptions {
  api: IngressStatusApi;
  isLeader: () => boolean;
  /** The cached Ingress (current status), or undefined when it is gone. */
  current: (namespace: string, name: string) => V1Ingress | undefined;
  /** What to publish; empty: status is not written. */
  publish: string[];
  log: Logger;
}

export interface IngressStatusStats {
  statusWrites: number;
  statusFailures: number;
  events: number;
  /** Ingresses of edgegate's classes not served (a refused annotation). */
  refused: number;
  /** Annotations the served Ingresses carry that edgegate does not honour. */
  unsupported: number;
}

interface Known {
  result: IngressResult;
  /** Problems of the routes made from it (compile), as lines. */
  routeProblems: string[];
}

function sameAddresses(
  a: V1IngressLoadBalancerIngress[] | undefined,
  b: V1IngressLoadBalancerIngress[],
): boolean {
  const key = (l: V1IngressLoadBalancerIngress[] | undefined) =>
    JSON.stringify((l ?? []).map((x) => `${x.ip ?? ''}|${x.hostname ?? ''}`).sort());
  return key(a) === key(b);
}

export class IngressStatusWriter {
  readonly #opts: IngressStatusWriterOptions;
  readonly #desired: V1IngressLoadBalancerIngress[];
  readonly #known = new Map<string, Known>();
  /** Route key → the Ingress it was made from. */
  readonly #routeOwner = new Map<string, string>();
  /** Ingress → fingerprint of the notes last logged / last sent as Events by this pod. */
  readonly #logged = new Map<string, string>();
  readonly #evented = new Map<string, string>();
  readonly #pending = new Set<string>();
  /** No longer served (another class now, or refused from the start): our addresses come off its status. */
  readonly #clearing = new Set<string>();
  /** Failed: back into #pending when the retry timer fires. */
  readonly #retrying = new Set<string>();
  /** Ingress → resourceVersion of the cached object when this pod wrote its status (the cache may lag). */
  readonly #written = new Map<string, string | undefined>();
  #pumping = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #stats = { statusWrites: 0, statusFailures: 0, events: 0 };

  constructor(opts: IngressStatusWriterOptions) {
    this.#opts = opts;
    this.#desired = loadBalancerIngress(opts.publish);
  }

  stats(): IngressStatusStats {
    let refused = 0;
    let unsupported = 0;
    for (const k of this.#known.values()) {
      if (k.result.refused) refused++;
      else unsupported += k.result.notes.filter((n) => n.kind === 'unsupported' && n.annotation).length;
    }
    return { ...this.#stats, refused, unsupported };
  }

  /** The Ingress source's snapshot: the served Ingresses and what became of each. */
  update(served: { result: IngressResult }[]): void {
    const seen = new Set<string>();
    this.#routeOwner.clear();
    for (const { result } of served) {
      seen.add(result.ingress);
      for (const r of result.routes) this.#routeOwner.set(r, result.ingress);
      const prior = this.#known.get(result.ingress);
      this.#known.set(result.ingress, { result, routeProblems: prior?.routeProblems ?? [] });
      this.#pending.add(result.ingress);
    }
    for (const k of [...this.#known.keys()])
      if (!seen.has(k)) {
        this.#clearing.add(k);
        this.#pending.add(k);
        this.#known.delete(k);
        this.#logged.delete(k);
        this.#evented.delete(k);
        this.#written.delete(k);
      }
    this.#pump();
  }

  /** The controller's statuses: the routes made from Ingresses that compile rejected. */
  routeStatuses(statuses: ReadonlyArray<RouteStatus>): void {
    const problems = new Map<string, string[]>();
    for (const s of statuses) {
      if (s.origin !== INGRESS_ORIGIN) continue;
      const owner = this.#routeOwner.get(s.route);
      if (!owner) continue;
      const lines = problems.get(owner) ?? [];
      if (!s.accepted)
        for (const e of s.errors) lines.push(`route ${s.route}: ${formatPath(e.path)}: ${e.message}`);
      for (const u of s.unresolved) lines.push(`route ${s.route}: ${u}`);
      problems.set(owner, lines);
    }
    for (const [key, k] of this.#known) {
      const lines = problems.get(key) ?? [];
      if (JSON.stringify(lines) === JSON.stringify(k.routeProblems)) continue;
      k.routeProblems = lines;
      this.#pending.add(key);
    }
    this.#pump();
  }

  /** A new leader: check every Ingress. */
  resync(): void {
    for (const k of this.#known.keys()) this.#pending.add(k);
    for (const k of this.#clearing) this.#pending.add(k);
    this.#pump();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
  }

  #pump(): void {
    if (this.#pumping || this.#stopped) return;
    this.#pumping = true;
    void this.#drain().finally(() => {
      this.#pumping = false;
      if (this.#pending.size > 0 && !this.#stopped) this.#pump();
    });
  }

  async #drain(): Promise<void> {
    while (this.#pending.size > 0 && !this.#stopped) {
      const key = this.#pending.values().next().value as string;
      this.#pending.delete(key);
      const k = this.#known.get(key);
      if (!k) {
        // Kept for the next leader (resync) while this pod does not lead.
        if (!this.#clearing.has(key) || !this.#opts.isLeader()) continue;
        if (await this.#clear(key)) this.#clearing.delete(key);
        else this.#retryLater(key);
        continue;
      }
      this.#clearing.delete(key);
      this.#logNotes(key, k);
      if (!this.#opts.isLeader()) continue;
      if (!(await this.#events(key, k)) || !(await this.#status(key, k))) this.#retryLater(key);
    }
  }

  #lines(k: Known): { reason: IngressEvent['reason']; note: string }[] {
    const out: { reason: IngressEvent['reason']; note: string }[] = [];
    for (const n of k.result.notes)
      out.push({
        reason: n.kind === 'refused' ? 'Refused' : 'UnsupportedAnnotation',
        note: n.annotation ? `${n.annotation}: ${n.message}` : n.message,
      });
    for (const p of k.routeProblems) out.push({ reason: 'RouteInvalid', note: p });
    return out;
  }

  #logNotes(key: string, k: Known): void {
    const lines = this.#lines(k);
    const fp = JSON.stringify(lines);
    if (this.#logged.get(key) === fp) return;
    this.#logged.set(key, fp);
    for (const l of lines)
      this.#opts.log.warn(`Ingress ${key}: ${l.note}`, {
        reason: l.reason,
        served: !k.result.refused,
      });
  }

  async #events(key: string, k: Known): Promise<boolean> {
    const lines = this.#lines(k);
    const fp = JSON.stringify(lines);
    if (this.#evented.get(key) === fp) return true;
    const [namespace, name] = key.split('/') as [string, string];
    try {
      for (const l of lines) {
        await this.#opts.api.createEvent({
          namespace,
          name,
          ...(k.result.uid ? { uid: k.result.uid } : {}),
          reason: l.reason,
          note: l.note,
        });
        this.#stats.events++;
      }
      this.#evented.set(key, fp);
      return true;
    } catch (err) {
      this.#opts.log.warn(`cannot create an event for Ingress ${key}`, { error: describeError(err) });
      return false;
    }
  }

  async #status(key: string, k: Known): Promise<boolean> {
    if (this.#desired.length === 0 || k.result.refused) return true;
    const [namespace, name] = key.split('/') as [string, string];
    const cached = this.#opts.current(namespace, name);
    if (!cached) return true;
    if (sameAddresses(cached.status?.loadBalancer?.ingress, this.#desired)) return true;
    const rv = cached.metadata?.resourceVersion;
    if (this.#written.has(key) && this.#written.get(key) === rv) return true;
    try {
      await this.#opts.api.patchLoadBalancer(namespace, name, this.#desired);
      this.#written.set(key, rv);
      this.#stats.statusWrites++;
      return true;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return true;
      this.#stats.statusFailures++;
      this.#opts.log.warn(`cannot write the status of Ingress ${key}`, { error: describeError(err) });
      return false;
    }
  }

  /** An Ingress edgegate no longer serves: remove the addresses it published, if they are still there. */
  async #clear(key: string): Promise<boolean> {
    if (this.#desired.length === 0) return true;
    const [namespace, name] = key.split('/') as [string, string];
    const cached = this.#opts.current(namespace, name);
    if (!cached || !sameAddresses(cached.status?.loadBalancer?.ingress, this.#desired)) return true;
    try {
      await this.#opts.api.patchLoadBalancer(namespace, name, []);
      this.#stats.statusWrites++;
      return true;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return true;
      this.#stats.statusFailures++;
      this.#opts.log.warn(`cannot clear the status of Ingress ${key}`, { error: describeError(err) });
      return false;
    }
  }

  #retryLater(key: string): void {
    if (this.#stopped) return;
    this.#retrying.add(key);
    this.#retryTimer ??= setTimeout(
      () => {
        this.#retryTimer = undefined;
        for (const k of this.#retrying) this.#pending.add(k);
        this.#retrying.clear();
        this.#pump();
      },
      1000 + Math.random() * 1000,
    );
  }
}

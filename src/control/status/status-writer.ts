/**
 * Writes GatewayRoute `.status` — leader only, only for routes whose own status changed, rate limited, changed
 * routes first. Each rebuild hands over every route's diagnostics; only a route whose diagnostics or Programmed
 * changed is queued (by the time of its change; a route queued again keeps its place, and the status written is
 * always the latest, so a burst of changes to one route is one write). The pumps compare the desired status with
 * the status on the cached object (so a new leader writes only what its predecessor left stale) and merge-patch
 * the status subresource. A route whose new form only waits for the workers is held back for a grace period: when
 * they acknowledge in time (the usual case) its status goes out once, already Programmed=True, instead of Pending
 * and then True. A new leader's full check runs behind the changed routes. A route whose Accepted condition flips
 * also gets an Event (Invalid / Valid).
 */
import {
  CustomObjectsApi,
  EventsV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { CRD_PLURAL } from '../../api/crd.ts';
import { API_GROUP, API_VERSION, KIND } from '../../api/gateway-route.ts';
import type { Condition, GatewayRouteStatus } from '../../api/gateway-route-status.ts';
import type { RouteStatus } from '../../compile/compile.ts';
import type { Logger } from '../../lib/log.ts';
import { TokenBucket } from '../../lib/token-bucket.ts';
import { describeError, type GatewayRouteObject, KUBE_ORIGIN } from '../sources/kube/kube-source.ts';
import { pooledApiClient } from '../sources/kube/pooled-api.ts';
import { microTime } from './leader-election.ts';
import { conditionOf, desiredStatus, sameStatus } from './status-conditions.ts';

export interface RouteEvent {
  namespace: string;
  name: string;
  uid?: string;
  type: 'Normal' | 'Warning';
  reason: string;
  note: string;
}

/** The API calls the writer makes (a fake in unit tests). */
export interface StatusApi {
  patchStatus(namespace: string, name: string, status: GatewayRouteStatus): Promise<void>;
  createEvent(event: RouteEvent): Promise<void>;
}

export function clientNodeStatusApi(kc: KubeConfig, identity: string): StatusApi {
  const custom = pooledApiClient(kc, CustomObjectsApi);
  const events = pooledApiClient(kc, EventsV1Api);
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  // The field manager names the pod: managedFields then show which controller wrote a status.
  const fieldManager = `edgegate-${identity}`.slice(0, 128);
  return {
    async patchStatus(namespace, name, status) {
      await custom.patchNamespacedCustomObjectStatus(
        {
          group: API_GROUP,
          version: API_VERSION,
          plural: CRD_PLURAL,
          namespace,
          name,
          body: { status },
          fieldManager,
        },
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
          reportingController: `${API_GROUP}/edgegate`,
          reportingInstance: identity.slice(0, 128),
          action: 'Validate',
          reason: e.reason,
          type: e.type,
          note: e.note.slice(0, 1024),
          regarding: {
            apiVersion: `${API_GROUP}/${API_VERSION}`,
            kind: KIND,
            namespace: e.namespace,
            name: e.name,
            ...(e.uid ? { uid: e.uid } : {}),
          },
        },
      });
    },
  };
}

export interface StatusWriterOptions {
  api: StatusApi;
  /** The cached object (with its current status), or undefined when it is gone. */
  current: (namespace: string, name: string) => GatewayRouteObject | undefined;
  isLeader: () => boolean;
  /** Every live worker serves the route's current compiled form (control/route-versions.ts). */
  programmed: (route: string) => boolean;
  log: Logger;
  /** Sustained writes per second across routes (default 100) and burst (default: twice that). */
  qps?: number;
  burst?: number;
  /** How long a route that waits only for the workers is held before Pending is written (default 1000 ms). */
  pendingGraceMs?: number;
  /** Writes in flight at once (default 4). */
  concurrency?: number;
  now?: () => Date;
}

export const DEFAULT_STATUS_QPS = 100;

export interface StatusWriterStats {
  /** Patches the API server accepted. */
  writes: number;
  /** Routes checked whose status was already current (nothing written). */
  unchanged: number;
  /** Patches answered 404: the route was deleted before its status was written. */
  notFound: number;
  /** Patches that failed otherwise (retried). */
  failures: number;
  events: number;
  /** Routes waiting for a status write or check. */
  pending: number;
}

interface Known {
  status: RouteStatus;
  /** The diagnostics as text, to tell a real change from a rebuild that changed nothing for this route. */
  fingerprint: string;
  programmed: boolean;
}

/** The route has a form in the table: it is valid, or invalid with its last valid version served (fail closed). */
function isServed(s: RouteStatus): boolean {
  return s.accepted || s.fallback !== undefined;
}

export class StatusWriter {
  readonly #opts: StatusWriterOptions;
  /** Latest diagnostics of each kube route, by `namespace/name`. */
  readonly #routes = new Map<string, Known>();
  /** What this leader wrote last, per route (the informer's copy may lag behind a write). */
  readonly #written = new Map<string, { uid: string | undefined; status: GatewayRouteStatus }>();
  /** Changed routes, in the order they changed: written as soon as a token allows. */
  readonly #ready = new Set<string>();
  /** Routes whose only news is that their new form waits for the workers: route → when to write Pending. */
  readonly #held = new Map<string, number>();
  /** A new leader's check of every route: after the changed ones. */
  readonly #background = new Set<string>();
  /** Routes whose write failed: back into #ready after a pause. */
  readonly #retrying = new Set<string>();
  readonly #inFlight = new Set<string>();
  #pumps = 0;
  #heldTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Writes per second sustained, `burst` at once (the one token bucket, src/lib/token-bucket.ts). */
  readonly #bucket: TokenBucket;
  #stopped = false;
  readonly #stats = { writes: 0, unchanged: 0, notFound: 0, failures: 0, events: 0 };

  constructor(opts: StatusWriterOptions) {
    this.#opts = opts;
    const qps = opts.qps ?? DEFAULT_STATUS_QPS;
    this.#bucket = TokenBucket.perSecond(qps, opts.burst ?? qps * 2, performance.now());
  }

  /** The controller's onStatuses: every route's diagnostics after a rebuild. Queues only what changed. */
  update(statuses: ReadonlyArray<RouteStatus>): void {
    const seen = new Set<string>();
    for (const s of statuses) {
      if (s.origin !== KUBE_ORIGIN) continue;
      seen.add(s.route);
      const fingerprint = JSON.stringify(s);
      const programmed = isServed(s) && this.#opts.programmed(s.route);
      const prior = this.#routes.get(s.route);
      if (prior && prior.fingerprint === fingerprint && prior.programmed === programmed) continue;
      this.#routes.set(s.route, { status: s, fingerprint, programmed });
      this.#enqueue(s.route, isServed(s) && !programmed ? 'held' : 'ready');
    }
    for (const key of this.#routes.keys()) {
      if (seen.has(key)) continue;
      this.#routes.delete(key);
      this.#written.delete(key);
      this.#ready.delete(key);
      this.#held.delete(key);
      this.#background.delete(key);
      this.#retrying.delete(key);
    }
    this.#pump();
  }

  /** These routes' current forms are now served by every worker (RouteVersions.served): Programmed may flip. */
  recheck(routes: Iterable<string>): void {
    for (const key of routes) {
      const known = this.#routes.get(key);
      if (!known) continue;
      const programmed = isServed(known.status) && this.#opts.programmed(key);
      if (programmed === known.programmed) continue;
      known.programmed = programmed;
      this.#enqueue(key, 'ready');
    }
    this.#pump();
  }

  /** After winning the lease: check every route's status (behind the changed ones) and write what is stale. */
  resync(): void {
    this.#written.clear();
    for (const key of this.#routes.keys()) this.#enqueue(key, 'background');
    this.#pump();
  }

  stats(): StatusWriterStats {
    return { ...this.#stats, pending: this.#queued() };
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#heldTimer);
    clearTimeout(this.#retryTimer);
  }

  /** Nothing is waiting to be written or being written (tests, shutdown). */
  get idle(): boolean {
    return this.#queued() === 0 && this.#inFlight.size === 0;
  }

  #queued(): number {
    return this.#ready.size + this.#held.size + this.#background.size + this.#retrying.size;
  }

  #enqueue(key: string, lane: 'ready' | 'held' | 'background'): void {
    if (lane === 'ready') {
      this.#held.delete(key);
      this.#background.delete(key);
      this.#ready.add(key);
    } else if (lane === 'held') {
      if (this.#ready.has(key) || this.#held.has(key)) return;
      this.#background.delete(key);
      this.#held.set(key, performance.now() + (this.#opts.pendingGraceMs ?? 1000));
    } else if (!this.#ready.has(key) && !this.#held.has(key)) this.#background.add(key);
  }

  #clearQueues(): void {
    this.#ready.clear();
    this.#held.clear();
    this.#background.clear();
    this.#retrying.clear();
  }

  /** Held routes whose grace is over go to #ready (the map is in due order: one grace for all). */
  #promoteHeld(): void {
    const now = performance.now();
    for (const [key, due] of this.#held) {
      if (due > now) break;
      this.#held.delete(key);
      this.#ready.add(key);
    }
  }

  /** The next route to check: changed ones first, then a new leader's full check; never one being written. */
  #next(): string | undefined {
    this.#promoteHeld();
    for (const lane of [this.#ready, this.#background])
      for (const key of lane) {
        if (this.#inFlight.has(key)) continue;
        lane.delete(key);
        return key;
      }
    return undefined;
  }

  #pump(): void {
    if (this.#stopped) return;
    if (!this.#opts.isLeader()) {
      // Only the leader writes; a new leader calls resync().
      this.#clearQueues();
      return;
    }
    const concurrency = Math.max(1, this.#opts.concurrency ?? 4);
    while (this.#pumps < concurrency) {
      const key = this.#next();
      if (key === undefined) break;
      this.#pumps++;
      void this.#run(key);
    }
    this.#armHeldTimer();
  }

  async #run(first: string): Promise<void> {
    let key: string | undefined = first;
    try {
      while (key !== undefined) {
        this.#inFlight.add(key);
        try {
          await this.#writeOne(key);
        } catch (err) {
          this.#opts.log.warn(`status write of GatewayRoute ${key} failed`, { error: describeError(err) });
        } finally {
          this.#inFlight.delete(key);
        }
        if (this.#stopped) return;
        if (!this.#opts.isLeader()) {
          this.#clearQueues();
          return;
        }
        key = this.#next();
      }
    } finally {
      this.#pumps--;
      this.#armHeldTimer();
    }
  }

  #armHeldTimer(): void {
    if (this.#heldTimer || this.#stopped || this.#held.size === 0) return;
    const due = this.#held.values().next().value as number;
    this.#heldTimer = setTimeout(
      () => {
        this.#heldTimer = undefined;
        this.#pump();
      },
      Math.max(0, due - performance.now()),
    );
  }

  async #writeOne(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const compute = () => {
      const known = this.#routes.get(key);
      const obj = this.#opts.current(namespace, name);
      if (!known || !obj) return undefined; // deleted meanwhile
      const mine = this.#written.get(key);
      const existing =
        mine && mine.uid === obj.metadata?.uid ? mine.status : ((obj.status ?? {}) as GatewayRouteStatus);
      const now = (this.#opts.now?.() ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z');
      const programmed = isServed(known.status) && this.#opts.programmed(key);
      known.programmed = programmed;
      const desired = desiredStatus(known.status, programmed, existing.conditions ?? [], now);
      return { obj, status: known.status, existing, desired, same: sameStatus(desired, existing) };
    };
    const first = compute();
    if (!first) return;
    if (first.same) {
      this.#stats.unchanged++;
      return;
    }
    await this.#takeToken();
    if (!this.#opts.isLeader() || this.#stopped) return;
    // The latest desired status (the route may have changed while this waited for a token).
    const w = compute();
    if (!w) return;
    if (w.same) {
      this.#stats.unchanged++;
      return;
    }
    try {
      await this.#opts.api.patchStatus(namespace, name, w.desired);
      this.#written.set(key, { uid: w.obj.metadata?.uid, status: w.desired });
      this.#stats.writes++;
    } catch (err) {
      const code = (err as { code?: number }).code;
      this.#written.delete(key);
      // Deleted since the informer saw it: nothing to write and nothing failed, counted on its own
      // (edgegate_kube_status_writes_total{result="not_found"}).
      if (code === 404) {
        this.#stats.notFound++;
        return;
      }
      this.#stats.failures++;
      this.#opts.log.warn(`cannot write the status of GatewayRoute ${key}`, { error: describeError(err) });
      this.#retryLater(key);
      return;
    }
    await this.#maybeEvent(w.obj, w.status, conditionOf(w.existing, 'Accepted'), w.desired);
  }

  async #maybeEvent(
    obj: GatewayRouteObject,
    s: RouteStatus,
    before: Condition | undefined,
    desired: GatewayRouteStatus,
  ): Promise<void> {
    const after = conditionOf(desired, 'Accepted');
    if (!after || before?.status === after.status) return;
    // A new valid route needs no event; a route that turns invalid, or valid again, does.
    if (!before && after.status === 'True') return;
    const [namespace, name] = s.route.split('/') as [string, string];
    const event: RouteEvent = {
      namespace,
      name,
      ...(obj.metadata?.uid ? { uid: obj.metadata.uid } : {}),
      type: after.status === 'True' ? 'Normal' : 'Warning',
      reason: after.status === 'True' ? 'Valid' : 'Invalid',
      note: after.status === 'True' ? 'the route is valid again and served' : after.message,
    };
    try {
      await this.#opts.api.createEvent(event);
      this.#stats.events++;
    } catch (err) {
      this.#opts.log.warn(`cannot create an event for GatewayRoute ${s.route}`, {
        error: describeError(err),
      });
    }
  }

  #retryLater(key: string): void {
    if (this.#stopped) return;
    this.#retrying.add(key);
    this.#retryTimer ??= setTimeout(
      () => {
        this.#retryTimer = undefined;
        for (const k of this.#retrying) if (!this.#ready.has(k)) this.#ready.add(k);
        this.#retrying.clear();
        this.#pump();
      },
      1000 + Math.random() * 1000,
    );
  }

  /** Waits for a write token. */
  async #takeToken(): Promise<void> {
    for (;;) {
      const wait = this.#bucket.tryTake(performance.now());
      if (wait === 0) return;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/**
 * Writes GatewayRoute `.status` — leader only, only when it changes, rate limited. Each rebuild hands over every
 * route's diagnostics; a route is marked dirty, and one pump compares the desired status with the status on the
 * cached object (so a new leader writes only what its predecessor left stale) and merge-patches the status
 * subresource. A route whose Accepted condition flips also gets an Event (Invalid / Valid).
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
import { describeError, type GatewayRouteObject, KUBE_ORIGIN } from '../sources/kube/kube-source.ts';
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
  const custom = kc.makeApiClient(CustomObjectsApi);
  const events = kc.makeApiClient(EventsV1Api);
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
  log: Logger;
  /** Sustained writes per second across routes (default 10) and burst (default 20). */
  qps?: number;
  burst?: number;
  now?: () => Date;
}

export interface StatusWriterStats {
  writes: number;
  unchanged: number;
  failures: number;
  events: number;
  pending: number;
}

export class StatusWriter {
  readonly #opts: StatusWriterOptions;
  /** Latest diagnostics of each kube route, by `namespace/name`, and the table version they belong to. */
  #statuses = new Map<string, RouteStatus>();
  #tableVersion = 0;
  #servedVersion = 0;
  readonly #dirty = new Set<string>();
  /** What this leader wrote last, per route (the informer's copy may lag behind a write). */
  readonly #written = new Map<string, { uid: string | undefined; status: GatewayRouteStatus }>();
  #pumping = false;
  #tokens: number;
  #refilled: number;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #stats = { writes: 0, unchanged: 0, failures: 0, events: 0 };

  constructor(opts: StatusWriterOptions) {
    this.#opts = opts;
    this.#tokens = opts.burst ?? 20;
    this.#refilled = performance.now();
  }

  /** The controller's onStatuses: every route's diagnostics for table `version`. */
  update(statuses: ReadonlyArray<RouteStatus>, tableVersion: number): void {
    const next = new Map<string, RouteStatus>();
    for (const s of statuses) if (s.origin === KUBE_ORIGIN) next.set(s.route, s);
    this.#statuses = next;
    for (const k of this.#written.keys()) if (!next.has(k)) this.#written.delete(k);
    this.#tableVersion = tableVersion;
    this.#markAll();
  }

  /** The routing table version the workers serve: the input of Programmed. */
  setServedVersion(version: number): void {
    if (version === this.#servedVersion) return;
    this.#servedVersion = version;
    this.#markAll();
  }

  /** After winning the lease: bring every status up to date. */
  resync(): void {
    this.#written.clear();
    this.#markAll();
  }

  stats(): StatusWriterStats {
    return { ...this.#stats, pending: this.#dirty.size };
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retry);
  }

  /** Resolves when nothing is waiting to be written (tests, shutdown). */
  get idle(): boolean {
    return this.#dirty.size === 0 && !this.#pumping;
  }

  #markAll(): void {
    for (const k of this.#statuses.keys()) this.#dirty.add(k);
    void this.#pump();
  }

  async #pump(): Promise<void> {
    if (this.#pumping || this.#stopped) return;
    this.#pumping = true;
    try {
      while (this.#dirty.size > 0 && !this.#stopped) {
        if (!this.#opts.isLeader()) {
          // Only the leader writes; a new leader calls resync().
          this.#dirty.clear();
          break;
        }
        const key = this.#dirty.values().next().value as string;
        this.#dirty.delete(key);
        await this.#writeOne(key);
      }
    } finally {
      this.#pumping = false;
    }
  }

  async #writeOne(key: string): Promise<void> {
    const s = this.#statuses.get(key);
    if (!s) return;
    const [namespace, name] = key.split('/') as [string, string];
    const obj = this.#opts.current(namespace, name);
    if (!obj) return; // deleted meanwhile
    const mine = this.#written.get(key);
    const existing =
      mine && mine.uid === obj.metadata?.uid ? mine.status : ((obj.status ?? {}) as GatewayRouteStatus);
    const now = (this.#opts.now?.() ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    // An invalid route whose last valid version is served (fail closed) is programmed like an accepted one.
    const programmed = (s.accepted || s.fallback !== undefined) && this.#servedVersion >= this.#tableVersion;
    const desired = desiredStatus(s, programmed, this.#tableVersion, existing.conditions ?? [], now);
    if (sameStatus(desired, existing)) {
      this.#stats.unchanged++;
      return;
    }
    await this.#takeToken();
    if (!this.#opts.isLeader() || this.#stopped) return;
    try {
      await this.#opts.api.patchStatus(namespace, name, desired);
      this.#written.set(key, { uid: obj.metadata?.uid, status: desired });
      this.#stats.writes++;
    } catch (err) {
      const code = (err as { code?: number }).code;
      this.#written.delete(key);
      // Deleted since the informer saw it: nothing to write, and not a failure (edgegate_kube_status_writes_total).
      if (code === 404) return;
      this.#stats.failures++;
      this.#opts.log.warn(`cannot write the status of GatewayRoute ${key}`, { error: describeError(err) });
      this.#retryLater(key);
      return;
    }
    await this.#maybeEvent(obj, s, conditionOf(existing, 'Accepted'), desired);
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
    this.#dirty.add(key);
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => void this.#pump(), 1000 + Math.random() * 1000);
  }

  /** Token bucket: `qps` writes per second sustained, `burst` at once. */
  async #takeToken(): Promise<void> {
    const qps = this.#opts.qps ?? 10;
    const burst = this.#opts.burst ?? 20;
    for (;;) {
      const now = performance.now();
      this.#tokens = Math.min(burst, this.#tokens + ((now - this.#refilled) / 1000) * qps);
      this.#refilled = now;
      if (this.#tokens >= 1) {
        this.#tokens -= 1;
        return;
      }
      await new Promise((r) => setTimeout(r, Math.ceil(((1 - this.#tokens) / qps) * 1000)));
    }
  }
}

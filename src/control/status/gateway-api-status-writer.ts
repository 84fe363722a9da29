/**
 * Writes the status of Gateway API objects — GatewayClass, Gateway, HTTPRoute — leader only, and only when the
 * desired status differs from the one on the cached object (conditions compared without lastTransitionTime, which
 * is kept while a condition's status stays the same). HTTPRoute `status.parents` entries of other controllers are
 * kept as they are. One write at a time, changed objects first; a failed write is retried with a growing pause.
 */
import { CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { type Condition, GATEWAY_API_GROUP, GATEWAY_CONTROLLER_NAME } from '../../api/gateway-api.ts';
import { backoffDelay } from '../../lib/backoff.ts';
import type { Logger } from '../../lib/log.ts';
import { describeError } from '../sources/kube/kube-source.ts';
import { pooledApiClient } from '../sources/kube/pooled-api.ts';

/** A failed write is retried after lib/backoff's pacing: 200–400 ms, doubling per failure in a row, at most 30 s. */
const RETRY_BACKOFF = { baseMs: 400, maxMs: 30_000 };
export type StatusKind = 'gatewayclasses' | 'gateways' | 'httproutes';

export interface DesiredStatus {
  kind: StatusKind;
  namespace?: string;
  name: string;
  /** Gateway and GatewayClass: the whole status; HTTPRoute: `{ parents }` with edgegate's entries only. */
  status: Record<string, unknown>;
}

export interface GatewayApiStatusApi {
  patchStatus(kind: StatusKind, namespace: string | undefined, name: string, status: unknown): Promise<void>;
}

export function clientNodeGatewayApiStatusApi(kc: KubeConfig, identity: string): GatewayApiStatusApi {
  const custom = pooledApiClient(kc, CustomObjectsApi);
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  const fieldManager = `edgegate-${identity}`.slice(0, 128);
  return {
    async patchStatus(kind, namespace, name, status) {
      const base = {
        group: GATEWAY_API_GROUP,
        version: 'v1',
        plural: kind,
        name,
        body: { status },
        fieldManager,
      };
      if (namespace === undefined) await custom.patchClusterCustomObjectStatus(base, mergePatch);
      else await custom.patchNamespacedCustomObjectStatus({ ...base, namespace }, mergePatch);
    },
  };
}

export interface GatewayApiStatusWriterOptions {
  api: GatewayApiStatusApi;
  /** The cached object with its current status, or undefined when it is gone. */
  current: (
    kind: StatusKind,
    namespace: string | undefined,
    name: string,
  ) => { status?: unknown } | undefined;
  isLeader: () => boolean;
  log: Logger;
  now?: () => Date;
}

const keyOf = (d: { kind: string; namespace?: string; name: string }) =>
  `${d.kind}/${d.namespace ?? ''}/${d.name}`;

/** JSON with sorted keys and no lastTransitionTime: what "the same status" means. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (k, v) => {
    if (k === 'lastTransitionTime') return undefined;
    if (v && typeof v === 'object' && !Array.isArray(v))
      return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    return v;
  });
}

/** Conditions with lastTransitionTime: the previous one's while type and status are unchanged, else now. */
function stamp(conditions: Condition[], previous: Condition[] | undefined, now: string): Condition[] {
  return conditions.map((c) => {
    const prev = previous?.find((p) => p.type === c.type);
    return {
      ...c,
      lastTransitionTime:
        prev && prev.status === c.status && prev.lastTransitionTime ? prev.lastTransitionTime : now,
    };
  });
}

interface ParentEntry {
  parentRef: { name: string; namespace?: string; sectionName?: string; port?: number };
  controllerName: string;
  conditions: Condition[];
}

function sameParent(a: ParentEntry['parentRef'], b: ParentEntry['parentRef']): boolean {
  return (
    a.name === b.name && a.namespace === b.namespace && a.sectionName === b.sectionName && a.port === b.port
  );
}

export class GatewayApiStatusWriter {
  readonly #opts: GatewayApiStatusWriterOptions;
  #desired = new Map<string, DesiredStatus>();
  readonly #queue = new Set<string>();
  #running = false;
  #stopped = false;
  #retry: NodeJS.Timeout | undefined;
  #failures = 0;
  #stats = { writes: 0, unchanged: 0, failures: 0 };

  constructor(opts: GatewayApiStatusWriterOptions) {
    this.#opts = opts;
  }

  stats(): { writes: number; unchanged: number; failures: number } {
    return { ...this.#stats };
  }

  /** The whole desired state (every object edgegate answers for); objects whose desired status changed are queued. */
  update(desired: DesiredStatus[]): void {
    const next = new Map(desired.map((d) => [keyOf(d), d]));
    for (const [k, d] of next) {
      const prev = this.#desired.get(k);
      if (!prev || canonical(prev.status) !== canonical(d.status)) this.#queue.add(k);
    }
    this.#desired = next;
    this.#pump();
  }

  /** Check every object (a new leader, or the cache caught up with a write). */
  resync(): void {
    for (const k of this.#desired.keys()) this.#queue.add(k);
    this.#pump();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retry);
  }

  #pump(): void {
    if (this.#running || this.#stopped || !this.#opts.isLeader()) return;
    this.#running = true;
    void this.#drain().finally(() => {
      this.#running = false;
      if (this.#queue.size > 0 && !this.#retry) this.#pump();
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.size > 0 && !this.#stopped && this.#opts.isLeader()) {
      const key = this.#queue.values().next().value as string;
      this.#queue.delete(key);
      const d = this.#desired.get(key);
      if (!d) continue;
      const obj = this.#opts.current(d.kind, d.namespace, d.name);
      if (!obj) continue;
      const body = this.#body(d, obj.status as Record<string, unknown> | undefined);
      if (!body) {
        this.#stats.unchanged++;
        continue;
      }
      try {
        await this.#opts.api.patchStatus(d.kind, d.namespace, d.name, body);
        this.#stats.writes++;
        this.#failures = 0;
      } catch (err) {
        const code =
          (err as { code?: number; statusCode?: number }).code ?? (err as { statusCode?: number }).statusCode;
        if (code === 404) continue;
        this.#stats.failures++;
        this.#failures++;
        this.#queue.add(key);
        this.#opts.log.warn(`status write for ${d.kind} ${d.namespace ?? ''}/${d.name} failed`, {
          error: describeError(err),
        });
        const delay = backoffDelay(this.#failures, RETRY_BACKOFF);
        this.#retry = setTimeout(() => {
          this.#retry = undefined;
          this.#pump();
        }, delay);
        return;
      }
    }
  }

  /** The status to write, or undefined when the object already has it. */
  #body(d: DesiredStatus, current: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
    const now = (this.#opts.now?.() ?? new Date()).toISOString();
    if (d.kind === 'httproutes') {
      const have = ((current?.parents as ParentEntry[] | undefined) ?? []).filter(
        (p) => p.controllerName === GATEWAY_CONTROLLER_NAME,
      );
      const others = ((current?.parents as ParentEntry[] | undefined) ?? []).filter(
        (p) => p.controllerName !== GATEWAY_CONTROLLER_NAME,
      );
      const want = (d.status.parents as ParentEntry[]).map((p) => ({
        ...p,
        conditions: stamp(
          p.conditions,
          have.find((h) => sameParent(h.parentRef, p.parentRef))?.conditions,
          now,
        ),
      }));
      if (canonical(have) === canonical(want)) return undefined;
      return { parents: [...others, ...want] };
    }
    const prevListeners =
      (current?.listeners as { name: string; conditions?: Condition[] }[] | undefined) ?? [];
    const want: Record<string, unknown> = {
      ...d.status,
      conditions: stamp(
        d.status.conditions as Condition[],
        current?.conditions as Condition[] | undefined,
        now,
      ),
    };
    if (Array.isArray(d.status.listeners))
      want.listeners = (d.status.listeners as { name: string; conditions: Condition[] }[]).map((l) => ({
        ...l,
        conditions: stamp(l.conditions, prevListeners.find((p) => p.name === l.name)?.conditions, now),
      }));
    const mine = Object.fromEntries(Object.keys(want).map((k) => [k, current?.[k]]));
    if (canonical(mine) === canonical(want)) return undefined;
    return want;
  }
}

/**
 * Leader election with a coordination.k8s.io/v1 Lease, as client-go does it (client-node has none): every
 * `retryPeriod` a candidate reads the Lease and takes it when it is free, released, or not renewed for
 * `leaseDuration` *as observed locally* (no trust in other pods' clocks); writes carry the resourceVersion read,
 * so two candidates cannot both win (409 Conflict). The leader renews every `retryPeriod` and steps down when no
 * renewal succeeded within `renewDeadline`. On graceful shutdown the leader releases the Lease (empty holder), so
 * the next pod takes over at its next retry instead of after a full lease duration.
 */
import { CoordinationV1Api, type KubeConfig, type V1Lease, type V1LeaseSpec } from '@kubernetes/client-node';
import type { Logger } from '../../lib/log.ts';
import { describeError } from '../sources/kube/kube-source.ts';
import { pooledApiClient } from '../sources/kube/pooled-api.ts';

/** The Lease calls this uses (a fake in unit tests). Errors carry `code` (HTTP status), as client-node's do. */
export interface LeaseApi {
  get(namespace: string, name: string): Promise<V1Lease | undefined>;
  create(namespace: string, lease: V1Lease): Promise<V1Lease>;
  replace(namespace: string, name: string, lease: V1Lease): Promise<V1Lease>;
}

export function clientNodeLeaseApi(kc: KubeConfig): LeaseApi {
  const api = pooledApiClient(kc, CoordinationV1Api);
  return {
    async get(namespace, name) {
      try {
        return await api.readNamespacedLease({ namespace, name });
      } catch (err) {
        if ((err as { code?: number }).code === 404) return undefined;
        throw err;
      }
    },
    create: (namespace, body) =>
      api.createNamespacedLease({ namespace, body: { ...body, spec: leaseSpec(body.spec ?? {}) } }),
    replace: (namespace, name, body) =>
      api.replaceNamespacedLease({ namespace, name, body: { ...body, spec: leaseSpec(body.spec ?? {}) } }),
  };
}

/**
 * A Kubernetes MicroTime (`2006-01-02T15:04:05.000000Z`). client-node 2.0.1 sends Dates with milliseconds, which
 * the API server refuses for MicroTime fields; a string passes its serializer unchanged.
 */
export function microTime(value: Date | string | number): Date {
  const d = value instanceof Date ? value : new Date(value);
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}

function leaseSpec(spec: V1LeaseSpec): V1LeaseSpec {
  const out: V1LeaseSpec = { ...spec };
  if (spec.acquireTime) out.acquireTime = microTime(spec.acquireTime);
  if (spec.renewTime) out.renewTime = microTime(spec.renewTime);
  return out;
}

export interface LeaderElectionOptions {
  api: LeaseApi;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
  log?: Logger;
  now?: () => number;
}

export const LEASE_DEFAULTS = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

export class LeaderElector {
  readonly #opts: LeaderElectionOptions & typeof LEASE_DEFAULTS;
  readonly #now: () => number;
  #leader = false;
  #stopped = true;
  #timer: NodeJS.Timeout | undefined;
  #loop: Promise<void> = Promise.resolve();
  /** The Lease as last read or written, and when (local clock) its record last changed. */
  #observed: V1Lease | undefined;
  #observedAt = 0;
  #observedKey = '';
  #lastRenew = 0;
  #transitions = 0;

  constructor(opts: LeaderElectionOptions) {
    this.#opts = { ...LEASE_DEFAULTS, ...opts };
    this.#now = opts.now ?? Date.now;
    const { leaseDurationMs, renewDeadlineMs, retryPeriodMs } = this.#opts;
    if (!(leaseDurationMs > renewDeadlineMs && renewDeadlineMs > retryPeriodMs && retryPeriodMs > 0))
      throw new Error(
        `leader election: need lease duration (${leaseDurationMs} ms) > renew deadline (${renewDeadlineMs} ms) > retry period (${retryPeriodMs} ms) > 0`,
      );
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  get identity(): string {
    return this.#opts.identity;
  }

  stats(): { leader: boolean; transitions: number } {
    return { leader: this.#leader, transitions: this.#transitions };
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#tick();
  }

  /** Stops competing; a leader releases the Lease first. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#loop;
    if (this.#leader) {
      await this.#release().catch((err) =>
        this.#opts.log?.warn('could not release the leader lease', { error: describeError(err) }),
      );
      this.#setLeader(false);
    }
  }

  #tick(): void {
    this.#loop = this.#attempt().finally(() => {
      if (!this.#stopped) this.#timer = setTimeout(() => this.#tick(), this.#jittered());
    });
  }

  #jittered(): number {
    // Candidates retry with up to 20% jitter (client-go's JitterFactor 1.2); the leader renews on time.
    const p = this.#opts.retryPeriodMs;
    return this.#leader ? p : Math.round(p * (1 + Math.random() * 0.2));
  }

  async #attempt(): Promise<void> {
    try {
      const ok = await this.#tryAcquireOrRenew();
      if (ok) {
        this.#lastRenew = this.#now();
        if (!this.#leader) this.#setLeader(true);
        return;
      }
    } catch (err) {
      this.#opts.log?.debug('lease attempt failed', { error: describeError(err) });
    }
    if (this.#leader && this.#now() - this.#lastRenew > this.#opts.renewDeadlineMs) {
      this.#opts.log?.warn('lost the leader lease: no renewal within the renew deadline', {
        lease: `${this.#opts.namespace}/${this.#opts.name}`,
      });
      this.#setLeader(false);
    }
  }

  #setLeader(leader: boolean): void {
    this.#leader = leader;
    this.#transitions++;
    this.#opts.log?.info(leader ? 'became leader' : 'stopped leading', {
      identity: this.#opts.identity,
      lease: `${this.#opts.namespace}/${this.#opts.name}`,
    });
    if (leader) this.#opts.onStartedLeading?.();
    else this.#opts.onStoppedLeading?.();
  }

  #observe(lease: V1Lease): void {
    const s = lease.spec ?? {};
    const key = `${s.holderIdentity ?? ''}|${String(s.renewTime ?? '')}|${lease.metadata?.resourceVersion ?? ''}`;
    if (key !== this.#observedKey) {
      this.#observedKey = key;
      this.#observedAt = this.#now();
    }
    this.#observed = lease;
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, identity } = this.#opts;
    const now = new Date(this.#now());
    const durationSeconds = Math.ceil(this.#opts.leaseDurationMs / 1000);
    const current = await api.get(namespace, name);
    if (!current) {
      const created = await api.create(namespace, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace },
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: durationSeconds,
          acquireTime: now,
          renewTime: now,
          leaseTransitions: 0,
        },
      });
      this.#observe(created);
      return true;
    }
    this.#observe(current);
    const spec = current.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const held = holder !== '' && holder !== identity;
    const expiresAt = this.#observedAt + (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (held && this.#now() < expiresAt) return false;
    const takeover = holder !== identity;
    const updated = await api.replace(namespace, name, {
      ...current,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: now,
        acquireTime: takeover ? now : (spec.acquireTime ?? now),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (takeover && holder !== '' ? 1 : 0),
      },
    });
    this.#observe(updated);
    return true;
  }

  async #release(): Promise<void> {
    const { api, namespace, name, identity } = this.#opts;
    const current = (await api.get(namespace, name)) ?? this.#observed;
    if (!current || current.spec?.holderIdentity !== identity) return;
    const now = new Date(this.#now());
    await api.replace(namespace, name, {
      ...current,
      spec: {
        ...current.spec,
        holderIdentity: '',
        leaseDurationSeconds: 1,
        renewTime: now,
        acquireTime: now,
      },
    });
  }
}

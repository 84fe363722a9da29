// Leader election against an in-memory Lease store with resourceVersion preconditions (409 on a stale write),
// the API server's optimistic concurrency.
import type { V1Lease } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { LeaderElector, type LeaseApi, microTime } from '../../../../src/control/status/leader-election.ts';
import { waitFor } from '../../../support/wait.ts';

class LeaseStore implements LeaseApi {
  lease: V1Lease | undefined;
  rv = 0;
  writes: string[] = [];
  down = false;
  async get(): Promise<V1Lease | undefined> {
    if (this.down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    return this.lease && structuredClone(this.lease);
  }
  async create(_ns: string, lease: V1Lease): Promise<V1Lease> {
    if (this.down) throw new Error('down');
    if (this.lease) throw Object.assign(new Error('exists'), { code: 409 });
    return this.#store(lease);
  }
  async replace(_ns: string, _name: string, lease: V1Lease): Promise<V1Lease> {
    if (this.down) throw new Error('down');
    if (lease.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion)
      throw Object.assign(new Error('conflict'), { code: 409 });
    return this.#store(lease);
  }
  #store(lease: V1Lease): V1Lease {
    this.lease = {
      ...structuredClone(lease),
      metadata: { ...lease.metadata, resourceVersion: String(++this.rv) },
    };
    this.writes.push(lease.spec?.holderIdentity ?? '');
    return structuredClone(this.lease);
  }
}

const timings = { leaseDurationMs: 400, renewDeadlineMs: 250, retryPeriodMs: 50 };

function elector(store: LeaseStore, identity: string) {
  return new LeaderElector({ api: store, namespace: 'ns', name: 'lease', identity, ...timings });
}

describe('LeaderElector', () => {
  it('elects exactly one of two candidates; a graceful stop releases, the other takes over at once', async () => {
    const store = new LeaseStore();
    const a = elector(store, 'a');
    const b = elector(store, 'b');
    a.start();
    await waitFor(() => a.isLeader, { timeoutMs: 5000 });
    b.start();
    // b keeps seeing a renewed lease: it never writes.
    const writesBefore = store.writes.length;
    await waitFor(() => store.writes.length >= writesBefore + 5, { timeoutMs: 5000 });
    expect(b.isLeader).toBe(false);
    expect(store.writes.slice(writesBefore).every((w) => w === 'a')).toBe(true);

    const stopped = performance.now();
    await a.stop();
    expect(store.lease?.spec?.holderIdentity).toBe('');
    await waitFor(() => b.isLeader, { timeoutMs: 5000 });
    // Released: no need to wait a lease duration.
    expect(performance.now() - stopped).toBeLessThan(timings.leaseDurationMs);
    expect(store.lease?.spec?.holderIdentity).toBe('b');
    await b.stop();
  });

  it('takes over an expired lease of a dead leader only after the lease duration', async () => {
    const store = new LeaseStore();
    store.lease = {
      metadata: { name: 'lease', namespace: 'ns', resourceVersion: '7' },
      spec: { holderIdentity: 'dead', leaseDurationSeconds: 1, renewTime: new Date() },
    };
    store.rv = 7;
    const b = elector(store, 'b');
    const started = performance.now();
    b.start();
    await waitFor(() => b.isLeader, { timeoutMs: 5000 });
    // The record never changed: b waited a full lease duration (1 s, as the lease says) on its own clock.
    expect(performance.now() - started).toBeGreaterThanOrEqual(1000);
    expect(store.lease?.spec?.leaseTransitions).toBe(1);
    await b.stop();
  });

  it('steps down when it cannot renew within the renew deadline', async () => {
    const store = new LeaseStore();
    const lost: number[] = [];
    const a = new LeaderElector({
      api: store,
      namespace: 'ns',
      name: 'lease',
      identity: 'a',
      ...timings,
      onStoppedLeading: () => lost.push(performance.now()),
    });
    a.start();
    await waitFor(() => a.isLeader, { timeoutMs: 5000 });
    const cut = performance.now();
    store.down = true;
    await waitFor(() => !a.isLeader, { timeoutMs: 5000 });
    expect(lost[0]! - cut).toBeGreaterThanOrEqual(timings.renewDeadlineMs - timings.retryPeriodMs);
    store.down = false;
    await waitFor(() => a.isLeader, { timeoutMs: 5000 });
    await a.stop();
  });

  it('refuses inconsistent durations and formats MicroTime with microseconds', () => {
    expect(
      () =>
        new LeaderElector({
          api: new LeaseStore(),
          namespace: 'n',
          name: 'l',
          identity: 'i',
          leaseDurationMs: 1000,
          renewDeadlineMs: 2000,
        }),
    ).toThrow(/lease duration .* > renew deadline/);
    expect(String(microTime(new Date('2026-01-02T03:04:05.678Z')))).toBe('2026-01-02T03:04:05.678000Z');
  });
});

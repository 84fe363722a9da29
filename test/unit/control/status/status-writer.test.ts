// Status is data: compile diagnostics → conditions; written by the leader only, only for the routes whose own
// status changed (changed routes first, the latest status per route), with Events when a route turns invalid or
// valid again. Programmed follows whether the workers serve the route's current form, not the table version.
import { describe, expect, it } from 'vitest';
import type { GatewayRouteStatus } from '../../../../src/api/gateway-route-status.ts';
import type { RouteStatus } from '../../../../src/compile/compile.ts';
import type { GatewayRouteObject } from '../../../../src/control/sources/kube/kube-source.ts';
import { desiredStatus } from '../../../../src/control/status/status-conditions.ts';
import {
  type RouteEvent,
  type StatusApi,
  StatusWriter,
} from '../../../../src/control/status/status-writer.ts';
import { createLogger } from '../../../../src/lib/log.ts';
import { waitFor } from '../../../support/wait.ts';

const ok: RouteStatus = {
  route: 'shop/billing',
  origin: 'kube',
  generation: 3,
  accepted: true,
  errors: [],
  unresolved: [],
  backends: [{ ref: 'service:shop/billing:8080', healthy: { kubernetes: 2 } }],
};
const broken: RouteStatus = {
  ...ok,
  generation: 4,
  unresolved: ['Service shop/billing not found'],
  backends: [{ ref: 'service:shop/billing:8080', healthy: { kubernetes: 0 } }],
};
const invalid: RouteStatus = {
  ...ok,
  generation: 5,
  accepted: false,
  errors: [{ path: ['spec', 'rules', 0, 'backends'], message: 'at least one backend is required' }],
  backends: [],
};

class Cluster implements StatusApi {
  objects = new Map<string, GatewayRouteObject>();
  patches: Array<{ key: string; status: GatewayRouteStatus }> = [];
  events: RouteEvent[] = [];
  async patchStatus(namespace: string, name: string, status: GatewayRouteStatus) {
    const key = `${namespace}/${name}`;
    this.patches.push({ key, status });
    const obj = this.objects.get(key)!;
    this.objects.set(key, { ...obj, status: structuredClone(status) });
  }
  async createEvent(e: RouteEvent) {
    this.events.push(e);
  }
}

function setup(leader = true, opts: { pendingGraceMs?: number; concurrency?: number } = {}) {
  const cluster = new Cluster();
  cluster.objects.set('shop/billing', { metadata: { name: 'billing', namespace: 'shop', uid: 'u1' } });
  const state = { leader };
  /** Routes whose current form every worker serves. */
  const served = new Set<string>();
  const writer = new StatusWriter({
    api: cluster,
    current: (ns, name) => cluster.objects.get(`${ns}/${name}`),
    isLeader: () => state.leader,
    programmed: (route) => served.has(route),
    log: createLogger('error'),
    pendingGraceMs: opts.pendingGraceMs ?? 0,
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
  });
  return { cluster, writer, state, served };
}

const programmedOf = (cluster: Cluster, key = 'shop/billing') =>
  (cluster.objects.get(key)?.status as GatewayRouteStatus | undefined)?.conditions?.find(
    (c) => c.type === 'Programmed',
  );

describe('status conditions', () => {
  it('names the missing backend and the invalid field, with observedGeneration', () => {
    const s = desiredStatus(broken, true, [], '2026-01-01T00:00:00Z');
    expect(s.observedGeneration).toBe(4);
    expect(s.conditions).toContainEqual(
      expect.objectContaining({
        type: 'ResolvedRefs',
        status: 'False',
        reason: 'BackendNotFound',
        message: 'Service shop/billing not found',
        observedGeneration: 4,
      }),
    );
    const i = desiredStatus(invalid, false, [], '2026-01-01T00:00:00Z');
    expect(i.conditions?.find((c) => c.type === 'Accepted')).toMatchObject({
      status: 'False',
      reason: 'Invalid',
      message: 'spec.rules[0].backends: at least one backend is required',
    });
    expect(i.conditions?.find((c) => c.type === 'Programmed')?.status).toBe('False');
  });

  it('keeps lastTransitionTime while a condition holds', () => {
    const first = desiredStatus(ok, true, [], '2026-01-01T00:00:00Z');
    const again = desiredStatus(broken, true, first.conditions ?? [], '2026-01-02T00:00:00Z');
    const t = (s: GatewayRouteStatus, type: string) =>
      s.conditions?.find((c) => c.type === type)?.lastTransitionTime;
    expect(t(again, 'Accepted')).toBe('2026-01-01T00:00:00Z');
    expect(t(again, 'ResolvedRefs')).toBe('2026-01-02T00:00:00Z');
  });

  it('names no table version: a route served before and after a publish has the same status', () => {
    const a = desiredStatus(ok, true, [], '2026-01-01T00:00:00Z');
    const b = desiredStatus(ok, true, a.conditions ?? [], '2026-01-02T00:00:00Z');
    expect(b).toEqual(a);
    expect(JSON.stringify(a)).not.toMatch(/version/i);
  });
});

describe('StatusWriter', () => {
  it('writes once per change; Programmed follows whether the workers serve the route', async () => {
    const { cluster, writer, served } = setup();
    writer.update([ok]);
    await waitFor(() => writer.idle && cluster.patches.length === 1, { timeoutMs: 2000 });
    expect(programmedOf(cluster)).toMatchObject({ status: 'False', reason: 'Pending' });
    served.add('shop/billing');
    writer.recheck(['shop/billing']);
    await waitFor(() => writer.idle && cluster.patches.length === 2, { timeoutMs: 2000 });
    expect(programmedOf(cluster)).toMatchObject({ status: 'True', reason: 'Programmed' });
    // The same diagnostics again (every rebuild hands all of them over): nothing is even checked.
    writer.update([ok]);
    writer.update([{ ...ok }]);
    writer.recheck(['shop/billing']);
    await waitFor(() => writer.idle, { timeoutMs: 2000 });
    expect(cluster.patches).toHaveLength(2);
    expect(cluster.events).toHaveLength(0); // a new valid route needs no event
  });

  it('a route the workers serve within the grace period is written once, already Programmed', async () => {
    const { cluster, writer, served } = setup(true, { pendingGraceMs: 60_000 });
    writer.update([ok]);
    expect(writer.stats().pending).toBe(1);
    served.add('shop/billing');
    writer.recheck(['shop/billing']);
    await waitFor(() => writer.idle && cluster.patches.length === 1, { timeoutMs: 2000 });
    expect(programmedOf(cluster)).toMatchObject({ status: 'True' });
    // A new generation: held again, served, one write.
    served.delete('shop/billing');
    writer.update([{ ...ok, generation: 6 }]);
    served.add('shop/billing');
    writer.recheck(['shop/billing']);
    await waitFor(() => writer.idle && cluster.patches.length === 2, { timeoutMs: 2000 });
    expect(cluster.patches.map((p) => p.status.observedGeneration)).toEqual([3, 6]);
    expect(cluster.patches.every((p) => p.status.conditions?.every((c) => c.status === 'True'))).toBe(true);
    writer.stop();
  });

  it('a route whose workers do not answer within the grace period shows Pending', async () => {
    const { cluster, writer } = setup(true, { pendingGraceMs: 50 });
    writer.update([ok]);
    expect(cluster.patches).toHaveLength(0);
    await waitFor(() => writer.idle && cluster.patches.length === 1, { timeoutMs: 2000 });
    expect(programmedOf(cluster)).toMatchObject({ status: 'False', reason: 'Pending' });
  });

  it('a change to one route of many writes that route only', async () => {
    const { cluster, writer, served } = setup();
    const many = Array.from({ length: 50 }, (_, i): RouteStatus => ({ ...ok, route: `shop/r${i}` }));
    for (const s of many) {
      const name = s.route.split('/')[1]!;
      cluster.objects.set(s.route, { metadata: { name, namespace: 'shop', uid: name } });
      served.add(s.route);
    }
    writer.update(many);
    await waitFor(() => writer.idle && cluster.patches.length === 50, { timeoutMs: 5000 });
    const changed = many.map((s, i) => (i === 17 ? { ...s, generation: 9 } : { ...s }));
    writer.update(changed);
    await waitFor(() => writer.idle, { timeoutMs: 2000 });
    expect(cluster.patches.slice(50).map((p) => p.key)).toEqual(['shop/r17']);
    expect(writer.stats().unchanged).toBe(0); // the others were not even compared
  });

  it("changed routes go before a new leader's full check; a route changed while queued is written once, latest", async () => {
    const { cluster, writer, served, state } = setup(false, { concurrency: 1 });
    const names = ['a', 'b', 'c', 'd'];
    for (const n of names) {
      cluster.objects.set(`shop/${n}`, { metadata: { name: n, namespace: 'shop', uid: n } });
      served.add(`shop/${n}`);
    }
    writer.update(names.map((n) => ({ ...ok, route: `shop/${n}` })));
    await waitFor(() => writer.idle, { timeoutMs: 2000 });
    expect(cluster.patches).toHaveLength(0); // not the leader
    state.leader = true;
    writer.resync(); // a, b, c, d to check, in the background: a is taken at once
    // d changes three times before a's write is done: one write, the last generation, next in line.
    for (const g of [10, 11, 12])
      writer.update(
        names.map((n) => ({ ...ok, route: `shop/${n}`, ...(n === 'd' ? { generation: g } : {}) })),
      );
    await waitFor(() => writer.idle && cluster.patches.length === 4, { timeoutMs: 2000 });
    expect(cluster.patches.map((p) => p.key)).toEqual(['shop/a', 'shop/d', 'shop/b', 'shop/c']);
    expect(cluster.patches[1]!.status.observedGeneration).toBe(12);
  });

  it('a route deleted before its write (404) is counted as not_found, not as a failure; another error is one', async () => {
    const { cluster, writer } = setup();
    cluster.patchStatus = async () => {
      throw Object.assign(new Error('not found'), { code: 404 });
    };
    writer.update([ok]);
    await waitFor(() => writer.idle, { timeoutMs: 2000 });
    expect(writer.stats()).toMatchObject({ failures: 0, notFound: 1, writes: 0 });
    cluster.patchStatus = async () => {
      throw Object.assign(new Error('internal error'), { code: 500 });
    };
    writer.update([broken]);
    await waitFor(() => writer.stats().failures >= 1, { timeoutMs: 2000 });
    expect(writer.stats()).toMatchObject({ writes: 0, notFound: 1 });
    expect(writer.stats().pending).toBe(1); // queued again for a retry
    writer.stop(); // no retry after the test
  });

  it('emits Warning Invalid and Normal Valid events when Accepted flips', async () => {
    const { cluster, writer, served } = setup();
    served.add('shop/billing');
    writer.update([ok]);
    await waitFor(() => writer.idle && cluster.patches.length === 1, { timeoutMs: 2000 });
    writer.update([invalid]);
    await waitFor(() => writer.idle && cluster.events.length === 1, { timeoutMs: 2000 });
    expect(cluster.events[0]).toMatchObject({
      type: 'Warning',
      reason: 'Invalid',
      name: 'billing',
      uid: 'u1',
    });
    expect(cluster.events[0]!.note).toContain('spec.rules[0].backends');
    writer.update([{ ...ok, generation: 6 }]);
    await waitFor(() => writer.idle && cluster.events.length === 2, { timeoutMs: 2000 });
    expect(cluster.events[1]).toMatchObject({ type: 'Normal', reason: 'Valid' });
  });

  it('never writes as a non-leader; writes what is stale once it leads', async () => {
    const { cluster, writer, state, served } = setup(false);
    served.add('shop/billing');
    writer.update([ok]);
    await waitFor(() => writer.idle, { timeoutMs: 2000 });
    expect(cluster.patches).toHaveLength(0);
    state.leader = true;
    writer.resync();
    await waitFor(() => writer.idle && cluster.patches.length === 1, { timeoutMs: 2000 });
  });

  it('ignores routes from files and routes deleted meanwhile', async () => {
    const { cluster, writer } = setup();
    writer.update([
      { ...ok, origin: 'routes/a.yaml:1' },
      { ...ok, route: 'shop/gone' },
    ]);
    await waitFor(() => writer.idle, { timeoutMs: 2000 });
    expect(cluster.patches).toHaveLength(0);
  });
});

// Status is data: compile diagnostics → conditions; written by the leader only, only on change, with Events
// when a route turns invalid or valid again.
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

function setup(leader = true) {
  const cluster = new Cluster();
  cluster.objects.set('shop/billing', { metadata: { name: 'billing', namespace: 'shop', uid: 'u1' } });
  const state = { leader };
  const writer = new StatusWriter({
    api: cluster,
    current: (ns, name) => cluster.objects.get(`${ns}/${name}`),
    isLeader: () => state.leader,
    log: createLogger('error'),
  });
  return { cluster, writer, state };
}

describe('status conditions', () => {
  it('names the missing backend and the invalid field, with observedGeneration', () => {
    const s = desiredStatus(broken, true, 7, [], '2026-01-01T00:00:00Z');
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
    const i = desiredStatus(invalid, false, 7, [], '2026-01-01T00:00:00Z');
    expect(i.conditions?.find((c) => c.type === 'Accepted')).toMatchObject({
      status: 'False',
      reason: 'Invalid',
      message: 'spec.rules[0].backends: at least one backend is required',
    });
    expect(i.conditions?.find((c) => c.type === 'Programmed')?.status).toBe('False');
  });

  it('keeps lastTransitionTime while a condition holds', () => {
    const first = desiredStatus(ok, true, 1, [], '2026-01-01T00:00:00Z');
    const again = desiredStatus(broken, true, 2, first.conditions ?? [], '2026-01-02T00:00:00Z');
    const t = (s: GatewayRouteStatus, type: string) =>
      s.conditions?.find((c) => c.type === type)?.lastTransitionTime;
    expect(t(again, 'Accepted')).toBe('2026-01-01T00:00:00Z');
    expect(t(again, 'ResolvedRefs')).toBe('2026-01-02T00:00:00Z');
  });
});

describe('StatusWriter', () => {
  it('writes once per change, Programmed follows the served version', async () => {
    const { cluster, writer } = setup();
    writer.update([ok], 1);
    await waitFor(() => writer.idle && cluster.patches.length === 1, { timeoutMs: 2000 });
    const programmed = () =>
      cluster.objects.get('shop/billing')?.status &&
      (cluster.objects.get('shop/billing')!.status as GatewayRouteStatus).conditions?.find(
        (c) => c.type === 'Programmed',
      );
    expect(programmed()).toMatchObject({ status: 'False', reason: 'Pending' });
    writer.setServedVersion(1);
    await waitFor(() => writer.idle && cluster.patches.length === 2, { timeoutMs: 2000 });
    expect(programmed()).toMatchObject({ status: 'True', reason: 'Programmed' });
    // The same diagnostics again: nothing to write.
    writer.update([ok], 1);
    writer.update([ok], 1);
    await waitFor(() => writer.idle, { timeoutMs: 2000 });
    expect(cluster.patches).toHaveLength(2);
    expect(writer.stats().unchanged).toBeGreaterThanOrEqual(2);
    expect(cluster.events).toHaveLength(0); // a new valid route needs no event
  });

  it('a route deleted before its write (404) is no failure; another error is one', async () => {
    const { cluster, writer } = setup();
    cluster.patchStatus = async () => {
      throw Object.assign(new Error('not found'), { code: 404 });
    };
    writer.update([ok], 1);
    await waitFor(() => writer.idle, { timeoutMs: 2000 });
    expect(writer.stats().failures).toBe(0);
    cluster.patchStatus = async () => {
      throw Object.assign(new Error('internal error'), { code: 500 });
    };
    writer.update([broken], 1);
    await waitFor(() => writer.stats().failures >= 1, { timeoutMs: 2000 });
    expect(writer.stats().writes).toBe(0);
    writer.stop(); // no retry after the test
  });

  it('emits Warning Invalid and Normal Valid events when Accepted flips', async () => {
    const { cluster, writer } = setup();
    writer.setServedVersion(9);
    writer.update([ok], 1);
    await waitFor(() => writer.idle && cluster.patches.length === 1, { timeoutMs: 2000 });
    writer.update([invalid], 2);
    await waitFor(() => writer.idle && cluster.events.length === 1, { timeoutMs: 2000 });
    expect(cluster.events[0]).toMatchObject({
      type: 'Warning',
      reason: 'Invalid',
      name: 'billing',
      uid: 'u1',
    });
    expect(cluster.events[0]!.note).toContain('spec.rules[0].backends');
    writer.update([ok], 3);
    await waitFor(() => writer.idle && cluster.events.length === 2, { timeoutMs: 2000 });
    expect(cluster.events[1]).toMatchObject({ type: 'Normal', reason: 'Valid' });
  });

  it('never writes as a non-leader; writes what is stale once it leads', async () => {
    const { cluster, writer, state } = setup(false);
    writer.setServedVersion(1);
    writer.update([ok], 1);
    await waitFor(() => writer.idle, { timeoutMs: 2000 });
    expect(cluster.patches).toHaveLength(0);
    state.leader = true;
    writer.resync();
    await waitFor(() => writer.idle && cluster.patches.length === 1, { timeoutMs: 2000 });
  });

  it('ignores routes from files and routes deleted meanwhile', async () => {
    const { cluster, writer } = setup();
    writer.update(
      [
        { ...ok, origin: 'routes/a.yaml:1' },
        { ...ok, route: 'shop/gone' },
      ],
      1,
    );
    await waitFor(() => writer.idle, { timeoutMs: 2000 });
    expect(cluster.patches).toHaveLength(0);
  });
});

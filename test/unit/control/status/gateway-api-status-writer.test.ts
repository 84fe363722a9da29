// The Gateway API status writer with an in-process fake API: leader only, no write when the status on the object
// is already the desired one (lastTransitionTime aside), other controllers' HTTPRoute parents kept, a failed write
// retried.
import { describe, expect, it } from 'vitest';
import {
  type DesiredStatus,
  GatewayApiStatusWriter,
  type StatusKind,
} from '../../../../src/control/status/gateway-api-status-writer.ts';
import { createLogger } from '../../../../src/lib/log.ts';
import { waitFor } from '../../../support/wait.ts';

const log = createLogger('error');
const ours = (status: 'True' | 'False') => ({
  parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' },
  controllerName: 'edgegate.io/gateway',
  conditions: [{ type: 'Accepted', status, reason: 'Accepted', message: 'm', observedGeneration: 1 }],
});
const theirs = {
  parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'other' },
  controllerName: 'example.com/other',
  conditions: [
    { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'x', lastTransitionTime: 'T0' },
  ],
};

function setup(opts: { leader?: boolean; failFirst?: boolean } = {}) {
  const objects = new Map<string, { status?: unknown }>();
  const writes: { kind: StatusKind; name: string; status: unknown }[] = [];
  let failures = opts.failFirst ? 1 : 0;
  let leader = opts.leader ?? true;
  const writer = new GatewayApiStatusWriter({
    api: {
      async patchStatus(kind, namespace, name, status) {
        if (failures > 0) {
          failures--;
          throw Object.assign(new Error('boom'), { code: 500 });
        }
        writes.push({ kind, name, status });
        objects.set(`${kind}/${namespace ?? ''}/${name}`, { status });
      },
    },
    current: (kind, ns, name) => objects.get(`${kind}/${ns ?? ''}/${name}`),
    isLeader: () => leader,
    log,
    now: () => new Date('2030-01-01T00:00:00Z'),
  });
  return {
    objects,
    writes,
    writer,
    setLeader: (v: boolean) => {
      leader = v;
    },
  };
}

const route = (status: 'True' | 'False'): DesiredStatus => ({
  kind: 'httproutes',
  namespace: 'ns',
  name: 'r',
  status: { parents: [ours(status)] },
});

describe('GatewayApiStatusWriter', () => {
  it('keeps the parents of other controllers and writes only what changed', async () => {
    const t = setup();
    t.objects.set('httproutes/ns/r', { status: { parents: [theirs] } });
    t.writer.update([route('True')]);
    await waitFor(() => t.writes.length === 1);
    const parents = (t.writes[0]!.status as { parents: { controllerName: string }[] }).parents;
    expect(parents.map((p) => p.controllerName)).toEqual(['example.com/other', 'edgegate.io/gateway']);
    // The same desired status again, and a resync: the object already has it.
    t.writer.update([route('True')]);
    t.writer.resync();
    await waitFor(() => t.writer.stats().unchanged >= 1);
    expect(t.writes).toHaveLength(1);
    // A change is written.
    t.writer.update([route('False')]);
    await waitFor(() => t.writes.length === 2);
  });

  it('writes nothing while not the leader, and everything pending once it is', async () => {
    const t = setup({ leader: false });
    t.objects.set('httproutes/ns/r', { status: {} });
    t.writer.update([route('True')]);
    await new Promise((r) => setImmediate(r));
    expect(t.writes).toHaveLength(0);
    t.setLeader(true);
    t.writer.resync();
    await waitFor(() => t.writes.length === 1);
  });

  it('retries a failed write', async () => {
    const t = setup({ failFirst: true });
    t.objects.set('gateways/ns/gw', { status: {} });
    t.writer.update([
      {
        kind: 'gateways',
        namespace: 'ns',
        name: 'gw',
        status: {
          conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok' }],
          listeners: [],
        },
      },
    ]);
    await waitFor(() => t.writes.length === 1, { timeoutMs: 5000 });
    expect(t.writer.stats().failures).toBe(1);
    t.writer.stop();
  });
});

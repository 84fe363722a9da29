import { describe, expect, it } from 'vitest';
import type { IngressResult } from '../../../../src/api/ingress/ingress-translate.ts';
import {
  type IngressEvent,
  type IngressStatusApi,
  IngressStatusWriter,
  loadBalancerIngress,
} from '../../../../src/control/status/ingress-status-writer.ts';
import { silentLogger } from '../../../../src/lib/log.ts';
import { waitFor } from '../../../support/wait.ts';

function fakeApi() {
  const patches: { ns: string; name: string; ingress: unknown }[] = [];
  const events: IngressEvent[] = [];
  const api: IngressStatusApi = {
    async patchLoadBalancer(ns, name, ingress) {
      patches.push({ ns, name, ingress });
    },
    async createEvent(e) {
      events.push(e);
    },
  };
  return { api, patches, events };
}

/** The writer's work with a fake API settles within microtasks: let them run (not a timing wait). */
const flush = () => new Promise((r) => setImmediate(r));

const result = (name: string, notes: IngressResult['notes'] = [], refused = false): IngressResult => ({
  ingress: `shop/${name}`,
  uid: `uid-${name}`,
  notes,
  refused,
  routes: [`shop/ingress.${name}.example.com`],
});

const cors = {
  annotation: 'nginx.ingress.kubernetes.io/enable-cors',
  kind: 'unsupported' as const,
  message: 'no',
};

describe('IngressStatusWriter', () => {
  it('publishes IPs as ip and names as hostname', () => {
    expect(loadBalancerIngress(['192.0.2.1', '2001:db8::1', 'lb.example.com'])).toEqual([
      { ip: '192.0.2.1' },
      { ip: '2001:db8::1' },
      { hostname: 'lb.example.com' },
    ]);
  });

  it('writes status and Events only as the leader, once per change; a refused Ingress gets no address', async () => {
    const { api, patches, events } = fakeApi();
    let leader = false;
    const w = new IngressStatusWriter({
      api,
      isLeader: () => leader,
      current: (_ns, name) => ({ metadata: { name, resourceVersion: '1' } }),
      publish: ['192.0.2.1'],
      log: silentLogger(),
    });
    w.update([{ result: result('web', [cors]) }, { result: result('bad', [], true) }]);
    // Not the leader: nothing is written.
    await flush();
    expect(patches).toEqual([]);
    expect(events).toEqual([]);

    leader = true;
    w.resync();
    await waitFor(() => patches.length === 1 && events.length === 1, { timeoutMs: 2000 });
    expect(patches).toEqual([{ ns: 'shop', name: 'web', ingress: [{ ip: '192.0.2.1' }] }]);
    expect(events[0]).toMatchObject({ name: 'web', reason: 'UnsupportedAnnotation', uid: 'uid-web' });
    expect(events[0]!.note).toContain('enable-cors');

    // The same snapshot again: no new Event; the cache still shows the old status at the same resourceVersion, so
    // the write is not repeated either.
    w.update([{ result: result('web', [cors]) }, { result: result('bad', [], true) }]);
    await flush();
    expect(events).toHaveLength(1);
    expect(patches).toHaveLength(1);
    w.stop();
  });

  it('routes compile rejected become RouteInvalid Events on their Ingress', async () => {
    const { api, events } = fakeApi();
    const w = new IngressStatusWriter({
      api,
      isLeader: () => true,
      current: () => undefined,
      publish: [],
      log: silentLogger(),
    });
    w.update([{ result: result('rx') }]);
    w.routeStatuses([
      {
        route: 'shop/ingress.rx.example.com',
        origin: 'ingress',
        accepted: false,
        errors: [{ path: ['spec', 'rules', 0], message: 'invalid regular expression' }],
        unresolved: [],
        backends: [],
      },
    ]);
    await waitFor(() => events.length === 1, { timeoutMs: 2000 });
    expect(events[0]).toMatchObject({ name: 'rx', reason: 'RouteInvalid' });
    expect(events[0]!.note).toContain('invalid regular expression');
    w.stop();
  });
});

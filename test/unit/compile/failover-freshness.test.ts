/**
 * Consul failover and freshness in the pure parts: the schema's checks (validate), compile's table data and route
 * status (fallback clusters, serving datacenter, stale datacenters), the Consul watch set, the status conditions
 * (ServingStale) and the age check of the last-known-good table.
 */
import { describe, expect, it } from 'vitest';
import type { CatalogSnapshot, Instance } from '../../../src/api/catalog.ts';
import type { GatewayRoute } from '../../../src/api/gateway-route.ts';
import { validateRoute } from '../../../src/api/validate.ts';
import type { RouteStatus } from '../../../src/compile/compile.ts';
import { compile } from '../../../src/compile/compile.ts';
import { judgeLastKnownGood } from '../../../src/control/last-known-good-age.ts';
import { datacenterOfWatch, FreshnessTracker } from '../../../src/control/sources/consul/freshness.ts';
import { deriveWatchSet } from '../../../src/control/sources/consul/watch-set.ts';
import { desiredStatus } from '../../../src/control/status/status-conditions.ts';

const inst = (port: number, health: Instance['health'] = 'passing', tags = ['edge']): Instance => ({
  id: `i${port}`,
  address: '127.0.0.1',
  port,
  tags,
  meta: {},
  health,
  weight: 1,
});

const raw = (spec: unknown) => ({
  apiVersion: 'edgegate.io/v1alpha1',
  kind: 'GatewayRoute',
  metadata: { name: 'billing', namespace: 'edge' },
  spec,
});

const failoverRoute = (failover: unknown, datacenter: string | null = 'dc1') =>
  raw({
    rules: [
      { backends: [{ consul: { service: 'billing', ...(datacenter ? { datacenter } : {}), failover } }] },
    ],
  });

const catalog = (
  dc1: Instance[],
  dc2: Instance[],
  extra: Partial<CatalogSnapshot> = {},
): CatalogSnapshot => ({
  localDatacenter: 'dc1',
  datacenters: {
    dc1: { services: { billing: dc1 } },
    dc2: { services: { billing: dc2 } },
    dc3: { services: {} },
  },
  ...extra,
});

const run = (spec: unknown, c: CatalogSnapshot) =>
  compile({ routes: [{ raw: spec, origin: 'billing.yaml' }], catalog: c });

describe('validate: failover', () => {
  it('refuses a repeated datacenter and the backend’s own datacenter, naming the field', () => {
    const r = validateRoute(failoverRoute({ datacenters: ['dc2', 'dc2', 'dc1'] }));
    expect(r.ok).toBe(false);
    const msgs = r.ok ? [] : r.errors.map((e) => `${e.path.join('.')}: ${e.message}`);
    expect(msgs).toContain(
      'spec.rules.0.backends.0.consul.failover.datacenters.1: datacenter dc2 is listed twice',
    );
    expect(msgs).toContain(
      "spec.rules.0.backends.0.consul.failover.datacenters.2: datacenter dc1 is the backend's own datacenter, not a fallback",
    );
  });

  it('refuses an empty list and unknown fields', () => {
    expect(validateRoute(failoverRoute({ datacenters: [] })).ok).toBe(false);
    expect(validateRoute(failoverRoute({ datacenters: ['dc2'], nearestN: 2 })).ok).toBe(false);
    expect(validateRoute(raw({ catalog: { failover: { datacenters: ['dc2', 'dc2'] } } })).ok).toBe(false);
    expect(validateRoute(raw({ catalog: { failover: { datacenters: ['dc2'] } } })).ok).toBe(true);
  });
});

describe('compile: failover', () => {
  it('adds the fallback clusters to the backend, counts their health and names the serving datacenter', () => {
    const route = failoverRoute({ datacenters: ['dc2', 'dc3'] });
    const healthy = run(route, catalog([inst(1)], [inst(2)]));
    const ref = healthy.table.entries[0]!.backends![0]!;
    expect(ref.failover!.backend).toBe('consul:billing@dc1');
    expect(ref.failover!.clusters.map((id) => id.split('|')[0])).toEqual([
      'consul:billing@dc2',
      'consul:billing@dc3',
    ]);
    expect(healthy.statuses[0]!.backends).toEqual([
      { ref: 'consul:billing@dc1', healthy: { dc1: 1, dc2: 1, dc3: 0 }, serving: 'dc1' },
    ]);
    const down = run(route, catalog([inst(1, 'critical')], [inst(2)]));
    expect(down.statuses[0]!.backends[0]!.serving).toBe('dc2');
    const none = run(route, catalog([], []));
    expect(none.statuses[0]!.backends[0]!.serving).toBe('dc1');
  });

  it('a fallback datacenter the catalog does not know is named in ResolvedRefs; the local one is skipped', () => {
    const r = run(failoverRoute({ datacenters: ['dc1', 'dc9'] }, null), catalog([inst(1)], []));
    expect(r.statuses[0]!.unresolved).toEqual([
      'failover datacenter dc9 of Consul service billing is not known to the catalog',
    ]);
    const ids = r.table.entries[0]!.backends![0]!.failover!.clusters.map((id) => id.split('|')[0]);
    expect(ids).toEqual(['consul:billing@dc9']);
  });

  it('a backend without failover has no failover data (nothing for the worker to do)', () => {
    const r = run(
      raw({ rules: [{ backends: [{ consul: { service: 'billing' } }] }] }),
      catalog([inst(1)], []),
    );
    expect(r.table.entries[0]!.backends![0]!.failover).toBeUndefined();
    expect(r.statuses[0]!.backends[0]!.serving).toBeUndefined();
  });

  it('the catalog route maps each exposed service to its fallbacks that expose it too', () => {
    const c = catalog([inst(1)], [inst(2), inst(3, 'passing', ['other'])]);
    c.datacenters.dc2!.services.internal = [inst(4, 'passing', ['other'])];
    c.datacenters.dc1!.services.internal = [inst(5)];
    const r = run(
      raw({ catalog: { requiredTags: ['edge'], datacenters: ['dc1'], failover: { datacenters: ['dc2'] } } }),
      c,
    );
    const action = r.table.entries[0]!.catalog!;
    expect(Object.keys(action.services)).toEqual(['dc1']);
    expect(Object.keys(action.failover!.dc1!)).toEqual(['billing']);
    expect(action.failover!.dc1!.billing!.map((id) => id.split('|')[0])).toEqual([
      'consul:billing@dc2[edge]',
    ]);
  });
});

describe('compile: freshness', () => {
  it('names the stale datacenters among those the route’s backends use, fallbacks included', () => {
    const route = failoverRoute({ datacenters: ['dc2'] });
    const stale = run(
      route,
      catalog([inst(1)], [inst(2)], {
        freshness: { dc2: { reason: 'SourceDown', since: 5000 }, dc3: { reason: 'Lagging', since: 1 } },
      }),
    );
    expect(stale.statuses[0]!.stale).toEqual([{ datacenter: 'dc2', reason: 'SourceDown', since: 5000 }]);
    expect(stale.table.hash).toBe(run(route, catalog([inst(1)], [inst(2)])).table.hash);
    expect(run(route, catalog([inst(1)], [inst(2)])).statuses[0]!.stale).toBeUndefined();
  });
});

describe('status: ServingStale and serving datacenter', () => {
  const base: RouteStatus = {
    route: 'edge/billing',
    origin: 'kube',
    generation: 3,
    accepted: true,
    errors: [],
    unresolved: [],
    backends: [
      {
        ref: 'consul:billing@dc1',
        healthy: { dc1: 0, dc2: 1 },
        serving: 'dc2',
        servingSince: '2026-01-01T00:00:00.000Z',
      },
    ],
  };
  it('False while current; True naming the datacenter, reason and since when it is stale', () => {
    const ok = desiredStatus(base, true, [], '2026-01-01T00:00:01.000Z');
    expect(ok.conditions!.find((c) => c.type === 'ServingStale')).toMatchObject({
      status: 'False',
      reason: 'Current',
    });
    expect(ok.backends![0]).toEqual({
      ref: 'consul:billing@dc1',
      healthyEndpoints: { dc1: 0, dc2: 1 },
      servingDatacenter: 'dc2',
      servingSince: '2026-01-01T00:00:00.000Z',
    });
    const stale = desiredStatus(
      {
        ...base,
        stale: [{ datacenter: 'dc2', reason: 'SourceDown', since: Date.parse('2026-01-01T00:00:00Z') }],
      },
      true,
      ok.conditions!,
      '2026-01-01T00:00:02.000Z',
    );
    const c = stale.conditions!.find((x) => x.type === 'ServingStale')!;
    expect(c).toMatchObject({
      status: 'True',
      reason: 'SourceDown',
      lastTransitionTime: '2026-01-01T00:00:02.000Z',
    });
    expect(c.message).toContain(
      'datacenter dc2: Consul does not answer for it, since 2026-01-01T00:00:00.000Z',
    );
    expect(stale.backends![0]!.staleSince).toEqual({ dc2: '2026-01-01T00:00:00.000Z' });
  });

  it('a route with only Kubernetes Service backends has no ServingStale condition', () => {
    const s = desiredStatus(
      { ...base, backends: [{ ref: 'service:edge/web:80', healthy: { kubernetes: 1 } }] },
      true,
      [],
      '2026-01-01T00:00:00.000Z',
    );
    expect(s.conditions!.map((c) => c.type)).toEqual(['Accepted', 'ResolvedRefs', 'Programmed']);
  });
});

describe('watch set: fallback datacenters', () => {
  const view = {
    localDatacenter: 'dc1',
    datacenters: ['dc1', 'dc2', 'dc3'],
    services: { dc1: { billing: ['edge'] }, dc2: { billing: ['edge'], other: [] }, dc3: { billing: [] } },
  };
  const routeOf = (spec: unknown) => {
    const v = validateRoute(raw(spec));
    if (!v.ok) throw new Error(JSON.stringify(v.errors));
    return v.route as GatewayRoute;
  };
  it('watches a backend’s fallback datacenters only when it names them, and skips unknown ones', () => {
    const without = deriveWatchSet(
      [routeOf({ rules: [{ backends: [{ consul: { service: 'billing' } }] }] })],
      view,
    );
    expect(without.datacenters).toEqual(['dc1']);
    const withFailover = deriveWatchSet(
      [
        routeOf({
          rules: [
            { backends: [{ consul: { service: 'billing', failover: { datacenters: ['dc2', 'dc9'] } } }] },
          ],
        }),
      ],
      view,
    );
    expect(withFailover.datacenters).toEqual(['dc1', 'dc2']);
    expect(withFailover.services).toEqual([
      { datacenter: 'dc1', service: 'billing' },
      { datacenter: 'dc2', service: 'billing' },
    ]);
  });
  it('a catalog route watches its fallback datacenters with the same tag rule', () => {
    const ws = deriveWatchSet(
      [
        routeOf({
          catalog: { requiredTags: ['edge'], datacenters: ['dc1'], failover: { datacenters: ['dc2'] } },
        }),
      ],
      view,
    );
    expect(ws.datacenters).toEqual(['dc1', 'dc2']);
    expect(ws.services.map((k) => `${k.service}@${k.datacenter}`)).toEqual(['billing@dc1', 'billing@dc2']);
  });
});

describe('last-known-good age at start', () => {
  const now = Date.parse('2026-01-02T00:00:00Z');
  it('within the max age: served, not stale; no limit: never stale', () => {
    expect(
      judgeLastKnownGood('2026-01-01T23:30:00Z', now, { maxAgeMs: 3_600_000, whenStale: 'refuse' }),
    ).toMatchObject({ stale: false, refused: false, ageSeconds: 1800, warning: undefined });
    expect(judgeLastKnownGood('2020-01-01T00:00:00Z', now, { maxAgeMs: 0, whenStale: 'refuse' }).stale).toBe(
      false,
    );
  });
  it('over the max age: served with a warning, or refused, as configured; unknown age counts as too old', () => {
    const served = judgeLastKnownGood('2026-01-01T00:00:00Z', now, {
      maxAgeMs: 3_600_000,
      whenStale: 'serve',
    });
    expect(served).toMatchObject({ stale: true, refused: false, ageSeconds: 86_400 });
    expect(served.warning).toContain('serving it as stale');
    const refused = judgeLastKnownGood('2026-01-01T00:00:00Z', now, {
      maxAgeMs: 3_600_000,
      whenStale: 'refuse',
    });
    expect(refused).toMatchObject({ stale: true, refused: true });
    expect(refused.warning).toContain('not served');
    expect(judgeLastKnownGood(undefined, now, { maxAgeMs: 1000, whenStale: 'refuse' })).toMatchObject({
      stale: true,
      refused: true,
      ageSeconds: -1,
    });
  });
});

describe('Consul freshness per datacenter (sources/consul/freshness.ts)', () => {
  const res = (lastContactMs: number, knownLeader: boolean | undefined, index = 10) => ({
    status: 200,
    index,
    body: [],
    text: '[]',
    lastContactMs,
    knownLeader,
  });
  it('the watch keys name their datacenter; the agent’s own watches count for the local one', () => {
    expect(datacenterOfWatch('health@dc2/pay', 'dc1')).toBe('dc2');
    expect(datacenterOfWatch('services@dc3', 'dc1')).toBe('dc3');
    expect(datacenterOfWatch('agent/self', 'dc1')).toBe('dc1');
    expect(datacenterOfWatch('catalog/datacenters', undefined)).toBeUndefined();
  });
  it('current, Lagging over the limit, no leader (reported, not stale by itself), SourceDown with the age growing from the failure; back: current', () => {
    let now = 1_000_000;
    const t = new FreshnessTracker(2000, () => now);
    t.answered('dc1', 'health@dc1/pay', res(50, true, 7));
    expect(t.figures().dc1).toEqual({
      up: true,
      lastContactSeconds: 0.05,
      knownLeader: true,
      index: 7,
      indexAgeSeconds: 0.05,
      stale: false,
    });
    expect(t.snapshot()).toEqual({});
    t.answered('dc1', 'health@dc1/pay', res(2500, true));
    expect(t.snapshot()).toEqual({ dc1: { reason: 'Lagging', since: 1_000_000 } });
    t.answered('dc1', 'health@dc1/pay', res(0, false));
    expect(t.snapshot()).toEqual({});
    expect(t.figures().dc1).toMatchObject({ knownLeader: false, stale: false });
    t.answered('dc1', 'health@dc1/pay', res(0, undefined));
    expect(t.snapshot()).toEqual({});
    now += 1000;
    t.failed('dc1', 'services@dc1');
    now += 3000;
    expect(t.figures().dc1).toMatchObject({
      up: false,
      indexAgeSeconds: 3,
      stale: true,
      reason: 'SourceDown',
    });
    expect(t.snapshot()).toEqual({ dc1: { reason: 'SourceDown', since: 1_001_000 } });
    // A stopped watch no longer holds the datacenter down.
    t.forget('dc1', 'services@dc1');
    expect(t.snapshot()).toEqual({});
    t.failed('dc2', 'health@dc2/pay');
    t.retain(new Set(['dc1']));
    expect(Object.keys(t.figures())).toEqual(['dc1']);
  });
});

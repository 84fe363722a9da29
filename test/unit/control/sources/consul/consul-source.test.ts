/**
 * The Consul source against an in-process Consul: watch set from routes, snapshots only when something changed,
 * 403 handling, outage (up/age), max staleness, and the watch cap.
 */

import { afterEach, describe, expect, it } from 'vitest';
import type { CatalogSnapshot } from '../../../../../src/api/catalog.ts';
import type { RouteSource } from '../../../../../src/api/route-source.ts';
import { validRoutes } from '../../../../../src/compile/compile.ts';
import { ConsulSource } from '../../../../../src/control/sources/consul/consul-source.ts';
import {
  type ConsulSettings,
  consulSettingsFromEnv,
} from '../../../../../src/control/sources/consul/settings.ts';
import { waitFor } from '../../../../support/wait.ts';
import { FakeConsul } from './fake-consul.ts';

let consul: FakeConsul | undefined;
let source: ConsulSource | undefined;

afterEach(async () => {
  await source?.stop();
  await consul?.close();
  source = undefined;
  consul = undefined;
});

const route = (name: string, spec: unknown): RouteSource => ({
  raw: { apiVersion: 'edgegate.io/v1alpha1', kind: 'GatewayRoute', metadata: { name, namespace: 't' }, spec },
  origin: `${name}.yaml:1`,
});

const ROUTES = [
  route('catalog', { catalog: { requiredTags: ['edge'] } }),
  route('billing', { rules: [{ backends: [{ consul: { service: 'billing', datacenter: 'dc2' } }] }] }),
];

interface Logged {
  level: string;
  message: string;
}

function start(routes: RouteSource[] = ROUTES, overrides: Partial<ConsulSettings> = {}) {
  const snapshots: CatalogSnapshot[] = [];
  const logs: Logged[] = [];
  const log = Object.fromEntries(
    ['info', 'warn', 'error', 'debug'].map((level) => [
      level,
      (message: string) => logs.push({ level, message }),
    ]),
  ) as unknown as ConstructorParameters<typeof ConsulSource>[0]['log'];
  source = new ConsulSource({
    settings: {
      ...consulSettingsFromEnv({ CONSUL_HTTP_ADDR: consul!.url }),
      backoffBaseMs: 20,
      backoffMaxMs: 100,
      ratePerSecond: 1000,
      rateBurst: 1000,
      ...overrides,
    },
    log,
    onSnapshot: (c) => snapshots.push(c),
  });
  source.start();
  source.setRoutes(validRoutes(routes));
  return { snapshots, logs };
}

/** Every snapshot after the first differs from it only in `freshness`; the last one's datacenters are all `reason`. */
function expectOnlyFreshnessChanged(snapshots: CatalogSnapshot[], reason: string | undefined): void {
  const { freshness: _, ...first } = snapshots[0]!;
  expect(snapshots[0]!.freshness).toBeUndefined();
  for (const s of snapshots.slice(1))
    expect({ ...s, freshness: undefined }).toEqual({ ...first, freshness: undefined });
  const last = snapshots.at(-1)!;
  if (reason === undefined) expect(last.freshness).toBeUndefined();
  else
    expect(Object.values(last.freshness ?? {}).map((f) => f.reason)).toEqual(
      Object.keys(last.datacenters).map(() => reason),
    );
}

const names = (c: CatalogSnapshot | undefined) =>
  Object.fromEntries(
    Object.entries(c?.datacenters ?? {}).map(([dc, d]) => [dc, Object.keys(d.services).sort()]),
  );

describe('ConsulSource', () => {
  it('reports one complete view: services backends name and services carrying the required tags', async () => {
    consul = await FakeConsul.start();
    consul.services = {
      dc1: {
        web: [{ id: 'web-1', port: 9001, tags: ['edge'] }],
        internal: [{ id: 'i-1', port: 9002, tags: ['x'] }],
      },
      dc2: {
        billing: [{ id: 'b-1', port: 9003, tags: ['v1'] }],
        api: [{ id: 'a-1', port: 9004, tags: ['edge', 'v2'] }],
      },
    };
    const { snapshots } = start();
    await waitFor(() => snapshots.length === 1, { timeoutMs: 5000 });
    expect(snapshots[0]!.localDatacenter).toBe('dc1');
    expect(names(snapshots[0])).toEqual({ dc1: ['web'], dc2: ['api', 'billing'] });
    expect(snapshots[0]!.datacenters.dc2!.services.billing).toEqual([
      { id: 'b-1', address: '127.0.0.1', port: 9003, tags: ['v1'], meta: {}, health: 'passing', weight: 1 },
    ]);
    expect(source!.stats()).toMatchObject({ up: 1, synced: true, serviceWatches: 3, serviceListWatches: 2 });
  });

  it('reports health changes, but nothing when an answer changes nothing', async () => {
    consul = await FakeConsul.start();
    consul.services = {
      dc2: {
        billing: [
          { id: 'b-1', port: 9003 },
          { id: 'b-2', port: 9004 },
        ],
      },
    };
    const { snapshots } = start();
    await waitFor(() => snapshots.length === 1, { timeoutMs: 5000 });
    consul.change((c) => {
      c.services.dc2!.billing![1]!.status = 'critical';
    });
    await waitFor(() => snapshots.length === 2, { timeoutMs: 5000 });
    expect(snapshots[1]!.datacenters.dc2!.services.billing!.map((i) => i.health)).toEqual([
      'passing',
      'critical',
    ]);
    consul.change((c) => {
      c.services.dc2!.billing![0]!.maintenance = true;
    });
    await waitFor(() => snapshots.length === 3, { timeoutMs: 5000 });
    expect(snapshots[2]!.datacenters.dc2!.services.billing!.map((i) => i.health)).toEqual([
      'critical',
      'critical',
    ]);
    // The index moves, every watch answers, the content is the same: no snapshot.
    const before = consul.requests.length;
    consul.change();
    await waitFor(() => consul!.requests.length >= before + 3, { timeoutMs: 5000 });
    expect(snapshots.length).toBe(3);
  });

  it('starts and stops watches as the tags of services change, without a restart', async () => {
    consul = await FakeConsul.start();
    consul.services = { dc1: { ledger: [{ id: 'l-1', port: 9001, tags: ['internal'] }] } };
    const { snapshots } = start([ROUTES[0]!]);
    await waitFor(() => snapshots.length === 1, { timeoutMs: 5000 });
    expect(names(snapshots[0])).toEqual({ dc1: [], dc2: [] });
    expect(source!.stats().serviceWatches).toBe(0);
    consul.change((c) => {
      c.services.dc1!.ledger![0]!.tags = ['internal', 'edge'];
    });
    await waitFor(() => names(snapshots.at(-1)).dc1!.includes('ledger'), { timeoutMs: 5000 });
    expect(source!.stats().serviceWatches).toBe(1);
    consul.change((c) => {
      c.services.dc1!.ledger![0]!.tags = ['internal'];
    });
    await waitFor(() => names(snapshots.at(-1)).dc1!.length === 0, { timeoutMs: 5000 });
    expect(source!.stats().serviceWatches).toBe(0);
  });

  it('starts and stops watches as the routes change, without a restart', async () => {
    consul = await FakeConsul.start();
    consul.services = {
      dc2: { billing: [{ id: 'b-1', port: 9003 }], ledger: [{ id: 'l-1', port: 9004 }] },
    };
    const { snapshots } = start([ROUTES[1]!]);
    await waitFor(() => snapshots.length === 1, { timeoutMs: 5000 });
    expect(source!.stats().serviceWatches).toBe(1);
    expect(names(snapshots[0]).dc2).toEqual(['billing']);
    // A route to ledger appears: its watch starts and its instances are reported.
    const ledger = route('ledger', {
      rules: [{ backends: [{ consul: { service: 'ledger', datacenter: 'dc2' } }] }],
    });
    source!.setRoutes(validRoutes([ROUTES[1]!, ledger]));
    await waitFor(() => names(snapshots.at(-1)).dc2?.includes('ledger'), { timeoutMs: 5000 });
    expect(source!.stats().serviceWatches).toBe(2);
    // The billing route goes: its watch stops and billing leaves the snapshot.
    source!.setRoutes(validRoutes([ledger]));
    await waitFor(() => !names(snapshots.at(-1)).dc2?.includes('billing'), { timeoutMs: 5000 });
    expect(source!.stats().serviceWatches).toBe(1);
    const count = (svc: string) =>
      consul!.requests.filter((r) => r.path === `/v1/health/service/${svc}`).length;
    const billingBefore = count('billing');
    const ledgerBefore = count('ledger');
    consul.change((c) => {
      c.services.dc2!.billing![0]!.port = 9999;
    });
    // The change wakes the ledger watch; nothing watches billing any more, so nothing asks for it.
    await waitFor(() => count('ledger') > ledgerBefore, { timeoutMs: 5000 });
    expect(count('billing')).toBe(billingBefore);
  });

  it('sends CONSUL_NAMESPACE / CONSUL_PARTITION and the token on every request', async () => {
    consul = await FakeConsul.start();
    consul.services = { dc2: { billing: [{ id: 'b-1', port: 9003 }] } };
    const { snapshots } = start(ROUTES, {
      ...consulSettingsFromEnv({
        CONSUL_HTTP_ADDR: consul.url,
        CONSUL_NAMESPACE: 'team-a',
        CONSUL_PARTITION: 'edge',
        CONSUL_HTTP_TOKEN: 'secret-token',
      }),
    });
    await waitFor(() => snapshots.length === 1, { timeoutMs: 5000 });
    const health = consul.requests.filter((r) => r.path.startsWith('/v1/health/service/'));
    expect(health.length).toBeGreaterThan(0);
    for (const r of consul.requests) {
      if (r.path === '/v1/agent/self' || r.path === '/v1/catalog/datacenters') continue;
      expect([r.path, r.query.get('ns'), r.query.get('partition')]).toEqual([r.path, 'team-a', 'edge']);
    }
    for (const r of consul.requests) expect(r.headers['x-consul-token']).toBe('secret-token');
  });

  it('a datacenter that joins the WAN later is picked up without a restart', async () => {
    consul = await FakeConsul.start();
    consul.services = { dc2: { billing: [{ id: 'b-1', port: 9003 }] } };
    const { snapshots } = start(ROUTES, { datacenterPollMs: 50 });
    await waitFor(() => snapshots.length === 1, { timeoutMs: 5000 });
    expect(Object.keys(snapshots[0]!.datacenters).sort()).toEqual(['dc1', 'dc2']);
    consul.change((c) => {
      c.datacenters = ['dc1', 'dc2', 'dc3'];
      c.services.dc3 = { web: [{ id: 'w-1', port: 9005, tags: ['edge'] }] };
    });
    await waitFor(() => names(snapshots.at(-1)).dc3?.includes('web'), { timeoutMs: 5000 });
  });

  it('a 403 logs one error line however often it retries, counts, and keeps the last state', async () => {
    consul = await FakeConsul.start();
    consul.services = { dc2: { billing: [{ id: 'b-1', port: 9003 }] } };
    const { snapshots, logs } = start();
    await waitFor(() => snapshots.length === 1, { timeoutMs: 5000 });
    consul.change((c) => {
      c.forbidden = true;
    });
    await waitFor(() => source!.stats().forbidden >= 10, { timeoutMs: 10_000 });
    const denied = logs.filter((l) => l.level === 'error' && l.message.includes('permission denied (403)'));
    expect(denied).toHaveLength(1);
    expect(denied[0]!.message).toContain('CONSUL_HTTP_TOKEN');
    expectOnlyFreshnessChanged(snapshots, 'SourceDown');
    const st = source!.stats();
    expect(st.up).toBe(0);
    // The metric's `kind` label: every 403 is a `forbidden` error, and the kinds add up to the total.
    expect(st.errorsByKind.forbidden).toBe(st.forbidden);
    expect(Object.values(st.errorsByKind).reduce((a, b) => a + b, 0)).toBe(st.errors);
    consul.forbidden = false;
    await waitFor(() => source!.stats().up === 1, { timeoutMs: 5000 });
    expect(logs.some((l) => l.message.includes('access granted again'))).toBe(true);
    await waitFor(() => snapshots.at(-1)!.freshness === undefined, { timeoutMs: 5000 });
    expectOnlyFreshnessChanged(snapshots, undefined);
  });

  it('when Consul is lost: up 0, data age grows, only staleness reported (SourceDown); back: up 1, age 0', async () => {
    consul = await FakeConsul.start();
    consul.services = { dc2: { billing: [{ id: 'b-1', port: 9003 }] } };
    const { snapshots, logs } = start();
    await waitFor(() => snapshots.length === 1, { timeoutMs: 5000 });
    consul.change((c) => {
      c.down = true;
    });
    await waitFor(() => source!.stats().up === 0, { timeoutMs: 5000 });
    await waitFor(() => source!.stats().dataAgeSeconds > 0.2, { timeoutMs: 5000 });
    expect(
      logs.filter((l) => l.level === 'warn' && l.message.includes('keeping the last state')),
    ).toHaveLength(1);
    // The instances stay as they were; the snapshot only marks every datacenter stale (source down).
    expectOnlyFreshnessChanged(snapshots, 'SourceDown');
    consul.down = false;
    consul.change((c) => {
      c.services.dc2!.billing!.push({ id: 'b-2', port: 9004 });
    });
    await waitFor(() => source!.stats().up === 1, { timeoutMs: 5000 });
    await waitFor(() => snapshots.at(-1)!.datacenters.dc2!.services.billing!.length === 2, {
      timeoutMs: 5000,
    });
    expect(source!.stats().dataAgeSeconds).toBe(0);
  });

  it('drops the stale instances after the max staleness, and reports them again on recovery', async () => {
    consul = await FakeConsul.start();
    consul.services = { dc2: { billing: [{ id: 'b-1', port: 9003 }] } };
    const { snapshots } = start(ROUTES, { maxStalenessMs: 300 });
    await waitFor(() => snapshots.length === 1, { timeoutMs: 5000 });
    consul.change((c) => {
      c.down = true;
    });
    await waitFor(() => source!.stats().staleDropped, { timeoutMs: 5000 });
    expect(names(snapshots.at(-1))).toEqual({ dc1: [], dc2: [] });
    expect(source!.stats().dataAgeSeconds).toBeGreaterThanOrEqual(0.3);
    consul.down = false;
    await waitFor(() => names(snapshots.at(-1)).dc2!.includes('billing'), { timeoutMs: 5000 });
    expect(source!.stats()).toMatchObject({ up: 1, staleDropped: false });
  });

  it('caps concurrent service watches and counts what the cap left out', async () => {
    consul = await FakeConsul.start();
    consul.services = {
      dc2: { billing: [{ id: 'b-1', port: 9003 }] },
      dc1: { a: [{ id: 'a', port: 1, tags: ['edge'] }], b: [{ id: 'b', port: 2, tags: ['edge'] }] },
    };
    const { snapshots, logs } = start(ROUTES, { maxWatches: 2 });
    await waitFor(() => snapshots.length === 1, { timeoutMs: 5000 });
    // backends first (billing), then catalog services in order (dc1/a); dc1/b is over the cap
    expect(names(snapshots[0])).toEqual({ dc1: ['a'], dc2: ['billing'] });
    expect(source!.stats()).toMatchObject({
      serviceWatches: 2,
      serviceWatchLimit: 2,
      serviceWatchesOverLimit: 1,
    });
    expect(logs.some((l) => l.level === 'warn' && l.message.includes('over the cap of 2'))).toBe(true);
  });

  it('waits for the routes: no snapshot before the watch set is known and answered', async () => {
    consul = await FakeConsul.start();
    consul.services = { dc2: { billing: [{ id: 'b-1', port: 9003 }] } };
    const snapshots: CatalogSnapshot[] = [];
    const quiet = { info() {}, warn() {}, error() {}, debug() {} };
    source = new ConsulSource({
      settings: consulSettingsFromEnv({ CONSUL_HTTP_ADDR: consul.url }),
      log: quiet,
      onSnapshot: (c) => snapshots.push(c),
    });
    source.start();
    await waitFor(() => source!.stats().datacenters.length === 2 && source!.localDatacenter === 'dc1', {
      timeoutMs: 5000,
    });
    expect(snapshots).toHaveLength(0);
    source.setRoutes(validRoutes(ROUTES));
    await waitFor(() => snapshots.length === 1, { timeoutMs: 5000 });
    expect(names(snapshots[0])).toEqual({ dc1: [], dc2: ['billing'] });
  });
});

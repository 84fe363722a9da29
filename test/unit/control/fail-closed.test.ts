/**
 * Fail closed: an invalid update of a route keeps serving its last valid version (per route, across restarts
 * through the last-known-good file, and never after the route is deleted); a route that was never valid is not
 * served. The end-to-end versions (file hot reload, kubectl apply) are in test/e2e/fail-closed.test.ts and
 * test/e2e/kube/fail-closed.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { CatalogSnapshot, Instance } from '../../../src/api/catalog.ts';
import type { GatewayRoute } from '../../../src/api/gateway-route.ts';
import type { RouteSource } from '../../../src/api/route-source.ts';
import { compile, type RouteStatus } from '../../../src/compile/compile.ts';
import { Controller } from '../../../src/control/controller.ts';
import { LastKnownGood } from '../../../src/control/last-known-good.ts';
import { desiredStatus } from '../../../src/control/status/status-conditions.ts';
import { RoutingTable } from '../../../src/table/index.ts';
import type { TableData } from '../../../src/table/types.ts';
import { makeTempDir } from '../../support/tmp.ts';
import { waitFor } from '../../support/wait.ts';

const inst = (service: string, port: number): Instance => ({
  id: `${service}-${port}`,
  address: '127.0.0.1',
  port,
  tags: [],
  meta: {},
  health: 'passing',
  weight: 1,
});

const catalog: CatalogSnapshot = {
  localDatacenter: 'dc1',
  datacenters: { dc1: { services: { admin: [inst('admin', 1)], web: [inst('web', 2)] } } },
};

/** An admin route with an IP allow list; `cidr` is what the user typed. */
function adminRoute(cidr: string, meta: Record<string, unknown> = {}): RouteSource {
  return {
    raw: {
      apiVersion: 'edgegate.io/v1alpha1',
      kind: 'GatewayRoute',
      metadata: { name: 'admin', namespace: 'shop', ...meta },
      spec: {
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/admin' } }],
            policies: { ipAllow: ['10.0.0.0/8', cidr] },
            backends: [{ consul: { service: 'admin' } }],
          },
        ],
      },
    },
    origin: 'admin.yaml:1',
  };
}

/** The catch-all that would serve /admin without the allow list if the admin route were dropped. */
const catchAll: RouteSource = {
  raw: {
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { rules: [{ backends: [{ consul: { service: 'web' } }] }] },
  },
  origin: 'web.yaml:1',
};

function served(table: TableData, path: string) {
  const m = new RoutingTable(table).match({
    host: 'x',
    path,
    method: 'GET',
    rawQuery: '',
    header: () => undefined,
  });
  return m && { route: m.data.route, ipAllow: m.data.policies?.ipAllow };
}

const statusOf = (statuses: RouteStatus[], route: string) => statuses.find((s) => s.route === route)!;

describe('compile falls back to the last valid version of an invalid route', () => {
  it('a typo in one CIDR keeps the previous version with its allow list; the catch-all does not take /admin', () => {
    const v1 = compile({ routes: [adminRoute('192.168.0.0/16'), catchAll], catalog });
    expect(served(v1.table, '/admin/users')).toEqual({
      route: 'shop/admin',
      ipAllow: ['10.0.0.0/8', '192.168.0.0/16'],
    });
    const broken = adminRoute('192.168.0.300/16');
    // Without the last valid version (today's behaviour before the fix): the catch-all serves /admin.
    const open = compile({ routes: [broken, catchAll], catalog });
    expect(served(open.table, '/admin/users')).toEqual({ route: 'shop/web', ipAllow: undefined });
    const closed = compile({ routes: [broken, catchAll], catalog, lastValid: v1.lastValid });
    expect(served(closed.table, '/admin/users')).toEqual({
      route: 'shop/admin',
      ipAllow: ['10.0.0.0/8', '192.168.0.0/16'],
    });
    const s = statusOf(closed.statuses, 'shop/admin');
    expect(s.accepted).toBe(false);
    expect(s.errors[0]!.path).toEqual(['spec', 'rules', 0, 'policies', 'ipAllow', 1]);
    expect(s.fallback).toEqual({ origin: 'admin.yaml:1' });
    // The other route is untouched, and the next compile still has the valid version to fall back on.
    expect(statusOf(closed.statuses, 'shop/web')).toMatchObject({ accepted: true });
    expect(closed.lastValid.get('shop/admin')!.raw).toBe(v1.lastValid.get('shop/admin')!.raw);
  });

  it('a route that was never valid is not served', () => {
    const r = compile({ routes: [adminRoute('1.2.3.4/99'), catchAll], catalog, lastValid: new Map() });
    expect(served(r.table, '/admin')).toEqual({ route: 'shop/web', ipAllow: undefined });
    expect(statusOf(r.statuses, 'shop/admin').fallback).toBeUndefined();
    expect(r.lastValid.has('shop/admin')).toBe(false);
  });

  it('a deleted route is gone: its last valid version is not kept', () => {
    const v1 = compile({ routes: [adminRoute('192.168.0.0/16'), catchAll], catalog });
    const gone = compile({ routes: [catchAll], catalog, lastValid: v1.lastValid });
    expect(gone.lastValid.has('shop/admin')).toBe(false);
    const back = compile({ routes: [adminRoute('bad'), catchAll], catalog, lastValid: gone.lastValid });
    expect(served(back.table, '/admin')?.route).toBe('shop/web');
  });

  it('a Kubernetes route recreated under its name (new uid) does not inherit the old one', () => {
    const v1 = compile({ routes: [adminRoute('192.168.0.0/16', { uid: 'u1', generation: 1 })], catalog });
    const same = compile({
      routes: [adminRoute('x', { uid: 'u1', generation: 2 })],
      catalog,
      lastValid: v1.lastValid,
    });
    expect(statusOf(same.statuses, 'shop/admin').fallback).toEqual({ generation: 1, origin: 'admin.yaml:1' });
    const other = compile({
      routes: [adminRoute('x', { uid: 'u2', generation: 1 })],
      catalog,
      lastValid: v1.lastValid,
    });
    expect(statusOf(other.statuses, 'shop/admin').fallback).toBeUndefined();
    expect(other.table.entries).toHaveLength(0);
  });

  it('every kind of invalid update falls back: a bad regex, a schema error, a policy conflict', () => {
    const v1 = compile({ routes: [adminRoute('192.168.0.0/16')], catalog });
    const variants: ((spec: Record<string, unknown>) => void)[] = [
      (spec) => {
        (spec.rules as Record<string, unknown>[])[0]!.matches = [
          { path: { type: 'RegularExpression', value: '/admin/(' } },
        ];
      },
      (spec) => {
        (spec.rules as Record<string, unknown>[])[0]!.backends = [];
      },
      (spec) => {
        spec.unknownField = true;
      },
      (spec) => {
        (spec.rules as Record<string, unknown>[])[0]!.policies = {
          rateLimit: { requests: 1, key: 'Header' },
        };
      },
    ];
    for (const change of variants) {
      const r = adminRoute('192.168.0.0/16');
      change((r.raw as { spec: Record<string, unknown> }).spec);
      const out = compile({ routes: [r], catalog, lastValid: v1.lastValid });
      const s = statusOf(out.statuses, 'shop/admin');
      expect(s.accepted, JSON.stringify(s.errors)).toBe(false);
      expect(s.fallback).toBeDefined();
      expect(out.table.entries.map((e) => e.policies?.ipAllow)).toEqual([['10.0.0.0/8', '192.168.0.0/16']]);
    }
  });
});

describe('GatewayRoute status of a route served from its last valid version', () => {
  it('Accepted=False for the current generation, naming the generation served; Programmed for that one', () => {
    const s: RouteStatus = {
      route: 'shop/admin',
      origin: 'kube',
      generation: 4,
      accepted: false,
      errors: [{ path: ['spec', 'rules', 0, 'policies', 'ipAllow', 1], message: 'invalid CIDR' }],
      unresolved: [],
      backends: [],
      fallback: { generation: 3, origin: 'kube' },
    };
    const st = desiredStatus(s, true, [], '2026-01-01T00:00:00Z');
    expect(st.observedGeneration).toBe(4);
    expect(st.servedGeneration).toBe(3);
    const [accepted, , programmed] = st.conditions!;
    expect(accepted).toMatchObject({
      type: 'Accepted',
      status: 'False',
      reason: 'Invalid',
      observedGeneration: 4,
    });
    expect(accepted!.message).toMatch(/^Fall Back: generation 3, the last valid version, is still served; /);
    expect(accepted!.message).toContain('spec.rules[0].policies.ipAllow[1]: invalid CIDR');
    expect(programmed).toMatchObject({ type: 'Programmed', status: 'True', observedGeneration: 3 });
    expect(programmed!.message).toContain('generation 3 (the last valid version) is served');
    // Never valid: not served, no servedGeneration.
    const never = desiredStatus({ ...s, fallback: undefined }, true, [], '2026-01-01T00:00:00Z');
    expect(never.servedGeneration).toBeUndefined();
    expect(never.conditions![2]).toMatchObject({ type: 'Programmed', status: 'False', reason: 'Invalid' });
  });
});

describe('Controller keeps the last valid versions, also across a restart', () => {
  it('serves the last valid version after a restart whose source holds an invalid one', async () => {
    const dir = makeTempDir('eg-fail-closed');
    const tables: TableData[] = [];
    const first = new Controller({
      expect: ['routes', 'catalog'],
      publish: (t) => {
        tables.push(t);
      },
      lastKnownGood: new LastKnownGood(dir),
      holdOffMs: 1,
      maxDelayMs: 5,
    });
    first.setCatalog(catalog);
    first.setRoutes([adminRoute('192.168.0.0/16'), catchAll]);
    await waitFor(() => tables.length === 1, { timeoutMs: 5000 });
    await first.idle();
    first.stop();

    // Restart: the file now holds the broken version.
    const second = new Controller({
      expect: ['routes', 'catalog'],
      publish: (t) => {
        tables.push(t);
      },
      lastKnownGood: new LastKnownGood(dir),
      holdOffMs: 1,
      maxDelayMs: 5,
    });
    await second.restore();
    const seen: GatewayRoute[][] = [];
    second.onRoutes((r) => seen.push(r));
    second.setCatalog(catalog);
    second.setRoutes([adminRoute('192.168.0.300/16'), catchAll]);
    await second.rebuild();
    expect(served(second.current!, '/admin/x')).toEqual({
      route: 'shop/admin',
      ipAllow: ['10.0.0.0/8', '192.168.0.0/16'],
    });
    expect(statusOf(second.statuses, 'shop/admin').fallback?.since).toMatch(/^\d{4}-/);
    // The sources that follow the routes (Consul's watch set) are given the version that is served.
    const last = seen.at(-1)!;
    expect(last.map((r) => JSON.stringify(r)).some((t) => t.includes('192.168.0.0/16'))).toBe(true);

    // Deleted: gone, also from the file.
    second.setRoutes([catchAll]);
    await second.rebuild();
    await second.idle();
    second.stop();
    const state = await new LastKnownGood(dir).loadState();
    expect(Object.keys(state!.routes!)).toEqual(['shop/web']);
    expect(served(state!.table, '/admin/x')?.route).toBe('shop/web');
  });
});

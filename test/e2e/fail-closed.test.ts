/**
 * Security regression "a route that turns invalid falls open", against the real file source (hot reload) and a
 * real gateway process with workers: a typo in one CIDR of an `ipAllow` used to drop the route, and its paths were
 * then served by the catch-all route without the allow list. Now the last valid version keeps serving (per route),
 * says so (/debug/routes, a log line, edgegate_routes{state="fallback"}), survives a restart through the
 * last-known-good file, and a deleted route is gone for good.
 */
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EchoUpstream,
  type GatewayProcess,
  routeYaml,
  startEcho,
  startGateway,
  writeLoopbackCatalog,
} from '../support/gateway.ts';
import { scrapeMetrics, sumOf } from '../support/prom-text.ts';
import { waitFor } from '../support/wait.ts';

let adminUp: EchoUpstream;
let webUp: EchoUpstream;
let gw: GatewayProcess | undefined;
let dir: string;
let routes: string;
let catalog: string;
let state: string;

/** The admin route: only 10.0.0.0/8 and `extra` may call it; this test calls from 127.0.0.1 (refused: 403). */
const adminYaml = (extra: string, path = '/admin') =>
  routeYaml('admin', {
    rules: [
      {
        matches: [{ path: { type: 'PathPrefix', value: path } }],
        policies: { ipAllow: ['10.0.0.0/8', extra] },
        backends: [{ consul: { service: 'admin' } }],
      },
    ],
  });

async function get(path: string): Promise<{ status: number; name?: string; error?: string }> {
  const r = await fetch(`${gw!.url}${path}`);
  const body = (await r.json()) as { name?: string; error?: string };
  return { status: r.status, name: body.name, error: body.error };
}

interface RouteView {
  route: string;
  accepted: boolean;
  fallback?: { origin: string; since?: string };
  problems: string[];
}

async function routeView(route: string): Promise<RouteView | undefined> {
  const r = await fetch(`${gw!.adminUrl}/debug/routes`);
  const body = (await r.json()) as { statuses: RouteView[] };
  return body.statuses.find((s) => s.route === route);
}

const start = () =>
  startGateway(['--routes', routes, '--catalog', catalog, '--state-dir', state, '--workers', '2']);

beforeAll(async () => {
  adminUp = await startEcho('admin-backend');
  webUp = await startEcho('web-backend');
  dir = mkdtempSync(join(tmpdir(), 'eg-fail-closed-'));
  routes = join(dir, 'routes');
  catalog = join(dir, 'catalog.yaml');
  state = join(dir, 'state');
  mkdirSync(routes);
  writeLoopbackCatalog(catalog, { admin: [adminUp.port], web: [webUp.port] });
  writeFileSync(
    join(routes, 'web.yaml'),
    routeYaml('web', { rules: [{ backends: [{ consul: { service: 'web' } }] }] }),
  );
  writeFileSync(join(routes, 'admin.yaml'), adminYaml('192.168.0.0/16'));
  gw = await start();
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  await adminUp?.close();
  await webUp?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('fail closed: an invalid update keeps the last valid version (file source)', () => {
  it('a typo in one ipAllow CIDR keeps the allow list enforced; the catch-all never serves /admin', async () => {
    expect(await get('/admin/users')).toMatchObject({ status: 403, error: 'EDGEGATE_IP_DENIED' });
    expect(await get('/shop')).toMatchObject({ status: 200, name: 'web-backend' });

    writeFileSync(join(routes, 'admin.yaml'), adminYaml('192.168.0.300/16'));
    const view = await waitFor(
      async () => {
        const v = await routeView('default/admin');
        return v && !v.accepted ? v : undefined;
      },
      { timeoutMs: 15_000, message: 'the broken update is seen', diagnostics: () => gw!.output() },
    );
    expect(view.fallback?.origin).toMatch(/admin\.yaml:1$/);
    expect(view.fallback?.since).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(view.problems.join('\n')).toContain('spec.rules[0].policies.ipAllow[1]');
    expect(view.problems.join('\n')).toContain('still serving its last valid version');
    // Many requests, over both workers: every one is refused by the policy of the last valid version.
    for (let i = 0; i < 20; i++)
      expect(await get(`/admin/users?i=${i}`)).toMatchObject({ status: 403, error: 'EDGEGATE_IP_DENIED' });
    // The other route is unaffected.
    expect(await get('/shop')).toMatchObject({ status: 200, name: 'web-backend' });
    expect(gw!.output()).toMatch(/route default\/admin is invalid; still serving its last valid version/);
    const m = await scrapeMetrics(gw!.adminUrl);
    expect(sumOf(m, 'edgegate_routes', { state: 'fallback' })).toBe(1);
    expect(sumOf(m, 'edgegate_routes', { state: 'accepted' })).toBe(1);
  });

  it('still enforced after a restart while the file is still broken (last-known-good)', async () => {
    await gw!.stop();
    gw = await start();
    const view = await routeView('default/admin');
    expect(view).toMatchObject({ accepted: false });
    expect(view!.fallback).toBeDefined();
    expect(await get('/admin/users')).toMatchObject({ status: 403, error: 'EDGEGATE_IP_DENIED' });
  }, 90_000);

  it('a valid update is served again; a route that was never valid is not served', async () => {
    writeFileSync(join(routes, 'admin.yaml'), adminYaml('127.0.0.1/32'));
    await waitFor(async () => (await get('/admin/users')).status === 200, {
      timeoutMs: 15_000,
      diagnostics: () => gw!.output(),
    });
    expect(await get('/admin/users')).toMatchObject({ status: 200, name: 'admin-backend' });
    expect((await routeView('default/admin'))?.fallback).toBeUndefined();

    // A new route whose first version is invalid: nothing to fall back to, the catch-all serves its paths.
    writeFileSync(
      join(routes, 'fresh.yaml'),
      routeYaml('fresh', {
        rules: [
          {
            matches: [{ path: { value: '/fresh' } }],
            policies: { ipAllow: ['10.0.0.300/8'] },
            backends: [{ consul: { service: 'admin' } }],
          },
        ],
      }),
    );
    const fresh = await waitFor(() => routeView('default/fresh'), { timeoutMs: 15_000 });
    expect(fresh).toMatchObject({ accepted: false });
    expect(fresh.fallback).toBeUndefined();
    expect(await get('/fresh')).toMatchObject({ status: 200, name: 'web-backend' });
  });

  it('a deleted route is gone, not kept: its paths go to the catch-all', async () => {
    writeFileSync(join(routes, 'admin.yaml'), adminYaml('10.0.0.300/8'));
    await waitFor(async () => (await routeView('default/admin'))?.accepted === false, { timeoutMs: 15_000 });
    expect(await get('/admin/users')).toMatchObject({ status: 200, name: 'admin-backend' });
    unlinkSync(join(routes, 'admin.yaml'));
    await waitFor(async () => (await routeView('default/admin')) === undefined, { timeoutMs: 15_000 });
    await waitFor(async () => (await get('/admin/users')).name === 'web-backend', { timeoutMs: 15_000 });
  });
});

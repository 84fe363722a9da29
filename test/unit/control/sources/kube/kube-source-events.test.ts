// The kube source against client-node's real ListWatch (the API server's watch replaced by a fake): watch events
// that change nothing compile reads — status writes, new resourceVersions, Services no route names — report
// nothing; a real change reports once; a burst of events reports once, not once per event.
import {
  type KubernetesObject,
  ListWatch,
  type V1EndpointSlice,
  type V1Service,
  type Watch,
} from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { KubeServiceSnapshot } from '../../../../../src/api/catalog.ts';
import type { RouteSource } from '../../../../../src/api/route-source.ts';
import { type GatewayRouteObject, KubeSource } from '../../../../../src/control/sources/kube/kube-source.ts';
import { createLogger } from '../../../../../src/lib/log.ts';
import { waitFor } from '../../../../support/wait.ts';

type Cb = (phase: string, obj: unknown) => void;

class FakeWatch {
  cb: Cb | undefined;
  async watch(_path: string, _query: unknown, cb: Cb): Promise<AbortController> {
    this.cb = cb;
    return new AbortController();
  }
}

let rv = 100;
const route = (name: string, spec: unknown, status?: unknown): GatewayRouteObject => ({
  apiVersion: 'edgegate.io/v1alpha1',
  kind: 'GatewayRoute',
  metadata: { name, namespace: 'shop', uid: `uid-${name}`, generation: 1, resourceVersion: String(++rv) },
  spec,
  ...(status ? { status } : {}),
});
const toService = (svc: string) => ({ rules: [{ backends: [{ service: { name: svc, port: 80 } }] }] });
const service = (name: string): V1Service => ({
  metadata: { name, namespace: 'shop', resourceVersion: String(++rv) },
  spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
});
const slice = (svc: string, address: string): V1EndpointSlice => ({
  metadata: {
    name: `${svc}-1`,
    namespace: 'shop',
    resourceVersion: String(++rv),
    labels: { 'kubernetes.io/service-name': svc },
  },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: [{ addresses: [address] }],
});

function setup(initial: {
  routes: KubernetesObject[];
  services: KubernetesObject[];
  slices: KubernetesObject[];
}) {
  const watches = { routes: new FakeWatch(), services: new FakeWatch(), slices: new FakeWatch() };
  const reports = { routes: [] as RouteSource[][], kube: [] as KubeServiceSnapshot[] };
  /** Reads of an informer's whole cache: the cost the source must not pay per event. */
  const lists = { n: 0 };
  const source = new KubeSource({
    log: createLogger('error'),
    onRoutes: (r) => reports.routes.push(r),
    onKube: (k) => reports.kube.push(k),
    factory: (kind) => {
      const lw = new ListWatch<KubernetesObject>(
        `/${kind}`,
        watches[kind] as unknown as Watch,
        async () => ({ metadata: { resourceVersion: String(++rv) }, items: initial[kind] }),
        false,
      );
      const list = lw.list.bind(lw);
      lw.list = (ns?: string) => {
        lists.n++;
        return list(ns);
      };
      return lw;
    },
  });
  source.start();
  const send = (kind: keyof typeof watches, phase: 'ADDED' | 'MODIFIED' | 'DELETED', obj: unknown) =>
    watches[kind].cb!(phase, obj);
  return { source, reports, send, lists };
}

describe('KubeSource snapshots', () => {
  it('status-only updates (the gateway writing status) report nothing; a spec change reports once', async () => {
    const t = setup({
      routes: [route('a', toService('web')), route('b', toService('web'))],
      services: [service('web')],
      slices: [slice('web', '10.0.0.1')],
    });
    await waitFor(() => t.reports.routes.length === 1 && t.reports.kube.length === 1, { timeoutMs: 5000 });
    const listsAtSync = t.lists.n;
    expect(
      t.reports.routes[0]!.map((r) => (r.raw as { metadata: { name: string } }).metadata.name).sort(),
    ).toEqual(['a', 'b']);
    // 50 status writes to a and b: new resourceVersions and statuses, nothing compile reads.
    for (let i = 0; i < 50; i++)
      t.send('routes', 'MODIFIED', route(i % 2 ? 'a' : 'b', toService('web'), { conditions: [{ n: i }] }));
    // A real change (b's spec) after them: the one report that follows carries it.
    t.send('routes', 'MODIFIED', {
      ...route('b', toService('web')),
      metadata: { ...route('b', null).metadata, generation: 2 },
    });
    await waitFor(() => t.reports.routes.length === 2, { timeoutMs: 5000 });
    await t.source.stop();
    expect(t.reports.routes).toHaveLength(2);
    const b = t.reports.routes[1]!.find(
      (r) => (r.raw as { metadata: { name: string } }).metadata.name === 'b',
    )!;
    expect((b.raw as { metadata: { generation: number } }).metadata.generation).toBe(2);
    expect(t.reports.kube).toHaveLength(1); // the Services did not change
    // No event re-read a whole cache: each cost what its own object costs.
    expect(t.lists.n).toBe(listsAtSync);
  });

  it('a Service or slice no route names reports nothing; one a route names reports the new endpoints', async () => {
    const t = setup({ routes: [route('a', toService('web'))], services: [service('web')], slices: [] });
    await waitFor(() => t.reports.kube.length === 1, { timeoutMs: 5000 });
    for (let i = 0; i < 20; i++) {
      t.send('services', 'ADDED', service(`other-${i}`));
      t.send('slices', 'ADDED', slice(`other-${i}`, `10.1.0.${i}`));
    }
    t.send('slices', 'ADDED', slice('web', '10.0.0.7'));
    await waitFor(() => t.reports.kube.length === 2, { timeoutMs: 5000 });
    await t.source.stop();
    expect(t.reports.kube[1]!.services['shop/web']!.endpoints.map((e) => e.address)).toEqual(['10.0.0.7']);
    expect(Object.keys(t.reports.kube[1]!.services)).toEqual(['shop/web']);
    expect(t.reports.routes).toHaveLength(1);
  });

  it('a burst of new routes is one report, not one per event; a route naming a new Service brings it in', async () => {
    const t = setup({ routes: [], services: [service('web'), service('api')], slices: [] });
    await waitFor(() => t.reports.routes.length === 1, { timeoutMs: 5000 });
    const listsAtSync = t.lists.n;
    for (let i = 0; i < 300; i++)
      t.send('routes', 'ADDED', route(`r${i}`, toService(i === 299 ? 'api' : 'web')));
    await waitFor(() => t.reports.routes.at(-1)?.length === 300, { timeoutMs: 5000 });
    expect(t.reports.routes).toHaveLength(2);
    await waitFor(() => t.reports.kube.length === 2, { timeoutMs: 5000 });
    expect(Object.keys(t.reports.kube[1]!.services).sort()).toEqual(['shop/api', 'shop/web']);
    // Deleting the only route that names api drops it from the snapshot.
    t.send('routes', 'DELETED', route('r299', toService('api')));
    await waitFor(() => t.reports.kube.length === 3, { timeoutMs: 5000 });
    await t.source.stop();
    expect(Object.keys(t.reports.kube[2]!.services)).toEqual(['shop/web']);
    expect(t.reports.routes.at(-1)).toHaveLength(299);
    expect(t.lists.n).toBe(listsAtSync);
  });
});

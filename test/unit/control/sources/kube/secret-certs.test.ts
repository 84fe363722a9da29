// The Secret certificate source with in-process fake watches (the real API server is in
// test/e2e/kube/tls-secrets.test.ts): which Secrets it watches as routes change, the verdict per Secret, last good
// certificates kept, and the ResolvedRefs condition compile + status-conditions make of a verdict.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubernetesObject, V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { CertBundle } from '../../../../../src/api/certificate.ts';
import type { CertificateRefSnapshot } from '../../../../../src/api/certificate-refs.ts';
import type { RouteSource } from '../../../../../src/api/route-source.ts';
import { compile, validRoutes } from '../../../../../src/compile/compile.ts';
import type { InformerLike } from '../../../../../src/control/sources/kube/resilient-informer.ts';
import {
  certificateRefsOf,
  readTlsSecret,
  SecretCertSource,
} from '../../../../../src/control/sources/kube/secret-certs.ts';
import { desiredStatus } from '../../../../../src/control/status/status-conditions.ts';
import { createLogger } from '../../../../../src/lib/log.ts';
import { makeCert } from '../../../../e2e/tls/helpers.ts';
import { waitFor } from '../../../../support/wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'eg-secret-certs-'));
const a = makeCert(dir, 'a', 'a.test');
const a2 = makeCert(dir, 'a2', 'a.test');
const b = makeCert(dir, 'b', 'b.test');

function tlsSecret(
  ns: string,
  name: string,
  cert: string,
  key: string,
  type = 'kubernetes.io/tls',
): V1Secret {
  return {
    metadata: { name, namespace: ns },
    type,
    data: {
      'tls.crt': Buffer.from(cert).toString('base64'),
      'tls.key': Buffer.from(key).toString('base64'),
    },
  };
}

function route(ns: string, name: string, hostnames: string[], tls: unknown[], created?: string): RouteSource {
  return {
    origin: 'kube',
    raw: {
      apiVersion: 'edgegate.io/v1alpha1',
      kind: 'GatewayRoute',
      metadata: { name, namespace: ns, ...(created ? { creationTimestamp: created } : {}) },
      spec: { hostnames, tls, rules: [{ backends: [{ consul: { service: 'echo' } }] }] },
    },
  };
}

/** A watch of one Secret: the test sets the object; start() is the first list. */
class FakeSecretWatch implements InformerLike<KubernetesObject> {
  obj: V1Secret | undefined;
  stopped = false;
  readonly #cbs: ((o: KubernetesObject) => void)[] = [];
  constructor(obj: V1Secret | undefined) {
    this.obj = obj;
  }
  on(verb: string, cb: (o: never) => void): void {
    if (verb !== 'error') this.#cbs.push(cb as (o: KubernetesObject) => void);
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {
    this.stopped = true;
  }
  list(): ReadonlyArray<KubernetesObject> {
    return this.obj ? [this.obj] : [];
  }
  get(name: string, namespace?: string): KubernetesObject | undefined {
    return this.obj?.metadata?.name === name && this.obj.metadata.namespace === namespace
      ? this.obj
      : undefined;
  }
  set(obj: V1Secret | undefined): void {
    this.obj = obj;
    for (const cb of this.#cbs) cb(obj ?? { metadata: {} });
  }
}

function setup(namespaces: string[], secrets: Record<string, V1Secret | undefined>, now?: () => number) {
  const watches = new Map<string, FakeSecretWatch>();
  const out = {
    bundles: [] as CertBundle[],
    clients: {} as Record<string, { certPem: string; keyPem: string }>,
    refs: { secrets: {} } as CertificateRefSnapshot,
    emits: 0,
  };
  const source = new SecretCertSource({
    namespaces,
    factory: (ns, name) => {
      const w = new FakeSecretWatch(secrets[`${ns}/${name}`]);
      watches.set(`${ns}/${name}`, w);
      return w;
    },
    onBundles: (bundles) => {
      out.bundles = bundles;
      out.emits++;
    },
    onClients: (clients) => {
      out.clients = clients;
    },
    onRefs: (refs) => {
      out.refs = refs;
    },
    log: createLogger('error'),
    ...(now ? { now } : {}),
  });
  return { source, watches, out };
}

describe('SecretCertSource', () => {
  it('watches only the referenced Secrets in allowed namespaces, and follows route changes', async () => {
    const t = setup(['shop'], {
      'shop/a-tls': tlsSecret('shop', 'a-tls', a.certPem, a.keyPem),
      'shop/b-tls': tlsSecret('shop', 'b-tls', b.certPem, b.keyPem),
    });
    t.source.setRoutes(
      validRoutes([
        route(
          'shop',
          'web',
          ['a.test', 'b.test'],
          [
            { secretName: 'a-tls', hostnames: ['a.test'] },
            { secretName: 'b-tls', hostnames: ['b.test'] },
          ],
        ),
        route('other', 'x', ['x.test'], [{ secretName: 'x-tls' }]),
      ]),
    );
    await waitFor(() => t.out.bundles.length === 2);
    expect([...t.watches.keys()].sort()).toEqual(['shop/a-tls', 'shop/b-tls']);
    expect(t.out.bundles.map((x) => [x.source, x.hostnames])).toEqual([
      ['secret:shop/a-tls', ['a.test']],
      ['secret:shop/b-tls', ['b.test']],
    ]);
    await waitFor(() => Object.keys(t.out.refs.secrets).length === 3);
    expect(t.out.refs.secrets['shop/a-tls']).toEqual({ ok: true });
    expect(t.out.refs.secrets['other/x-tls']).toMatchObject({ ok: false, reason: 'NotPermitted' });

    // The route drops b-tls: its watch stops and its certificate goes.
    t.source.setRoutes(validRoutes([route('shop', 'web', ['a.test'], [{ secretName: 'a-tls' }])]));
    await waitFor(() => t.out.bundles.length === 1);
    expect(t.watches.get('shop/b-tls')!.stopped).toBe(true);
    expect(t.source.stats().watches).toBe(1);
    await t.source.stop();
  });

  it('a Secret that turns bad keeps its last good certificate and says so; a missing one has none', async () => {
    const t = setup(['shop'], {
      'shop/a-tls': tlsSecret('shop', 'a-tls', a.certPem, a.keyPem),
      'shop/gone': undefined,
    });
    t.source.setRoutes(
      validRoutes([
        route(
          'shop',
          'web',
          ['a.test', 'g.test'],
          [
            { secretName: 'a-tls', hostnames: ['a.test'] },
            { secretName: 'gone', hostnames: ['g.test'] },
          ],
        ),
      ]),
    );
    await waitFor(() => t.out.refs.secrets['shop/gone'] !== undefined && t.out.bundles.length === 1);
    expect(t.out.refs.secrets['shop/gone']).toEqual({ ok: false, reason: 'NotFound', message: 'not found' });

    const w = t.watches.get('shop/a-tls')!;
    w.set(tlsSecret('shop', 'a-tls', a2.certPem, a.keyPem)); // key mismatch
    await waitFor(() => t.out.refs.secrets['shop/a-tls']?.ok === false);
    expect(t.out.refs.secrets['shop/a-tls']).toMatchObject({ reason: 'KeyMismatch', servingPrevious: true });
    expect(t.out.bundles).toHaveLength(1);
    expect(t.out.bundles[0]!.certPem).toBe(a.certPem);

    w.set(tlsSecret('shop', 'a-tls', a.certPem, a.keyPem, 'Opaque'));
    await waitFor(() => t.out.refs.secrets['shop/a-tls']?.reason === 'WrongType');
    w.set(undefined); // deleted: still the last good certificate while the route names it
    await waitFor(() => t.out.refs.secrets['shop/a-tls']?.reason === 'NotFound');
    expect(t.out.bundles[0]!.certPem).toBe(a.certPem);

    // Rotation: a new valid certificate replaces the old one.
    w.set(tlsSecret('shop', 'a-tls', a2.certPem, a2.keyPem));
    await waitFor(() => t.out.bundles[0]?.certPem === a2.certPem);
    expect(t.out.refs.secrets['shop/a-tls']).toEqual({ ok: true });
    expect(t.source.stats().reloads).toBe(1);
    await t.source.stop();
  });

  it('TLS from Secrets off: every reference is NotPermitted and nothing is watched', async () => {
    const t = setup([], {});
    t.source.setRoutes(validRoutes([route('shop', 'web', ['a.test'], [{ secretName: 'a-tls' }])]));
    await waitFor(() => t.out.refs.secrets['shop/a-tls'] !== undefined);
    expect(t.out.refs.secrets['shop/a-tls']!.message).toMatch(/--tls-secret-namespaces is not set/);
    expect(t.watches.size).toBe(0);
  });
});

describe('SecretCertSource, a watch that cannot list', () => {
  it('reports ReadError (e.g. 403) instead of staying silent', async () => {
    const source = new SecretCertSource({
      namespaces: ['shop'],
      factory: () => {
        const w = new FakeSecretWatch(undefined);
        w.start = async () => {
          throw Object.assign(new Error('secrets is forbidden'), { code: 403 });
        };
        return w;
      },
      onBundles: () => {},
      onRefs: (r) => {
        refs = r;
      },
      log: createLogger('error'),
      backoff: { baseMs: 60_000, maxMs: 60_000 },
    });
    let refs: CertificateRefSnapshot = { secrets: {} };
    source.setRoutes(validRoutes([route('shop', 'web', ['a.test'], [{ secretName: 'a-tls' }])]));
    await waitFor(() => refs.secrets['shop/a-tls']);
    expect(refs.secrets['shop/a-tls']).toEqual({
      ok: false,
      reason: 'ReadError',
      message: 'cannot be read: 403: secrets is forbidden',
    });
    await source.stop();
  });
});

describe('readTlsSecret', () => {
  it('names what is wrong', () => {
    const good = tlsSecret('n', 's', a.certPem, a.keyPem);
    expect(readTlsSecret(good).ok).toBe(true);
    expect(readTlsSecret(good, Date.parse('2999-01-01'))).toMatchObject({ reason: 'Expired' });
    expect(readTlsSecret({ ...good, data: { 'tls.crt': good.data!['tls.crt']! } })).toMatchObject({
      reason: 'MissingKey',
      message: 'data.tls.key is missing or empty',
    });
    expect(readTlsSecret(tlsSecret('n', 's', 'not pem', a.keyPem))).toMatchObject({
      reason: 'InvalidCertificate',
    });
    expect(readTlsSecret(tlsSecret('n', 's', a.certPem, 'not pem'))).toMatchObject({ reason: 'InvalidKey' });
  });
});

/** A route whose backend presents a client certificate (mTLS to the upstream) from Secret `secret`. */
function mtlsRoute(ns: string, name: string, secret: string): RouteSource {
  return {
    origin: 'kube',
    raw: {
      apiVersion: 'edgegate.io/v1alpha1',
      kind: 'GatewayRoute',
      metadata: { name, namespace: ns },
      spec: {
        hostnames: ['api.test'],
        rules: [
          {
            backends: [
              {
                consul: { service: 'echo' },
                tls: { serverName: 'up.test', clientCertificateRef: { name: secret } },
              },
            ],
          },
        ],
      },
    },
  };
}

describe('client certificates for mTLS to upstreams (tls.clientCertificateRef)', () => {
  it('watches the Secret a backend names and hands its certificate on as a client, never as a served bundle', async () => {
    const { source, watches, out } = setup(['shop'], {
      'shop/upstream-client': tlsSecret('shop', 'upstream-client', a.certPem, a.keyPem),
    });
    source.setRoutes(validRoutes([mtlsRoute('shop', 'api', 'upstream-client')]));
    await waitFor(() => Object.keys(out.clients).length === 1, { timeoutMs: 2000 });
    expect(out.clients).toEqual({ 'shop/upstream-client': { certPem: a.certPem, keyPem: a.keyPem } });
    expect(out.bundles).toEqual([]);
    expect(out.refs.secrets['shop/upstream-client']).toEqual({ ok: true });
    // Rotation: the new certificate replaces the old one.
    watches.get('shop/upstream-client')!.set(tlsSecret('shop', 'upstream-client', b.certPem, b.keyPem));
    await waitFor(() => out.clients['shop/upstream-client']?.certPem === b.certPem, { timeoutMs: 2000 });
    // No route names it any more: the watch stops and the client certificate is gone.
    source.setRoutes(validRoutes([]));
    await waitFor(() => Object.keys(out.clients).length === 0, { timeoutMs: 2000 });
    expect(watches.get('shop/upstream-client')!.stopped).toBe(true);
    await source.stop();
  });

  it('compile keys the pool by the reference (namespace/name), keeps the key out of the table and reports a bad Secret', () => {
    const routes = [mtlsRoute('shop', 'api', 'upstream-client')];
    const catalog = {
      localDatacenter: 'dc1',
      datacenters: {
        dc1: {
          services: {
            echo: [
              {
                id: 'e1',
                address: '10.0.0.1',
                port: 443,
                tags: [],
                meta: {},
                health: 'passing' as const,
                weight: 1,
              },
            ],
          },
        },
      },
    };
    const { table, statuses } = compile({ routes, catalog });
    expect(table.clusters).toHaveLength(1);
    expect(table.clusters[0]!.pool.tls).toEqual({
      serverName: 'up.test',
      clientCertificate: 'shop/upstream-client',
    });
    expect(JSON.stringify(table)).not.toContain('PRIVATE KEY');
    expect(statuses[0]!.unresolved).toEqual([]);
    const bad = {
      secrets: { 'shop/upstream-client': { ok: false, reason: 'WrongType', message: 'type is Opaque' } },
    };
    expect(compile({ routes, catalog, certificateRefs: bad }).statuses[0]!.unresolved).toEqual([
      'Secret shop/upstream-client: type is Opaque',
    ]);
    // Another client certificate is another cluster (and pool).
    const two = compile({ routes: [...routes, mtlsRoute('shop', 'api2', 'other-client')], catalog });
    expect(new Set(two.table.clusters.map((c) => c.pool.tls?.clientCertificate))).toEqual(
      new Set(['shop/upstream-client', 'shop/other-client']),
    );
  });
});

describe('certificate references → ResolvedRefs', () => {
  it('orders references oldest route first and skips invalid routes', () => {
    const refs = certificateRefsOf(
      validRoutes([
        route('n', 'new', ['a.test'], [{ secretName: 'new' }], '2024-02-01T00:00:00Z'),
        route('n', 'old', ['a.test'], [{ secretName: 'old' }], '2024-01-01T00:00:00Z'),
        route('n', 'bad', ['a.test'], [{ secretName: 'bad', hostnames: ['not-mine.test'] }]),
      ]),
    );
    expect(refs.map((r) => r.secret)).toEqual(['n/old', 'n/new']);
  });

  it('compile reports a bad Secret in unresolved; the condition is ResolvedRefs=False/InvalidCertificateRef', () => {
    const routes = [route('shop', 'web', ['a.test'], [{ secretName: 'a-tls' }])];
    const catalog = {
      localDatacenter: 'dc1',
      datacenters: { dc1: { services: { echo: [] } } },
    };
    const bad = { secrets: { 'shop/a-tls': { ok: false, reason: 'NotFound', message: 'not found' } } };
    const { statuses } = compile({ routes, catalog, certificateRefs: bad });
    expect(statuses[0]!.unresolved).toEqual(['Secret shop/a-tls: not found']);
    const st = desiredStatus(statuses[0]!, true, [], '2024-01-01T00:00:00Z');
    expect(st.conditions?.find((c) => c.type === 'ResolvedRefs')).toMatchObject({
      status: 'False',
      reason: 'InvalidCertificateRef',
      message: 'Secret shop/a-tls: not found',
    });
    // Not known yet (no entry) or valid: nothing to report.
    expect(compile({ routes, catalog, certificateRefs: { secrets: {} } }).statuses[0]!.unresolved).toEqual(
      [],
    );
    const ok = { secrets: { 'shop/a-tls': { ok: true } } };
    expect(compile({ routes, catalog, certificateRefs: ok }).statuses[0]!.unresolved).toEqual([]);
  });
});

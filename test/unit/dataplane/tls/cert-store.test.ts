import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CertificateError, inspectCertificate } from '../../../../src/api/certificate.ts';
import { validateRoute } from '../../../../src/api/validate.ts';
import { CertManager } from '../../../../src/control/certificates/cert-manager.ts';
import { parseCertFlag } from '../../../../src/control/certificates/file-certs.ts';
import { CertStore } from '../../../../src/dataplane/tls/cert-store.ts';
import { makeCert } from '../../../e2e/tls/helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgegate-certstore-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const a = makeCert(dir, 'a', 'a.test');
const wild = makeCert(dir, 'wild', '*.w.test');
const def = makeCert(dir, 'def', 'default.test');
const b = makeCert(dir, 'b', 'b.test');
const bundle = (c: typeof a, hostnames: string[] = []) => ({
  source: c.cert,
  hostnames,
  certPem: c.certPem,
  keyPem: c.keyPem,
});

describe('CertStore', () => {
  it('picks exact, then the wildcard one label up, then the default', () => {
    const store = new CertStore();
    store.update({ version: 1, bundles: [bundle(a), bundle(wild)], defaultBundle: bundle(def) });
    expect(store.resolve('a.test')?.source).toBe(a.cert);
    expect(store.resolve('A.TEST.')?.source).toBe(a.cert);
    expect(store.resolve('x.w.test')?.source).toBe(wild.cert);
    expect(store.resolve('y.x.w.test')?.source).toBe(def.cert);
    expect(store.resolve('w.test')?.source).toBe(def.cert);
    expect(store.resolve(undefined)?.source).toBe(def.cert);
  });

  it('without a default an unknown name has no certificate', () => {
    const store = new CertStore();
    store.update({ version: 1, bundles: [bundle(a)], defaultBundle: undefined });
    expect(store.resolve('nope.test')).toBeUndefined();
  });

  it('a bundle that fails keeps the hostname’s previous certificate; older versions are ignored', () => {
    const errors: string[] = [];
    const store = new CertStore((_b, e) => errors.push(e.message));
    store.update({ version: 1, bundles: [bundle(b, ['b.test'])], defaultBundle: undefined });
    const broken = { ...bundle(b, ['b.test']), keyPem: a.keyPem };
    store.update({ version: 2, bundles: [broken], defaultBundle: undefined });
    expect(errors[0]).toMatch(/does not belong/);
    expect(store.resolve('b.test')?.source).toBe(b.cert);
    store.update({ version: 1, bundles: [], defaultBundle: undefined });
    expect(store.version).toBe(2);
    expect(store.resolve('b.test')).toBeDefined();
  });

  it('keeps the SecureContext of an unchanged certificate across updates', () => {
    const store = new CertStore();
    store.update({ version: 1, bundles: [bundle(a)], defaultBundle: undefined });
    const ctx = store.resolve('a.test')?.context;
    store.update({ version: 2, bundles: [bundle(a), bundle(b)], defaultBundle: undefined });
    expect(store.resolve('a.test')?.context).toBe(ctx);
  });
});

describe('certificates', () => {
  it('inspectCertificate names the problem', () => {
    expect(() => inspectCertificate('junk', a.keyPem)).toThrow(CertificateError);
    expect(() => inspectCertificate(a.certPem, b.keyPem)).toThrow(/does not belong/);
    expect(() => inspectCertificate(a.certPem, a.keyPem, Date.now() + 400 * 86_400_000)).toThrow(/expired/);
    expect(inspectCertificate(wild.certPem, wild.keyPem).dnsNames).toEqual(['*.w.test']);
  });

  it('CertManager publishes only on change and reports expiry per hostname', () => {
    const sets: number[] = [];
    const m = new CertManager((s) => sets.push(s.version));
    m.set('files', [bundle(a)], bundle(def));
    m.set('files', [bundle(a)], bundle(def));
    m.set('secrets', [bundle(b)]);
    expect(sets).toEqual([1, 2]);
    expect(m.expiry().map((e) => e.hostname)).toEqual(['a.test', 'b.test', '(default)']);
    expect(m.expiry()[0]!.notAfterSeconds).toBeGreaterThan(Date.now() / 1000);
  });

  it('parseCertFlag: hosts optional, clear errors', () => {
    expect(parseCertFlag('a.pem,a.key', '--tls-cert')).toEqual({
      hostnames: [],
      certFile: 'a.pem',
      keyFile: 'a.key',
    });
    expect(parseCertFlag('A.test,*.w.test=c,k', '--tls-cert').hostnames).toEqual(['a.test', '*.w.test']);
    expect(() => parseCertFlag('c.pem', '--tls-cert')).toThrow(/--tls-cert: expected/);
    expect(() => parseCertFlag('a.test=c,k', '--tls-default-cert', false)).toThrow(/--tls-default-cert/);
    expect(() => parseCertFlag('bad host=c,k', '--tls-cert')).toThrow(/invalid hostname/);
  });
});

describe('schema: spec.tls and backend tls', () => {
  const route = (spec: Record<string, unknown>) => ({
    apiVersion: 'edgegate.io/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name: 'r', namespace: 'n' },
    spec: { rules: [{ backends: [{ consul: { service: 's' } }] }], ...spec },
  });
  const errors = (r: unknown) => {
    const v = validateRoute(r);
    return 'errors' in v ? v.errors.map((e) => `${e.path.join('.')}: ${e.message}`) : [];
  };

  it('accepts a certificate for the route’s own hostnames', () => {
    expect(errors(route({ hostnames: ['a.test'], tls: [{ secretName: 'a-tls' }] }))).toEqual([]);
  });

  it('rejects a tls hostname the route does not serve, and tls without hostnames', () => {
    expect(
      errors(route({ hostnames: ['a.test'], tls: [{ hostnames: ['b.test'], secretName: 'x' }] })),
    ).toEqual(["spec.tls.0.hostnames.0: b.test is not one of this route's spec.hostnames"]);
    expect(errors(route({ tls: [{ secretName: 'x' }] }))[0]).toMatch(
      /^spec.tls: a route with tls needs spec.hostnames/,
    );
  });

  it('h2 to a backend needs tls; caBundle must be PEM', () => {
    const r = route({});
    (r.spec as { rules: { backends: Record<string, unknown>[] }[] }).rules[0]!.backends[0] = {
      consul: { service: 's' },
      protocol: 'h2',
    };
    expect(errors(r)).toEqual([
      'spec.rules.0.backends.0.protocol: h2 to a backend needs tls (for cleartext HTTP/2 use protocol h2c)',
    ]);
    (r.spec as { rules: { backends: Record<string, unknown>[] }[] }).rules[0]!.backends[0] = {
      consul: { service: 's' },
      tls: { caBundle: 'nope' },
    };
    expect(errors(r)[0]).toMatch(/caBundle: expected PEM/);
  });
});

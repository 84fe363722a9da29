// HTTPS certificates from kubernetes.io/tls Secrets named in GatewayRoute spec.tls, against the real
// kube-apiserver and the real gateway process (`edgegate run --kube … --listen-tls … --workers 1`), which runs with
// a ServiceAccount token bound to exactly the generated rules (TLS from Secrets enabled for one namespace):
// the named Secret is served, rotating it changes the served certificate within a second while a download on an
// existing connection completes, a missing Secret sets ResolvedRefs=False naming it (and creating it flips the
// condition and serves it), an invalid Secret keeps the previous certificate, and the token reads no other
// namespace's Secrets and lists none cluster-wide.

import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { LEASE_RULES, SECRET_RULES, WATCH_RULES } from '../../../src/control/sources/kube/rbac.ts';
import { kubeLogs, printLogsOnFailure } from '../../support/logs.ts';
import { sharedKube } from '../../support/shared.ts';
import { waitFor } from '../../support/wait.ts';
import { catalogYaml, type Echo, startEcho, tempDir } from '../cluster/helpers.ts';
import {
  makeCert,
  servedCert,
  startHeldDownload,
  startTlsGateway,
  type TestCert,
  type TlsGateway,
} from '../tls/helpers.ts';
import {
  apply,
  ensureNamespace,
  getRoute,
  installCrd,
  rand,
  routeYaml,
  tokenKubeconfig,
  waitForCondition,
} from './helpers.ts';

const kube = sharedKube();
let gw: TlsGateway | undefined;
let echo: Echo | undefined;
printLogsOnFailure(() => kubeLogs(kube));
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail' && gw) console.error(`gateway output:\n${gw.output().slice(-6000)}`);
});

/** The Secrets the routes of these tests name (tls.secretNames of the chart). */
const REFERENCED_SECRETS = ['a-tls', 'm-tls', 'upstream-client', 'no-such-client'];

const id = rand();
const ns = `eg-tls-${id}`;
const other = `eg-tls-other-${id}`;
const tmp = tempDir('eg-tls-secrets-');
let token = '';
let certs: Record<string, TestCert>;

function secretObject(name: string, cert: { certPem: string; keyPem: string }, type = 'kubernetes.io/tls') {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: ns },
    type,
    data: {
      'tls.crt': Buffer.from(cert.certPem).toString('base64'),
      'tls.key': Buffer.from(cert.keyPem).toString('base64'),
    },
  };
}

function secretYaml(name: string, cert: { certPem: string; keyPem: string }, type = 'kubernetes.io/tls') {
  return stringify(secretObject(name, cert, type));
}

function tlsRoute(name: string, hostnames: string[], tls: unknown[]): string {
  return routeYaml(ns, name, {
    hostnames,
    tls,
    rules: [{ backends: [{ consul: { service: 'echo', datacenter: 'dc1' } }] }],
  });
}

beforeAll(async () => {
  certs = {
    a: makeCert(tmp.dir, 'a', 'a.test'),
    a2: makeCert(tmp.dir, 'a2', 'a.test'),
    m: makeCert(tmp.dir, 'm', 'm.test'),
    other: makeCert(tmp.dir, 'other', 'o.test'),
  };
  await installCrd(kube);
  await ensureNamespace(kube, ns);
  await ensureNamespace(kube, other);
  token = await kube.createServiceAccountToken(ns, 'edgegate');
  const subject = [{ kind: 'ServiceAccount', name: 'edgegate', namespace: ns }];
  const role = (name: string, rules: unknown) => [
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace: ns }, rules },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace: ns },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: subject,
    },
  ];
  // As the chart renders them with kubernetes.watchNamespaces=[ns], tls.secretNamespaces=[ns] and tls.secretNames
  // listing the Secrets these tests reference (resourceNames: the token can read those and no other Secret).
  const manifests = [
    ...role('edgegate', WATCH_RULES),
    ...role('edgegate-lease', LEASE_RULES),
    ...role(
      'edgegate-tls-secrets',
      SECRET_RULES.map((r) => ({ ...r, resourceNames: REFERENCED_SECRETS })),
    ),
  ];
  await apply(kube, manifests.map((m) => stringify(m)).join('---\n'));
  // A Secret no route references, in a namespace TLS is not enabled for.
  await kube.kubectl(['apply', '-f', '-'], {
    input: secretYaml('unreferenced', certs.other!).replace(`namespace: ${ns}`, `namespace: ${other}`),
  });
  await apply(kube, secretYaml('a-tls', certs.a!));
  // A Secret no route references, in the TLS namespace itself.
  await apply(kube, secretYaml('not-referenced', certs.other!));
  await apply(kube, tlsRoute('web', ['a.test'], [{ secretName: 'a-tls' }]));

  echo = await startEcho('tls-secrets-echo');
  const catalog = join(tmp.dir, 'catalog.yaml');
  writeFileSync(catalog, catalogYaml([{ port: echo.port }]));
  gw = await startTlsGateway({
    catalog,
    workers: 1,
    args: [
      '--kube',
      '--kubeconfig',
      tokenKubeconfig(kube, token, ns),
      '--watch-namespaces',
      ns,
      '--lease-namespace',
      ns,
      '--tls-secret-namespaces',
      ns,
      '--lease-duration',
      '4s',
      '--renew-deadline',
      '3s',
      '--retry-period',
      '500ms',
    ],
  });
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  await echo?.stop();
  await kube.kubectl(['delete', 'namespace', ns, other, '--wait=false'], { allowFailure: true });
  tmp.remove();
});

describe('certificates from Kubernetes Secrets', () => {
  it('a route with spec.tls naming a Secret serves that certificate (SNI), over h2 and HTTP/1.1', async () => {
    const served = await waitFor(
      async () => {
        const s = await servedCert(gw!.tlsPort, 'a.test').catch(() => undefined);
        return s?.org === 'a' ? s : undefined;
      },
      { timeoutMs: 20_000, message: 'a.test served from Secret a-tls', diagnostics: () => gw!.output() },
    );
    expect(served.alpn).toBe('h2');
    expect(served.subject).toBe('CN=a.test, O=a');
    await waitForCondition(kube, ns, 'web', 'ResolvedRefs', 'True');
    // And the request goes through to the upstream.
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port: gw!.tlsPort,
          servername: 'a.test',
          path: '/hello',
          headers: { host: 'a.test' },
          rejectUnauthorized: false,
          agent: false,
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(200);
  });

  it('rotating the Secret changes the served certificate within a second; a download on an existing connection completes', async () => {
    const size = 16 * 1024 * 1024;
    const download = await startHeldDownload(gw!.tlsPort, 'a.test', size);
    expect((await servedCert(gw!.tlsPort, 'a.test')).org).toBe('a');

    // Measured from the moment the update is sent to the API server (a PUT, not kubectl: no process start-up).
    const t0 = Date.now();
    const put = await kube.request('PUT', `/api/v1/namespaces/${ns}/secrets/a-tls`, {
      body: secretObject('a-tls', certs.a2!),
    });
    expect(put.status).toBe(200);
    const written = Date.now();
    await waitFor(async () => (await servedCert(gw!.tlsPort, 'a.test')).org === 'a2', {
      timeoutMs: 10_000,
      intervalMs: 20,
      message: 'the rotated certificate to be served',
      diagnostics: () => gw!.output(),
    });
    const rotationMs = Date.now() - t0;
    console.log(
      `Secret rotation: new certificate served ${rotationMs} ms after the update was sent (PUT answered in ${written - t0} ms)`,
    );

    download.response.resume();
    expect(await download.done).toEqual({ status: 200, bytes: size, org: 'a' });
    download.close();
  });

  it('a missing Secret → ResolvedRefs=False naming it; creating it flips the condition and serves it', async () => {
    await apply(kube, tlsRoute('missing', ['m.test'], [{ secretName: 'm-tls' }]));
    const c = await waitForCondition(kube, ns, 'missing', 'ResolvedRefs', 'False', 20_000);
    expect(c.reason).toBe('InvalidCertificateRef');
    expect(c.message).toBe(`Secret ${ns}/m-tls: not found`);
    // The route itself is served (over HTTP); only its certificate is missing: the handshake for m.test fails
    // (there is no default certificate here).
    await expect(servedCert(gw!.tlsPort, 'm.test')).rejects.toThrow();

    await apply(kube, secretYaml('m-tls', certs.m!));
    await waitForCondition(kube, ns, 'missing', 'ResolvedRefs', 'True', 20_000);
    await waitFor(async () => (await servedCert(gw!.tlsPort, 'm.test').catch(() => undefined))?.org === 'm', {
      timeoutMs: 10_000,
      message: 'm.test served from the new Secret',
    });
  });

  it('an invalid Secret keeps the previous certificate and sets ResolvedRefs=False with the reason', async () => {
    // Wrong key for the certificate.
    await apply(kube, secretYaml('m-tls', { certPem: certs.m!.certPem, keyPem: certs.a!.keyPem }));
    let c = await waitForCondition(kube, ns, 'missing', 'ResolvedRefs', 'False', 20_000);
    expect(c.reason).toBe('InvalidCertificateRef');
    expect(c.message).toBe(
      `Secret ${ns}/m-tls: the private key does not belong to the certificate; the previous certificate is still served`,
    );
    expect((await servedCert(gw!.tlsPort, 'm.test')).org).toBe('m');

    // Not PEM at all.
    await apply(kube, secretYaml('m-tls', { certPem: 'garbage', keyPem: certs.m!.keyPem }));
    await waitFor(
      async () => {
        const r = await getRoute(kube, ns, 'missing');
        const rc = r?.status?.conditions?.find((x) => x.type === 'ResolvedRefs');
        return rc?.message.includes('cannot parse the certificate') ? rc : undefined;
      },
      { timeoutMs: 20_000, message: 'ResolvedRefs names the unparsable certificate' },
    );
    expect((await servedCert(gw!.tlsPort, 'm.test')).org).toBe('m');

    // Wrong type: an Opaque Secret cannot be updated into kubernetes.io/tls (type is immutable): replace it.
    await kube.kubectl(['delete', 'secret', 'm-tls', '-n', ns]);
    await apply(kube, secretYaml('m-tls', certs.m!, 'Opaque'));
    c = await waitFor(
      async () => {
        const r = await getRoute(kube, ns, 'missing');
        const rc = r?.status?.conditions?.find((x) => x.type === 'ResolvedRefs');
        return rc?.message.includes('type is Opaque') ? rc : undefined;
      },
      { timeoutMs: 20_000, message: 'ResolvedRefs names the wrong type' },
    );
    expect(c.message).toBe(
      `Secret ${ns}/m-tls: type is Opaque, expected kubernetes.io/tls; the previous certificate is still served`,
    );
    expect((await servedCert(gw!.tlsPort, 'm.test')).org).toBe('m');
    expect(gw!.output()).toContain(
      'certificate Secret cannot be served; its hostnames keep the previous certificate',
    );
  });

  it('a backend presents the client certificate of the Secret its tls.clientCertificateRef names (mTLS to the upstream)', async () => {
    // An HTTPS upstream that requires a client certificate signed by (here: equal to) the one in the Secret.
    const up = makeCert(tmp.dir, 'mtls-upstream', 'mtls.upstream.test');
    const client = makeCert(tmp.dir, 'gateway-client', 'gateway-client');
    const upstream = createHttpsServer(
      { cert: up.certPem, key: up.keyPem, ca: [client.certPem], requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
        res.end(
          JSON.stringify({ client: (req.socket as TLSSocket).getPeerCertificate().subject?.O ?? null }),
        );
      },
    );
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    try {
      const port = (upstream.address() as AddressInfo).port;
      writeFileSync(
        join(tmp.dir, 'catalog.yaml'),
        `${catalogYaml([{ port: echo!.port }])}      mtls:\n        - { address: 127.0.0.1, port: ${port} }\n`,
      );
      const backend = (secret: string) => ({
        consul: { service: 'mtls', datacenter: 'dc1' },
        tls: {
          serverName: 'mtls.upstream.test',
          caBundle: up.certPem,
          clientCertificateRef: { name: secret },
        },
      });
      await apply(kube, secretYaml('upstream-client', client));
      await apply(
        kube,
        routeYaml(ns, 'mtls', {
          hostnames: ['mtls.test'],
          rules: [{ backends: [backend('upstream-client')] }],
        }),
      );
      const answer = await waitFor(
        async () => {
          const r = await request(`http://127.0.0.1:${gw!.port}/`, { headers: { host: 'mtls.test' } });
          const body = await r.body.text();
          return r.statusCode === 200 ? JSON.parse(body) : undefined;
        },
        {
          timeoutMs: 20_000,
          message: 'mtls.test answered by the upstream that requires the client certificate',
        },
      );
      expect(answer).toEqual({ client: 'gateway-client' });
      await waitForCondition(kube, ns, 'mtls', 'ResolvedRefs', 'True', 20_000);
      // A reference to a Secret that does not exist: ResolvedRefs=False naming it, and no connection without it.
      await apply(
        kube,
        routeYaml(ns, 'mtls-missing', {
          hostnames: ['mtls-missing.test'],
          rules: [{ backends: [backend('no-such-client')] }],
        }),
      );
      const c = await waitForCondition(kube, ns, 'mtls-missing', 'ResolvedRefs', 'False', 20_000);
      expect(c.message).toBe(`Secret ${ns}/no-such-client: not found`);
      const r = await request(`http://127.0.0.1:${gw!.port}/`, { headers: { host: 'mtls-missing.test' } });
      expect(JSON.parse(await r.body.text()).error).toBe('EDGEGATE_UPSTREAM_CONNECT');
    } finally {
      upstream.closeAllConnections();
      upstream.close();
    }
  });

  it('/metrics: the sync state of each informer, and the expiry of the served certificates', async () => {
    const text = await (await fetch(`http://127.0.0.1:${gw!.adminPort}/metrics`)).text();
    for (const resource of ['gatewayroutes', 'services', 'endpointslices'])
      expect(text).toContain(`edgegate_kube_informer_synced{resource="${resource}"} 1\n`);
    expect(text).toMatch(/^edgegate_tls_certificate_expiry_seconds\{hostname="a\.test"\} \d{10}$/m);
  });

  it('the controller token reads no Secret outside the TLS namespaces and lists none cluster-wide', async () => {
    const as = (path: string) => kube.request('GET', path, { token });
    expect((await as(`/api/v1/namespaces/${other}/secrets/unreferenced`)).status).toBe(403);
    expect((await as(`/api/v1/namespaces/${other}/secrets`)).status).toBe(403);
    expect((await as('/api/v1/secrets')).status).toBe(403);
    expect((await as(`/api/v1/secrets?fieldSelector=metadata.name%3Dunreferenced`)).status).toBe(403);
    // Not even in the TLS namespace: a Secret no route references, by name or in a plain list.
    expect(
      (await as(`/api/v1/namespaces/${ns}/secrets?fieldSelector=metadata.name%3Dnot-referenced`)).status,
    ).toBe(403);
    expect((await as(`/api/v1/namespaces/${ns}/secrets`)).status).toBe(403);
    expect(
      (await as(`/api/v1/namespaces/${ns}/secrets?watch=1&fieldSelector=metadata.name%3Dnot-referenced`))
        .status,
    ).toBe(403);
    // `get` by name is not granted either (the gateway lists and watches one Secret by name instead).
    expect((await as(`/api/v1/namespaces/${ns}/secrets/a-tls`)).status).toBe(403);
    // What it does use: list+watch of one Secret by name in the TLS namespace.
    expect((await as(`/api/v1/namespaces/${ns}/secrets?fieldSelector=metadata.name%3Da-tls`)).status).toBe(
      200,
    );
    // Nothing the gateway tried was refused.
    expect(gw!.output()).not.toMatch(/forbidden|\b403\b/i);
  });

  // Last: it makes the gateway meet a 403 (the test above checks there was none before).
  it('a route naming a Secret its Role does not list: ResolvedRefs=False with the API server’s refusal', async () => {
    await apply(kube, tlsRoute('unlisted', ['u.test'], [{ secretName: 'not-referenced' }]));
    const c = await waitForCondition(kube, ns, 'unlisted', 'ResolvedRefs', 'False', 20_000);
    expect(c.reason).toBe('InvalidCertificateRef');
    // The Status the API server sent, not client-node's wrapper around it.
    expect(c.message).toMatch(
      new RegExp(
        `^Secret ${ns}/not-referenced: cannot be read: 403 Forbidden: secrets "not-referenced" is forbidden: .*cannot (list|watch) resource "secrets"`,
      ),
    );
    expect(c.message).not.toContain('Unknown API Status Code');
    await expect(servedCert(gw!.tlsPort, 'u.test')).rejects.toThrow();
  });
});

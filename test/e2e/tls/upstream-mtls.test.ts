/**
 * mTLS to the upstream, standalone: a backend's `tls.clientCertificateRef` presents the certificate given by
 * `--upstream-client-cert NAMESPACE/NAME=CERT,KEY` to an HTTPS upstream that requires a client certificate;
 * rotating the file changes the certificate new connections present; a backend without a client certificate is
 * refused by the upstream, and a reference no flag gives is reported in the route's status.
 */
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir, waitFor } from '../cluster/helpers.ts';
import { makeCert, replaceFile, startTlsGateway, type TestCert, type TlsGateway } from './helpers.ts';

const UPSTREAM_NAME = 'mtls.upstream.test';

function route(name: string, host: string, tls: string): string {
  return `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: ${name}, namespace: tls }
spec:
  hostnames: [${host}]
  rules:
    - backends:
        - consul: { service: mtls, datacenter: dc1 }
          tls:
${tls}`;
}

describe('mTLS to the upstream (--upstream-client-cert)', () => {
  const tmp = tempDir('edgegate-mtls-');
  let upstream: Server;
  let gw: TlsGateway;
  let certs: Record<string, TestCert>;
  const clientFiles = { cert: join(tmp.dir, 'client.crt'), key: join(tmp.dir, 'client.key') };

  beforeAll(async () => {
    certs = {
      up: makeCert(tmp.dir, 'up', UPSTREAM_NAME),
      a: makeCert(tmp.dir, 'client-a', 'gateway-a'),
      b: makeCert(tmp.dir, 'client-b', 'gateway-b'),
      stranger: makeCert(tmp.dir, 'stranger', 'stranger'),
    };
    writeFileSync(clientFiles.cert, certs.a!.certPem);
    writeFileSync(clientFiles.key, certs.a!.keyPem);
    // The upstream trusts the two gateway certificates only, requires one, and closes every connection after its
    // answer, so each request shows the certificate a new connection presents.
    upstream = createServer(
      {
        cert: certs.up!.certPem,
        key: certs.up!.keyPem,
        ca: [certs.a!.certPem, certs.b!.certPem],
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
        res.end(JSON.stringify({ client: peer.subject?.O ?? null }));
      },
    );
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    const port = (upstream.address() as AddressInfo).port;
    const ca = certs
      .up!.certPem.trim()
      .split('\n')
      .map((l) => `              ${l}`)
      .join('\n');
    const tls = (client: string | undefined) =>
      `            serverName: ${UPSTREAM_NAME}\n            caBundle: |\n${ca}\n${client ? `            clientCertificateRef: { name: ${client} }\n` : ''}`;
    const routes = join(tmp.dir, 'routes');
    mkdirSync(routes);
    writeFileSync(join(routes, 'mtls.yaml'), route('mtls', 'mtls.test', tls('gateway')));
    writeFileSync(join(routes, 'no-cert.yaml'), route('no-cert', 'no-cert.test', tls(undefined)));
    writeFileSync(join(routes, 'unknown.yaml'), route('unknown', 'unknown.test', tls('not-given')));
    writeFileSync(
      join(tmp.dir, 'catalog.yaml'),
      `datacenters:\n  dc1:\n    services:\n      mtls:\n        - { address: 127.0.0.1, port: ${port} }\n`,
    );
    gw = await startTlsGateway({
      routes,
      catalog: join(tmp.dir, 'catalog.yaml'),
      workers: 2,
      args: ['--upstream-client-cert', `tls/gateway=${clientFiles.cert},${clientFiles.key}`],
    });
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
    upstream?.closeAllConnections();
    upstream?.close();
    tmp.remove();
  });

  async function get(host: string): Promise<{ status: number; body: string }> {
    const r = await request(`http://127.0.0.1:${gw.port}/`, { headers: { host } });
    return { status: r.statusCode, body: await r.body.text() };
  }

  it('presents the configured client certificate; the upstream accepts it', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await get('mtls.test');
      expect(r.status, r.body).toBe(200);
      expect(JSON.parse(r.body)).toEqual({ client: 'client-a' });
    }
  });

  it('without a client certificate the upstream refuses the handshake: 502, nothing served', async () => {
    const r = await get('no-cert.test');
    expect(r.status).toBe(502);
    expect(JSON.parse(r.body).error).toMatch(/^EDGEGATE_UPSTREAM_/);
  });

  it('a reference no --upstream-client-cert gives: 502 and the route status names it', async () => {
    const r = await get('unknown.test');
    expect(r.status).toBe(502);
    expect(JSON.parse(r.body).error).toBe('EDGEGATE_UPSTREAM_CONNECT');
    const routes = (await (await fetch(`http://127.0.0.1:${gw.adminPort}/debug/routes`)).json()) as {
      statuses: { route: string; problems: string[] }[];
    };
    const problems = routes.statuses.find((s) => s.route === 'tls/unknown')?.problems.join('\n') ?? '';
    expect(problems).toContain('tls/not-given');
    expect(problems).toContain('--upstream-client-cert');
    expect(routes.statuses.find((s) => s.route === 'tls/mtls')?.problems).toEqual([]);
  });

  it('rotating the client certificate file: new connections present the new certificate', async () => {
    replaceFile(clientFiles.key, certs.b!.keyPem);
    replaceFile(clientFiles.cert, certs.b!.certPem);
    await waitFor(
      'the rotated client certificate to be presented',
      async () => {
        const r = await get('mtls.test');
        return r.status === 200 && JSON.parse(r.body).client === 'client-b';
      },
      10_000,
    );
    // A certificate the upstream does not trust is refused: the gateway really presents the file's certificate.
    replaceFile(clientFiles.key, certs.stranger!.keyPem);
    replaceFile(clientFiles.cert, certs.stranger!.certPem);
    await waitFor(
      'the upstream to refuse the stranger certificate',
      async () => (await get('mtls.test')).status === 502,
      10_000,
    );
  });
});

/**
 * HTTPS at the edge, standalone: certificates from files picked by SNI (exact, wildcard, default), both
 * protocols through the same pipeline, rotation of a certificate file while a download on an existing connection
 * completes, and the global HTTP → HTTPS redirect.
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogYaml, type Echo, startEcho, tempDir, waitFor } from '../cluster/helpers.ts';
import {
  makeCert,
  replaceFile,
  routeYaml,
  run,
  servedCert,
  startHeldDownload,
  startTlsGateway,
  type TestCert,
  type TlsGateway,
} from './helpers.ts';

describe('HTTPS listener with certificate files', () => {
  const tmp = tempDir('edgegate-tls-');
  let echo: Echo;
  let gw: TlsGateway;
  let certs: Record<string, TestCert>;

  beforeAll(async () => {
    echo = await startEcho('tls-echo');
    const certDir = join(tmp.dir, 'certs');
    mkdirSync(certDir);
    mkdirSync(join(tmp.dir, 'routes'));
    certs = {
      a: makeCert(certDir, 'a', 'a.test'),
      b: makeCert(certDir, 'b', 'b.test'),
      wild: makeCert(certDir, 'wild', '*.w.test'),
      def: makeCert(certDir, 'default', 'default.test'),
      a2: makeCert(tmp.dir, 'a2', 'a.test'),
    };
    writeFileSync(
      join(tmp.dir, 'routes', 'r.yaml'),
      routeYaml('sites', ['a.test', 'b.test', '*.w.test', 'default.test']),
    );
    writeFileSync(join(tmp.dir, 'catalog.yaml'), catalogYaml([{ port: echo.port }]));
    gw = await startTlsGateway({
      routes: join(tmp.dir, 'routes'),
      catalog: join(tmp.dir, 'catalog.yaml'),
      workers: 2,
      args: [
        '--tls-cert',
        `${certs.a!.cert},${certs.a!.key}`,
        '--tls-cert',
        `${certs.b!.cert},${certs.b!.key}`,
        '--tls-cert',
        `${certs.wild!.cert},${certs.wild!.key}`,
        '--tls-default-cert',
        `${certs.def!.cert},${certs.def!.key}`,
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
    await echo?.stop();
    tmp.remove();
  });

  it('curl --resolve: each hostname gets its own certificate, an unknown one the default', async () => {
    const seen: Record<string, string> = {};
    for (const host of ['a.test', 'b.test', 'x.w.test', 'unknown.test']) {
      const r = await run('curl', [
        '-sk',
        '-v',
        '--http2',
        '--resolve',
        `${host}:${gw.tlsPort}:127.0.0.1`,
        `https://${host}:${gw.tlsPort}/hello?x=1`,
      ]);
      const subject = /subject: (.*)/.exec(r.stderr)?.[1] ?? '';
      seen[host] = subject;
      if (host !== 'unknown.test') {
        expect(r.code).toBe(0);
        const body = JSON.parse(r.stdout);
        expect(body.name).toBe('tls-echo');
        expect(body.headers['x-forwarded-proto']).toBe('https');
        expect(body.headers.host).toBe(`${host}:${gw.tlsPort}`);
        expect(r.stderr).toMatch(/using HTTP\/2|HTTP\/2 200/);
      }
    }
    console.log('served subjects:', seen);
    expect(seen['a.test']).toContain('CN=a.test; O=a');
    expect(seen['b.test']).toContain('CN=b.test; O=b');
    expect(seen['x.w.test']).toContain('CN=*.w.test; O=wild');
    expect(seen['unknown.test']).toContain('CN=default.test; O=default');
    // Without SNI (an IP address): the default too.
    expect((await servedCert(gw.tlsPort, undefined)).org).toBe('default');
    // a.b.w.test is two labels below the wildcard: not covered, default.
    expect((await servedCert(gw.tlsPort, 'a.b.w.test')).org).toBe('default');
  });

  it('offers h2 and http/1.1 by ALPN with TLS 1.2+ only; HTTP/1.1 requests take the same pipeline', async () => {
    expect((await servedCert(gw.tlsPort, 'a.test')).alpn).toBe('h2');
    const h1 = await servedCert(gw.tlsPort, 'a.test', ['http/1.1']);
    expect(h1.alpn).toBe('http/1.1');
    expect(['TLSv1.2', 'TLSv1.3']).toContain(h1.protocol);
    const r = await run('curl', [
      '-sk',
      '--http1.1',
      '--resolve',
      `b.test:${gw.tlsPort}:127.0.0.1`,
      `https://b.test:${gw.tlsPort}/p`,
    ]);
    expect(JSON.parse(r.stdout).headers['x-forwarded-proto']).toBe('https');
    const old = await run('curl', [
      '-sk',
      '--tls-max',
      '1.1',
      '--tlsv1.0',
      '--resolve',
      `b.test:${gw.tlsPort}:127.0.0.1`,
      `https://b.test:${gw.tlsPort}/p`,
    ]);
    expect(old.code).not.toBe(0);
  });

  it('exposes handshakes by protocol, failed handshakes by reason and certificate expiry on /metrics', async () => {
    // A plain-HTTP request to the HTTPS port: a failed handshake with a known reason.
    await run('curl', ['-s', '--max-time', '5', `http://127.0.0.1:${gw.tlsPort}/`]);
    const sample = (text: string, series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    const text = await waitFor(
      'the plain_http handshake error on /metrics',
      async () => {
        const t = await (await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`)).text();
        return (sample(t, 'edgegate_tls_handshake_errors_total{reason="plain_http"}') ?? 0) >= 1
          ? t
          : undefined;
      },
      10_000,
    );
    // The earlier tests negotiated both protocols (summed over the 2 workers).
    expect(sample(text, 'edgegate_tls_handshakes_total{protocol="h2"}')).toBeGreaterThanOrEqual(3);
    expect(sample(text, 'edgegate_tls_handshakes_total{protocol="http/1.1"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'edgegate_http2_floods_stopped_total{reason="rapid_reset"}')).toBe(0);
    expect(sample(text, 'edgegate_http2_floods_stopped_total{reason="nghttp2"}')).toBe(0);
    const notAfter = (c: TestCert) => Math.floor(new X509Certificate(c.certPem).validToDate.getTime() / 1000);
    expect(sample(text, 'edgegate_tls_certificate_expiry_seconds{hostname="a.test"}')).toBe(
      notAfter(certs.a!),
    );
    expect(sample(text, 'edgegate_tls_certificate_expiry_seconds{hostname="*.w.test"}')).toBe(
      notAfter(certs.wild!),
    );
    expect(sample(text, 'edgegate_tls_certificate_expiry_seconds{hostname="(default)"}')).toBe(
      notAfter(certs.def!),
    );
  });

  it('rotating a certificate file changes the served certificate within a second; a download on an existing connection completes', async () => {
    const size = 16 * 1024 * 1024;
    const download = await startHeldDownload(gw.tlsPort, 'a.test', size);
    expect((await servedCert(gw.tlsPort, 'a.test')).org).toBe('a');

    const t0 = Date.now();
    replaceFile(certs.a!.key, certs.a2!.keyPem);
    replaceFile(certs.a!.cert, certs.a2!.certPem);
    await waitFor(
      'the rotated certificate to be served',
      async () => (await servedCert(gw.tlsPort, 'a.test')).org === 'a2',
      10_000,
    );
    const rotationMs = Date.now() - t0;
    console.log(`rotation: new certificate served ${rotationMs} ms after the file changed`);

    download.response.resume();
    expect(await download.done).toEqual({ status: 200, bytes: size, org: 'a' });
    download.close();
  });

  it('a broken certificate file is reported and the hostname keeps its certificate', async () => {
    const before = (await servedCert(gw.tlsPort, 'b.test')).org;
    replaceFile(certs.b!.cert, certs.a2!.certPem); // does not match b's key
    await waitFor('the rejection to be logged', () => gw.output().includes('certificate not loaded'), 10_000);
    expect((await servedCert(gw.tlsPort, 'b.test')).org).toBe(before);
    replaceFile(certs.b!.cert, certs.b!.certPem);
  });
});

describe('--https-redirect', () => {
  const tmp = tempDir('edgegate-redirect-');
  let gw: TlsGateway;

  beforeAll(async () => {
    mkdirSync(join(tmp.dir, 'routes'));
    const c = makeCert(tmp.dir, 'r', 'r.test');
    writeFileSync(join(tmp.dir, 'routes', 'r.yaml'), routeYaml('r', ['r.test']));
    writeFileSync(join(tmp.dir, 'catalog.yaml'), catalogYaml([{ port: 9 }]));
    gw = await startTlsGateway({
      routes: join(tmp.dir, 'routes'),
      catalog: join(tmp.dir, 'catalog.yaml'),
      workers: 1,
      args: ['--tls-cert', `${c.cert},${c.key}`, '--https-redirect', '308', '--https-port', '8443'],
    });
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
    tmp.remove();
  });

  it('answers every HTTP request with 308 to the same host and path on HTTPS', async () => {
    const r = await run('curl', [
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{redirect_url}',
      '-H',
      'Host: r.test:8080',
      `http://127.0.0.1:${gw.port}/a/b?c=d`,
    ]);
    expect(r.stdout).toBe('308 https://r.test:8443/a/b?c=d');
    const bad = await run('curl', [
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-H',
      'Host: bad"host',
      `http://127.0.0.1:${gw.port}/`,
    ]);
    expect(bad.stdout).toBe('400');
  });
});

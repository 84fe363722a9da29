/**
 * The three route filters in a real `edgegate run` (primary + 2 workers, routes and catalog from files) with real
 * upstream processes' sockets: a CORS preflight answered by the gateway, a compressed response decoded by fetch
 * (undici) and checked byte for byte with zlib, a mirrored POST seen by the mirror with its body, and every
 * counter on the admin port's /metrics. An invalid filter in a route file is refused with the field named, and the
 * last valid version keeps serving.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GatewayProcess, routeYaml, startGateway, writeLoopbackCatalog } from '../../support/gateway.ts';
import { scrapeMetrics, sumOf } from '../../support/prom-text.ts';
import { waitFor } from '../../support/wait.ts';

const BODY = Buffer.from(`${'{"line":"compressible text"},'.repeat(500)}`);
const mirrored: { host: string; body: string }[] = [];
let gw: GatewayProcess;
let dir: string;
const servers: import('node:http').Server[] = [];

async function serve(
  handler: (req: IncomingMessage, body: Buffer) => [number, Record<string, string>, Buffer],
) {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const [status, headers, body] = handler(req, Buffer.concat(chunks));
      res.writeHead(status, headers);
      res.end(body);
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  servers.push(server);
  return (server.address() as AddressInfo).port;
}

const spec = (corsOrigins: string[]) => ({
  rules: [
    {
      filters: [
        { type: 'CORS', cors: { allowOrigins: corsOrigins, allowMethods: ['PUT'], maxAge: 60 } },
        {
          type: 'RequestMirror',
          requestMirror: { backendRef: { consul: { service: 'shadow' } }, maxBodySize: 1024 },
        },
        { type: 'ResponseCompression', responseCompression: { algorithms: ['gzip'] } },
      ],
      backends: [{ consul: { service: 'app' } }],
    },
  ],
});

beforeAll(async () => {
  const app = await serve(() => [200, { 'content-type': 'application/json' }, BODY]);
  const shadow = await serve((req, body) => {
    mirrored.push({ host: req.headers.host ?? '', body: body.toString() });
    return [204, {}, Buffer.alloc(0)];
  });
  dir = mkdtempSync(join(tmpdir(), 'eg-filters-'));
  writeLoopbackCatalog(join(dir, 'catalog.yaml'), { app: [app], shadow: [shadow] });
  writeFileSync(join(dir, 'routes.yaml'), routeYaml('filters', spec(['https://*.example.com'])));
  gw = await startGateway([
    '--routes',
    join(dir, 'routes.yaml'),
    '--catalog',
    join(dir, 'catalog.yaml'),
    '--workers',
    '2',
  ]);
});

afterAll(async () => {
  await gw?.stop();
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

function post(body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${gw.url}/orders`,
      { method: 'POST', headers: { host: 'shop.test', 'content-type': 'text/plain' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('route filters in a real gateway process', () => {
  it('answers preflights, compresses, mirrors, and counts each on /metrics', async () => {
    const pre = await fetch(`${gw.url}/orders`, {
      method: 'OPTIONS',
      headers: { origin: 'https://shop.example.com', 'access-control-request-method': 'PUT' },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://shop.example.com');
    expect(pre.headers.get('access-control-allow-methods')).toBe('PUT');
    const denied = await fetch(`${gw.url}/orders`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.test', 'access-control-request-method': 'PUT' },
    });
    expect(denied.headers.get('access-control-allow-origin')).toBeNull();

    // fetch decodes gzip itself; the raw bytes are checked with node:http + zlib.
    const r = await fetch(`${gw.url}/data`, { headers: { origin: 'https://a.example.com' } });
    expect(r.headers.get('content-encoding')).toBe('gzip');
    expect(r.headers.get('access-control-allow-origin')).toBe('https://a.example.com');
    expect(r.headers.get('vary')).toBe('Origin, Accept-Encoding');
    expect(Buffer.from(await r.arrayBuffer()).equals(BODY)).toBe(true);
    const raw = await new Promise<Buffer>((resolve, reject) => {
      request(`${gw.url}/data`, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks)));
      })
        .on('error', reject)
        .end();
    });
    expect(raw.length).toBeLessThan(BODY.length / 10);
    expect(gunzipSync(raw).equals(BODY)).toBe(true);

    expect(await post('small body')).toBe(200);
    expect(await post('x'.repeat(5000))).toBe(200);
    await waitFor(() => mirrored.some((m) => m.body === 'small body'), { message: 'mirrored POST' });
    expect(mirrored.find((m) => m.body === 'small body')!.host).toBe('shop.test-shadow');

    await waitFor(
      async () => {
        const m = await scrapeMetrics(gw.adminUrl);
        return (
          sumOf(m, 'edgegate_cors_preflights_total', { result: 'allowed' }) === 1 &&
          sumOf(m, 'edgegate_cors_preflights_total', { result: 'refused' }) === 1 &&
          sumOf(m, 'edgegate_compressed_responses_total', { encoding: 'gzip' }) >= 2 &&
          sumOf(m, 'edgegate_mirror_requests_total') >= 3 &&
          sumOf(m, 'edgegate_mirror_dropped_total', { reason: 'body_too_large' }) === 1 &&
          sumOf(m, 'edgegate_mirror_errors_total') === 0
        );
      },
      {
        timeoutMs: 20_000,
        message: 'filter metrics',
        diagnostics: async () => (await fetch(`${gw.adminUrl}/metrics`)).text(),
      },
    );
  });

  it('refuses an invalid filter in a route file, naming the field, and keeps serving the last valid version', async () => {
    writeFileSync(
      join(dir, 'routes.yaml'),
      routeYaml('filters', spec(['https://*.example.com', 'ftp://nope'])),
    );
    await waitFor(() => /cors\.allowOrigins\[1\]/.test(gw.output()), {
      timeoutMs: 20_000,
      message: 'the refusal in the log',
      diagnostics: () => gw.output().slice(-3000),
    });
    const pre = await fetch(`${gw.url}/orders`, {
      method: 'OPTIONS',
      headers: { origin: 'https://shop.example.com', 'access-control-request-method': 'PUT' },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://shop.example.com');
  });
});

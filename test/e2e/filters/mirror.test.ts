/**
 * RequestMirror filter through a real listener to real upstreams: copies arrive at the mirror with the `-shadow`
 * Host and the body (up to the bound), the client only ever sees the primary's answer, and a dead, failing or
 * hanging mirror neither delays nor fails requests, nor piles up copies in flight (the worker bound drops and
 * counts them).
 */

import { mkdtempSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'node:http';
import { constants as h2, connect as h2connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Gateway,
  startGateway,
  startUpstream,
  tableOf,
  type Upstream,
} from '../../support/inproc-gateway.ts';
import { freePort } from '../../support/ports.ts';
import { waitFor } from '../../support/wait.ts';
import { makeCert } from '../tls/helpers.ts';

interface Seen {
  method: string;
  url: string;
  host: string;
  body: Buffer;
  headers: IncomingMessage['headers'];
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

async function recording(
  name: string,
  answer: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<Upstream & { seen: Seen[] }> {
  const seen: Seen[] = [];
  const up = await startUpstream(name, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        host: req.headers.host ?? '',
        body: Buffer.concat(chunks),
        headers: req.headers,
      });
      answer(req, res);
    });
  });
  cleanup.push(() => up.close());
  return Object.assign(up, { seen });
}

const ok = (name: string) => (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'x-from': name });
  res.end(name);
};

async function gatewayWith(
  mirror: Record<string, unknown>,
  ports: { primary: number; mirror: number },
  settings: Record<string, number> = {},
  extraMirrors: Record<string, unknown>[] = [],
): Promise<Gateway> {
  const gw = await startGateway(
    tableOf(
      {
        rules: [
          {
            filters: [mirror, ...extraMirrors].map((m) => ({ type: 'RequestMirror', requestMirror: m })),
            backends: [{ consul: { service: 'primary' } }],
          },
        ],
      },
      { primary: [ports.primary], shadow: [ports.mirror] },
    ),
    settings,
  );
  cleanup.push(() => gw.close());
  return gw;
}

function send(
  port: number,
  path: string,
  opts: { method?: string; body?: Buffer; chunked?: boolean; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: string; headers: IncomingMessage['headers'] }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: 'api.test:8080', ...opts.headers };
    if (opts.body && !opts.chunked) headers['content-length'] = String(opts.body.length);
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString(),
          headers: res.headers,
        }),
      );
    });
    req.on('error', reject);
    if (opts.body && opts.chunked) {
      // Two writes: a chunked body of unknown length.
      const half = opts.body.length >> 1;
      req.write(opts.body.subarray(0, half));
      req.end(opts.body.subarray(half));
    } else req.end(opts.body);
  });
}

const counter = (gw: Gateway, key: string) => gw.proxy.counterValues()[key] ?? 0;
const dropped = (gw: Gateway, reason: string) => counter(gw, `mirrorDropped\u0000${reason}`);

describe('request mirroring', () => {
  it('sends a copy with the -shadow Host, the same path, query and request id; the client sees only the primary', async () => {
    const primary = await recording('primary', ok('primary'));
    const shadow = await recording('shadow', (_req, res) => {
      res.writeHead(500, { 'x-from': 'shadow' });
      res.end('mirror answer never seen');
    });
    const gw = await gatewayWith(
      { backendRef: { consul: { service: 'shadow' } } },
      { primary: primary.port, mirror: shadow.port },
    );
    const r = await send(gw.port, '/orders?x=1', { headers: { 'x-request-id': 'req-42' } });
    expect(r.status).toBe(200);
    expect(r.body).toBe('primary');
    await waitFor(() => shadow.seen.length === 1, { timeoutMs: 10_000, message: 'mirror copy' });
    const copy = shadow.seen[0]!;
    expect(copy.method).toBe('GET');
    expect(copy.url).toBe('/orders?x=1');
    expect(copy.host).toBe('api.test-shadow:8080');
    expect(primary.seen[0]!.host).toBe('api.test:8080');
    expect(copy.headers['x-request-id']).toBe('req-42');
    expect(copy.headers['x-forwarded-for']).toBe('127.0.0.1');
    await waitFor(() => counter(gw, 'mirrorSent') === 1 && gw.proxy.mirrors.inFlight === 0, {
      message: 'mirror settled',
    });
    expect(counter(gw, 'mirrorErrors')).toBe(0);
  });

  it('mirrors bodies up to the bound, skips larger ones (counted) and the primary still gets every byte', async () => {
    const primary = await recording('primary', ok('primary'));
    const shadow = await recording('shadow', ok('shadow'));
    const gw = await gatewayWith(
      { backendRef: { consul: { service: 'shadow' } }, maxBodySize: 1000 },
      { primary: primary.port, mirror: shadow.port },
    );
    const small = Buffer.from('s'.repeat(1000));
    const big = Buffer.alloc(200_000, 'b');
    await send(gw.port, '/a', { method: 'POST', body: small });
    await send(gw.port, '/b', { method: 'POST', body: small, chunked: true });
    await send(gw.port, '/c', { method: 'POST', body: Buffer.alloc(1001, 'm') });
    await send(gw.port, '/d', { method: 'POST', body: big });
    await send(gw.port, '/e', { method: 'POST', body: big, chunked: true });
    await send(gw.port, '/f', { method: 'PUT', body: Buffer.alloc(0) });
    expect(primary.seen.map((s) => [s.url, s.body.length])).toEqual([
      ['/a', 1000],
      ['/b', 1000],
      ['/c', 1001],
      ['/d', 200_000],
      ['/e', 200_000],
      ['/f', 0],
    ]);
    await waitFor(() => shadow.seen.length === 3, { timeoutMs: 10_000, message: 'three copies' });
    expect(shadow.seen.map((s) => [s.url, s.method, s.body.toString()])).toEqual([
      ['/a', 'POST', small.toString()],
      ['/b', 'POST', small.toString()],
      ['/f', 'PUT', ''],
    ]);
    expect(dropped(gw, 'body_too_large')).toBe(3);
  });

  it('mirrors the share asked for: percent 0 never, a fraction about that often', async () => {
    const primary = await recording('primary', ok('primary'));
    const shadow = await recording('shadow', ok('shadow'));
    const none = await gatewayWith(
      { backendRef: { consul: { service: 'shadow' } }, percent: 0 },
      { primary: primary.port, mirror: shadow.port },
    );
    for (let i = 0; i < 20; i++) await send(none.port, '/');
    expect(counter(none, 'mirrorSent')).toBe(0);
    const half = await gatewayWith(
      { backendRef: { consul: { service: 'shadow' } }, fraction: { numerator: 1, denominator: 2 } },
      { primary: primary.port, mirror: shadow.port },
    );
    for (let i = 0; i < 200; i++) await send(half.port, '/');
    // Binomial(200, 0.5): outside 60..140 with probability below 1e-8.
    const sent = counter(half, 'mirrorSent');
    expect(sent).toBeGreaterThan(60);
    expect(sent).toBeLessThan(140);
    await waitFor(() => shadow.seen.length === sent, { message: 'copies arrived' });
  });

  it('a dead mirror never fails the request: errors are counted', async () => {
    const primary = await recording('primary', ok('primary'));
    const gw = await gatewayWith(
      { backendRef: { consul: { service: 'shadow' } } },
      { primary: primary.port, mirror: await freePort({ udp: false }) },
    );
    for (let i = 0; i < 5; i++) {
      const r = await send(gw.port, '/', { method: 'POST', body: Buffer.from('x') });
      expect(r.status).toBe(200);
      expect(r.body).toBe('primary');
    }
    await waitFor(() => counter(gw, 'mirrorErrors') === 5, { timeoutMs: 10_000, message: 'mirror errors' });
    expect(gw.proxy.mirrors.inFlight).toBe(0);
  });

  it('mirror memory exhaustion (a hanging mirror): requests are not delayed, copies in flight stay bounded, the timeout frees them', async () => {
    const primary = await recording('primary', ok('primary'));
    const held: ServerResponse[] = [];
    const shadow = await recording('shadow', (_req, res) => {
      held.push(res); // never answered
    });
    const gw = await gatewayWith(
      { backendRef: { consul: { service: 'shadow' } } },
      { primary: primary.port, mirror: shadow.port },
      { mirrorMaxInFlight: 3, mirrorTimeoutMs: 1500 },
    );
    for (let i = 0; i < 10; i++) {
      const r = await send(gw.port, `/${i}`);
      expect(r.body).toBe('primary');
    }
    expect(primary.seen.length).toBe(10);
    expect(gw.proxy.mirrors.inFlight).toBe(3);
    expect(dropped(gw, 'in_flight')).toBe(7);
    await waitFor(() => gw.proxy.mirrors.inFlight === 0, { timeoutMs: 10_000, message: 'mirror timeouts' });
    expect(counter(gw, 'mirrorErrors')).toBe(3);
    // Room again: the next request is mirrored.
    await send(gw.port, '/again');
    await waitFor(() => shadow.seen.some((s) => s.url === '/again'), { message: 'copy after the timeouts' });
    for (const res of held) res.destroy();
  });

  it('sends one copy per RequestMirror filter; a mirror without endpoints is counted as no_endpoint', async () => {
    const primary = await recording('primary', ok('primary'));
    const shadow = await recording('shadow', ok('shadow'));
    const gw = await startGateway(
      tableOf(
        {
          rules: [
            {
              filters: [
                { type: 'RequestMirror', requestMirror: { backendRef: { consul: { service: 'shadow' } } } },
                { type: 'RequestMirror', requestMirror: { backendRef: { consul: { service: 'empty' } } } },
              ],
              backends: [{ consul: { service: 'primary' } }],
            },
          ],
        },
        { primary: [primary.port], shadow: [shadow.port], empty: [] },
      ),
    );
    cleanup.push(() => gw.close());
    const r = await send(gw.port, '/two');
    expect(r.body).toBe('primary');
    await waitFor(() => shadow.seen.length === 1, { message: 'copy' });
    expect(dropped(gw, 'no_endpoint')).toBe(1);
  });
});

describe('request mirroring over HTTP/2', () => {
  it('mirrors an HTTP/2 POST with its body; a stream reset at once (rapid reset) sends no copy, as it sends no request', async () => {
    const primary = await recording('primary', ok('primary'));
    const shadow = await recording('shadow', ok('shadow'));
    const cert = makeCert(mkdtempSync(join(tmpdir(), 'eg-mirror-')), 'gw', 'api.test');
    const gw = await startGateway(
      tableOf(
        {
          rules: [
            {
              filters: [
                { type: 'RequestMirror', requestMirror: { backendRef: { consul: { service: 'shadow' } } } },
              ],
              backends: [{ consul: { service: 'primary' } }],
            },
          ],
        },
        { primary: [primary.port], shadow: [shadow.port] },
      ),
      {},
      {},
      { tls: { certPem: cert.certPem, keyPem: cert.keyPem } },
    );
    cleanup.push(() => gw.close());
    const session = h2connect(`https://127.0.0.1:${gw.tlsPort}`, {
      rejectUnauthorized: false,
      servername: 'api.test',
    });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const st = session.request({ ':method': 'POST', ':path': '/h2', ':authority': 'api.test' });
        st.on('response', (h) => resolve(Number(h[':status'])));
        st.on('error', reject);
        st.end('h2 body');
        st.resume();
      });
      expect(status).toBe(200);
      await waitFor(() => shadow.seen.some((x) => x.url === '/h2'), { message: 'h2 copy' });
      expect(shadow.seen.find((x) => x.url === '/h2')!.body.toString()).toBe('h2 body');

      // Forty streams opened and reset in the same write.
      for (let i = 0; i < 40; i++) {
        const st = session.request({ ':path': `/rr-${i}`, ':authority': 'api.test' });
        st.on('error', () => {});
        st.close(h2.NGHTTP2_CANCEL);
      }
      const counters = () => gw.proxy.counterValues();
      await waitFor(
        () => (counters().mirrorSent ?? 0) + (counters()['mirrorDropped\u0000cancelled'] ?? 0) === 41,
        { timeoutMs: 10_000, message: 'every stream accounted for' },
      );
      await waitFor(() => shadow.seen.length === primary.seen.length && gw.proxy.mirrors.inFlight === 0, {
        message: 'copies settled',
      });
      // A copy went for exactly the requests that went upstream; the others were cancelled, both sides.
      expect(counters().mirrorSent).toBe(primary.seen.length);
      expect(counters()['mirrorDropped\u0000cancelled']).toBe(41 - primary.seen.length);
    } finally {
      session.destroy();
    }
  });
});

/**
 * ResponseCompression filter through a real listener to real upstreams, read with node:http (raw bytes, decoded
 * here with zlib) and fetch: negotiation by Accept-Encoding, the cases that are never compressed, header rewrites,
 * streaming (an event stream's first event arrives compressed before the upstream sends the second), hostile
 * Accept-Encoding values.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliDecompressSync, createGunzip, gunzipSync, gzipSync, zstdDecompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Gateway,
  rawExchange,
  startGateway,
  startUpstream,
  statusOf,
  tableOf,
  type Upstream,
} from '../../support/inproc-gateway.ts';
import { waitFor } from '../../support/wait.ts';
import { makeCert } from '../tls/helpers.ts';

const TEXT = Buffer.from(
  '{"items":[' + Array.from({ length: 400 }, (_, i) => `{"id":${i},"name":"item ${i}"}`).join(',') + ']}',
);

const RANDOM = randomBytes(6 * 1024 * 1024).toString('base64');

let up: Upstream;
let gw: Gateway;
let plain: Gateway;
/** The upstream's event stream waits for this before its second event. */
let releaseSecond: (() => void) | undefined;

beforeAll(async () => {
  up = await startUpstream('app', (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    req.resume();
    const type = url.searchParams.get('type') ?? 'application/json; charset=utf-8';
    const headers: Record<string, string> = { 'content-type': type, etag: '"v1"', 'accept-ranges': 'bytes' };
    switch (url.pathname) {
      case '/json':
        res.writeHead(200, { ...headers, 'content-length': String(TEXT.length) });
        return res.end(TEXT);
      case '/chunked':
        res.writeHead(200, headers);
        res.write(TEXT.subarray(0, 1000));
        return res.end(TEXT.subarray(1000));
      case '/small':
        res.writeHead(200, { ...headers, 'content-length': '12' });
        return res.end('{"small":1} ');
      case '/encoded':
        res.writeHead(200, { ...headers, 'content-encoding': 'gzip' });
        return res.end(gzipOf(TEXT));
      case '/no-transform':
        res.writeHead(200, { ...headers, 'cache-control': 'public, no-transform' });
        return res.end(TEXT);
      case '/status': {
        const status = Number(url.searchParams.get('s'));
        res.writeHead(
          status,
          status === 206 ? { ...headers, 'content-range': `bytes 0-99/${TEXT.length}` } : headers,
        );
        return res.end(status === 204 || status === 304 ? undefined : TEXT.subarray(0, 100));
      }
      case '/events':
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write(`data: ${'first '.repeat(50)}\n\n`);
        releaseSecond = () => res.end(`data: second\n\n`);
        return;
      case '/random':
        // Base64 of random bytes: compresses to ~75 %, so the compressed stream is megabytes, more than the
        // socket buffers hold.
        res.writeHead(200, { 'content-type': 'text/plain' });
        return res.end(RANDOM);
      case '/big': {
        res.writeHead(200, { 'content-type': 'text/plain' });
        let left = 200;
        const line = Buffer.from(`${'0123456789abcdef'.repeat(4096)}\n`);
        const pump = () => {
          while (left > 0) {
            left--;
            if (!res.write(line)) return void res.once('drain', pump);
          }
          res.end();
        };
        return pump();
      }
    }
    res.writeHead(404);
    res.end();
  });
  const rule = (compression: Record<string, unknown>) => ({
    filters: [{ type: 'ResponseCompression', responseCompression: compression }],
    backends: [{ consul: { service: 'app' } }],
  });
  const cert = makeCert(mkdtempSync(join(tmpdir(), 'eg-compress-')), 'gw', 'test.local');
  gw = await startGateway(
    tableOf(
      {
        rules: [
          { matches: [{ path: { value: '/events' } }], ...rule({ contentTypes: ['text/event-stream'] }) },
          { matches: [{ path: { value: '/gzip-only' } }], ...rule({ algorithms: ['gzip'] }) },
          rule({}),
        ],
      },
      { app: [up.port] },
    ),
    { sendTimeoutMs: 500 },
    {},
    { tls: { certPem: cert.certPem, keyPem: cert.keyPem } },
  );
  plain = await startGateway(
    tableOf({ rules: [{ backends: [{ consul: { service: 'app' } }] }] }, { app: [up.port] }),
  );
});

afterAll(async () => {
  await gw?.close();
  await plain?.close();
  await up?.close();
});

function gzipOf(b: Buffer): Buffer {
  return gzipSync(b);
}

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method, headers: { host: 'test.local', ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function decode(r: Raw): Buffer {
  const enc = r.headers['content-encoding'];
  if (enc === 'gzip') return gunzipSync(r.body);
  if (enc === 'br') return brotliDecompressSync(r.body);
  if (enc === 'zstd') return zstdDecompressSync(r.body);
  return r.body;
}

describe('response compression', () => {
  it('compresses with each encoding the client asks for; the body decodes to the upstream’s bytes', async () => {
    for (const enc of ['gzip', 'br', 'zstd']) {
      const r = await get(gw.port, '/json', { 'accept-encoding': enc });
      expect(r.headers['content-encoding'], enc).toBe(enc);
      expect(r.headers['content-length']).toBeUndefined();
      expect(r.headers['accept-ranges']).toBeUndefined();
      expect(r.headers.etag).toBe('W/"v1"');
      expect(r.headers.vary).toBe('Accept-Encoding');
      expect(r.body.length).toBeLessThan(TEXT.length / 3);
      expect(decode(r).equals(TEXT)).toBe(true);
    }
    const counters = gw.proxy.counterValues();
    for (const enc of ['gzip', 'br', 'zstd'])
      expect(counters[`compressedResponses\u0000${enc}`]).toBeGreaterThan(0);
  });

  it('negotiates by q-value, breaks ties in the configured order, honours q=0, * and identity', async () => {
    const cases: [string, string | undefined][] = [
      ['gzip, deflate, br, zstd', 'zstd'],
      ['gzip;q=1, br;q=0.5', 'gzip'],
      ['br;q=0.9, gzip;q=0.8', 'br'],
      ['br;q=0, *', 'zstd'],
      ['*;q=0.5, gzip', 'gzip'],
      ['*;q=0', undefined],
      ['identity', undefined],
      ['gzip;q=0', undefined],
      ['GZIP', 'gzip'],
      ['x-gzip', 'gzip'],
      ['gzip;q=1.5, br', 'br'],
      ['gzip;q=abc, br;q=0.1', 'br'],
      ['gzip;q=0.0001, br;q=', undefined],
      ['deflate', undefined],
      ['', undefined],
    ];
    for (const [ae, want] of cases) {
      const r = await get(gw.port, '/json', { 'accept-encoding': ae });
      expect(r.status, ae).toBe(200);
      expect(r.headers['content-encoding'], ae).toBe(want);
      expect(decode(r).equals(TEXT), ae).toBe(true);
      expect(r.headers.vary, ae).toBe('Accept-Encoding');
    }
    const r = await get(gw.port, '/gzip-only/json', { 'accept-encoding': 'zstd, br' });
    expect(r.headers['content-encoding']).toBeUndefined();
  });

  it('compresses a chunked (unknown-length) body as it streams', async () => {
    const r = await get(gw.port, '/chunked', { 'accept-encoding': 'br' });
    expect(r.headers['content-encoding']).toBe('br');
    expect(decode(r).equals(TEXT)).toBe(true);
  });

  it('never compresses: HEAD, 204, 304, 206, encoded bodies, no-transform, small bodies, other types, event streams by default', async () => {
    const ae = { 'accept-encoding': 'gzip, br, zstd' };
    const head = await get(gw.port, '/json', ae, 'HEAD');
    expect(head.headers['content-encoding']).toBeUndefined();
    expect(head.headers['content-length']).toBe(String(TEXT.length));
    for (const s of [204, 304, 206]) {
      const r = await get(gw.port, `/status?s=${s}`, { ...ae, range: 'bytes=0-99' });
      expect(r.status).toBe(s);
      expect(r.headers['content-encoding'], String(s)).toBeUndefined();
      expect(r.headers.etag).toBe('"v1"');
    }
    const encoded = await get(gw.port, '/encoded', ae);
    expect(encoded.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(encoded.body).equals(TEXT)).toBe(true);
    const noTransform = await get(gw.port, '/no-transform', ae);
    expect(noTransform.headers['content-encoding']).toBeUndefined();
    expect(noTransform.body.equals(TEXT)).toBe(true);
    const small = await get(gw.port, '/small', ae);
    expect(small.headers['content-encoding']).toBeUndefined();
    expect(small.headers['content-length']).toBe('12');
    for (const type of ['image/png', 'application/octet-stream', 'application/grpc']) {
      const r = await get(gw.port, `/json?type=${encodeURIComponent(type)}`, ae);
      expect(r.headers['content-encoding'], type).toBeUndefined();
      expect(r.headers.vary, type).toBeUndefined();
    }
    for (const type of [
      'text/html',
      'text/css',
      'application/javascript',
      'application/problem+json',
      'image/svg+xml',
      'application/atom+xml',
    ]) {
      const r = await get(gw.port, `/json?type=${encodeURIComponent(type)}`, ae);
      expect(r.headers['content-encoding'], type).toBe('zstd');
    }
    const sse = await get(gw.port, '/json?type=text%2Fevent-stream', ae);
    expect(sse.headers['content-encoding']).toBeUndefined();
  });

  it('is off on a route without the filter', async () => {
    const r = await get(plain.port, '/json', { 'accept-encoding': 'gzip, br, zstd' });
    expect(r.headers['content-encoding']).toBeUndefined();
    expect(r.headers.vary).toBeUndefined();
    expect(r.headers.etag).toBe('"v1"');
    expect(r.body.equals(TEXT)).toBe(true);
  });

  it('streams: an event stream listed by name is flushed per chunk, the first event arrives before the second is sent', async () => {
    releaseSecond = undefined;
    const text: string[] = [];
    const done = new Promise<string>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: gw.port,
          path: '/events',
          headers: { host: 'test.local', 'accept-encoding': 'gzip' },
        },
        (res) => {
          expect(res.headers['content-encoding']).toBe('gzip');
          const gunzip = createGunzip();
          res.pipe(gunzip);
          gunzip.on('data', (c: Buffer) => text.push(c.toString()));
          gunzip.on('end', () => resolve(text.join('')));
          gunzip.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
    await waitFor(() => text.join('').includes('first') && releaseSecond !== undefined, {
      timeoutMs: 10_000,
      message: 'first event',
    });
    expect(text.join('')).not.toContain('second');
    releaseSecond!();
    expect(await done).toContain('data: second');
  });

  it('streams a large body through the compressor with backpressure (decoded bytes match)', async () => {
    const r = await get(gw.port, '/big', { 'accept-encoding': 'gzip' });
    const body = decode(r);
    expect(body.length).toBe(200 * (16 * 4096 + 1));
    expect(r.body.length).toBeLessThan(body.length / 50);
  });

  it('Accept-Encoding parser exhaustion: thousands of entries, malformed q, oversized values cost a bounded parse and never an error', async () => {
    const hostile = [
      Array.from({ length: 300 }, (_, i) => `x${i};q=0.${i % 10}`).join(', ') + ', gzip',
      Array.from({ length: 1000 }, (_, i) => `x${i};q=0.${i % 10}`).join(', ') + ', gzip',
      'gzip;q=0.5;q=1, br;;;, ;q=1, ,,,,',
      `${'a'.repeat(6000)}, gzip`,
      'gzip;q=-1, br;q=1e3, zstd;q=0x1',
      '\u00ff\u00fe;q=1, gzip',
    ];
    for (const ae of hostile) {
      const r = await get(gw.port, '/json', { 'accept-encoding': ae });
      expect(r.status).toBe(200);
      expect(decode(r).equals(TEXT)).toBe(true);
    }
    // An entry past the 32nd, or in a header over 4 KiB, is not looked at: identity, never an error.
    for (const ae of hostile.slice(0, 2)) {
      const late = await get(gw.port, '/json', { 'accept-encoding': ae });
      expect(late.headers['content-encoding']).toBeUndefined();
    }
    const first = await get(gw.port, '/json', { 'accept-encoding': `gzip, ${hostile[0]!}` });
    expect(first.headers['content-encoding']).toBe('gzip');
    // A bare CR inside the value is refused by the HTTP parser before routing; the gateway keeps serving.
    const cr = await rawExchange(
      gw.port,
      'GET /json HTTP/1.1\r\nHost: test.local\r\nAccept-Encoding: gzip\rContent-Encoding: br\r\nConnection: close\r\n\r\n',
    );
    expect(statusOf(cr)).toBe(400);
    const after = await get(gw.port, '/json', { 'accept-encoding': 'gzip' });
    expect(decode(after).equals(TEXT)).toBe(true);
  });
  it('compresses over HTTP/2 (TLS listener) as DATA frames, without Content-Length', async () => {
    const session = h2connect(`https://127.0.0.1:${gw.tlsPort}`, {
      rejectUnauthorized: false,
      servername: 'test.local',
    });
    try {
      const r = await new Promise<Raw>((resolve, reject) => {
        const stream = session.request({
          ':path': '/json',
          ':authority': 'test.local',
          'accept-encoding': 'br',
        });
        let headers: Raw['headers'] = {};
        const chunks: Buffer[] = [];
        stream.on('response', (h) => {
          headers = h as Raw['headers'];
        });
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () =>
          resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks) }),
        );
        stream.on('error', reject);
      });
      expect(r.status).toBe(200);
      expect(r.headers['content-encoding']).toBe('br');
      expect(r.headers['content-length']).toBeUndefined();
      expect(decode(r).equals(TEXT)).toBe(true);
    } finally {
      session.close();
    }
  });

  it('a client that stops reading a compressed response is abandoned after the send timeout; one that leaves mid-stream frees it', async () => {
    const before = gw.proxy.counterValues().responsesAbandoned!;
    const stalled = request({
      host: '127.0.0.1',
      port: gw.port,
      path: '/random',
      headers: { host: 'test.local', 'accept-encoding': 'gzip' },
    });
    stalled.on('response', (res) => res.pause());
    stalled.on('error', () => {});
    stalled.end();
    await waitFor(() => gw.proxy.counterValues().responsesAbandoned! > before, {
      timeoutMs: 15_000,
      message: 'abandoned',
    });
    const gone = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: gw.port,
          path: '/big',
          headers: { host: 'test.local', 'accept-encoding': 'zstd' },
        },
        (res) => {
          res.once('data', () => {
            req.destroy();
            resolve(res.statusCode ?? 0);
          });
        },
      );
      req.on('error', () => {});
      req.on('close', () => resolve(0));
      req.end();
      req.on('timeout', reject);
    });
    expect(gone).toBe(200);
    // Still serving, and nothing was left in flight upstream.
    const r = await get(gw.port, '/json', { 'accept-encoding': 'gzip' });
    expect(decode(r).equals(TEXT)).toBe(true);
    await waitFor(() => [...gw.proxy.pools.entries()].every(([, u]) => u.inFlight === 0), {
      message: 'no try in flight',
    });
  });
});

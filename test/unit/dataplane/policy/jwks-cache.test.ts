/**
 * The JWKS cache against a real loopback HTTP server: size cap, timeout, negative cache with backoff, one fetch
 * for concurrent requests, stale keys during an outage, rotation cooldown. Time is an injected clock (no sleeps);
 * the server counts what it was asked.
 */
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { JwksCache, type JwksFetchResult } from '../../../../src/dataplane/policy/jwks-cache.ts';

const k1 = {
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' }),
  kid: 'k1',
  alg: 'RS256',
};
const k2 = {
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' }),
  kid: 'k2',
  alg: 'RS256',
};

type Mode = 'ok' | 'fail' | 'huge-declared' | 'huge-chunked' | 'hang' | 'not-json';
let mode: Mode = 'ok';
let keys: object[] = [k1];
let hits = 0;
let bytesSent = 0;
let server: Server;
let url: string;
const agent = new Agent();
const hung: ServerResponse[] = [];

beforeAll(async () => {
  server = createServer((_req, res) => {
    hits++;
    if (mode === 'fail') return res.writeHead(500).end('down');
    if (mode === 'not-json') return res.writeHead(200).end('<html>');
    if (mode === 'hang') return void hung.push(res);
    if (mode === 'huge-declared') {
      res.writeHead(200, { 'content-length': String(50 * 1024 * 1024) });
      return res.write(Buffer.alloc(1024, 32), () => {});
    }
    if (mode === 'huge-chunked') {
      res.writeHead(200, { 'content-type': 'application/json' });
      // Writes until the client goes away: the cap must cut it off, not read 50 MB.
      const chunk = Buffer.alloc(64 * 1024, 32);
      const pump = () => {
        while (!res.destroyed && bytesSent < 50 * 1024 * 1024) {
          bytesSent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('close', () => {});
      return pump();
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  server.listen({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
});

afterAll(async () => {
  for (const r of hung) r.destroy();
  server.closeAllConnections();
  server.close();
  await agent.close();
});

beforeEach(() => {
  mode = 'ok';
  keys = [k1];
  hits = 0;
  bytesSent = 0;
});

function cache(opts: { timeoutMs?: number } = {}) {
  const clock = { t: 1_000_000 };
  const results: JwksFetchResult[] = [];
  const c = new JwksCache({
    url,
    cacheMs: 10_000,
    cooldownMs: 1_000,
    agent,
    now: () => clock.t,
    random: () => 0.5,
    onFetch: (r) => results.push(r),
    ...opts,
  });
  const get = (kid: string) =>
    c.resolve({ alg: 'RS256', kid }, { payload: '', signature: '', protected: '' });
  return { c, clock, results, get };
}

const codeOf = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code;
  }
};

describe('JwksCache', () => {
  it('fetches once for many concurrent requests and serves from the cache until it expires', async () => {
    const { clock, get } = cache();
    const all = await Promise.all(Array.from({ length: 20 }, () => get('k1')));
    expect(all.every((k) => k !== undefined)).toBe(true);
    expect(hits).toBe(1);
    clock.t += 9_999;
    await get('k1');
    expect(hits).toBe(1);
    clock.t += 1;
    await get('k1');
    expect(hits).toBe(2);
  });

  it('a failing endpoint is not refetched per request: failures are cached with a doubling backoff', async () => {
    mode = 'fail';
    const { c, clock, results, get } = cache();
    for (let i = 0; i < 50; i++) expect(await codeOf(get('k1'))).toBe('EDGEGATE_JWKS_UNAVAILABLE');
    expect(hits).toBe(1);
    expect(c.lastError).toBe('status 500');
    // lib/backoff's pacing with the random draw fixed at the middle: 750 ms, then 1.5 s (0.75 of 1 s, 2 s…)
    clock.t += 749;
    await codeOf(get('k1'));
    expect(hits).toBe(1);
    clock.t += 1;
    await codeOf(get('k1'));
    expect(hits).toBe(2);
    clock.t += 1_499;
    await codeOf(get('k1'));
    expect(hits).toBe(2);
    clock.t += 1;
    await codeOf(get('k1'));
    expect(hits).toBe(3);
    expect(results).toEqual(['status', 'status', 'status']);
    // the backoff is capped at 60 s
    for (let i = 0; i < 10; i++) {
      clock.t += 61_000;
      await codeOf(get('k1'));
    }
    expect(hits).toBe(13);
    // recovery: the next attempt after the backoff succeeds, and the backoff is reset
    mode = 'ok';
    clock.t += 61_000;
    expect(await codeOf(get('k1'))).toBe('ok');
    expect(c.retryAt).toBe(0);
  });

  it('keeps keys it had through an outage for one more cache period (stale-if-error), then fails closed', async () => {
    const { clock, get } = cache();
    await get('k1');
    mode = 'fail';
    clock.t += 10_000;
    expect(await codeOf(get('k1'))).toBe('ok');
    expect(hits).toBe(2);
    clock.t += 9_999;
    expect(await codeOf(get('k1'))).toBe('ok');
    clock.t += 1;
    expect(await codeOf(get('k1'))).toBe('EDGEGATE_JWKS_UNAVAILABLE');
  });

  it('refuses a response larger than the cap: declared or streamed, without reading it whole', async () => {
    mode = 'huge-declared';
    const a = cache();
    expect(await codeOf(a.get('k1'))).toBe('EDGEGATE_JWKS_UNAVAILABLE');
    expect(a.results).toEqual(['too-large']);
    mode = 'huge-chunked';
    const b = cache();
    expect(await codeOf(b.get('k1'))).toBe('EDGEGATE_JWKS_UNAVAILABLE');
    expect(b.results).toEqual(['too-large']);
    expect(b.c.lastError).toMatch(/above 262144 bytes/);
    // the server was stopped long before 50 MB (socket buffers may hold a few MB)
    expect(bytesSent).toBeLessThan(16 * 1024 * 1024);
  });

  it('gives up on an endpoint that does not answer within the timeout', async () => {
    mode = 'hang';
    const { results, get } = cache({ timeoutMs: 200 });
    expect(await codeOf(get('k1'))).toBe('EDGEGATE_JWKS_UNAVAILABLE');
    expect(results).toEqual(['timeout']);
  });

  it('refuses an answer that is not a JWK Set', async () => {
    mode = 'not-json';
    const { results, get } = cache();
    expect(await codeOf(get('k1'))).toBe('EDGEGATE_JWKS_UNAVAILABLE');
    expect(results).toEqual(['invalid']);
  });

  it('an unknown kid refetches at most once per cooldown (rotation), not per request', async () => {
    const { clock, get } = cache();
    await get('k1');
    expect(await codeOf(get('k2'))).toBe('ERR_JWKS_NO_MATCHING_KEY');
    expect(hits).toBe(1); // within the cooldown of the first fetch
    clock.t += 1_000;
    keys = [k1, k2];
    expect(await codeOf(get('k2'))).toBe('ok');
    expect(hits).toBe(2);
    for (let i = 0; i < 10; i++) await codeOf(get('nope'));
    expect(hits).toBe(2);
  });
});

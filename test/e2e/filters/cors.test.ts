/**
 * CORS filter (Gateway API HTTPCORSFilter) through a real listener to a real upstream, with fetch (undici) and raw
 * sockets: preflights answered by the gateway (the upstream never sees them), actual responses decorated, a
 * disallowed origin gets no CORS header at all, hostile Origin values are never reflected.
 */
import type { IncomingMessage } from 'node:http';
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
import { freePort } from '../../support/ports.ts';

let up: Upstream;
const seen: IncomingMessage[] = [];
const gateways: Gateway[] = [];

beforeAll(async () => {
  up = await startUpstream('app', (req, res) => {
    seen.push(req);
    req.resume();
    req.on('end', () => {
      // An upstream that sets its own, too permissive, CORS headers: the gateway's filter owns them.
      res.writeHead(200, {
        'content-type': 'application/json',
        'access-control-allow-origin': '*',
        'access-control-allow-credentials': 'true',
        vary: 'Accept-Language',
        'x-total': '3',
      });
      res.end(JSON.stringify({ method: req.method }));
    });
  });
});

afterAll(async () => {
  for (const g of gateways) await g.close();
  await up.close();
});

async function gatewayWith(cors: Record<string, unknown>): Promise<string> {
  const gw = await startGateway(
    tableOf(
      { rules: [{ filters: [{ type: 'CORS', cors }], backends: [{ consul: { service: 'app' } }] }] },
      { app: [up.port] },
    ),
  );
  gateways.push(gw);
  return `http://127.0.0.1:${gw.port}`;
}

function corsHeaders(r: Response): Record<string, string> {
  const out: Record<string, string> = {};
  r.headers.forEach((v, k) => {
    if (k.startsWith('access-control-')) out[k] = v;
  });
  return out;
}

const preflight = (origin: string, method = 'PUT', extra: Record<string, string> = {}) => ({
  method: 'OPTIONS',
  headers: { origin, 'access-control-request-method': method, ...extra },
});

describe('CORS filter', () => {
  let base: string;
  beforeAll(async () => {
    base = await gatewayWith({
      allowOrigins: ['https://app.example.com', 'https://*.example.org', 'http://localhost:3000'],
      allowMethods: ['GET', 'PUT', 'DELETE'],
      allowHeaders: ['Content-Type', 'X-Token'],
      exposeHeaders: ['X-Total'],
      allowCredentials: true,
      maxAge: 600,
    });
  });

  it('answers a preflight from an allowed origin at the gateway: 204, the CORS headers, nothing upstream', async () => {
    const before = seen.length;
    const r = await fetch(
      `${base}/items/1`,
      preflight('https://app.example.com', 'PUT', {
        'access-control-request-headers': 'content-type,x-token',
      }),
    );
    expect(r.status).toBe(204);
    expect(corsHeaders(r)).toEqual({
      'access-control-allow-origin': 'https://app.example.com',
      'access-control-allow-credentials': 'true',
      'access-control-allow-methods': 'GET, PUT, DELETE',
      'access-control-allow-headers': 'content-type, x-token',
      'access-control-max-age': '600',
    });
    expect(r.headers.get('vary')).toContain('Origin');
    expect(r.headers.get('content-length')).toBeNull();
    expect(seen.length).toBe(before);
  });

  it('answers a preflight from a disallowed origin with 204 and no CORS header, still without the upstream', async () => {
    const before = seen.length;
    for (const origin of [
      'https://evil.example',
      'http://app.example.com', // scheme differs
      'https://app.example.com:8443', // port differs (443 assumed)
      'https://example.org', // the wildcard needs a label to its left
      'https://app.example.com.evil.net',
      'https://evilexample.org',
      'null',
    ]) {
      const r = await fetch(`${base}/`, preflight(origin));
      expect(r.status, origin).toBe(204);
      expect(corsHeaders(r), origin).toEqual({});
    }
    expect(seen.length).toBe(before);
  });

  it('matches wildcards greedily to the left, default ports and explicit ports', async () => {
    for (const origin of [
      'https://a.example.org',
      'https://a.b.c.example.org',
      'https://A.Example.ORG',
      'https://app.example.com:443',
      'http://localhost:3000',
    ]) {
      const r = await fetch(`${base}/`, preflight(origin));
      expect(r.headers.get('access-control-allow-origin'), origin).toBe(origin.toLowerCase());
    }
    const r = await fetch(`${base}/`, preflight('http://localhost:3001'));
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('decorates an actual request from an allowed origin and replaces the upstream’s CORS headers', async () => {
    const r = await fetch(`${base}/items`, { headers: { origin: 'https://a.example.org' } });
    expect(r.status).toBe(200);
    expect(corsHeaders(r)).toEqual({
      'access-control-allow-origin': 'https://a.example.org',
      'access-control-allow-credentials': 'true',
      'access-control-expose-headers': 'x-total',
    });
    expect(r.headers.get('vary')).toBe('Accept-Language, Origin');
    expect(await r.json()).toEqual({ method: 'GET' });
  });

  it('gives a disallowed origin (and a request without Origin) no CORS header at all, upstream’s included', async () => {
    for (const headers of [{ origin: 'https://evil.example' }, {}] as Record<string, string>[]) {
      const r = await fetch(`${base}/items`, { headers });
      expect(r.status).toBe(200);
      expect(corsHeaders(r)).toEqual({});
      expect(r.headers.get('vary')).toBe('Accept-Language, Origin');
    }
  });

  it('forwards an OPTIONS request that is no preflight (no Access-Control-Request-Method)', async () => {
    const before = seen.length;
    const r = await fetch(`${base}/`, { method: 'OPTIONS', headers: { origin: 'https://app.example.com' } });
    expect(r.status).toBe(200);
    expect(seen.length).toBe(before + 1);
    expect(r.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
  });

  it('origin reflection and response splitting via Origin: hostile values (huge, repeated, CR/LF) are never reflected', async () => {
    const huge = `https://${'a'.repeat(8000)}.example.org`;
    let r = await fetch(`${base}/`, preflight(huge));
    expect(r.status).toBe(204);
    expect(corsHeaders(r)).toEqual({});
    // Two Origin headers: Node joins them; no single origin, so none is allowed.
    const twice = await rawExchange(
      Number(new URL(base).port),
      'OPTIONS / HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example.com\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n',
    );
    expect(statusOf(twice)).toBe(204);
    expect(twice.toLowerCase()).not.toContain('access-control-allow-origin');
    // A CR in the value is refused by the HTTP parser (400), a percent-encoded CRLF is just a bad origin.
    const cr = await rawExchange(
      Number(new URL(base).port),
      'OPTIONS / HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example.com\rSet-Cookie: x=1\r\nAccess-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n',
    );
    expect(statusOf(cr)).toBe(400);
    expect(cr.toLowerCase()).not.toContain('set-cookie');
    r = await fetch(`${base}/`, preflight('https://app.example.com%0d%0aSet-Cookie:%20x=1'));
    expect(corsHeaders(r)).toEqual({});
    expect(r.headers.get('set-cookie')).toBeNull();
    // And the gateway still serves.
    r = await fetch(`${base}/`, preflight('https://app.example.com'));
    expect(r.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
  });
});

describe('CORS wildcards and credentials', () => {
  it('`*` without credentials answers `*` for methods, headers, origins and exposes `*`; no Vary: Origin', async () => {
    const base = await gatewayWith({
      allowOrigins: ['*'],
      allowMethods: ['*'],
      allowHeaders: ['*'],
      exposeHeaders: ['*'],
    });
    let r = await fetch(
      `${base}/`,
      preflight('https://anything.test', 'PATCH', { 'access-control-request-headers': 'x-a' }),
    );
    expect(corsHeaders(r)).toEqual({
      'access-control-allow-origin': '*',
      'access-control-allow-methods': '*',
      'access-control-allow-headers': '*',
      'access-control-max-age': '5',
    });
    expect(r.headers.get('vary')).toBeNull();
    r = await fetch(`${base}/`, { headers: { origin: 'null' } });
    expect(corsHeaders(r)).toEqual({
      'access-control-allow-origin': '*',
      'access-control-expose-headers': '*',
    });
    expect(r.headers.get('vary')).toBe('Accept-Language');
  });

  it('credentialed wildcard (null-origin attack): `*` with credentials never answers `*`, echoes only validated values, never `null`', async () => {
    const base = await gatewayWith({
      allowOrigins: ['*'],
      allowMethods: ['*'],
      allowHeaders: ['*'],
      exposeHeaders: ['*', 'X-Total'],
      allowCredentials: true,
    });
    let r = await fetch(
      `${base}/`,
      preflight('https://x.test:8080', 'PATCH', { 'access-control-request-headers': 'X-A, x-b' }),
    );
    expect(corsHeaders(r)).toEqual({
      'access-control-allow-origin': 'https://x.test:8080',
      'access-control-allow-credentials': 'true',
      'access-control-allow-methods': 'PATCH',
      'access-control-allow-headers': 'x-a, x-b',
      'access-control-max-age': '5',
    });
    // Requested headers that are no token list are not echoed.
    r = await fetch(
      `${base}/`,
      preflight('https://x.test', 'PATCH', { 'access-control-request-headers': 'x-a, b@d' }),
    );
    expect(r.headers.get('access-control-allow-headers')).toBeNull();
    r = await fetch(
      `${base}/`,
      preflight('https://x.test', 'PATCH', {
        'access-control-request-headers': Array(100).fill('x').join(','),
      }),
    );
    expect(r.headers.get('access-control-allow-headers')).toBeNull();
    r = await fetch(`${base}/`, preflight('null'));
    expect(corsHeaders(r)).toEqual({});
    r = await fetch(`${base}/`, { headers: { origin: 'https://x.test' } });
    expect(corsHeaders(r)).toEqual({
      'access-control-allow-origin': 'https://x.test',
      'access-control-allow-credentials': 'true',
      'access-control-expose-headers': 'x-total',
    });
  });

  it('counts preflights by result', async () => {
    const base = await gatewayWith({ allowOrigins: ['https://ok.test'] });
    const gw = gateways.at(-1)!;
    const before = gw.proxy.counterValues();
    await fetch(`${base}/`, preflight('https://ok.test'));
    await fetch(`${base}/`, preflight('https://no.test'));
    await fetch(`${base}/`, preflight('https://no.test'));
    const after = gw.proxy.counterValues();
    const key = (r: string) => `corsPreflights\u0000${r}`;
    expect(after[key('allowed')]! - before[key('allowed')]!).toBe(1);
    expect(after[key('refused')]! - before[key('refused')]!).toBe(2);
  });
});

describe('answers the gateway generates itself', () => {
  it('carry the CORS headers for an allowed origin (a 502 the page can read), none for another', async () => {
    const gw = await startGateway(
      tableOf(
        {
          rules: [
            {
              filters: [
                {
                  type: 'CORS',
                  cors: { allowOrigins: ['https://app.test'], exposeHeaders: ['x-request-id'] },
                },
              ],
              backends: [{ consul: { service: 'dead' } }],
            },
          ],
        },
        { dead: [await freePort({ udp: false })] },
      ),
    );
    gateways.push(gw);
    let r = await fetch(`http://127.0.0.1:${gw.port}/`, { headers: { origin: 'https://app.test' } });
    expect(r.status).toBe(502);
    expect(corsHeaders(r)).toEqual({
      'access-control-allow-origin': 'https://app.test',
      'access-control-expose-headers': 'x-request-id',
    });
    expect(r.headers.get('vary')).toBe('Origin');
    r = await fetch(`http://127.0.0.1:${gw.port}/`, { headers: { origin: 'https://evil.test' } });
    expect(r.status).toBe(502);
    expect(corsHeaders(r)).toEqual({});
  });
});

describe('policies', () => {
  it('a rate-limit refusal (429) carries the CORS headers; preflights are answered before the limit', async () => {
    const gw = await startGateway(
      tableOf(
        {
          rules: [
            {
              filters: [{ type: 'CORS', cors: { allowOrigins: ['https://app.test'] } }],
              policies: { rateLimit: { requests: 1, period: '1h' } },
              backends: [{ consul: { service: 'app' } }],
            },
          ],
        },
        { app: [up.port] },
      ),
      {},
      {},
      { policies: true },
    );
    gateways.push(gw);
    const base = `http://127.0.0.1:${gw.port}`;
    expect((await fetch(`${base}/`, { headers: { origin: 'https://app.test' } })).status).toBe(200);
    const limited = await fetch(`${base}/`, { headers: { origin: 'https://app.test' } });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('access-control-allow-origin')).toBe('https://app.test');
    const pre = await fetch(`${base}/`, preflight('https://app.test'));
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://app.test');
  });
});

describe('routes without a CORS filter', () => {
  it('forward preflights to the upstream and leave its CORS headers alone', async () => {
    const gw = await startGateway(
      tableOf({ rules: [{ backends: [{ consul: { service: 'app' } }] }] }, { app: [up.port] }),
    );
    gateways.push(gw);
    const before = seen.length;
    const r = await fetch(`http://127.0.0.1:${gw.port}/`, preflight('https://evil.example'));
    expect(r.status).toBe(200);
    expect(seen.length).toBe(before + 1);
    expect(r.headers.get('access-control-allow-origin')).toBe('*');
  });
});

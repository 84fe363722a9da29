/**
 * The RequestRedirect filter as the data plane answers it (ProxyPipeline's redirect branch): scheme, hostname,
 * port and path combinations, the default ports of http and https, ReplaceFullPath / ReplacePrefixMatch, status
 * codes, the query, and the listener's own scheme. Routes are compiled from GatewayRoute specs and served by an
 * in-process pipeline on loopback; no upstream is involved.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProxySettings } from '../../../../src/dataplane/proxy/proxy.ts';
import { type Gateway, rawExchange, startGateway, tableOf } from '../../../support/inproc-gateway.ts';

/** One rule per case: matched by its path prefix, answered by its redirect filter. */
function redirectRule(prefix: string, requestRedirect: Record<string, unknown>) {
  return {
    matches: [{ path: { type: 'PathPrefix', value: prefix } }],
    filters: [{ type: 'RequestRedirect', requestRedirect }],
  };
}

const RULES = [
  redirectRule('/plain', {}),
  redirectRule('/to-https', { scheme: 'https' }),
  redirectRule('/to-https-443', { scheme: 'https', port: 443 }),
  redirectRule('/to-https-8443', { scheme: 'https', port: 8443 }),
  redirectRule('/to-http', { scheme: 'http' }),
  redirectRule('/to-http-80', { scheme: 'http', port: 80 }),
  redirectRule('/to-http-8080', { scheme: 'http', port: 8080 }),
  redirectRule('/port-80', { port: 80 }),
  redirectRule('/port-443', { port: 443 }),
  redirectRule('/port-9000', { port: 9000 }),
  redirectRule('/host', { hostname: 'other.example' }),
  redirectRule('/host-https', { hostname: 'other.example', scheme: 'https' }),
  redirectRule('/full', { path: { type: 'ReplaceFullPath', replaceFullPath: '/landing' } }),
  redirectRule('/prefix', { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' } }),
  redirectRule('/slash-prefix', { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new/' } }),
  redirectRule('/to-root', { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } }),
  redirectRule('/s301', { statusCode: 301 }),
  redirectRule('/s303', { statusCode: 303 }),
  redirectRule('/s307', { statusCode: 307 }),
  redirectRule('/s308', { statusCode: 308 }),
];

let httpGw: Gateway;
let httpsGw: Gateway;
let rootGw: Gateway;

async function start(settings: Partial<ProxySettings>, rules = RULES): Promise<Gateway> {
  return startGateway(tableOf({ rules }, {}), settings);
}

beforeAll(async () => {
  httpGw = await start({ proto: 'http' });
  // A plain socket with the listener's scheme set to https: what a worker behind TLS offload is told.
  httpsGw = await start({ proto: 'https' });
  rootGw = await start({}, [
    redirectRule('/', { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' } }),
  ]);
});
afterAll(async () => {
  await httpGw?.close();
  await httpsGw?.close();
  await rootGw?.close();
});

interface Redirect {
  status: number;
  location: string | undefined;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function send(gw: Gateway, path: string, host: string | undefined, method = 'GET'): Promise<Redirect> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (host !== undefined) headers.host = host;
    const req = httpRequest(
      { host: '127.0.0.1', port: gw.port, path, method, headers, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            location: res.headers.location,
            headers: res.headers,
            body,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function location(gw: Gateway, path: string, host = 'example.org:8080'): Promise<string | undefined> {
  const r = await send(gw, path, host);
  expect(r.status).toBe(302);
  return r.location;
}

describe('scheme and port (http listener)', () => {
  it.each([
    // No scheme, no port: the request's own port (from Host) is kept.
    ['/plain/x', 'example.org:8080', 'http://example.org:8080/plain/x'],
    ['/plain/x', 'example.org', 'http://example.org/plain/x'],
    // The default port of the scheme is never written.
    ['/plain/x', 'example.org:80', 'http://example.org/plain/x'],
    // A scheme change drops the request's port: the new scheme's default.
    ['/to-https/x', 'example.org:8080', 'https://example.org/to-https/x'],
    ['/to-https-443/x', 'example.org:8080', 'https://example.org/to-https-443/x'],
    ['/to-https-8443/x', 'example.org:8080', 'https://example.org:8443/to-https-8443/x'],
    ['/to-http-80/x', 'example.org:8080', 'http://example.org/to-http-80/x'],
    ['/to-http-8080/x', 'example.org', 'http://example.org:8080/to-http-8080/x'],
    // A port alone replaces the request's port; it is omitted only when it is the scheme's default.
    ['/port-80/x', 'example.org:8080', 'http://example.org/port-80/x'],
    ['/port-443/x', 'example.org:8080', 'http://example.org:443/port-443/x'],
    ['/port-9000/x', 'example.org', 'http://example.org:9000/port-9000/x'],
  ])('%s with Host %s → %s', async (path, host, expected) => {
    expect(await location(httpGw, path, host)).toBe(expected);
  });

  // Gateway API's HTTPRequestRedirectFilter: without a port, "if the redirect scheme is not-empty, the redirect
  // port MUST be the well-known port associated with the redirect scheme" (http → 80).
  it('scheme http without a port on an http listener → port 80 (omitted)', async () => {
    expect(await location(httpGw, '/to-http/x', 'example.org:8080')).toBe('http://example.org/to-http/x');
  });
});

describe('scheme and port (https listener)', () => {
  it.each([
    ['/plain/x', 'example.org:443', 'https://example.org/plain/x'],
    ['/plain/x', 'example.org:8443', 'https://example.org:8443/plain/x'],
    ['/to-http/x', 'example.org:8443', 'http://example.org/to-http/x'],
    ['/to-http-8080/x', 'example.org', 'http://example.org:8080/to-http-8080/x'],
    ['/port-443/x', 'example.org:8443', 'https://example.org/port-443/x'],
    ['/port-80/x', 'example.org', 'https://example.org:80/port-80/x'],
  ])('%s with Host %s → %s', async (path, host, expected) => {
    expect(await location(httpsGw, path, host)).toBe(expected);
  });

  // The same rule from the other side: `scheme: https` on an https listener means port 443.
  it('scheme https without a port on an https listener → port 443 (omitted)', async () => {
    expect(await location(httpsGw, '/to-https/x', 'example.org:8443')).toBe('https://example.org/to-https/x');
  });
});

describe('hostname', () => {
  it('replaces the host and keeps the request’s port when the scheme stays', async () => {
    expect(await location(httpGw, '/host/x', 'example.org:8080')).toBe('http://other.example:8080/host/x');
    expect(await location(httpGw, '/host/x', 'example.org')).toBe('http://other.example/host/x');
  });

  it('with a scheme change, the new scheme’s default port', async () => {
    expect(await location(httpGw, '/host-https/x', 'example.org:8080')).toBe(
      'https://other.example/host-https/x',
    );
  });

  it('without a hostname, the request’s host as matched: lower-cased, without a trailing dot', async () => {
    expect(await location(httpGw, '/plain/x', 'Example.ORG.:8080')).toBe('http://example.org:8080/plain/x');
  });

  it('an IPv6 literal keeps its brackets, and its port is told apart from the address', async () => {
    expect(await location(httpGw, '/plain/x', '[::1]:8080')).toBe('http://[::1]:8080/plain/x');
    expect(await location(httpGw, '/plain/x', '[::1]')).toBe('http://[::1]/plain/x');
    expect(await location(httpGw, '/to-https/x', '[2001:db8::1]:8080')).toBe(
      'https://[2001:db8::1]/to-https/x',
    );
  });
});

describe('path', () => {
  it.each([
    ['/full', '/landing'],
    ['/full/deep/er', '/landing'],
    ['/prefix', '/new'],
    ['/prefix/', '/new/'],
    ['/prefix/a/b', '/new/a/b'],
    ['/slash-prefix/a', '/new/a'],
    ['/slash-prefix', '/new'],
    ['/to-root/a/b', '/a/b'],
    ['/to-root', '/'],
    // The path is normalized before it is matched and rewritten.
    ['/prefix/x/../a', '/new/a'],
    ['/prefix//a/%62', '/new/a/b'],
  ])('%s → %s', async (path, expected) => {
    expect(await location(httpGw, path, 'example.org')).toBe(`http://example.org${expected}`);
  });

  it('a prefix match on "/" puts the new prefix in front of the whole path', async () => {
    expect(await location(rootGw, '/a/b', 'example.org')).toBe('http://example.org/v2/a/b');
    expect(await location(rootGw, '/', 'example.org')).toBe('http://example.org/v2');
  });

  it('a prefix matches whole segments only', async () => {
    const r = await send(httpGw, '/prefixed/a', 'example.org');
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body).error).toBe('EDGEGATE_NO_ROUTE');
  });

  it('the query is kept as sent, with both path rewrites', async () => {
    expect(await location(httpGw, '/prefix/a?x=%20y&z', 'example.org')).toBe(
      'http://example.org/new/a?x=%20y&z',
    );
    expect(await location(httpGw, '/full/a?x=1', 'example.org')).toBe('http://example.org/landing?x=1');
    expect(await location(httpGw, '/plain?', 'example.org')).toBe('http://example.org/plain');
  });

  it('an absolute-form request target redirects on its path', async () => {
    const res = await rawExchange(
      httpGw.port,
      'GET http://example.org/prefix/a?q=1 HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n',
    );
    expect(res).toMatch(/^HTTP\/1\.1 302 /);
    expect(res).toMatch(/\r\nlocation: http:\/\/example\.org\/new\/a\?q=1\r\n/i);
  });
});

describe('status and response', () => {
  it.each([
    ['/plain/x', 302],
    ['/s301/x', 301],
    ['/s303/x', 303],
    ['/s307/x', 307],
    ['/s308/x', 308],
  ])('%s → %i', async (path, status) => {
    const r = await send(httpGw, path, 'example.org');
    expect(r.status).toBe(status);
    expect(r.location).toBe(`http://example.org${path}`);
  });

  it('the answer is empty and carries the request id, for any method', async () => {
    for (const method of ['GET', 'POST', 'DELETE', 'HEAD']) {
      const r = await send(httpGw, '/s308/x', 'example.org', method);
      expect(r.status).toBe(308);
      expect(r.body).toBe('');
      expect(r.headers['content-length']).toBe('0');
      expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it('a path the gateway refuses is refused before any redirect', async () => {
    const r = await send(httpGw, '/plain/a%2Fb', 'example.org');
    expect(r.status).toBe(400);
    expect(r.location).toBeUndefined();
  });
});

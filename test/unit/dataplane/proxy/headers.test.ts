/**
 * Header handling between client and upstream: the pure functions of src/dataplane/proxy/headers.ts and h2-compat.ts, then
 * what ProxyPipeline builds from them (forwarded headers with and without trusted hops, route header modifiers,
 * host rewrites), through an in-process pipeline on loopback against an echo endpoint.
 */
import { request as httpRequest } from 'node:http';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { HOP_BY_HOP_HEADERS as HOP_BY_HOP } from '../../../../src/api/reserved-headers.ts';
import { forwardedTrailers, requestHasBody } from '../../../../src/dataplane/proxy/h2-compat.ts';
import {
  acceptableRequestId,
  clientResponseFields,
  clientResponseHeaders,
  connectionTokens,
  type ForwardedFacts,
  headerObject,
  upstreamRequestHeaders,
} from '../../../../src/dataplane/proxy/headers.ts';
import type { ProxySettings } from '../../../../src/dataplane/proxy/proxy.ts';
import type { HeaderEdits } from '../../../../src/table/types.ts';
import { rawExchange, startEcho, startGateway, tableOf } from '../../../support/inproc-gateway.ts';

const FACTS: ForwardedFacts = {
  host: 'upstream.host',
  clientAddress: '10.0.0.7',
  proto: 'http',
  originalHost: 'public.example',
  requestId: 'rid-1',
  priorForwardedFor: undefined,
};

const NO_EDITS: HeaderEdits = { set: [], add: [], remove: [] };

/** The flat [name, value, …] list as pairs, for readable assertions. */
function pairs(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}
function valuesOf(flat: string[], name: string): string[] {
  return pairs(flat)
    .filter(([n]) => n.toLowerCase() === name)
    .map(([, v]) => v);
}

describe('connectionTokens', () => {
  it('lists the header names a Connection header names, lower-cased, without close and keep-alive', () => {
    expect(connectionTokens(undefined)).toBeUndefined();
    expect(connectionTokens('close')).toBeUndefined();
    expect(connectionTokens('Keep-Alive, close')).toBeUndefined();
    expect(connectionTokens(' , ,')).toBeUndefined();
    expect(connectionTokens('close, X-Secret ,  x-other')).toEqual(new Set(['x-secret', 'x-other']));
    expect(connectionTokens(['X-A', 'close, X-B', 'x-a'])).toEqual(new Set(['x-a', 'x-b']));
  });
});

describe('upstreamRequestHeaders', () => {
  it('removes every hop-by-hop header, whatever its case', () => {
    const raw: string[] = [];
    for (const name of HOP_BY_HOP) raw.push(name.toUpperCase(), 'v');
    raw.push('Keep-Alive', 'timeout=5', 'X-Kept', 'yes');
    const out = upstreamRequestHeaders(raw, FACTS, undefined);
    for (const name of HOP_BY_HOP) expect(valuesOf(out, name)).toEqual([]);
    expect(valuesOf(out, 'x-kept')).toEqual(['yes']);
  });

  it('removes the headers a Connection header names, across several Connection headers', () => {
    const raw = [
      'Connection',
      'close, X-Secret',
      'X-Secret',
      's',
      'connection',
      'x-other',
      'X-Other',
      'o',
      'X-Kept',
      'k',
    ];
    const out = upstreamRequestHeaders(raw, FACTS, undefined);
    expect(valuesOf(out, 'x-secret')).toEqual([]);
    expect(valuesOf(out, 'x-other')).toEqual([]);
    expect(valuesOf(out, 'x-kept')).toEqual(['k']);
  });

  it('drops the client’s copies of the headers the gateway owns and sets its own, once each', () => {
    const raw = [
      'Host',
      'spoofed.example',
      'X-Forwarded-For',
      '6.6.6.6',
      'X-Forwarded-Proto',
      'https',
      'X-Forwarded-Host',
      'bank.example',
      'X-Request-Id',
      'client-id',
      'Forwarded',
      'for=6.6.6.6',
      'X-Real-IP',
      '6.6.6.6',
      'Expect',
      '100-continue',
    ];
    const out = upstreamRequestHeaders(raw, FACTS, undefined);
    expect(pairs(out)).toEqual([
      ['host', 'upstream.host'],
      ['x-forwarded-for', '10.0.0.7'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'public.example'],
      ['x-request-id', 'rid-1'],
    ]);
  });

  it('a Connection header naming a forwarded header cannot strip the one the gateway sets', () => {
    const raw = ['Connection', 'close, X-Forwarded-For, Host, X-Request-Id', 'X-Forwarded-For', '6.6.6.6'];
    const out = upstreamRequestHeaders(raw, FACTS, undefined);
    expect(valuesOf(out, 'x-forwarded-for')).toEqual(['10.0.0.7']);
    expect(valuesOf(out, 'host')).toEqual(['upstream.host']);
    expect(valuesOf(out, 'x-request-id')).toEqual(['rid-1']);
  });

  it('extends a trusted X-Forwarded-For chain with the peer address', () => {
    const out = upstreamRequestHeaders([], { ...FACTS, priorForwardedFor: '1.1.1.1, 2.2.2.2' }, undefined);
    expect(valuesOf(out, 'x-forwarded-for')).toEqual(['1.1.1.1, 2.2.2.2, 10.0.0.7']);
  });

  it('skips HTTP/2 pseudo-headers, keeps the other headers in order with their case and repeats, and joins cookies', () => {
    const raw = [
      ':method',
      'GET',
      ':path',
      '/x',
      ':authority',
      'a',
      'X-B',
      '1',
      'cookie',
      'a=1',
      'x-b',
      '2',
      'Cookie',
      'b=2',
    ];
    const out = upstreamRequestHeaders(raw, FACTS, undefined);
    // Split cookie fields (HTTP/2) become one `cookie` line joined with "; " (RFC 9113 §8.2.3), after the others.
    expect(pairs(out).slice(0, 3)).toEqual([
      ['X-B', '1'],
      ['x-b', '2'],
      ['cookie', 'a=1; b=2'],
    ]);
    expect(out.some((n) => n.startsWith(':'))).toBe(false);
  });

  it('applies a route’s set (replaces every client copy, any case), add (keeps them) and remove', () => {
    const raw = ['X-Env', 'client', 'x-env', 'client2', 'X-Tag', 'client-tag', 'X-Drop', 'd', 'X-Keep', 'k'];
    const edits: HeaderEdits = {
      set: [['x-env', 'prod']],
      add: [['x-tag', 'route-tag']],
      remove: ['x-drop'],
    };
    const out = upstreamRequestHeaders(raw, FACTS, edits);
    expect(valuesOf(out, 'x-env')).toEqual(['prod']);
    expect(valuesOf(out, 'x-tag')).toEqual(['client-tag', 'route-tag']);
    expect(valuesOf(out, 'x-drop')).toEqual([]);
    expect(valuesOf(out, 'x-keep')).toEqual(['k']);
  });

  it('empty edits change nothing', () => {
    const raw = ['X-A', '1'];
    expect(upstreamRequestHeaders(raw, FACTS, NO_EDITS)).toEqual(
      upstreamRequestHeaders(raw, FACTS, undefined),
    );
  });

  // A route's RequestHeaderModifier that names a header the gateway owns or a hop-by-hop one is refused by
  // validation (test/unit/api/validate.test.ts); should a table carry one anyway, it never reaches the upstream
  // beside the gateway's own copy (undici would refuse a second Host and blame the endpoint).
  it('route edits never duplicate a header the gateway owns nor bring back a hop-by-hop header', () => {
    const owned = ['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id'];
    const edits: HeaderEdits = {
      set: [...owned.map((n) => [n, 'route'] as [string, string]), ['transfer-encoding', 'chunked']],
      add: [
        ['connection', 'upgrade'],
        ['upgrade', 'h2c'],
      ],
      remove: [],
    };
    const out = upstreamRequestHeaders(['X-A', '1'], FACTS, edits);
    for (const n of owned) expect(valuesOf(out, n)).toHaveLength(1);
    for (const n of HOP_BY_HOP) expect(valuesOf(out, n)).toEqual([]);
  });
});

describe('clientResponseHeaders', () => {
  it('removes hop-by-hop headers and those the upstream’s Connection header names', () => {
    const out = clientResponseHeaders(
      {
        connection: 'close, x-internal',
        'keep-alive': 'timeout=5',
        'transfer-encoding': 'chunked',
        'proxy-authenticate': 'Basic',
        trailer: 'x-checksum',
        upgrade: 'h2c',
        'x-internal': 'secret',
        'content-type': 'text/plain',
      },
      undefined,
      'rid-9',
    );
    expect(out).toEqual({ 'content-type': 'text/plain', 'x-request-id': 'rid-9' });
  });

  it('keeps the upstream’s X-Request-Id, repeated headers as arrays and skips undefined values', () => {
    const out = clientResponseHeaders(
      { 'x-request-id': 'up-id', 'set-cookie': ['a=1', 'b=2'], 'x-none': undefined },
      undefined,
      'rid-9',
    );
    expect(out).toEqual({ 'x-request-id': 'up-id', 'set-cookie': ['a=1', 'b=2'] });
  });

  it('applies remove, then set, then add (appending to a single value or an array)', () => {
    const out = clientResponseHeaders(
      { server: 'internal/1.0', 'x-frame-options': 'ALLOW', vary: 'accept', 'set-cookie': ['a=1'] },
      {
        remove: ['server', 'x-absent'],
        set: [
          ['x-frame-options', 'DENY'],
          ['x-new', 'n'],
        ],
        add: [
          ['vary', 'origin'],
          ['set-cookie', 'c=3'],
          ['x-added', 'x'],
        ],
      },
      'rid-9',
    );
    expect(out).toEqual({
      'x-frame-options': 'DENY',
      'x-new': 'n',
      vary: ['accept', 'origin'],
      'set-cookie': ['a=1', 'c=3'],
      'x-added': 'x',
      'x-request-id': 'rid-9',
    });
  });

  it('a route may remove or replace the X-Request-Id the gateway would add', () => {
    expect(
      clientResponseHeaders({}, { remove: [], set: [['x-request-id', 'fixed']], add: [] }, 'rid'),
    ).toEqual({
      'x-request-id': 'fixed',
    });
  });
});

/** Each name's values in order: what a client's parser makes of a head, whatever the order of the names. */
function byName(flat: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const list = out[flat[i]!] ?? [];
    list.push(flat[i + 1]!);
    out[flat[i]!] = list;
  }
  return out;
}

describe('clientResponseFields (the flat relay of a route without response edits)', () => {
  it('leaves out hop-by-hop fields and those Connection names, lower-cases names, adds X-Request-Id', () => {
    const raw = [
      'Connection',
      'close, X-Internal',
      'Keep-Alive',
      'timeout=5',
      'Transfer-Encoding',
      'chunked',
      'X-Internal',
      'secret',
      'Content-Type',
      'text/plain',
      'Set-Cookie',
      'a=1',
      'Proxy-Connection',
      'keep-alive',
      'Set-Cookie',
      'b=2',
    ];
    expect(clientResponseFields(raw, 'rid')).toEqual([
      'content-type',
      'text/plain',
      'set-cookie',
      'a=1',
      'set-cookie',
      'b=2',
      'x-request-id',
      'rid',
    ]);
    expect(clientResponseFields(['X-Request-Id', 'up'], 'rid')).toEqual(['x-request-id', 'up']);
  });

  it('gives the fields clientResponseHeaders gives, for any head (property)', () => {
    const names = fc.constantFrom(
      'Connection',
      'connection',
      'Keep-Alive',
      'Transfer-Encoding',
      'TE',
      'Trailer',
      'Upgrade',
      'Proxy-Authenticate',
      'Proxy-Connection',
      'X-Request-Id',
      'Set-Cookie',
      'Content-Type',
      'content-length',
      'X-A',
      'x-a',
      'X-Internal',
      'Date',
      'Vary',
    );
    const values = fc.constantFrom('v', 'x-a', 'close', 'X-Internal, x-a', 'keep-alive, vary', 'a=1', '');
    fc.assert(
      fc.property(fc.array(fc.tuple(names, values), { maxLength: 12 }), (pairs) => {
        const raw = pairs.flat();
        const flat = clientResponseFields(raw, 'rid');
        // The object path as the pool runs it: headerObject, then clientResponseHeaders.
        const object = clientResponseHeaders(headerObject(raw), undefined, 'rid');
        const expected: Record<string, string[]> = {};
        for (const [n, v] of Object.entries(object)) expected[n] = Array.isArray(v) ? v : [v];
        expect(byName(flat)).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });
});

describe('acceptableRequestId', () => {
  it.each([
    ['abc-123', true],
    ['x'.repeat(200), true],
    ['x'.repeat(201), false],
    ['', false],
    ['has space', false],
    ['tab\there', false],
    ['é', false],
    ['ok~!#$%&*+-.^_`|', true],
  ])('%j → %s', (value, ok) => {
    expect(acceptableRequestId(value)).toBe(ok);
  });
  it('undefined is not an id', () => {
    expect(acceptableRequestId(undefined)).toBe(false);
  });
});

describe('forwardedTrailers (HTTP/2 clients)', () => {
  it('passes trailers on, joins repeats, never pseudo or framing fields; undefined when nothing is left', () => {
    expect(forwardedTrailers(undefined)).toBeUndefined();
    expect(forwardedTrailers(null)).toBeUndefined();
    expect(forwardedTrailers({})).toBeUndefined();
    expect(
      forwardedTrailers({ 'content-length': '5', 'transfer-encoding': 'chunked', ':status': '200' }),
    ).toBeUndefined();
    expect(forwardedTrailers({ 'grpc-status': '0', 'x-sum': ['a', 'b'], 'x-none': undefined })).toEqual({
      'grpc-status': '0',
      'x-sum': 'a, b',
    });
  });
});

describe('requestHasBody', () => {
  const h1 = (headers: Record<string, string>) =>
    ({ httpVersionMajor: 1, headers }) as unknown as Parameters<typeof requestHasBody>[0];
  const h2 = (headers: Record<string, string>, endAfterHeaders: boolean) =>
    ({ httpVersionMajor: 2, headers, stream: { endAfterHeaders } }) as unknown as Parameters<
      typeof requestHasBody
    >[0];
  it('HTTP/1.x: a non-zero Content-Length or any Transfer-Encoding', () => {
    expect(requestHasBody(h1({}))).toBe(false);
    expect(requestHasBody(h1({ 'content-length': '0' }))).toBe(false);
    expect(requestHasBody(h1({ 'content-length': '3' }))).toBe(true);
    expect(requestHasBody(h1({ 'transfer-encoding': 'chunked' }))).toBe(true);
  });
  it('HTTP/2: Content-Length when given, else whether the stream ended with its headers', () => {
    expect(requestHasBody(h2({}, true))).toBe(false);
    expect(requestHasBody(h2({}, false))).toBe(true);
    expect(requestHasBody(h2({ 'content-length': '0' }, false))).toBe(false);
    expect(requestHasBody(h2({ 'content-length': '7' }, true))).toBe(true);
  });
});

describe('through the pipeline', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanup.length > 0) await cleanup.pop()!();
  });

  /** One route (spec fields merged into a rule with the echo backend), served in process. */
  async function gateway(rule: Record<string, unknown>, settings: Partial<ProxySettings> = {}) {
    const up = await startEcho('echo');
    cleanup.push(() => up.close());
    const gw = await startGateway(
      tableOf({ rules: [{ backends: [{ consul: { service: 'echo' } }], ...rule }] }, { echo: [up.port] }),
      settings,
    );
    cleanup.push(() => gw.close());
    return gw.port;
  }

  /** A request with exactly these raw header lines (repeats kept); the echo's view of the headers it got. */
  function seen(
    port: number,
    headers: [string, string][],
  ): Promise<{ status: number; headers: Record<string, string | string[]>; echo: Record<string, string> }> {
    return new Promise((resolve, reject) => {
      const flat: string[] = [];
      for (const [n, v] of headers) flat.push(n, v);
      const req = httpRequest({ host: '127.0.0.1', port, path: '/p', headers: flat, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers as Record<string, string | string[]>,
            echo: res.statusCode === 200 ? JSON.parse(body).headers : {},
          }),
        );
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('trusted hops: repeated X-Forwarded-For lines are kept in order and extended', async () => {
    const port = await gateway({}, { trustedHops: 2 });
    const r = await seen(port, [
      ['Host', 'a.example'],
      ['X-Forwarded-For', '1.1.1.1'],
      ['X-Forwarded-For', '2.2.2.2, 3.3.3.3'],
    ]);
    expect(r.echo['x-forwarded-for']).toBe('1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1');
  });

  it('trusted hops: only http or https is taken from X-Forwarded-Proto, an empty X-Forwarded-Host is ignored', async () => {
    const port = await gateway({}, { trustedHops: 1, proto: 'http' });
    for (const proto of ['HTTPS', 'javascript', 'https, http', '']) {
      const r = await seen(port, [
        ['Host', 'a.example'],
        ['X-Forwarded-Proto', proto],
        ['X-Forwarded-Host', ''],
      ]);
      expect(r.echo['x-forwarded-proto']).toBe('http');
      expect(r.echo['x-forwarded-host']).toBe('a.example');
    }
  });

  it('trusted hops 0: the listener’s scheme and the Host are what the upstream is told', async () => {
    const port = await gateway({}, { trustedHops: 0, proto: 'https' });
    const r = await seen(port, [
      ['Host', 'a.example:8443'],
      ['X-Forwarded-Proto', 'http'],
    ]);
    expect(r.echo['x-forwarded-proto']).toBe('https');
    expect(r.echo['x-forwarded-host']).toBe('a.example:8443');
    expect(r.echo.host).toBe('a.example:8443');
  });

  it('URLRewrite.hostname replaces Host; X-Forwarded-Host keeps what the client asked for', async () => {
    const port = await gateway({
      filters: [{ type: 'URLRewrite', urlRewrite: { hostname: 'internal.svc' } }],
    });
    const r = await seen(port, [['Host', 'public.example']]);
    expect(r.echo.host).toBe('internal.svc');
    expect(r.echo['x-forwarded-host']).toBe('public.example');
  });

  it('a request without Host (HTTP/1.0) reaches the upstream with the service name as Host', async () => {
    const port = await gateway({});
    const res = await rawExchange(port, 'GET /p HTTP/1.0\r\n\r\n');
    expect(res).toMatch(/^HTTP\/1\.[01] 200/);
    const body = JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4));
    expect(body.headers.host).toBe('echo');
  });

  it('request and response header modifiers from the route', async () => {
    const port = await gateway({
      filters: [
        {
          type: 'RequestHeaderModifier',
          requestHeaderModifier: {
            set: [{ name: 'X-Env', value: 'prod' }],
            add: [{ name: 'X-Tag', value: 'route' }],
            remove: ['X-Debug'],
          },
        },
        {
          type: 'ResponseHeaderModifier',
          responseHeaderModifier: {
            set: [{ name: 'X-Echo-Name', value: 'hidden' }],
            add: [{ name: 'X-Served-By', value: 'edgegate' }],
            remove: ['Content-Type'],
          },
        },
      ],
    });
    const r = await seen(port, [
      ['Host', 'a.example'],
      ['x-env', 'dev'],
      ['X-Tag', 'client'],
      ['X-Debug', '1'],
    ]);
    expect(r.status).toBe(200);
    expect(r.echo['x-env']).toBe('prod');
    expect(r.echo['x-tag']).toBe('client, route');
    expect(r.echo['x-debug']).toBeUndefined();
    expect(r.headers['x-echo-name']).toBe('hidden');
    expect(r.headers['x-served-by']).toBe('edgegate');
    expect(r.headers['content-type']).toBeUndefined();
    expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('an acceptable client X-Request-Id is kept end to end; an unacceptable one is replaced', async () => {
    const port = await gateway({});
    const kept = await seen(port, [
      ['Host', 'a.example'],
      ['X-Request-Id', 'trace-42'],
    ]);
    expect(kept.echo['x-request-id']).toBe('trace-42');
    expect(kept.headers['x-request-id']).toBe('trace-42');
    const replaced = await seen(port, [
      ['Host', 'a.example'],
      ['X-Request-Id', 'x'.repeat(201)],
    ]);
    expect(replaced.echo['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(replaced.headers['x-request-id']).toBe(replaced.echo['x-request-id']);
  });
});

/**
 * One named test per attack, run against every listener and protocol it applies to: HTTP/1.1, HTTP/1.1 over TLS
 * and HTTP/2 over TLS (the HTTPS listener), all on one pipeline — the test matrix of issue 23, so a check added
 * once holds everywhere. HTTP/1 attacks are sent as raw bytes; where the gateway must refuse, the test also proves
 * that the upstream received nothing at all (not a byte).
 *
 * Routes: `/public` → a raw TCP upstream that records every byte and would happily serve `/admin`
 * (`/public/items` with method DELETE and `/internal/metrics` exactly are behind an ipAllow the test client is
 * not in; a `canary=always` cookie selects a rule that tags the request); `/internal` → the recorder too; `/echo` →
 * an echo upstream (for the tests where the request is legitimate and what arrives matters).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { formatPath, validateRoute } from '../../src/api/validate.ts';
import { createProxyServer } from '../../src/dataplane/proxy/server.ts';
import { TlsListener } from '../../src/dataplane/tls/tls-listener.ts';
import { silentLogger } from '../../src/lib/log.ts';
import {
  type Gateway,
  listen,
  startEcho,
  startGateway,
  tableOf,
  type Upstream,
} from '../support/inproc-gateway.ts';
import { makeTempDir, removeDir } from '../support/tmp.ts';
import {
  ALL_TRANSPORTS,
  type Answer,
  H1_TRANSPORTS,
  parseRaw,
  rawOn,
  send,
  type TestRequest,
  type Transport,
} from '../support/transports.ts';
import { makeCert, type TestCert } from './tls/helpers.ts';

interface Recorder {
  port: number;
  server: Server;
  received: string;
}

async function startRecorder(): Promise<Recorder> {
  const rec: Recorder = { port: 0, server: createServer(), received: '' };
  rec.server.on('connection', (socket: Socket) => {
    socket.on('data', (chunk: Buffer) => {
      rec.received += chunk.toString('latin1');
      // Answer every request head it sees; enough for the legitimate control requests.
      const heads = chunk.toString('latin1').split('\r\n\r\n').length - 1;
      for (let i = 0; i < heads; i++) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret');
    });
    socket.on('error', () => {});
  });
  rec.server.listen(0, '127.0.0.1');
  await new Promise((r) => rec.server.once('listening', r));
  rec.port = (rec.server.address() as { port: number }).port;
  return rec;
}

let recorder: Recorder;
let echo: Upstream;
let gw: Gateway;
let certDir: string;
let cert: TestCert;

beforeAll(async () => {
  recorder = await startRecorder();
  echo = await startEcho('echo');
  certDir = makeTempDir('security-regressions');
  cert = makeCert(certDir, 'site', 'test.local');
  const recorded = [{ consul: { service: 'recorder' } }];
  gw = await startGateway(
    tableOf(
      {
        rules: [
          { matches: [{ path: { type: 'PathPrefix', value: '/public' } }], backends: recorded },
          {
            name: 'delete-items',
            matches: [{ path: { type: 'PathPrefix', value: '/public/items' }, method: 'DELETE' }],
            policies: { ipAllow: ['10.0.0.0/8'] },
            backends: recorded,
          },
          {
            name: 'canary',
            matches: [
              {
                path: { type: 'PathPrefix', value: '/public' },
                cookies: [{ type: 'Exact', name: 'canary', value: 'always' }],
              },
            ],
            filters: [
              {
                type: 'RequestHeaderModifier',
                requestHeaderModifier: { set: [{ name: 'x-rule', value: 'canary' }] },
              },
            ],
            backends: recorded,
          },
          { matches: [{ path: { type: 'PathPrefix', value: '/internal' } }], backends: recorded },
          {
            name: 'metrics',
            matches: [{ path: { type: 'Exact', value: '/internal/metrics' } }],
            policies: { ipAllow: ['10.0.0.0/8'] },
            backends: recorded,
          },
          {
            matches: [{ path: { type: 'PathPrefix', value: '/echo' } }],
            backends: [{ consul: { service: 'echo' } }],
          },
        ],
      },
      { recorder: [recorder.port], echo: [echo.port] },
    ),
    {},
    {},
    { tls: cert, policies: true },
  );
});

afterAll(async () => {
  await gw.close();
  await echo.close();
  recorder.server.close();
  removeDir(certDir);
});

beforeEach(() => {
  recorder.received = '';
});

const ports = () => ({ port: gw.port, tlsPort: gw.tlsPort });
const H = 'Host: test.local\r\n';

/** Raw HTTP/1 attack bytes: asserts the status and that the recording upstream saw nothing. */
async function refusedRaw(t: Transport, payload: string, status = 400): Promise<string> {
  const response = await rawOn(t, ports(), payload);
  expect(parseRaw(response).status, response.slice(0, 300)).toBe(status);
  expect(recorder.received).toBe('');
  return response;
}

/**
 * A request that must be refused with `status` (HTTP/2: with `status`, or — where nghttp2 already refuses the
 * stream — `h2` 'reset'), the recording upstream seeing nothing.
 */
async function refused(
  t: Transport,
  req: TestRequest,
  status: number,
  h2: 'status' | 'reset-or-status' = 'status',
): Promise<Answer> {
  const a = await send(t, ports(), req);
  if (t === 'HTTP/2' && h2 === 'reset-or-status') expect([0, status], a.body).toContain(a.status);
  else expect(a.status, a.body).toBe(status);
  if (a.status !== 0) expect(JSON.parse(a.body).error).toBe('EDGEGATE_BAD_REQUEST');
  expect(recorder.received).toBe('');
  return a;
}

/** The header lines (lower-cased name: value) of the one request the recorder received. */
function recordedHeaderLines(): string[] {
  const head = recorder.received.slice(0, recorder.received.indexOf('\r\n\r\n'));
  return head
    .split('\r\n')
    .slice(1)
    .map((l) => l.replace(/^([^:]+):\s*/, (_m, n: string) => `${n.toLowerCase()}: `));
}

describe.each(ALL_TRANSPORTS)('%s', (t) => {
  it('control: a legitimate request reaches the recorder', async () => {
    const a = await send(t, ports(), { target: '/public/x' });
    expect(a.status).toBe(200);
    expect(recorder.received).toMatch(/^GET \/public\/x HTTP\/1\.1\r\n/);
  });

  describe('fragments', () => {
    it('a fragment after an Exact path (/internal/metrics#) is refused, not served by the /internal prefix', async () => {
      await refused(t, { target: '/internal/metrics#' }, 400);
      await refused(t, { target: '/internal/metrics#x' }, 400);
    });

    it('a fragment anywhere in the target (/public?q#frag, /public#/../admin) is refused', async () => {
      await refused(t, { target: '/public?q=1#frag' }, 400);
      await refused(t, { target: '/public#/../admin' }, 400);
    });
  });

  describe('Host validation', () => {
    for (const host of [
      '[x',
      'a:99999',
      'a:0',
      'a b',
      '',
      'u@test.local',
      '%74est.local',
      '[fe80::1%25eth0]',
      'test.local,admin.test',
    ])
      it(`Host ${JSON.stringify(host)} (not an RFC 3986 host and port) is refused before any upstream sees it`, async () => {
        // HTTP/2: nghttp2 itself resets a stream whose :authority has a space, '@' or is empty.
        await refused(t, { target: '/public', headers: [['Host', host]] }, 400, 'reset-or-status');
      });

    it('valid hosts pass: a name with a port, an IPv4 address, a bracketed IPv6 literal', async () => {
      for (const host of ['test.local:8443', '127.0.0.1', '[::1]:8080', 'TEST.local.']) {
        recorder.received = '';
        expect((await send(t, ports(), { target: '/public', headers: [['Host', host]] })).status).toBe(200);
      }
    });
  });

  describe('methods', () => {
    it('a lower-case method (delete) never dodges a DELETE rule: refused with 501 on every protocol', async () => {
      await refused(t, { method: 'delete', target: '/public/items' }, 501);
      // The upper-case one meets the rule and its policy.
      const a = await send(t, ports(), { method: 'DELETE', target: '/public/items' });
      expect(a.status).toBe(403);
      expect(recorder.received).toBe('');
    });

    it('an unknown method (FOO, Delete) is refused with 501, not forwarded', async () => {
      await refused(t, { method: 'FOO', target: '/public' }, 501);
      await refused(t, { method: 'Delete', target: '/public' }, 501);
    });

    it('CONNECT (a tunnel through the gateway) is refused with 405', async () => {
      const a =
        t === 'HTTP/2'
          ? await connectOverH2()
          : parseRaw(
              await rawOn(t, ports(), 'CONNECT test.local:443 HTTP/1.1\r\nHost: test.local:443\r\n\r\n'),
            );
      expect(a.status).toBe(405);
      expect(recorder.received).toBe('');
    });
  });

  describe('header attacks', () => {
    it('underscore in a header name (X_Forwarded_For folding into X-Forwarded-For)', async () => {
      await refused(t, { target: '/public', headers: [['X_Forwarded_For', '10.0.0.1']] }, 400);
    });

    it('more than 100 request headers', async () => {
      const many = Array.from({ length: 101 }, (_, i): [string, string] => [`x-h${i}`, 'v']);
      await refused(t, { target: '/public', headers: many }, 431);
    });

    it('forged gateway-owned headers (x-edgegate-attempt) never reach the upstream', async () => {
      const a = await send(t, ports(), {
        target: '/public',
        headers: [
          ['X-Edgegate-Attempt', '7'],
          ['x-edgegate-debug', '1'],
        ],
      });
      expect(a.status).toBe(200);
      expect(recorder.received).toMatch(/^GET \/public HTTP\/1\.1\r\n/);
      expect(recorder.received.toLowerCase()).not.toContain('x-edgegate-');
    });

    it('cookie crumbs: split cookie fields are joined with "; " before matching and forwarding', async () => {
      const a = await send(t, ports(), {
        target: '/public/c',
        headers: [
          ['cookie', 'a=1'],
          ['cookie', 'canary=always'],
        ],
      });
      expect(a.status).toBe(200);
      const lines = recordedHeaderLines();
      expect(lines.filter((l) => l.startsWith('cookie: '))).toEqual(['cookie: a=1; canary=always']);
      // The rule that matched is the one the upstream's view of the cookies selects.
      expect(lines).toContain('x-rule: canary');
    });
  });

  describe('path traversal', () => {
    it('/public/../admin cannot reach /admin through the /public route', async () => {
      const a = await send(t, ports(), { target: '/public/../admin' });
      expect(a.status).toBe(404);
      expect(a.body).toContain('EDGEGATE_NO_ROUTE');
      expect(recorder.received).toBe('');
    });

    it('%2e%2e (encoded dot segments) cannot reach /admin', async () => {
      for (const target of ['/public/%2e%2e/admin', '/public/%2E%2e/%2e%2E/admin']) {
        const a = await send(t, ports(), { target });
        expect(a.status).toBe(404);
        expect(recorder.received).toBe('');
      }
    });

    it('..%2f (encoded slash) and ..%5c (backslash) are refused', async () => {
      await refused(t, { target: '/public/..%2fadmin' }, 400);
      await refused(t, { target: '/public/..%5cadmin' }, 400);
    });

    it('the normalized path is what the upstream receives', async () => {
      const a = await send(t, ports(), { target: '/admin/../public/./x//y' });
      expect(a.status).toBe(200);
      expect(recorder.received).toMatch(/^GET \/public\/x\/y HTTP\/1\.1\r\n/);
    });
  });
});

async function connectOverH2(): Promise<Answer> {
  const { connect } = await import('node:http2');
  const session = connect(`https://127.0.0.1:${gw.tlsPort}`, { rejectUnauthorized: false });
  session.on('error', () => {});
  try {
    const stream = session.request(
      { ':method': 'CONNECT', ':authority': 'test.local:443' },
      { endStream: false },
    );
    return await new Promise<Answer>((resolve) => {
      let status = 0;
      let body = '';
      stream.on('response', (h) => {
        status = Number(h[':status']);
      });
      stream.on('data', (c: Buffer) => {
        body += c;
      });
      stream.on('error', () => {});
      stream.on('close', () => resolve({ status, headers: {}, body, raw: body }));
      stream.end();
    });
  } finally {
    session.destroy();
  }
}

describe('HTTP/2 only', () => {
  it('a host field that disagrees with :authority is refused', async () => {
    await refused(
      'HTTP/2',
      {
        target: '/public',
        headers: [
          ['host', 'test.local'],
          ['host', 'internal.local'],
        ],
      },
      400,
    );
  });
});

describe.each(H1_TRANSPORTS)('%s (HTTP/1 framing)', (t) => {
  describe('HTTP versions', () => {
    it('GET /x HTTP/2.0 in HTTP/1 framing (it used to kill the worker) is answered 505 and closed', async () => {
      const response = await refusedRaw(t, `GET /public HTTP/2.0\r\n${H}\r\n`, 505);
      expect(response).toMatch(/\r\nconnection: close\r\n/i);
      // The listener is still serving.
      expect((await send(t, ports(), { target: '/echo' })).status).toBe(200);
    });

    it('HTTP/0.9, HTTP/1.2 and HTTP/3.0 request lines are answered 505', async () => {
      for (const v of ['HTTP/0.9', 'HTTP/1.2', 'HTTP/3.0'])
        await refusedRaw(t, `GET /public ${v}\r\n${H}\r\n`, 505);
    });

    it('the HTTP/2 connection preface on an HTTP/1 connection is answered 505', async () => {
      await refusedRaw(t, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 505);
    });
  });

  describe('request smuggling', () => {
    const smuggled = `GET /admin HTTP/1.1\r\n${H}\r\n`;

    it('CL.TE: Content-Length together with Transfer-Encoding', async () => {
      const body = `0\r\n\r\n${smuggled}`;
      await refusedRaw(
        t,
        `POST /public HTTP/1.1\r\n${H}Content-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n${body}`,
      );
    });

    it('TE.CL: Transfer-Encoding first, then a short Content-Length', async () => {
      await refusedRaw(
        t,
        `POST /public HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n`,
      );
    });

    it('duplicate Content-Length with different values', async () => {
      await refusedRaw(
        t,
        `POST /public HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 40\r\n\r\nhello${smuggled}`,
      );
    });

    it('Transfer-Encoding: chunked, identity (chunked not last)', async () => {
      await refusedRaw(
        t,
        `POST /public HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`,
      );
    });

    it('Transfer-Encoding: xchunked (unknown coding)', async () => {
      await refusedRaw(
        t,
        `POST /public HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${smuggled}`,
      );
    });

    it('Transfer-Encoding: gzip, chunked (a coding the gateway would drop) is 501', async () => {
      await refusedRaw(
        t,
        `POST /public HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
        501,
      );
      await refusedRaw(
        t,
        `POST /public HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
        501,
      );
    });

    it('Transfer-Encoding in an HTTP/1.0 request (framing an HTTP/1.0 server ignores)', async () => {
      await refusedRaw(
        t,
        `POST /public HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      );
    });

    it('Transfer-Encoding hidden behind a leading space (line folding) with Content-Length', async () => {
      await refusedRaw(
        t,
        `POST /public HTTP/1.1\r\n${H}Content-Length: 5\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      );
    });

    it('Transfer-Encoding with a space before the colon', async () => {
      await refusedRaw(
        t,
        `POST /public HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      );
    });

    it('obs-fold: a header value continued on the next line', async () => {
      await refusedRaw(t, `GET /public HTTP/1.1\r\n${H}X-Folded: first\r\n second\r\n\r\n`);
    });

    it('bare LF line endings', async () => {
      await refusedRaw(t, 'GET /public HTTP/1.1\nHost: test.local\n\n');
    });

    it('bare LF inside the chunked body framing', async () => {
      await refusedRaw(
        t,
        `POST /public HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n`,
      );
    });
  });

  describe('header attacks', () => {
    it('duplicate Host headers', async () => {
      await refusedRaw(t, `GET /public HTTP/1.1\r\nHost: test.local\r\nHost: evil.local\r\n\r\n`);
    });

    it('control character (DEL) in a header value', async () => {
      await refusedRaw(t, `GET /public HTTP/1.1\r\n${H}X-Note: a\x7fb\r\n\r\n`);
    });

    it('absolute-form target whose authority disagrees with Host', async () => {
      await refusedRaw(t, `GET http://internal.local/public HTTP/1.1\r\n${H}\r\n`);
    });

    it('absolute-form target with an invalid authority or userinfo', async () => {
      await refusedRaw(t, `GET http://[x/public HTTP/1.1\r\n${H}\r\n`);
      await refusedRaw(t, `GET http://user@test.local/public HTTP/1.1\r\n${H}\r\n`);
    });

    it('Connection: close, X-Forwarded-For cannot strip the gateway X-Forwarded-For', async () => {
      const a = parseRaw(
        await rawOn(
          t,
          ports(),
          `GET /echo HTTP/1.1\r\n${H}X-Forwarded-For: 6.6.6.6\r\nConnection: close, X-Forwarded-For\r\n\r\n`,
        ),
      );
      expect(a.status).toBe(200);
      const seen = JSON.parse(a.body).headers;
      // Trusted hops 0: the client's value is dropped and the gateway's own is set after Connection processing.
      expect(seen['x-forwarded-for']).toBe('127.0.0.1');
      expect(seen['x-forwarded-proto']).toBe(t === 'HTTP/1.1' ? 'http' : 'https');
    });
  });

  describe('upgrade attacks', () => {
    it('h2c upgrade is served as a plain request and the connection closed: no 101, no Upgrade upstream, no smuggled follow-up', async () => {
      const response = await rawOn(
        t,
        ports(),
        `GET /public HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\nGET /public/second HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
      );
      expect(parseRaw(response).status).toBe(200);
      expect(response).not.toMatch(/^HTTP\/1\.1 101 /m);
      // One plain answer, then the gateway closes: the bytes after the upgrade request are never a request.
      expect(response.match(/HTTP\/1\.1 /g)).toHaveLength(1);
      expect(response).toMatch(/\r\nconnection: close\r\n/i);
      expect(recorder.received).toMatch(/^GET \/public HTTP\/1\.1\r\n/);
      expect(recorder.received).not.toMatch(/upgrade|http2-settings|\/public\/second/i);
    });

    it('a WebSocket upgrade the backend answers with 200 leaves no tunnel for a smuggled request', async () => {
      const response = await rawOn(
        t,
        ports(),
        `GET /public HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nGET /admin HTTP/1.1\r\n${H}\r\n`,
      );
      expect(parseRaw(response).status).toBe(200);
      // The status lines only: a random x-request-id can contain the digits 101.
      expect(response).not.toMatch(/^HTTP\/1\.1 101 /m);
      // The upgrade request went through; the bytes after it were never forwarded as a request.
      expect(recorder.received).toMatch(/^GET \/public HTTP\/1\.1\r\n/);
      expect(recorder.received).not.toContain('/admin');
    });

    it('a WebSocket upgrade goes through admission too (fragment, bad Host)', async () => {
      const ws =
        'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
      await refusedRaw(t, `GET /public#x HTTP/1.1\r\n${H}${ws}\r\n`);
      await refusedRaw(t, `GET /public HTTP/1.1\r\nHost: [x\r\n${ws}\r\n`);
    });
  });
});

describe('an exception while handling one request', () => {
  const boom = {
    handle(_req: IncomingMessage, res: ServerResponse) {
      if (_req.url === '/after-head') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('partial');
      }
      if (_req.url !== '/fine') throw new TypeError('boom');
      res.end('fine');
    },
  };
  let server: ReturnType<typeof createProxyServer>;
  let tls: TlsListener;
  const p = { port: 0, tlsPort: 0 };

  beforeAll(async () => {
    server = createProxyServer(boom);
    p.port = await listen(server);
    tls = new TlsListener(boom, {}, silentLogger());
    tls.applyCerts({
      version: 1,
      bundles: [],
      defaultBundle: { source: 'test', hostnames: [], certPem: cert.certPem, keyPem: cert.keyPem },
    });
    p.tlsPort = (await tls.listen({ host: '127.0.0.1', port: 0, reusePort: false })).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    server.close();
    await tls.drain({ delayMs: 0, timeoutMs: 0 });
  });

  it.each(ALL_TRANSPORTS)(
    '%s: is answered 500 EDGEGATE_INTERNAL, and the listener keeps serving',
    async (t) => {
      const a = await send(t, p, { target: '/x' });
      expect(a.status).toBe(500);
      expect(JSON.parse(a.body).error).toBe('EDGEGATE_INTERNAL');
      expect((await send(t, p, { target: '/fine' })).body).toBe('fine');
    },
  );

  it.each(ALL_TRANSPORTS)('%s: after the response head was sent, closes the response instead', async (t) => {
    const a = await send(t, p, { target: '/after-head' });
    // No second answer after the head: the response is cut (HTTP/1: the connection closes, possibly before the
    // buffered head left; HTTP/2: the stream is reset).
    expect([0, 200]).toContain(a.status);
    expect(a.raw).not.toContain('EDGEGATE_INTERNAL');
    expect((await send(t, p, { target: '/fine' })).body).toBe('fine');
  });
});

describe('route configuration', () => {
  it('CR/LF in a header value from route config is refused at validation', () => {
    const v = validateRoute({
      apiVersion: 'edgegate.io/v1alpha1',
      kind: 'GatewayRoute',
      metadata: { name: 'inject', namespace: 'ns' },
      spec: {
        rules: [
          {
            filters: [
              {
                type: 'RequestHeaderModifier',
                requestHeaderModifier: { set: [{ name: 'x-a', value: 'ok\r\nX-Injected: 1' }] },
              },
              {
                type: 'ResponseHeaderModifier',
                responseHeaderModifier: { add: [{ name: 'x-b', value: 'ok\nSet-Cookie: a=b' }] },
              },
            ],
            backends: [{ consul: { service: 'echo' } }],
          },
        ],
      },
    });
    expect(v.ok).toBe(false);
    const paths = v.ok ? [] : v.errors.map((e) => formatPath(e.path));
    expect(paths).toEqual([
      'spec.rules[0].filters[0].requestHeaderModifier.set[0].value',
      'spec.rules[0].filters[1].responseHeaderModifier.add[0].value',
    ]);
  });
});

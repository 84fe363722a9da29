/**
 * One named test per attack. Every attack is sent over a raw TCP socket, and where the gateway must refuse it the
 * test also proves that the upstream received nothing at all (not a byte).
 *
 * Routes: `/public` → a raw TCP upstream that records every byte and would happily serve `/admin`;
 * `/echo` → an echo upstream (for the tests where the request is legitimate and what arrives matters).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { formatPath, validateRoute } from '../../src/api/validate.ts';
import {
  type Gateway,
  rawExchange,
  startEcho,
  startGateway,
  statusOf,
  tableOf,
  type Upstream,
} from '../support/inproc-gateway.ts';

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

beforeAll(async () => {
  recorder = await startRecorder();
  echo = await startEcho('echo');
  gw = await startGateway(
    tableOf(
      {
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/public' } }],
            backends: [{ consul: { service: 'recorder' } }],
          },
          {
            matches: [{ path: { type: 'PathPrefix', value: '/echo' } }],
            backends: [{ consul: { service: 'echo' } }],
          },
        ],
      },
      { recorder: [recorder.port], echo: [echo.port] },
    ),
  );
});

afterAll(async () => {
  await gw.close();
  await echo.close();
  recorder.server.close();
});

beforeEach(() => {
  recorder.received = '';
});

const H = 'Host: test.local\r\n';

/** Sends the attack; asserts the status and that the recording upstream saw nothing. */
async function refused(payload: string, status = 400): Promise<string> {
  const response = await rawExchange(gw.port, payload);
  expect(statusOf(response)).toBe(status);
  expect(recorder.received).toBe('');
  return response;
}

describe('control: a legitimate request reaches the recorder', () => {
  it('GET /public is forwarded', async () => {
    const response = await rawExchange(gw.port, `GET /public/x HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
    expect(statusOf(response)).toBe(200);
    expect(recorder.received).toMatch(/^GET \/public\/x HTTP\/1\.1\r\n/);
  });
});

describe('request smuggling', () => {
  const smuggled = `GET /admin HTTP/1.1\r\n${H}\r\n`;

  it('CL.TE: Content-Length together with Transfer-Encoding', async () => {
    const body = `0\r\n\r\n${smuggled}`;
    await refused(
      `POST /public HTTP/1.1\r\n${H}Content-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n${body}`,
    );
  });

  it('TE.CL: Transfer-Encoding first, then a short Content-Length', async () => {
    await refused(
      `POST /public HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n`,
    );
  });

  it('duplicate Content-Length with different values', async () => {
    await refused(
      `POST /public HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 40\r\n\r\nhello${smuggled}`,
    );
  });

  it('Transfer-Encoding: chunked, identity (chunked not last)', async () => {
    await refused(
      `POST /public HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`,
    );
  });

  it('Transfer-Encoding: xchunked (unknown coding)', async () => {
    await refused(`POST /public HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${smuggled}`);
  });

  it('Transfer-Encoding hidden behind a leading space (line folding) with Content-Length', async () => {
    await refused(
      `POST /public HTTP/1.1\r\n${H}Content-Length: 5\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
    );
  });

  it('Transfer-Encoding with a space before the colon', async () => {
    await refused(`POST /public HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggled}`);
  });

  it('obs-fold: a header value continued on the next line', async () => {
    await refused(`GET /public HTTP/1.1\r\n${H}X-Folded: first\r\n second\r\n\r\n`);
  });

  it('bare LF line endings', async () => {
    await refused('GET /public HTTP/1.1\nHost: test.local\n\n');
  });

  it('bare LF inside the chunked body framing', async () => {
    await refused(`POST /public HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n`);
  });
});

describe('header attacks', () => {
  it('duplicate Host headers', async () => {
    await refused(`GET /public HTTP/1.1\r\nHost: test.local\r\nHost: evil.local\r\n\r\n`);
  });

  it('underscore in a header name (X_Forwarded_For folding into X-Forwarded-For)', async () => {
    await refused(`GET /public HTTP/1.1\r\n${H}X_Forwarded_For: 10.0.0.1\r\n\r\n`);
  });

  it('control character (DEL) in a header value', async () => {
    await refused(`GET /public HTTP/1.1\r\n${H}X-Note: a\x7fb\r\n\r\n`);
  });

  it('absolute-form target whose authority disagrees with Host', async () => {
    await refused(`GET http://internal.local/public HTTP/1.1\r\n${H}\r\n`);
  });

  it('more than 100 request headers', async () => {
    let many = '';
    for (let i = 0; i < 101; i++) many += `X-H${i}: v\r\n`;
    await refused(`GET /public HTTP/1.1\r\n${H}${many}\r\n`, 431);
  });

  it('Connection: close, X-Forwarded-For cannot strip the gateway X-Forwarded-For', async () => {
    const response = await rawExchange(
      gw.port,
      `GET /echo HTTP/1.1\r\n${H}X-Forwarded-For: 6.6.6.6\r\nConnection: close, X-Forwarded-For\r\n\r\n`,
    );
    expect(statusOf(response)).toBe(200);
    const seen = JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4)).headers;
    // Trusted hops 0: the client's value is dropped and the gateway's own is set after Connection processing.
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
  });
});

describe('path traversal', () => {
  it('/public/../admin cannot reach /admin through the /public route', async () => {
    const response = await refused(`GET /public/../admin HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, 404);
    expect(response).toContain('EDGEGATE_NO_ROUTE');
  });

  it('/public/../../admin (climbing above the root) cannot reach /admin', async () => {
    await refused(`GET /public/../../admin HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, 404);
  });

  it('%2e%2e (encoded dot segments) cannot reach /admin', async () => {
    await refused(`GET /public/%2e%2e/admin HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, 404);
    await refused(`GET /public/%2E%2e/%2e%2E/admin HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, 404);
  });

  it('..%2f (encoded slash) is refused', async () => {
    await refused(`GET /public/..%2fadmin HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  });

  it('backslash traversal is refused', async () => {
    await refused(`GET /public/..%5cadmin HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  });

  it('the normalized path is what the upstream receives', async () => {
    const response = await rawExchange(
      gw.port,
      `GET /admin/../public/./x//y HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
    );
    expect(statusOf(response)).toBe(200);
    expect(recorder.received).toMatch(/^GET \/public\/x\/y HTTP\/1\.1\r\n/);
  });
});

describe('upgrade attacks', () => {
  it('h2c upgrade is served as a plain request and the connection closed: no 101, no Upgrade upstream, no smuggled follow-up', async () => {
    const response = await rawExchange(
      gw.port,
      `GET /public HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\nGET /public/second HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
    );
    expect(statusOf(response)).toBe(200);
    expect(response).not.toContain(' 101 ');
    // One plain answer, then the gateway closes: the bytes after the upgrade request are never a request.
    expect(response.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(response).toMatch(/\r\nconnection: close\r\n/i);
    expect(recorder.received).toMatch(/^GET \/public HTTP\/1\.1\r\n/);
    expect(recorder.received).not.toMatch(/upgrade|http2-settings|\/public\/second/i);
  });

  it('a WebSocket upgrade the backend answers with 200 leaves no tunnel for a smuggled request', async () => {
    const response = await rawExchange(
      gw.port,
      `GET /public HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nGET /admin HTTP/1.1\r\n${H}\r\n`,
    );
    expect(statusOf(response)).toBe(200);
    expect(response).not.toContain('101');
    // The upgrade request went through; the bytes after it were never forwarded as a request.
    expect(recorder.received).toMatch(/^GET \/public HTTP\/1\.1\r\n/);
    expect(recorder.received).not.toContain('/admin');
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

/**
 * Cleartext HTTP/2 from clients (h2c, prior knowledge) on the HTTP listener: off by default, on with the listener
 * setting (`--h2c`). With it on, HTTP/2 clients (node:http2, nghttp) and HTTP/1.1 clients share the port; h2c
 * requests pass the same admission as the HTTPS listener's HTTP/2; a connection that stalls inside the preface is
 * closed at the header timeout; a drain sends GOAWAY and lets streams under way finish. End to end through a real
 * gateway process: grpc-js client over h2c → gateway (`--h2c`) → grpc-js server over h2c (`protocol: h2c`).
 */
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import {
  type ClientHttp2Session,
  constants as h2,
  connect as h2connect,
  type IncomingHttpHeaders,
} from 'node:http2';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { edgeEvents } from '../../src/dataplane/proxy/edge-events.ts';
import { drainServer, listenerStats } from '../../src/dataplane/proxy/server.ts';
import { echoClient, grpc, startGrpcEcho, unary } from '../support/grpc.ts';
import {
  type Gateway,
  get,
  startEcho,
  startGateway,
  startUpstream,
  tableOf,
} from '../support/inproc-gateway.ts';
import { catalogYaml, freePort, spawnCli, tempDir, waitFor } from './cluster/helpers.ts';
import { run } from './tls/helpers.ts';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

async function gateway(h2c: boolean, headersTimeoutMs?: number): Promise<Gateway> {
  const echo = await startEcho('echo');
  cleanup.push(() => echo.close());
  const gw = await startGateway(
    tableOf({ rules: [{ backends: [{ consul: { service: 'echo' } }] }] }, { echo: [echo.port] }),
    {},
    { h2c, ...(headersTimeoutMs ? { headersTimeoutMs } : {}) },
  );
  cleanup.push(() => gw.close());
  return gw;
}

function h2get(
  s: ClientHttp2Session,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const st = s.request(
      {
        ':method': body === undefined ? 'GET' : 'POST',
        ':path': path,
        ':authority': 'test.local',
        ...headers,
      },
      { endStream: body === undefined },
    );
    if (body !== undefined) st.end(body);
    let h: IncomingHttpHeaders = {};
    let text = '';
    st.on('response', (x) => {
      h = x;
    });
    st.on('data', (c: Buffer) => {
      text += c.toString();
    });
    st.on('end', () => resolve({ headers: h, body: text }));
    st.on('error', reject);
  });
}

async function h2cSession(port: number): Promise<ClientHttp2Session> {
  const s = h2connect(`http://127.0.0.1:${port}`);
  s.on('error', () => {});
  cleanup.push(() => {
    s.destroy();
  });
  await once(s, 'remoteSettings');
  return s;
}

describe('h2c on the HTTP listener', () => {
  it('is off by default: the preface is answered as a bad HTTP/1 request and closed, no HTTP/2 session starts', async () => {
    const gw = await gateway(false);
    const s = h2connect(`http://127.0.0.1:${gw.port}`);
    const outcome = await new Promise<string>((resolve) => {
      s.once('remoteSettings', () => resolve('settings'));
      s.once('error', (e: Error & { code?: string }) => resolve(`error ${e.code}`));
      s.once('close', () => resolve('closed'));
    });
    s.destroy();
    expect(outcome).not.toBe('settings');
    expect((await get(gw.port, '/x')).status).toBe(200);
  });

  it('on: HTTP/2 with prior knowledge and HTTP/1.1 share the port (requests starting with P included)', async () => {
    const gw = await gateway(true);
    const s = await h2cSession(gw.port);
    const a = await h2get(s, '/h2/get?x=1');
    expect(a.headers[':status']).toBe(200);
    expect(JSON.parse(a.body)).toMatchObject({ method: 'GET', url: '/h2/get?x=1' });
    const b = await h2get(s, '/h2/post', { 'content-type': 'text/plain' }, 'hello over h2c');
    expect(b.headers[':status']).toBe(200);
    expect(JSON.parse(b.body)).toMatchObject({ method: 'POST', bodyBytes: 14 });
    // Many streams on the one session.
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => h2get(s, `/many/${i}`)));
    expect(many.every((r) => Number(r.headers[':status']) === 200)).toBe(true);
    // Counted in the listener's figures (the workers' request counts and drain) like HTTP/1.1 requests.
    expect(listenerStats(gw.server)).toMatchObject({ requests: 52, inFlight: 0 });
    // HTTP/1.1 on the same port, including methods whose first byte is the preface's ("PRI" vs "POST", "PUT", "PATCH").
    expect((await get(gw.port, '/h1')).status).toBe(200);
    for (const method of ['POST', 'PUT', 'PATCH']) {
      const r = await fetch(`http://127.0.0.1:${gw.port}/h1/${method}`, { method, body: 'b' });
      expect(r.status).toBe(200);
      expect(((await r.json()) as { method: string }).method).toBe(method);
    }
  });

  it('nghttp (prior knowledge) gets its answer over HTTP/2', async () => {
    const gw = await gateway(true);
    const r = await run('nghttp', ['-v', `http://127.0.0.1:${gw.port}/nghttp/path`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/recv \(stream_id=\d+\) :status: 200/);
    expect(r.stdout).toContain('"path":"/nghttp/path"');
  });

  it('h2c requests pass the HTTP/2 admission checks (counted with protocol h2c) and never reach the upstream', async () => {
    const gw = await gateway(true);
    const s = await h2cSession(gw.port);
    const key = 'requestsRefused\u0000h2c\u0000underscore';
    const before = edgeEvents.counterValues()[key] ?? 0;
    const r = await h2get(s, '/x', { x_forwarded_for: '6.6.6.6' });
    expect(r.headers[':status']).toBe(400);
    expect(edgeEvents.counterValues()[key]).toBe(before + 1);
    // A plain CONNECT is refused as on the HTTPS listener.
    const st = s.request({ ':method': 'CONNECT', ':authority': 'example.com:443' });
    const [h] = (await once(st, 'response')) as [IncomingHttpHeaders];
    expect(h[':status']).toBe(405);
    st.close();
  });

  it('a connection that stalls inside the preface is closed at the client header timeout', async () => {
    const gw = await gateway(true, 400);
    const key = 'requestsRefused\u0000h2c\u0000header_timeout';
    const before = edgeEvents.counterValues()[key] ?? 0;
    const socket = netConnect(gw.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('PRI * HTTP/2.0\r\n');
    const t0 = Date.now();
    await once(socket, 'close');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(edgeEvents.counterValues()[key]).toBe(before + 1);
  });

  it('rapid reset (CVE-2023-44487) over h2c meets the HTTPS listener’s reset budget: GOAWAY(ENHANCE_YOUR_CALM), counted', async () => {
    const echo = await startEcho('echo');
    cleanup.push(() => echo.close());
    const gw = await startGateway(
      tableOf({ rules: [{ backends: [{ consul: { service: 'echo' } }] }] }, { echo: [echo.port] }),
      {},
      { h2c: true },
      { tlsSettings: { maxResetsPerSecond: 20 } },
    );
    cleanup.push(() => gw.close());
    const key = 'requestsRefused\u0000h2c\u0000flood';
    const before = edgeEvents.counterValues()[key] ?? 0;
    const s = await h2cSession(gw.port);
    const goaway = new Promise<number>((resolve) => s.once('goaway', (code: number) => resolve(code)));
    for (let i = 0; i < 100 && !s.destroyed && !s.closed; i++) {
      const st = s.request({ ':path': `/rr/${i}`, ':authority': 'test.local' });
      st.on('error', () => {});
      st.close(h2.NGHTTP2_CANCEL);
    }
    expect(await goaway).toBe(h2.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(edgeEvents.counterValues()[key]).toBe(before + 1);
    // Other clients are still served.
    expect((await h2get(await h2cSession(gw.port), '/after')).headers[':status']).toBe(200);
  });

  it('drain: open h2c sessions get GOAWAY, a stream under way finishes, then the listener is done', async () => {
    let release: (() => void) | undefined;
    const slow = await startUpstream('slow', (_req, res) => {
      release = () => res.end('finished');
      res.writeHead(200, { 'content-type': 'text/plain' });
    });
    cleanup.push(() => slow.close());
    const gw = await startGateway(
      tableOf({ rules: [{ backends: [{ consul: { service: 'slow' } }] }] }, { slow: [slow.port] }),
      {},
      { h2c: true },
    );
    cleanup.push(() => gw.close());
    const s = await h2cSession(gw.port);
    const goaway = once(s, 'goaway');
    const pending = h2get(s, '/slow');
    await waitFor('the upstream to get the request', () => release !== undefined);
    const drained = drainServer(gw.server, { delayMs: 0, timeoutMs: 10_000 });
    await goaway;
    release!();
    expect((await pending).body).toBe('finished');
    const result = await drained;
    expect(result.cut).toBe(0);
  });
});

describe('end to end through a gateway process: grpc-js over h2c → edgegate --h2c → grpc-js over h2c', () => {
  it('every call kind and an error status pass; no TLS anywhere', async () => {
    const upstream = await startGrpcEcho('grpc-cli');
    cleanup.push(() => upstream.close());
    const tmp = tempDir('h2c-cli-');
    cleanup.push(() => tmp.remove());
    writeFileSync(
      join(tmp.dir, 'routes.yaml'),
      `apiVersion: edgegate.io/v1alpha1
kind: GatewayRoute
metadata: { name: grpc, namespace: default }
spec:
  rules:
    - matches:
        - path: { type: PathPrefix, value: /test.Echo/ }
      backends:
        - consul: { service: grpc, datacenter: dc1 }
          protocol: h2c
    - matches:
        - path: { type: PathPrefix, value: /ws }
      backends:
        - consul: { service: grpc, datacenter: dc1 }
          protocol: h2c
`,
    );
    writeFileSync(join(tmp.dir, 'catalog.yaml'), catalogYaml([{ port: upstream.port }], 'grpc'));
    const [port, adminPort] = [await freePort(), await freePort()];
    const gw = spawnCli(
      [
        'run',
        '--routes',
        join(tmp.dir, 'routes.yaml'),
        '--catalog',
        join(tmp.dir, 'catalog.yaml'),
        '--listen',
        `127.0.0.1:${port}`,
        '--admin',
        `127.0.0.1:${adminPort}`,
        '--workers',
        '1',
        '--h2c',
      ],
      { EDGEGATE_LOG_LEVEL: 'info' },
    );
    cleanup.push(() => gw.stop());
    await waitFor(
      'the gateway to be ready',
      async () => {
        if (gw.child.exitCode !== null) throw new Error(`gateway exited:\n${gw.output()}`);
        const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`).catch(() => undefined);
        return r?.status === 200;
      },
      30_000,
    );
    const client = echoClient(port);
    cleanup.push(() => client.close());
    expect(await unary(client, 'Unary', { text: 'cli' })).toMatchObject({
      ok: { text: 'cli', server: 'grpc-cli' },
    });
    const stream = client.ServerStream({ text: 's', n: 5 });
    const items: string[] = [];
    stream.on('data', (m: { text: string }) => items.push(m.text));
    await once(stream, 'end');
    expect(items).toEqual(['s#0', 's#1', 's#2', 's#3', 's#4']);
    const failed = await unary(client, 'Fail', { code: grpc.status.PERMISSION_DENIED, text: 'no' });
    expect((failed as { error: grpc.ServiceError }).error.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(upstream.calls).toMatchObject({ Unary: 1, ServerStream: 1, Fail: 1 });
    // A WebSocket to an h2c backend cannot be an HTTP/1.1 upgrade: 502, counted by the worker, rendered by the primary.
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    ws.on('error', () => {});
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
    expect(res.statusCode).toBe(502);
    ws.terminate();
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    expect(metrics).toMatch(
      /edgegate_websocket_upgrades_total\{[^}]*protocol="http1"[^}]*result="upstream_error"[^}]*\} 1/,
    );
  });
});

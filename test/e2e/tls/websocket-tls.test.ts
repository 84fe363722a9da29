/**
 * WebSocket through the HTTPS listener: over HTTP/1.1 (`wss://` with the `ws` client) and over HTTP/2 with RFC 8441
 * extended CONNECT (node:http2 as the client, speaking WebSocket frames on the stream), plus extended CONNECT on the
 * cleartext h2c listener. Each path: handshake, echo both ways, close handshake, no route → 404, a policy denial,
 * an upstream that refuses the upgrade, and the bad inputs of its protocol answered cleanly while the gateway keeps
 * serving. The upstream is the real WebSocket echo server of test/support/ws.ts.
 */
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  constants as h2,
  connect as h2connect,
  type IncomingHttpHeaders,
} from 'node:http2';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { edgeEvents } from '../../../src/dataplane/proxy/edge-events.ts';
import { type Gateway, listen, startGateway, tableOf } from '../../support/inproc-gateway.ts';
import { waitFor } from '../../support/wait.ts';
import {
  createWsEchoServer,
  encodeFrame,
  type Frame,
  FrameParser,
  OP_CLOSE,
  OP_TEXT,
  type WsEchoServer,
} from '../../support/ws.ts';
import { makeCert, type TestCert } from './helpers.ts';

let cert: TestCert;
let echo: WsEchoServer;
let refusing: WsEchoServer;
let gw: Gateway;

function routes(echoPort: number, refusingPort: number) {
  return tableOf(
    {
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: '/ws' } }],
          backends: [{ consul: { service: 'echo' } }],
          filters: [
            {
              type: 'ResponseHeaderModifier',
              responseHeaderModifier: { set: [{ name: 'x-gateway', value: 'edgegate' }] },
            },
          ],
        },
        {
          matches: [{ path: { type: 'PathPrefix', value: '/denied' } }],
          backends: [{ consul: { service: 'echo' } }],
          policies: { ipDeny: ['127.0.0.0/8'] },
        },
        {
          matches: [{ path: { type: 'PathPrefix', value: '/refuses' } }],
          backends: [{ consul: { service: 'refusing' } }],
        },
      ],
    },
    { echo: [echoPort], refusing: [refusingPort] },
  );
}

beforeAll(async () => {
  cert = makeCert(mkdtempSync(join(tmpdir(), 'wss-')), 'gw', 'ws.test');
  echo = createWsEchoServer();
  refusing = createWsEchoServer();
  refusing.removeAllListeners('upgrade');
  refusing.on('upgrade', (_req, socket) =>
    socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 7\r\n\r\nnot you'),
  );
  const [echoPort, refusingPort] = [await listen(echo), await listen(refusing)];
  gw = await startGateway(routes(echoPort, refusingPort), {}, { h2c: true }, { tls: cert, policies: true });
});

afterAll(async () => {
  await gw?.close();
  for (const s of [echo, refusing]) {
    for (const t of s?.tunnels ?? []) t.destroy();
    s?.close();
  }
});

const counted = (protocol: string, result: string) =>
  edgeEvents.counterValues()[`websocketUpgrades\u0000${protocol}\u0000${result}`] ?? 0;

function wss(path: string, port = gw.tlsPort): WebSocket {
  // ws passes TLS options through to tls.connect (its types list only some of them).
  const tls = { ca: cert.certPem, servername: 'ws.test' } as WebSocket.ClientOptions;
  return new WebSocket(`wss://127.0.0.1:${port}${path}`, tls);
}

/** The status a refused `ws` handshake got, with its body. */
function refusedWith(ws: WebSocket): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    ws.once('open', () => reject(new Error('the upgrade was accepted')));
    ws.once('error', () => {});
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
  });
}

describe('WebSocket over HTTPS, HTTP/1.1 (wss:// with the ws client)', () => {
  it('handshake, messages echoed both ways, close handshake with its code; counted as opened', async () => {
    const before = counted('https1', 'opened');
    const ws = wss('/ws/chat?room=1');
    const upgraded = once(ws, 'upgrade');
    await once(ws, 'open');
    const [res] = (await upgraded) as [{ headers: Record<string, string> }];
    expect(res.headers['x-upstream']).toBe('ws-echo');
    expect(res.headers['x-gateway']).toBe('edgegate');
    const got: string[] = [];
    ws.on('message', (m: Buffer) => got.push(m.toString()));
    for (let i = 0; i < 100; i++) ws.send(`message ${i} ${'x'.repeat(i * 7)}`);
    ws.send(Buffer.alloc(70_000, 7));
    await waitFor(() => got.length === 101);
    expect(got.slice(0, 100)).toEqual(
      Array.from({ length: 100 }, (_, i) => `message ${i} ${'x'.repeat(i * 7)}`),
    );
    expect(got[100]!.length).toBe(70_000);
    ws.close(4001, 'bye');
    const [code, reason] = (await once(ws, 'close')) as [number, Buffer];
    expect(code).toBe(4001);
    expect(reason.toString()).toBe('bye');
    expect(counted('https1', 'opened')).toBe(before + 1);
    await waitFor(() => [...gw.proxy.pools.entries()].every(([, up]) => up.inFlight === 0));
  });

  it('no route: 404 and no tunnel', async () => {
    const before = counted('https1', 'no_route');
    const r = await refusedWith(wss('/nowhere'));
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body).error).toBe('EDGEGATE_NO_ROUTE');
    expect(counted('https1', 'no_route')).toBe(before + 1);
  });

  it('a policy that denies the client: 403 before any upstream is asked', async () => {
    const upgrades = echo.connections;
    const r = await refusedWith(wss('/denied'));
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).error).toBe('EDGEGATE_IP_DENIED');
    expect(echo.connections).toBe(upgrades);
  });

  it('an upstream that refuses the upgrade: its answer is relayed, no tunnel', async () => {
    const before = counted('https1', 'upstream_refused');
    const r = await refusedWith(wss('/refuses'));
    expect(r).toEqual({ status: 403, body: 'not you' });
    expect(counted('https1', 'upstream_refused')).toBe(before + 1);
  });
});

describe('WSS tunnels and the listener’s lifecycle', () => {
  it('an idle WSS tunnel is closed after websocketIdleTimeoutMs; a drain lets a live one run to its deadline', async () => {
    const idleGw = await startGateway(
      routes((echo.address() as { port: number }).port, (refusing.address() as { port: number }).port),
      { websocketIdleTimeoutMs: 300 },
      {},
      { tls: cert },
    );
    try {
      const idle = wss('/ws/idle', idleGw.tlsPort);
      await once(idle, 'open');
      const t0 = Date.now();
      await once(idle, 'close');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    } finally {
      await idleGw.close();
    }

    const drainGw = await startGateway(
      routes((echo.address() as { port: number }).port, (refusing.address() as { port: number }).port),
      {},
      {},
      { tls: cert },
    );
    const ws = wss('/ws/drain', drainGw.tlsPort);
    await once(ws, 'open');
    const closed = once(ws, 'close');
    const drained = drainGw.tls!.drain({ delayMs: 0, timeoutMs: 1500 });
    // Once the listener closed, the drain has closed the idle connections; the tunnel still carries messages…
    await waitFor(() => !drainGw.tls!.server.listening);
    const reply = once(ws, 'message');
    ws.send('during drain');
    expect(String((await reply)[0])).toBe('during drain');
    // …until the drain deadline cuts it.
    await drained;
    await closed;
    await drainGw.close();
  });
});

interface H2Ws {
  stream: ClientHttp2Stream;
  headers: IncomingHttpHeaders;
  next(n: number): Promise<Frame[]>;
  send(text: string): void;
  close(code: number): void;
  body(): Promise<string>;
}

/** An HTTP/2 session to the HTTPS listener (or, with `h2c`, to the plain listener), once its SETTINGS are in. */
async function session(h2c = false): Promise<ClientHttp2Session> {
  const s = h2c
    ? h2connect(`http://127.0.0.1:${gw.port}`)
    : h2connect(`https://127.0.0.1:${gw.tlsPort}`, { ca: cert.certPem, servername: 'ws.test' });
  s.on('error', () => {});
  await once(s, 'remoteSettings');
  return s;
}

/** RFC 8441: a WebSocket as an extended CONNECT stream, framed with test/support/ws.ts. */
async function h2ws(s: ClientHttp2Session, path: string, extra: Record<string, string> = {}): Promise<H2Ws> {
  const stream = s.request(
    {
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': 'https',
      ':path': path,
      ':authority': 'ws.test',
      'sec-websocket-version': '13',
      ...extra,
    },
    { endStream: false },
  );
  const [headers] = (await once(stream, 'response')) as [IncomingHttpHeaders];
  const parser = new FrameParser();
  const frames: Frame[] = [];
  const chunks: Buffer[] = [];
  let waiter: { n: number; resolve: (f: Frame[]) => void } | undefined;
  stream.on('data', (c: Buffer) => {
    chunks.push(c);
    if (Number(headers[':status']) !== 200) return;
    frames.push(...parser.push(c));
    if (waiter && frames.length >= waiter.n) {
      const w = waiter;
      waiter = undefined;
      w.resolve(frames.splice(0, w.n));
    }
  });
  const ended = new Promise<void>((r) => stream.once('close', () => r()));
  stream.on('error', () => {});
  return {
    stream,
    headers,
    next: (n) =>
      new Promise((resolve) => {
        waiter = { n, resolve };
        if (frames.length >= n) {
          waiter = undefined;
          resolve(frames.splice(0, n));
        }
      }),
    send: (text) => stream.write(encodeFrame(OP_TEXT, Buffer.from(text), true)),
    close: (code) => {
      const p = Buffer.alloc(2);
      p.writeUInt16BE(code);
      stream.write(encodeFrame(OP_CLOSE, p, true));
    },
    body: async () => {
      await ended;
      return Buffer.concat(chunks).toString();
    },
  };
}

describe.each([
  ['HTTPS listener (h2)', false, 'h2'],
  ['plain listener (h2c)', true, 'h2c'],
] as const)('WebSocket over HTTP/2 (RFC 8441 extended CONNECT) on the %s', (_name, h2c, protocol) => {
  it('the listener offers SETTINGS_ENABLE_CONNECT_PROTOCOL', async () => {
    const s = await session(h2c);
    expect(s.remoteSettings.enableConnectProtocol).toBe(true);
    s.close();
  });

  it('handshake (:status 200), messages echoed both ways on the stream, close handshake; counted', async () => {
    const before = counted(protocol, 'opened');
    const s = await session(h2c);
    const ws = await h2ws(s, '/ws/room?x=1');
    expect(ws.headers[':status']).toBe(200);
    expect(ws.headers['x-upstream']).toBe('ws-echo');
    expect(ws.headers['x-gateway']).toBe('edgegate');
    expect(ws.headers['sec-websocket-accept']).toBeUndefined();
    for (let i = 0; i < 50; i++) ws.send(`h2 message ${i}`);
    const frames = await ws.next(50);
    expect(frames.map((f) => f.payload.toString())).toEqual(
      Array.from({ length: 50 }, (_, i) => `h2 message ${i}`),
    );
    ws.close(1000);
    const [closing] = await ws.next(1);
    expect(closing!.opcode).toBe(OP_CLOSE);
    expect(closing!.payload.readUInt16BE(0)).toBe(1000);
    await once(ws.stream, 'close');
    expect(counted(protocol, 'opened')).toBe(before + 1);
    // Other streams of the session still work after a tunnel ended.
    const again = await h2ws(s, '/ws/again');
    again.send('still here');
    expect((await again.next(1))[0]!.payload.toString()).toBe('still here');
    again.stream.close();
    s.close();
  });

  it('no route: :status 404; a policy denial: 403; an upstream that refuses: its answer relayed', async () => {
    const s = await session(h2c);
    const none = await h2ws(s, '/nowhere');
    expect(none.headers[':status']).toBe(404);
    expect(JSON.parse(await none.body()).error).toBe('EDGEGATE_NO_ROUTE');
    const denied = await h2ws(s, '/denied');
    expect(denied.headers[':status']).toBe(403);
    expect(JSON.parse(await denied.body()).error).toBe('EDGEGATE_IP_DENIED');
    const refused = await h2ws(s, '/refuses');
    expect(refused.headers[':status']).toBe(403);
    expect(await refused.body()).toBe('not you');
    s.close();
  });

  it('bad extended CONNECTs get a clean 4xx/5xx or a stream reset, and the session keeps serving', async () => {
    const s = await session(h2c);
    const status = async (headers: Record<string, string>) => {
      const st = s.request(headers, { endStream: false });
      const r = await new Promise<number | string | undefined>((resolve) => {
        st.once('response', (h: IncomingHttpHeaders) => resolve(Number(h[':status'])));
        st.once('error', () => resolve(`reset ${st.rstCode}`));
        st.once('close', () => resolve(`reset ${st.rstCode}`));
      });
      st.close();
      return r;
    };
    // A plain CONNECT (no :protocol): the gateway is no tunnel.
    expect(await status({ ':method': 'CONNECT', ':authority': 'example.com:443' })).toBe(405);
    // An extended CONNECT for another protocol.
    const base = { ':method': 'CONNECT', ':scheme': 'https', ':path': '/ws', ':authority': 'ws.test' };
    expect(await status({ ...base, ':protocol': 'h3-datagram' })).toBe(501);
    // Admission as for the GET it stands for: a fragment in :path, an invalid authority, an underscore header.
    expect(await status({ ...base, ':protocol': 'websocket', ':path': '/ws#x' })).toBe(400);
    expect(await status({ ...base, ':protocol': 'websocket', ':authority': 'ws.test:99999' })).toBe(400);
    expect(await status({ ...base, ':protocol': 'websocket', x_forwarded_for: '1.2.3.4' })).toBe(400);
    // :protocol on a GET is malformed (RFC 8441 §4): nghttp2 resets the stream.
    expect(
      await status({
        ':method': 'GET',
        ':protocol': 'websocket',
        ':path': '/ws',
        ':scheme': 'https',
        ':authority': 'ws.test',
      }),
    ).toMatch(/^reset|^400$/);
    // The session (and the gateway) still serve.
    const ws = await h2ws(s, '/ws/after-bad-input');
    ws.send('ok');
    expect((await ws.next(1))[0]!.payload.toString()).toBe('ok');
    ws.stream.close(h2.NGHTTP2_NO_ERROR);
    s.close();
  });
});

describe('security regressions (named after the attack)', () => {
  it('WebSocket smuggling over HTTP/2: bytes sent after a refused RFC 8441 upgrade never reach the upstream', async () => {
    // A raw upstream that refuses every upgrade and records every byte it receives.
    const received: Buffer[] = [];
    const recorder = createNetServer((socket) => {
      socket.on('data', (c: Buffer) => {
        received.push(c);
        if (Buffer.concat(received).includes('\r\n\r\n'))
          socket.write('HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\n\r\nno');
      });
      socket.on('error', () => {});
    });
    recorder.listen(0, '127.0.0.1');
    await once(recorder, 'listening');
    const port = (recorder.address() as { port: number }).port;
    const smuggleGw = await startGateway(
      tableOf({ rules: [{ backends: [{ consul: { service: 'raw' } }] }] }, { raw: [port] }),
      {},
      {},
      { tls: cert },
    );
    try {
      const s = h2connect(`https://127.0.0.1:${smuggleGw.tlsPort}`, {
        ca: cert.certPem,
        servername: 'ws.test',
      });
      s.on('error', () => {});
      await once(s, 'remoteSettings');
      const st = s.request(
        {
          ':method': 'CONNECT',
          ':protocol': 'websocket',
          ':scheme': 'https',
          ':path': '/ws',
          ':authority': 'ws.test',
          'sec-websocket-version': '13',
        },
        { endStream: false },
      );
      st.on('error', () => {});
      const closed = new Promise<void>((r) => st.once('close', () => r()));
      st.resume();
      const [h] = (await once(st, 'response')) as [IncomingHttpHeaders];
      expect(Number(h[':status'])).toBe(403);
      // The smuggled request, as if a tunnel had opened.
      st.write('GET /admin HTTP/1.1\r\nHost: internal\r\n\r\n');
      // The gateway closes the refused stream both ways once its answer is out.
      await closed;
      // A fresh request on the same session proves the gateway went on (and flushes anything in flight).
      const again = s.request(
        {
          ':method': 'CONNECT',
          ':protocol': 'websocket',
          ':scheme': 'https',
          ':path': '/ws2',
          ':authority': 'ws.test',
          'sec-websocket-version': '13',
        },
        { endStream: false },
      );
      again.on('error', () => {});
      await once(again, 'response');
      again.close();
      s.close();
      const all = Buffer.concat(received).toString('latin1');
      expect(all).not.toContain('/admin');
      expect(all.match(/^GET /gm)).toHaveLength(2);
    } finally {
      await smuggleGw.close();
      recorder.close();
    }
  });
});

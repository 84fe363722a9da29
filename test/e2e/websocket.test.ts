/** WebSocket upgrades through the gateway, against a real (minimal, test/support/ws.ts) WebSocket upstream. */
import { afterEach, describe, expect, it } from 'vitest';
import { type Gateway, listen, startGateway, tableOf } from '../support/inproc-gateway.ts';
import { waitFor } from '../support/wait.ts';
import { createWsEchoServer, OP_CLOSE, OP_TEXT, wsConnect } from '../support/ws.ts';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

async function setup(websocketIdleTimeoutMs = 300_000) {
  const upstream = createWsEchoServer();
  const port = await listen(upstream);
  cleanup.push(() => {
    for (const t of upstream.tunnels) t.destroy();
    upstream.close();
  });
  const gw: Gateway = await startGateway(
    tableOf(
      {
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/ws' } }],
            backends: [{ consul: { service: 'ws' } }],
            filters: [
              {
                type: 'ResponseHeaderModifier',
                responseHeaderModifier: { set: [{ name: 'x-gateway', value: 'edgegate' }] },
              },
            ],
          },
        ],
      },
      { ws: [port] },
    ),
    { websocketIdleTimeoutMs },
  );
  cleanup.push(() => gw.close());
  return { upstream, gw };
}

describe('WebSocket through the gateway', () => {
  it('echoes 1,000 messages both ways and propagates the close handshake', async () => {
    const { upstream, gw } = await setup();
    const ws = await wsConnect(gw.port, '/ws/chat?room=1');
    expect(ws.status).toBe(101);
    expect(ws.headers).toMatch(/\r\nx-upstream: ws-echo/i);
    expect(ws.headers).toMatch(/\r\nx-gateway: edgegate/i);
    const count = 1000;
    const t0 = performance.now();
    for (let i = 0; i < count; i++) ws.send(`message ${i} ${'x'.repeat(i % 300)}`);
    const frames = await ws.next(count);
    const took = performance.now() - t0;
    expect(frames.map((f) => f.opcode).every((o) => o === OP_TEXT)).toBe(true);
    for (let i = 0; i < count; i++)
      expect(frames[i]!.payload.toString()).toBe(`message ${i} ${'x'.repeat(i % 300)}`);
    expect(upstream.messages).toBe(count);
    console.log(`websocket: ${count} messages echoed through the gateway in ${took.toFixed(0)} ms`);

    ws.close(1000);
    const [closeFrame] = await ws.next(1);
    expect(closeFrame!.opcode).toBe(OP_CLOSE);
    expect(closeFrame!.payload.readUInt16BE(0)).toBe(1000);
    await ws.closed;
    await waitFor(() => {
      for (const [, up] of gw.proxy.pools.entries()) if (up.inFlight !== 0) return false;
      return true;
    });
  });

  it('an upstream that goes away closes the client connection', async () => {
    const { upstream, gw } = await setup();
    const ws = await wsConnect(gw.port, '/ws');
    expect(ws.status).toBe(101);
    ws.send('hello');
    await ws.next(1);
    expect(upstream.tunnels.size).toBe(1);
    for (const t of upstream.tunnels) t.destroy();
    await ws.closed;
    expect(ws.socket.destroyed).toBe(true);
    void gw;
  });

  it('an idle tunnel is closed after websocketIdleTimeoutMs', async () => {
    const { gw } = await setup(300);
    const ws = await wsConnect(gw.port, '/ws');
    expect(ws.status).toBe(101);
    const t0 = performance.now();
    await ws.closed;
    const idle = performance.now() - t0;
    expect(idle).toBeGreaterThanOrEqual(250);
    expect(idle).toBeLessThan(3000);
  });

  it('an upgrade to a path without a route gets 404 and no tunnel', async () => {
    const { upstream, gw } = await setup();
    const ws = await wsConnect(gw.port, '/nope');
    expect(ws.status).toBe(404);
    await ws.closed;
    expect(upstream.connections).toBe(0);
  });

  it('an upstream that refuses the upgrade is relayed as is, and the connection closed', async () => {
    const { gw } = await setup();
    const plain = createWsEchoServer();
    plain.removeAllListeners('upgrade');
    plain.on('upgrade', (_req, socket) =>
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\n\r\nno'),
    );
    const port = await listen(plain);
    cleanup.push(() => {
      plain.close();
    });
    gw.proxy.setTable(tableOf({ rules: [{ backends: [{ consul: { service: 'ws' } }] }] }, { ws: [port] }, 2));
    const ws = await wsConnect(gw.port, '/ws');
    expect(ws.status).toBe(403);
    await ws.closed;
  });
});

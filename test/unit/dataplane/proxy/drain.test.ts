/**
 * drainServer against a real node:http server on loopback (with ProxyPipeline left out: a plain handler stands in
 * for it so the drain mechanics are tested alone): Connection: close during the delay, idle keep-alive sockets
 * closed after it, requests in flight allowed to finish, and cut at the timeout.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { afterEach, expect, test } from 'vitest';
import { ProxyPipeline } from '../../../../src/dataplane/proxy/proxy.ts';
import {
  createProxyServer,
  drainServer,
  listenerStats,
  listenProxyServer,
} from '../../../../src/dataplane/proxy/server.ts';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

/** A proxy server whose pipeline's handle() is replaced by a handler answering after `?wait=MS`. */
async function server() {
  const proxy = new ProxyPipeline();
  proxy.handle = (req, res) => {
    const wait = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('wait') ?? 0);
    setTimeout(() => res.end('ok'), wait);
  };
  const s = createProxyServer(proxy);
  const addr = await listenProxyServer(s, { host: '127.0.0.1', port: 0, reusePort: false });
  cleanup.push(async () => {
    s.closeAllConnections();
    s.close();
  });
  return { s, url: (p: string) => `http://127.0.0.1:${(addr as AddressInfo).port}${p}` };
}

test('responses carry Connection: close while draining, in-flight requests finish, then the drain resolves', async () => {
  const { s, url } = await server();
  const agent = new Agent({ connections: 4 });
  cleanup.push(() => agent.close());
  // A keep-alive connection that goes idle, and a slow request in flight.
  const warm = await request(url('/'), { dispatcher: agent });
  await warm.body.text();
  expect(warm.headers.connection).toBe('keep-alive');
  const slow = request(url('/?wait=600'), { dispatcher: agent });
  await expect.poll(() => listenerStats(s).inFlight).toBe(1);

  const drained = drainServer(s, { delayMs: 200, timeoutMs: 5000 });
  const during = await request(url('/'), { dispatcher: agent });
  await during.body.text();
  expect(during.headers.connection).toBe('close');
  const slowRes = await slow;
  expect(await slowRes.body.text()).toBe('ok');
  expect(slowRes.headers.connection).toBe('close');
  const r = await drained;
  expect(r.cut).toBe(0);
  expect(listenerStats(s)).toMatchObject({ inFlight: 0, connections: 0, draining: true });
  expect(s.listening).toBe(false);
});

test('requests still running at the timeout are cut', async () => {
  const { s, url } = await server();
  const stuck = request(url('/?wait=30000')).catch((err: Error) => err);
  await expect.poll(() => listenerStats(s).inFlight).toBe(1);
  const r = await drainServer(s, { delayMs: 0, timeoutMs: 300 });
  expect(r.cut).toBe(1);
  expect(await stuck).toBeInstanceOf(Error);
});

test('listenProxyServer rejects with the listen error', async () => {
  const { s } = await server();
  const port = (s.address() as AddressInfo).port;
  const other = createProxyServer(new ProxyPipeline());
  await expect(listenProxyServer(other, { host: '127.0.0.1', port, reusePort: false })).rejects.toThrow(
    /EADDRINUSE/,
  );
  other.close();
  await once(other, 'close').catch(() => {});
});

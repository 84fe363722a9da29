/**
 * The raw HTTP/1.1 upstream client (src/dataplane/proxy/raw-pool.ts, the default for cleartext HTTP/1.1) through a
 * real gateway, on every listener: keep-alive reuse, bodies both ways with the framing the pool chooses, HEAD,
 * the response-queue-poisoning attack an upstream could try, and `--upstream-client undici` still serving.
 * The rest of the e2e suite runs on the same client by default.
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CountingUpstream,
  client,
  countingUpstream,
  type EdgeGateway,
  LISTENERS,
  type Listener,
  startEdgeGateway,
} from './helpers.ts';

/** An upstream that answers every request with one extra, forged response in the same write. */
async function poisoningUpstream(): Promise<{ server: Server; port: number; connections: number }> {
  const state = { server: undefined as unknown as Server, port: 0, connections: 0 };
  state.server = createServer((socket: Socket) => {
    state.connections++;
    socket.on('error', () => {});
    socket.on('data', (d: Buffer) => {
      if (!d.toString('latin1').includes('\r\n\r\n')) return;
      socket.write(
        'HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nrealHTTP/1.1 200 OK\r\ncontent-length: 6\r\nx-forged: 1\r\n\r\nforged',
      );
    });
  });
  state.server.listen(0, '127.0.0.1');
  await once(state.server, 'listening');
  state.port = (state.server.address() as { port: number }).port;
  return state;
}

let echo: CountingUpstream;
let poison: Awaited<ReturnType<typeof poisoningUpstream>>;
let gw: EdgeGateway;
let undiciGw: EdgeGateway;

beforeAll(async () => {
  echo = await countingUpstream((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      res.setHeader(
        'x-framing',
        req.headers['transfer-encoding'] ?? `length ${req.headers['content-length']}`,
      );
      res.setHeader('x-received', String(body.length));
      res.setHeader('content-length', String(body.length || 5));
      res.end(body.length > 0 ? body : 'hello');
    });
  });
  poison = await poisoningUpstream();
  const spec = {
    routes: [
      { prefix: '/echo', service: 'echo' },
      { prefix: '/poison', service: 'poison' },
    ],
    services: { echo: [echo.port], poison: [poison.port] },
  };
  gw = await startEdgeGateway(spec);
  undiciGw = await startEdgeGateway({ ...spec, args: ['--upstream-client', 'undici'] });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await undiciGw?.close();
  await echo?.close();
  poison?.server.close();
});

describe.each(LISTENERS)('raw upstream client, client over %s', (listener: Listener) => {
  it('reuses one upstream connection for requests one after the other', async () => {
    const c = client(listener, gw);
    try {
      echo.reset();
      for (let i = 0; i < 20; i++) {
        const r = await c.request({ path: '/echo/x' });
        expect(r.status).toBe(200);
        expect(r.body.toString()).toBe('hello');
      }
      expect(echo.requests).toBe(20);
      expect(echo.connections).toBeLessThanOrEqual(1);
    } finally {
      c.close();
    }
  });

  it('forwards bodies whole: buffered with Content-Length, large ones streamed; HEAD has no body', async () => {
    const c = client(listener, gw);
    try {
      const small = await c.request({ method: 'POST', path: '/echo/small', body: 'abc' });
      expect(small.headers['x-received']).toBe('3');
      expect(small.headers['x-framing']).toBe('length 3');
      const big = Buffer.alloc(300 * 1024, 'z');
      const large = await c.request({ method: 'PUT', path: '/echo/large', body: big });
      expect(large.headers['x-received']).toBe(String(big.length));
      expect(large.body.equals(big)).toBe(true);
      const head = await c.request({ method: 'HEAD', path: '/echo/head' });
      expect(head.status).toBe(200);
      expect(head.body.length).toBe(0);
      expect((await c.request({ path: '/echo/after-head' })).body.toString()).toBe('hello');
    } finally {
      c.close();
    }
  });

  it('response queue poisoning: a forged second response is never served to the next request', async () => {
    const c = client(listener, gw);
    try {
      for (let i = 0; i < 5; i++) {
        const r = await c.request({ path: '/poison/x' });
        expect(r.status).toBe(200);
        expect(r.body.toString()).toBe('real');
        expect(r.headers['x-forged']).toBeUndefined();
      }
    } finally {
      c.close();
    }
  });
});

describe('--upstream-client undici', () => {
  it('serves the same requests through undici', async () => {
    const c = client('http', undiciGw);
    try {
      const r = await c.request({ method: 'POST', path: '/echo/u', body: 'abcd' });
      expect(r.status).toBe(200);
      expect(r.headers['x-received']).toBe('4');
    } finally {
      c.close();
    }
  });
});

/**
 * HTTP/2 floods that Node ends by itself are counted as floods stopped (edgegate_http2_floods_stopped_total, by
 * reason), and a request body sent as one-byte DATA frames is not forwarded one upstream write per byte: buffered
 * whole when small, coalesced when streamed. Raw frames over TLS, so the frame sizes are the attacker's.
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../cluster/helpers.ts';
import { type EdgeGateway, HOST, startEdgeGateway } from './helpers.ts';

/** What the raw upstream saw of one request: its head and the chunk sizes of a chunked body. */
interface Received {
  head: string;
  chunks: number[];
  bytes: number;
}

/** A raw upstream that records request heads and chunk sizes (test-side bookkeeping), answering 200 at the end. */
async function startRecordingUpstream(): Promise<{ server: Server; port: number; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((socket: Socket) => {
    let buf = Buffer.alloc(0);
    let current: (Received & { length: number; chunked: boolean }) | undefined;
    socket.on('error', () => {});
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (current === undefined) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = buf.subarray(0, end).toString('latin1');
          buf = buf.subarray(end + 4);
          const cl = /\r\ncontent-length: (\d+)/i.exec(head);
          current = {
            head,
            chunks: [],
            bytes: 0,
            length: cl ? Number(cl[1]) : -1,
            chunked: /\r\ntransfer-encoding: chunked/i.test(head),
          };
        }
        if (current.chunked) {
          const eol = buf.indexOf('\r\n');
          if (eol < 0) return;
          const size = Number.parseInt(buf.subarray(0, eol).toString('latin1'), 16);
          if (buf.length < eol + 2 + size + 2) return;
          buf = buf.subarray(eol + 2 + size + 2);
          if (size > 0) {
            current.chunks.push(size);
            current.bytes += size;
            continue;
          }
        } else {
          const want = Math.max(0, current.length) - current.bytes;
          const take = Math.min(want, buf.length);
          current.bytes += take;
          buf = buf.subarray(take);
          if (current.bytes < Math.max(0, current.length)) return;
        }
        received.push(current);
        current = undefined;
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port, received };
}

let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let gw: EdgeGateway;

beforeAll(async () => {
  up = await startRecordingUpstream();
  gw = await startEdgeGateway({
    routes: [{ prefix: '/raw', service: 'raw' }],
    services: { raw: [up.port] },
    // A 60,000-byte body (within HTTP/2's initial 64 KiB window) is then streamed, not buffered.
    args: ['--request-buffer-size', '16k'],
  });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  up?.server.close();
});

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK (RFC 7541), literals without indexing or Huffman: enough for a request head. */
function requestHead(method: 'GET' | 'POST', path: string, extra: [string, string][] = []): Buffer {
  const lit = (index: number, value: string) =>
    Buffer.concat([Buffer.from([index, value.length]), Buffer.from(value)]);
  const parts = [Buffer.from([method === 'GET' ? 0x82 : 0x83, 0x87]), lit(4, path), lit(1, HOST)];
  for (const [n, v] of extra)
    parts.push(
      Buffer.concat([Buffer.from([0, n.length]), Buffer.from(n), Buffer.from([v.length]), Buffer.from(v)]),
    );
  return Buffer.concat(parts);
}

/** A raw HTTP/2 connection (preface and empty SETTINGS sent) that records GOAWAY codes and its closing. */
async function rawH2(): Promise<{ socket: TLSSocket; goaway: number[]; closed: () => boolean }> {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port: gw.tlsPort,
    servername: HOST,
    ALPNProtocols: ['h2'],
    rejectUnauthorized: false,
  });
  socket.on('error', () => {});
  await once(socket, 'secureConnect');
  const goaway: number[] = [];
  let closed = false;
  let inbound = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => {
    inbound = Buffer.concat([inbound, d]);
    while (inbound.length >= 9) {
      const len = inbound.readUIntBE(0, 3);
      if (inbound.length < 9 + len) break;
      if (inbound[3] === 0x7) goaway.push(inbound.readUInt32BE(9 + 4));
      inbound = inbound.subarray(9 + len);
    }
  });
  socket.on('close', () => {
    closed = true;
  });
  socket.write(
    Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(0x4, 0, 0, Buffer.alloc(0))]),
  );
  return { socket, goaway, closed: () => closed };
}

describe('HTTP/2 floods Node ends itself are counted', () => {
  it('a PING flood from a client that reads nothing is ended by Node and counted (reason nghttp2)', async () => {
    const before = await gw.counter('edgegate_http2_floods_stopped_total', { reason: 'nghttp2' });
    const c = await rawH2();
    c.socket.pause();
    let sent = 0;
    try {
      const pings = Buffer.concat(Array.from({ length: 500 }, () => frame(0x6, 0, 0, Buffer.alloc(8))));
      // Bounded: 200,000 PINGs at most, until the gateway counts the flood it stopped.
      while (sent < 200_000 && !c.closed() && c.socket.writable) {
        if (!c.socket.write(pings))
          await new Promise((r) => {
            c.socket.once('drain', r);
            c.socket.once('close', r);
          });
        sent += 500;
        if (
          sent % 10_000 === 0 &&
          (await gw.counter('edgegate_http2_floods_stopped_total', { reason: 'nghttp2' })) > before
        )
          break;
      }
      await waitFor(
        'the flood Node stopped on /metrics',
        async () => (await gw.counter('edgegate_http2_floods_stopped_total', { reason: 'nghttp2' })) > before,
        10_000,
      );
      expect(sent).toBeLessThan(200_000);
    } finally {
      c.socket.destroy();
    }
  });

  it('an invalid-frame flood (empty DATA frames) is ended by Node and counted (reason invalid_frames)', async () => {
    const before = await gw.counter('edgegate_http2_floods_stopped_total', { reason: 'invalid_frames' });
    const c = await rawH2();
    try {
      // HEADERS without END_STREAM (a body follows), then empty DATA frames: each is an invalid frame to Node.
      c.socket.write(frame(0x1, 0x4, 1, requestHead('POST', '/raw/empty')));
      const empty = Buffer.concat(Array.from({ length: 100 }, () => frame(0x0, 0, 1, Buffer.alloc(0))));
      for (let i = 0; i < 50 && !c.closed(); i++) {
        c.socket.write(empty);
        await new Promise((r) => setImmediate(r));
      }
      await waitFor('the gateway to close the flooding connection', () => c.closed(), 10_000);
      await waitFor(
        'the flood on /metrics',
        async () =>
          (await gw.counter('edgegate_http2_floods_stopped_total', { reason: 'invalid_frames' })) > before,
        10_000,
      );
    } finally {
      c.socket.destroy();
    }
  });
});

describe('a request body sent as one-byte DATA frames', () => {
  /** Sends `size` body bytes as one-byte DATA frames, 1,000 per write; resolves with the response status. */
  async function oneByteUpload(path: string, size: number, contentLength: boolean): Promise<number> {
    const c = await rawH2();
    try {
      const extra: [string, string][] = contentLength ? [['content-length', String(size)]] : [];
      c.socket.write(frame(0x1, 0x4, 1, requestHead('POST', path, extra)));
      const one = frame(0x0, 0, 1, Buffer.from('z'));
      for (let sent = 0; sent < size; ) {
        const n = Math.min(1000, size - sent);
        const frames = Array.from({ length: n }, () => one);
        sent += n;
        if (sent === size) frames[n - 1] = frame(0x0, 0x1, 1, Buffer.from('z'));
        if (!c.socket.write(Buffer.concat(frames))) await once(c.socket, 'drain');
        await new Promise((r) => setImmediate(r));
      }
      let status = 0;
      // The response HEADERS frame: the first byte of its block is an indexed :status (0x88 = 200).
      await waitFor(
        'the response',
        () => {
          status = up.received.some((r) => r.head.includes(` ${path} `)) ? 200 : 0;
          return status !== 0 || c.closed();
        },
        10_000,
      );
      return status;
    } finally {
      c.socket.destroy();
    }
  }

  it('a small one (with its length) is buffered and sent upstream as one body with Content-Length', async () => {
    expect(await oneByteUpload('/raw/small', 1000, true)).toBe(200);
    const r = up.received.find((x) => x.head.includes(' /raw/small '))!;
    expect(r.bytes).toBe(1000);
    expect(r.head).toMatch(/\r\ncontent-length: 1000/i);
    expect(r.head).not.toMatch(/transfer-encoding/i);
  });

  it('a streamed one (no length, over the buffer size) reaches the upstream in coalesced chunks, not one per byte', async () => {
    expect(await oneByteUpload('/raw/streamed', 60_000, false)).toBe(200);
    const r = up.received.find((x) => x.head.includes(' /raw/streamed '))!;
    expect(r.bytes).toBe(60_000);
    console.log(
      `one-byte DATA frames: 60,000 frames reached the upstream as ${r.chunks.length} chunks (largest ${Math.max(...r.chunks)} bytes)`,
    );
    // 60 writes of 1,000 frames each: on the order of one chunk per write, never one per frame.
    expect(r.chunks.length).toBeLessThan(1000);
  });
});

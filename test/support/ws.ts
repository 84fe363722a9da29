/**
 * Minimal WebSocket (RFC 6455) pieces for tests, on node:http / node:net only: handshake, frame encoding with
 * optional masking, an incremental frame parser, an echo server and a client. Enough for text/binary messages
 * and the close handshake; no extensions, no fragmentation.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const OP_TEXT = 1;
export const OP_CLOSE = 8;

export function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

export function encodeFrame(opcode: number, payload: Buffer, mask: boolean): Buffer {
  const len = payload.length;
  const headLen = 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + (mask ? 4 : 0);
  const out = Buffer.alloc(headLen + len);
  out[0] = 0x80 | opcode;
  let off = 2;
  if (len < 126) out[1] = len;
  else if (len < 65536) {
    out[1] = 126;
    out.writeUInt16BE(len, 2);
    off = 4;
  } else {
    out[1] = 127;
    out.writeBigUInt64BE(BigInt(len), 2);
    off = 10;
  }
  if (mask) {
    out[1]! |= 0x80;
    const key = randomBytes(4);
    key.copy(out, off);
    off += 4;
    for (let i = 0; i < len; i++) out[off + i] = payload[i]! ^ key[i & 3]!;
  } else payload.copy(out, off);
  return out;
}

export interface Frame {
  opcode: number;
  payload: Buffer;
}

/** Feed bytes in any split; complete frames come out. */
export class FrameParser {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const frames: Frame[] = [];
    for (;;) {
      const b = this.#buf;
      if (b.length < 2) break;
      const masked = (b[1]! & 0x80) !== 0;
      let len = b[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      const keyOff = off;
      if (masked) off += 4;
      if (b.length < off + len) break;
      const payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i]! ^= b[keyOff + (i & 3)]!;
      frames.push({ opcode: b[0]! & 0x0f, payload });
      this.#buf = b.subarray(off + len);
    }
    return frames;
  }
}

/** An upstream that echoes every message and answers a close frame with a close frame, then ends. */
export type WsEchoServer = Server & { connections: number; messages: number; tunnels: Set<Duplex> };

export function createWsEchoServer(): WsEchoServer {
  const server = createServer((_req, res) => {
    res.writeHead(426, { 'content-length': 0 });
    res.end();
  }) as WsEchoServer;
  server.connections = 0;
  server.messages = 0;
  // Upgraded sockets leave the http server's bookkeeping (closeAllConnections misses them): keep them here.
  server.tunnels = new Set();
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    server.connections++;
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\nX-Upstream: ws-echo\r\n\r\n`,
    );
    server.tunnels.add(socket);
    socket.once('close', () => server.tunnels.delete(socket));
    const parser = new FrameParser();
    const onData = (chunk: Buffer) => {
      for (const f of parser.push(chunk)) {
        if (f.opcode === OP_CLOSE) {
          socket.end(encodeFrame(OP_CLOSE, f.payload, false));
          return;
        }
        server.messages++;
        socket.write(encodeFrame(f.opcode, f.payload, false));
      }
    };
    socket.on('error', () => socket.destroy());
    socket.on('data', onData);
    if (head.length > 0) onData(head);
  });
  return server;
}

export interface WsClient {
  socket: Socket;
  status: number;
  headers: string;
  /** Resolves with the next `n` frames. */
  next(n: number): Promise<Frame[]>;
  send(text: string): void;
  close(code?: number): void;
  closed: Promise<void>;
}

export async function wsConnect(port: number, path: string, host = 'test.local'): Promise<WsClient> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const key = randomBytes(16).toString('base64');
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`,
  );
  let buf = Buffer.alloc(0);
  while (buf.indexOf('\r\n\r\n') < 0) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    buf = Buffer.concat([buf, chunk]);
  }
  const end = buf.indexOf('\r\n\r\n');
  const headers = buf.subarray(0, end).toString('latin1');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1] ?? 0);
  if (
    status === 101 &&
    !headers.toLowerCase().includes(`sec-websocket-accept: ${acceptKey(key).toLowerCase()}`)
  )
    throw new Error(`bad Sec-WebSocket-Accept in ${headers}`);
  const parser = new FrameParser();
  const frames: Frame[] = [];
  let waiter: { n: number; resolve: (f: Frame[]) => void } | undefined;
  const deliver = () => {
    if (waiter && frames.length >= waiter.n) {
      const w = waiter;
      waiter = undefined;
      w.resolve(frames.splice(0, w.n));
    }
  };
  const rest = buf.subarray(end + 4);
  if (rest.length > 0) frames.push(...parser.push(rest));
  socket.on('data', (chunk: Buffer) => {
    frames.push(...parser.push(chunk));
    deliver();
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => {});
  return {
    socket,
    status,
    headers,
    next(n) {
      return new Promise((resolve) => {
        waiter = { n, resolve };
        deliver();
      });
    },
    send(text) {
      socket.write(encodeFrame(OP_TEXT, Buffer.from(text), true));
    },
    close(code = 1000) {
      const p = Buffer.alloc(2);
      p.writeUInt16BE(code);
      socket.write(encodeFrame(OP_CLOSE, p, true));
    },
    closed,
  };
}

/**
 * Slow request bodies (`slowhttptest -B`: many clients each trickling a small upload) must not starve an endpoint's
 * pool: a small body is read whole before an upstream connection is taken. A body that stalls is answered 408
 * after the client body timeout, whether it was being buffered or streamed. Every listener: HTTP/1.1, HTTP/1.1
 * over TLS, HTTP/2.
 */
import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../cluster/helpers.ts';
import {
  type CountingUpstream,
  client,
  countingUpstream,
  type EdgeGateway,
  errorCodeOf,
  HOST,
  h2Session,
  LISTENERS,
  type Listener,
  rawConnection,
  startEdgeGateway,
} from './helpers.ts';

const UPLOADS = 24;
const DRIP_MS = 200;

let up: CountingUpstream;
let gw: EdgeGateway;

beforeAll(async () => {
  // Reads the whole body, then answers with its size.
  up = await countingUpstream((req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
    });
    req.on('end', () => res.end(JSON.stringify({ bytes: n })));
  });
  gw = await startEdgeGateway({
    routes: [
      { prefix: '/pool8', service: 'pool8', pool: { maxConnections: 8, maxPendingRequests: 8 } },
      { prefix: '/stall', service: 'stall' },
    ],
    services: { pool8: [up.port], stall: [up.port] },
    args: ['--client-body-timeout', '3s'],
  });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await up?.close();
});

/** One slow upload: a 1,000-byte body (or a chunked one) sent one byte every DRIP_MS. */
interface SlowUpload {
  /** The gateway answered or closed it. */
  ended(): boolean;
  stop(): void;
}

function slowH1Upload(socket: Socket, path: string, chunked: boolean): SlowUpload {
  let ended = false;
  socket.on('data', () => {
    ended = true;
  });
  socket.on('close', () => {
    ended = true;
  });
  const framing = chunked ? 'Transfer-Encoding: chunked' : 'Content-Length: 1000';
  socket.write(`POST ${path} HTTP/1.1\r\nHost: ${HOST}\r\n${framing}\r\n\r\n`);
  const timer = setInterval(() => socket.write(chunked ? '1\r\nx\r\n' : 'x'), DRIP_MS);
  return {
    ended: () => ended,
    stop() {
      clearInterval(timer);
      socket.destroy();
    },
  };
}

function slowH2Upload(session: ClientHttp2Session, path: string, withLength: boolean): SlowUpload {
  let ended = false;
  const stream: ClientHttp2Stream = session.request({
    ':method': 'POST',
    ':path': path,
    ':authority': HOST,
    ...(withLength ? { 'content-length': '1000' } : {}),
  });
  stream.on('response', () => {
    ended = true;
  });
  stream.on('close', () => {
    ended = true;
  });
  stream.on('error', () => {});
  const timer = setInterval(() => stream.write('x'), DRIP_MS);
  return {
    ended: () => ended,
    stop() {
      clearInterval(timer);
      stream.close();
    },
  };
}

describe.each(LISTENERS)('slow request bodies over %s', (listener: Listener) => {
  it('two dozen slow uploads do not starve an endpoint pool of 8: a GET to it is answered while they are still open', async () => {
    up.reset();
    const active = await gw.counter('edgegate_active_requests');
    const sessions: ClientHttp2Session[] = [];
    const uploads: SlowUpload[] = [];
    try {
      for (let i = 0; i < UPLOADS; i++) {
        if (listener === 'h2') {
          if (i % 8 === 0) sessions.push(await h2Session(gw));
          uploads.push(slowH2Upload(sessions.at(-1)!, `/pool8/upload-${i}`, i % 2 === 0));
        } else
          uploads.push(slowH1Upload(await rawConnection(listener, gw), `/pool8/upload-${i}`, i % 2 === 1));
      }
      // Every upload has reached the gateway (its request is in flight there).
      await waitFor(
        'the gateway to hold every slow upload',
        async () => (await gw.counter('edgegate_active_requests')) >= active + UPLOADS,
        10_000,
      );
      const c = client(listener, gw);
      const r = await c.request({ path: '/pool8/normal' });
      c.close();
      expect(r.status).toBe(200);
      // Answered while every slow upload is still open and unanswered: none of them held an upstream connection.
      expect(uploads.filter((u) => u.ended())).toEqual([]);
      expect(up.byMethod.POST ?? 0).toBe(0);
      expect(up.byMethod.GET).toBe(1);
    } finally {
      for (const u of uploads) u.stop();
      for (const s of sessions) s.destroy();
    }
  });

  it('a request body that stalls is answered 408 after the client body timeout, buffered or streamed, and never reaches the upstream as a failure', async () => {
    const before = await gw.counter('edgegate_client_body_timeouts_total');
    const failuresBefore = await gw.counter('edgegate_upstream_try_timeouts_total');
    // Small (buffered) and large (streamed: over the 64 KiB buffer) bodies, each sent in part and then stalled.
    const cases = [
      { declared: 1000, sent: 10 },
      { declared: 200_000, sent: 100_000 },
    ];
    for (const { declared, sent } of cases) {
      const status = await stalledUpload(listener, `/stall/body-${declared}`, declared, sent);
      // The client body timeout (3 s) answered it, not the 5-minute client request timeout (whose 408 carries
      // EDGEGATE_BAD_REQUEST).
      expect({ declared, status: status.status, code: status.code }).toEqual({
        declared,
        status: 408,
        code: 'EDGEGATE_CLIENT_BODY_TIMEOUT',
      });
    }
    expect(await gw.counter('edgegate_client_body_timeouts_total')).toBe(before + cases.length);
    expect(await gw.counter('edgegate_upstream_try_timeouts_total')).toBe(failuresBefore);
  });
});

/** Sends `sent` of `declared` body bytes, then nothing: the gateway's answer (status and error code). */
async function stalledUpload(
  listener: Listener,
  path: string,
  declared: number,
  sent: number,
): Promise<{ status: number; code: string }> {
  if (listener === 'h2') {
    const session = await h2Session(gw);
    try {
      return await new Promise((resolve, reject) => {
        // No content-length for the large one: an HTTP/2 body of unknown length, read up to the buffer, then streamed.
        const stream = session.request({
          ':method': 'POST',
          ':path': path,
          ':authority': HOST,
          ...(declared < 64 * 1024 ? { 'content-length': String(declared) } : {}),
        });
        stream.on('response', (h) => {
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () =>
            resolve({
              status: Number(h[':status']),
              code: errorCodeOf({ status: 0, headers: {}, body: Buffer.concat(chunks), informational: [] }),
            }),
          );
        });
        stream.on('error', reject);
        stream.write(Buffer.alloc(sent, 'y'));
      });
    } finally {
      session.destroy();
    }
  }
  const socket = await rawConnection(listener, gw);
  return new Promise((resolve) => {
    let text = '';
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
    });
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      resolve({ status, code: /"error":"([A-Z_]+)"/.exec(body)?.[1] ?? '' });
    });
    socket.write(`POST ${path} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${declared}\r\n\r\n`);
    socket.write(Buffer.alloc(sent, 'y'));
  });
}

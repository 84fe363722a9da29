/**
 * Small writes held until the end of the event loop's turn (src/dataplane/proxy/turn-writes.ts), on real loopback
 * sockets: held while the turn runs, sent in order when it ends, never lost to a peer that went away, sent at once
 * by flushHeld.
 */
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flushHeld, heldCount, holdWrites, MAX_HELD } from '../../../../src/dataplane/proxy/turn-writes.ts';
import { waitFor } from '../../../support/wait.ts';

let server: Server;
/** What each accepted connection received, by connection. */
const received: string[] = [];

beforeAll(async () => {
  server = createServer((s) => {
    const i = received.push('') - 1;
    s.on('data', (d: Buffer) => {
      received[i] += d.toString('latin1');
    });
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
});

afterAll(() => {
  server.close();
});

/** A connected client and the index of what its server side receives. */
async function client(): Promise<{ socket: Socket; index: number }> {
  const before = received.length;
  const socket = connect((server.address() as { port: number }).port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  await waitFor(() => received.length > before, { timeoutMs: 5_000, intervalMs: 5, message: 'accepted' });
  return { socket, index: received.length - 1 };
}

const turnEnd = () => new Promise((r) => setImmediate(r));

describe('writes held until the end of the turn', () => {
  it('stay queued while the turn runs, then leave in the order written, each socket held once', async () => {
    const a = await client();
    const b = await client();
    holdWrites(a.socket);
    a.socket.write('a1;', 'latin1');
    holdWrites(b.socket);
    b.socket.write('b1;', 'latin1');
    holdWrites(a.socket);
    a.socket.write('a2;', 'latin1');
    // A write that is not held (a large body) joins the queue behind what is held.
    a.socket.write(Buffer.alloc(64 * 1024, 0x78));
    expect(heldCount()).toBe(2);
    expect(a.socket.writableLength).toBeGreaterThan(0);
    expect(b.socket.writableLength).toBeGreaterThan(0);
    await turnEnd();
    expect(heldCount()).toBe(0);
    expect(b.socket.writableCorked).toBe(0);
    expect(a.socket.writableCorked).toBe(0);
    await waitFor(() => received[a.index]!.length === 6 + 64 * 1024 && received[b.index] === 'b1;', {
      timeoutMs: 5_000,
      intervalMs: 5,
      message: 'both received',
    });
    expect(received[a.index]!.startsWith('a1;a2;xxx')).toBe(true);
    a.socket.destroy();
    b.socket.destroy();
  });

  it('are sent before the next one is held once MAX_HELD sockets wait (a bounded wait in a long turn)', async () => {
    const clients: { socket: Socket; index: number }[] = [];
    for (let i = 0; i <= MAX_HELD; i++) clients.push(await client());
    clients.forEach((c, i) => {
      holdWrites(c.socket);
      c.socket.write(`w${i}`, 'latin1');
    });
    // The first MAX_HELD were sent when the last was held; only the last one waits for the turn's end.
    expect(heldCount()).toBe(1);
    expect(clients.slice(0, MAX_HELD).every((c) => c.socket.writableCorked === 0)).toBe(true);
    expect(clients[MAX_HELD]!.socket.writableCorked).toBe(1);
    await turnEnd();
    expect(heldCount()).toBe(0);
    await waitFor(() => clients.every((c, i) => received[c.index] === `w${i}`), {
      timeoutMs: 5_000,
      intervalMs: 5,
    });
    for (const c of clients) c.socket.destroy();
  });

  it('are dropped with a socket destroyed in the turn, without keeping the others', async () => {
    const gone = await client();
    const kept = await client();
    holdWrites(gone.socket);
    gone.socket.write('never', 'latin1');
    holdWrites(kept.socket);
    kept.socket.write('kept', 'latin1');
    gone.socket.destroy();
    await turnEnd();
    await waitFor(() => received[kept.index] === 'kept', { timeoutMs: 5_000, intervalMs: 5 });
    expect(received[gone.index]).toBe('');
    kept.socket.destroy();
  });

  it('leave at once with flushHeld (a cut answer is sent before its socket is destroyed), and with end()', async () => {
    const cut = await client();
    holdWrites(cut.socket);
    cut.socket.write('partial', 'latin1');
    flushHeld(cut.socket);
    // Written into the kernel within the call: nothing left queued in Node.
    expect(cut.socket.writableLength).toBe(0);
    cut.socket.destroy();
    await waitFor(() => received[cut.index] === 'partial', { timeoutMs: 5_000, intervalMs: 5 });

    const ended = await client();
    holdWrites(ended.socket);
    ended.socket.write('last', 'latin1');
    ended.socket.end();
    expect(ended.socket.writableCorked).toBe(0);
    await waitFor(() => received[ended.index] === 'last', { timeoutMs: 5_000, intervalMs: 5 });
    await turnEnd();
    expect(heldCount()).toBe(0);
  });
});

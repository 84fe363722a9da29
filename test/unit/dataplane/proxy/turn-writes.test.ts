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

interface Client {
  socket: Socket;
  /** Where its server side's bytes are in `received`. */
  index: number;
}

/** A connected client. */
async function client(): Promise<Client> {
  const before = received.length;
  const socket = connect((server.address() as { port: number }).port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  await arrived(() => received.length > before, 'accepted');
  return { socket, index: received.length - 1 };
}

const turnEnd = () => new Promise((r) => setImmediate(r));

/** A small write the way the data path makes one: held first. */
function heldWrite(c: Client, text: string): void {
  holdWrites(c.socket);
  c.socket.write(text, 'latin1');
}

/** Waits (deadline 5 s) until the server sides have received what `condition` looks for. */
function arrived(condition: () => boolean, message?: string): Promise<unknown> {
  return waitFor(condition, { timeoutMs: 5_000, intervalMs: 5, message });
}

describe('writes held until the end of the turn', () => {
  it('stay queued while the turn runs, then leave in the order written, each socket held once', async () => {
    const a = await client();
    const b = await client();
    heldWrite(a, 'a1;');
    heldWrite(b, 'b1;');
    heldWrite(a, 'a2;');
    // A write that is not held (a large body) joins the queue behind what is held.
    a.socket.write(Buffer.alloc(64 * 1024, 0x78));
    expect(heldCount()).toBe(2);
    expect(a.socket.writableLength).toBeGreaterThan(0);
    expect(b.socket.writableLength).toBeGreaterThan(0);
    await turnEnd();
    expect(heldCount()).toBe(0);
    expect(b.socket.writableCorked).toBe(0);
    expect(a.socket.writableCorked).toBe(0);
    await arrived(
      () => received[a.index]!.length === 6 + 64 * 1024 && received[b.index] === 'b1;',
      'both received',
    );
    expect(received[a.index]!.startsWith('a1;a2;xxx')).toBe(true);
    a.socket.destroy();
    b.socket.destroy();
  });

  it('are sent before the next one is held once MAX_HELD sockets wait (a bounded wait in a long turn)', async () => {
    const clients: Client[] = [];
    for (let i = 0; i <= MAX_HELD; i++) clients.push(await client());
    for (const [i, c] of clients.entries()) heldWrite(c, `w${i}`);
    // The first MAX_HELD were sent when the last was held; only the last one waits for the turn's end.
    expect(heldCount()).toBe(1);
    expect(clients.slice(0, MAX_HELD).every((c) => c.socket.writableCorked === 0)).toBe(true);
    expect(clients[MAX_HELD]!.socket.writableCorked).toBe(1);
    await turnEnd();
    expect(heldCount()).toBe(0);
    await arrived(() => clients.every((c, i) => received[c.index] === `w${i}`));
    for (const c of clients) c.socket.destroy();
  });

  it('are dropped with a socket destroyed in the turn, without keeping the others', async () => {
    const gone = await client();
    const kept = await client();
    heldWrite(gone, 'never');
    heldWrite(kept, 'kept');
    gone.socket.destroy();
    await turnEnd();
    await arrived(() => received[kept.index] === 'kept');
    expect(received[gone.index]).toBe('');
    kept.socket.destroy();
  });

  it('leave at once with flushHeld (a cut answer is sent before its socket is destroyed), and with end()', async () => {
    const cut = await client();
    heldWrite(cut, 'partial');
    flushHeld(cut.socket);
    // Written into the kernel within the call: nothing left queued in Node.
    expect(cut.socket.writableLength).toBe(0);
    cut.socket.destroy();
    await arrived(() => received[cut.index] === 'partial');

    const ended = await client();
    heldWrite(ended, 'last');
    // Node's end() uncorks whatever the cork count: turn-writes.ts relies on it for answers that close (this pins it).
    ended.socket.end();
    expect(ended.socket.writableCorked).toBe(0);
    await arrived(() => received[ended.index] === 'last');
    await turnEnd();
    expect(heldCount()).toBe(0);
  });
});

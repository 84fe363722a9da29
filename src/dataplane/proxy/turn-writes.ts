/**
 * Small writes of the raw HTTP/1.1 data path held until the end of the event loop's turn, then sent together.
 *
 * Why: every write to a loopback or LAN peer that sleeps in `epoll_wait` wakes it — on a virtual machine an
 * inter-processor interrupt, several microseconds with interrupts off in the writer's `sock_def_readable`. A worker
 * answers the reads of one poll (often dozens) one after another, ~30 µs apart; written at once, each answer woke
 * its peer anew (the load generator, the upstream), which had gone back to sleep in between. `perf` put a tenth of a
 * worker's samples there (docs/benchmarks.md, "Issue 17, step 7"). Held until the poll's callbacks are done, the
 * writes of one turn leave back to back and wake each peer about once per turn.
 *
 * What it costs: a write waits at most for the rest of the turn's callbacks (the events libuv had ready at once), and
 * never behind more than MAX_HELD held sockets; with one event per turn — a quiet gateway — it leaves in the same
 * turn's check phase, right after its callback.
 * Only small writes are held (a head, or a head with a body of up to HOLD_BODY_BYTES): large bodies go at once,
 * so that their memory can be given back as soon as the socket has taken them (RawResponse.writeTransient).
 *
 * How: `socket.cork()` on the first held write of a turn, one `setImmediate` per turn that uncorks every held
 * socket. Writes of the same socket stay in order (a write that is not held joins the corked queue behind). `end()`
 * uncorks by itself; a destroyed socket's held bytes are dropped with it, as unwritten bytes always were — a caller
 * that wants them out first calls `flushHeld()`.
 */
import type { Socket } from 'node:net';
import { setImmediate } from 'node:timers';

/**
 * At most this many sockets are held at once: the next one sends the held ones first. It bounds the wait of a
 * turn's first write (~32 answers of ~30 µs, ~1 ms on a saturated core) when a poll brings hundreds of events,
 * while a wake-up per 32 writes is already a small share of what one per write cost.
 */
export const MAX_HELD = 32;

/** The largest body held with its head (the answer's is the one raw-messages.ts coalesces with its head). */
export const HOLD_BODY_BYTES = 2 * 1024;

const held: Socket[] = [];
let scheduled = false;

/** Uncorks every held socket (its write callbacks and errors come on a later tick, never from in here). */
function sendHeld(): void {
  for (let i = 0; i < held.length; i++) {
    const s = held[i]!;
    if (!s.destroyed) s.uncork();
  }
  held.length = 0;
}

function turnEnd(): void {
  scheduled = false;
  sendHeld();
}

/**
 * Holds the socket's writes until the end of this turn. Call it right before a small write, outside any
 * cork()/uncork() pair of the caller's own (a corked socket counts as held already).
 */
export function holdWrites(socket: Socket): void {
  if (socket.writableCorked !== 0) return;
  if (held.length >= MAX_HELD) sendHeld();
  socket.cork();
  held.push(socket);
  if (!scheduled) {
    scheduled = true;
    setImmediate(turnEnd);
  }
}

/** Sends what this socket holds now (before a destroy() that should not take the bytes with it). */
export function flushHeld(socket: Socket): void {
  if (socket.writableCorked !== 0 && !socket.destroyed && held.includes(socket)) socket.uncork();
}

/** Sockets held in this turn (for tests). */
export function heldCount(): number {
  return held.length;
}

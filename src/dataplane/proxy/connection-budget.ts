/**
 * The upstream resources one client connection may hold: at most `max` requests with an upstream try in flight
 * (or draining after a cancel) per HTTP/1.1 connection (pipelining) or HTTP/2 session. Further requests of that
 * connection wait in a FIFO, in arrival order, and start as slots free; when the FIFO is full too (4 × `max`
 * waiting), the request is refused (429 `EDGEGATE_CONNECTION_LIMITED`). So a client that opens many streams and
 * never reads their responses holds `max` upstream connections at most, each until the send timeout abandons it,
 * instead of every pooled connection of an endpoint.
 *
 * One small object per client connection, created on its first forwarded request and kept on the connection
 * object (the socket, or the HTTP/2 session) under a symbol; a request allocates nothing here unless it waits.
 */
import type { IncomingMessage } from 'node:http';

/** What waits for a slot: the proxy's Exchange. */
export interface BudgetWaiter {
  /** The client went away while it waited: skip it. */
  readonly finished: boolean;
  /** The slot is now held on its behalf. */
  slotGranted(): void;
}

export const GRANTED = 0;
export const QUEUED = 1;
export const REFUSED = 2;

/** Waiting requests allowed per connection, as a multiple of the cap. */
const QUEUE_FACTOR = 4;

const kBudget = Symbol('edgegate.connectionBudget');
type Tagged = object & { [kBudget]?: ConnectionBudget };

export class ConnectionBudget {
  /** Slots held now. */
  held = 0;
  #queue: BudgetWaiter[] | undefined;
  #head = 0;

  get waiting(): number {
    return this.#queue === undefined ? 0 : this.#queue.length - this.#head;
  }

  /** Takes a slot (GRANTED), or queues the waiter (QUEUED, `slotGranted` later), or REFUSED when the queue is full. */
  acquire(w: BudgetWaiter, max: number): number {
    if (this.held < max) {
      this.held++;
      return GRANTED;
    }
    if (this.waiting >= max * QUEUE_FACTOR) return REFUSED;
    this.#queue ??= [];
    this.#queue.push(w);
    return QUEUED;
  }

  /** Gives a slot back; the oldest waiter still there gets it. */
  release(): void {
    this.held--;
    const q = this.#queue;
    if (q === undefined) return;
    while (this.#head < q.length) {
      const w = q[this.#head]!;
      q[this.#head++] = undefined as unknown as BudgetWaiter;
      if (w.finished) continue;
      this.held++;
      this.#compact(q);
      w.slotGranted();
      return;
    }
    this.#compact(q);
  }

  #compact(q: BudgetWaiter[]): void {
    if (this.#head === q.length) {
      q.length = 0;
      this.#head = 0;
    } else if (this.#head > 64 && this.#head * 2 > q.length) {
      q.splice(0, this.#head);
      this.#head = 0;
    }
  }
}

/** The budget of the connection a request arrived on: the HTTP/2 session, or the HTTP/1.x socket. */
export function budgetOf(req: IncomingMessage): ConnectionBudget {
  const conn = (
    req.httpVersionMajor === 2
      ? (req as unknown as { stream: { session: object | undefined } }).stream.session
      : req.socket
  ) as Tagged | undefined;
  // A session already torn down (its requests are being closed): a budget of its own, never shared.
  if (conn === undefined || conn === null) return new ConnectionBudget();
  let b = conn[kBudget];
  if (b === undefined) {
    b = new ConnectionBudget();
    conn[kBudget] = b;
  }
  return b;
}

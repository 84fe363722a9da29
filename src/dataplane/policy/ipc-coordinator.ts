/**
 * A worker's view of the pod-wide policy state in the primary: each call is one IPC round trip (`policy-call` →
 * `policy-reply`). A call the primary does not answer within `timeoutMs` resolves `undefined`, and the caller
 * falls back to a local decision (a rate limit divided by the worker count; a per-worker replay cache), so a
 * stalled primary degrades the accuracy of limits but never stalls traffic.
 */

import type { Lease, LeaseRequest, PolicyCoordinator } from '../../cluster/policy-state.ts';
import type { PolicyCallMessage, PolicyReplyMessage } from '../../cluster/protocol.ts';

interface Waiter {
  resolve(reply: PolicyReplyMessage | undefined): void;
  timer: NodeJS.Timeout;
}

export class IpcCoordinator implements PolicyCoordinator {
  readonly #send: (m: PolicyCallMessage) => boolean;
  readonly #timeoutMs: number;
  readonly #waiters = new Map<number, Waiter>();
  #seq = 0;
  timeouts = 0;

  constructor(send: (m: PolicyCallMessage) => boolean, timeoutMs = 250) {
    this.#send = send;
    this.#timeoutMs = timeoutMs;
  }

  /** Called by the worker for every `policy-reply` from the primary. */
  onReply(m: PolicyReplyMessage): void {
    const w = this.#waiters.get(m.id);
    if (!w) return;
    this.#waiters.delete(m.id);
    clearTimeout(w.timer);
    w.resolve(m);
  }

  #call(m: Omit<PolicyCallMessage, 'id' | 'type'>): Promise<PolicyReplyMessage | undefined> {
    const id = ++this.#seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(id);
        this.timeouts++;
        resolve(undefined);
      }, this.#timeoutMs);
      this.#waiters.set(id, { resolve, timer });
      if (!this.#send({ type: 'policy-call', id, ...m })) {
        this.#waiters.delete(id);
        clearTimeout(timer);
        resolve(undefined);
      }
    });
  }

  async lease(r: LeaseRequest): Promise<Lease | undefined> {
    return (await this.#call({ lease: r }))?.lease;
  }

  async firstSeen(key: string, ttlMs: number): Promise<boolean | undefined> {
    return (await this.#call({ seen: { key, ttlMs } }))?.fresh;
  }
}

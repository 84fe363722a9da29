/**
 * The hand-off of one routing-table version to the workers: which live workers still have to acknowledge it, and,
 * once the last one did (or left), the figures of the whole hand-off and `onServed(version)` — the moment the
 * version is what the gateway serves (Programmed in the routes' status). A newer publish replaces a pending one:
 * only the latest version is ever waited for.
 */

export interface HandoffStats {
  version: number;
  /** Size of the table JSON sent to each worker. */
  bytes: number;
  workers: number;
  /** From the first send to the last acknowledgement. */
  ms: number;
  /** Slowest worker-side apply (parse + build + swap). */
  maxApplyMs: number;
}

interface Pending {
  version: number;
  bytes: number;
  started: number;
  waiting: Set<number>;
  workers: number;
  maxApplyMs: number;
}

export class TableHandoff {
  readonly #onDone: (stats: HandoffStats) => void;
  #pending: Pending | undefined;
  #last: HandoffStats | undefined;

  /** `onDone`: every worker that was live (or joined) acknowledged the version. */
  constructor(onDone: (stats: HandoffStats) => void) {
    this.#onDone = onDone;
  }

  /** A version was published to these live worker slots. */
  begin(version: number, bytes: number, slots: readonly number[]): void {
    this.#pending = {
      version,
      bytes,
      started: performance.now(),
      waiting: new Set(slots),
      workers: slots.length,
      maxApplyMs: 0,
    };
  }

  /** A worker that greeted after the publish gets the table too: the hand-off waits for it as well. */
  join(slot: number, version: number): void {
    const p = this.#pending;
    if (p && p.version === version && !p.waiting.has(slot)) {
      p.waiting.add(slot);
      p.workers++;
    }
  }

  /** A worker acknowledged `version` after applying it in `applyMs`. */
  acknowledged(slot: number, version: number, applyMs: number): void {
    const p = this.#pending;
    if (!p || p.version !== version) return;
    p.maxApplyMs = Math.max(p.maxApplyMs, applyMs);
    p.waiting.delete(slot);
    if (p.waiting.size === 0) this.#finish(p);
  }

  /** A worker exited: it no longer holds the hand-off up. */
  left(slot: number): void {
    const p = this.#pending;
    if (p?.waiting.delete(slot) && p.waiting.size === 0) this.#finish(p);
  }

  /** The last completed hand-off. */
  get last(): HandoffStats | undefined {
    return this.#last;
  }

  #finish(p: Pending): void {
    this.#pending = undefined;
    this.#last = {
      version: p.version,
      bytes: p.bytes,
      workers: p.workers,
      ms: Math.round((performance.now() - p.started) * 100) / 100,
      maxApplyMs: Math.round(p.maxApplyMs * 100) / 100,
    };
    this.#onDone(this.#last);
  }
}

/**
 * The worker's overload guard: event-loop delay (p99 over the last window, from perf_hooks'
 * monitorEventLoopDelay) and resident memory give an overload level 0–3, and a rule is shed (503 +
 * Retry-After) when its priority is below that level:
 *
 *   level 1 — delay ≥ threshold             → Low is shed
 *   level 2 — delay ≥ 2× threshold, or RSS ≥ the memory threshold → Low and Normal
 *   level 3 — delay ≥ 4× threshold          → Low, Normal and High
 *   Critical is never shed.
 *
 * The level is recomputed every window (500 ms): shedding stops one window after the pressure does. Every
 * worker measures itself; the kernel spreads connections, so an overloaded pod sheds in every worker.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

type IntervalHistogram = ReturnType<typeof monitorEventLoopDelay>;

export interface OverloadSettings {
  /** Event-loop delay threshold in ms; 0: the delay is not watched. */
  delayMs: number;
  /** RSS threshold in bytes; 0: memory is not watched. */
  memoryBytes: number;
  /** Window length in ms. */
  windowMs?: number;
}

export class OverloadGuard {
  readonly #settings: Required<OverloadSettings>;
  readonly #histogram: IntervalHistogram | undefined;
  #timer: NodeJS.Timeout | undefined;
  #level = 0;
  /** Last window's p99 event-loop delay in ms. */
  delayMs = 0;
  rssBytes = 0;
  /** Windows spent at each level since start. */
  readonly windowsAtLevel = [0, 0, 0, 0];

  constructor(settings: OverloadSettings) {
    this.#settings = { windowMs: 500, ...settings };
    if (settings.delayMs > 0 || settings.memoryBytes > 0) {
      if (settings.delayMs > 0) {
        this.#histogram = monitorEventLoopDelay({ resolution: 10 });
        this.#histogram.enable();
      }
      this.#timer = setInterval(() => this.#sample(), this.#settings.windowMs);
      this.#timer.unref();
    }
  }

  get level(): number {
    return this.#level;
  }

  #sample(): void {
    let level = 0;
    const s = this.#settings;
    if (this.#histogram) {
      this.delayMs = this.#histogram.percentile(99) / 1e6;
      this.#histogram.reset();
      if (this.delayMs >= 4 * s.delayMs) level = 3;
      else if (this.delayMs >= 2 * s.delayMs) level = 2;
      else if (this.delayMs >= s.delayMs) level = 1;
    }
    if (s.memoryBytes > 0) {
      this.rssBytes = process.memoryUsage.rss();
      if (this.rssBytes >= s.memoryBytes) level = Math.max(level, 2);
    }
    this.#level = level;
    this.windowsAtLevel[level]!++;
  }

  /** Shed a rule of this priority rank (0 Low … 3 Critical) now? */
  sheds(rank: number): boolean {
    return rank < this.#level;
  }

  /** Suggested Retry-After in seconds while shedding. */
  retryAfterS(): number {
    return Math.max(1, Math.ceil(this.#settings.windowMs / 1000));
  }

  close(): void {
    clearInterval(this.#timer);
    this.#histogram?.disable();
  }
}

/**
 * EDGEGATE_TEST_HOOKS=1 only: holds this process's event loop busy — `blockMs` of synchronous spinning, a
 * macrotask turn so requests and timers still get a slot, again — for `ms` in total. Overload tests use it to
 * push the guard into shedding without real load.
 */
export function holdEventLoopBusy(ms: number, blockMs: number, onDone?: () => void): void {
  const until = Date.now() + ms;
  const spin = () => {
    const end = Math.min(until, Date.now() + blockMs);
    while (Date.now() < end) {
      // busy: this is the point
    }
    if (Date.now() < until) setTimeout(spin, 1);
    else onDone?.();
  };
  setTimeout(spin, 0);
}

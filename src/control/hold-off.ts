/**
 * When to rebuild: hold-off batching with a maximum delay (Contour's), plus a bound on how much of the time the
 * rebuilds themselves may take. Every `mark()` restarts the hold-off timer; the first mark of a batch also starts
 * the maximum-delay timer, so a steady stream of changes (a long `kubectl apply`) still rebuilds every `maxDelayMs`.
 * A rebuild that used `d` ms of CPU delays the start of the next one to `d × costFactor` after its end: a table
 * that takes 300 ms to compile and publish is rebuilt at most every 900 ms (factor 2), whatever the rate of
 * changes, so bursts coalesce into fewer, larger batches as the table grows. CPU, not wall time: a rebuild that
 * waits for the disk (the last-known-good file's fsync) or for a busy machine does not push the next one back.
 * One rebuild runs at a time; marks during a rebuild make the next batch.
 */

export interface HoldOffOptions {
  holdOffMs: number;
  maxDelayMs: number;
  /** Pause after a rebuild, as a multiple of its cost (default 2: rebuilds take at most a third of the time). */
  costFactor?: number;
  run: () => Promise<void>;
  onError: (err: unknown) => void;
  now?: () => number;
  /** Cumulative cost in ms (default: this process's CPU time, user + system). */
  cost?: () => number;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export class HoldOff {
  readonly #opts: HoldOffOptions;
  readonly #now: () => number;
  readonly #cost: () => number;
  #holdOff: NodeJS.Timeout | undefined;
  #maxDelay: NodeJS.Timeout | undefined;
  #pacing: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** A batch is due (its timer fired) but waits for the running rebuild or the pause after one. */
  #due = false;
  /** Earliest start of the next rebuild (the pause after the last one). */
  #notBefore = 0;
  #stopped = false;
  #rebuilds = 0;

  constructor(opts: HoldOffOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? (() => performance.now());
    this.#cost = opts.cost ?? cpuMs;
  }

  /** Something changed: rebuild after the hold-off (at most the maximum delay after the batch's first mark). */
  mark(): void {
    if (this.#stopped) return;
    clearTimeout(this.#holdOff);
    this.#holdOff = setTimeout(() => this.#fire(), this.#opts.holdOffMs);
    this.#maxDelay ??= setTimeout(() => this.#fire(), this.#opts.maxDelayMs);
  }

  /** A batch is waiting, or a rebuild is running. */
  get busy(): boolean {
    return (
      this.#holdOff !== undefined ||
      this.#maxDelay !== undefined ||
      this.#pacing !== undefined ||
      this.#due ||
      this.#running !== undefined
    );
  }

  /** Rebuilds started so far. */
  get rebuilds(): number {
    return this.#rebuilds;
  }

  /** Resolves once nothing is waiting and no rebuild runs. */
  async idle(): Promise<void> {
    while (this.busy) {
      if (this.#running) await this.#running;
      else await new Promise((r) => setTimeout(r, Math.min(this.#opts.holdOffMs, 10)));
    }
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#holdOff);
    clearTimeout(this.#maxDelay);
    clearTimeout(this.#pacing);
    this.#holdOff = this.#maxDelay = this.#pacing = undefined;
    this.#due = false;
  }

  #fire(): void {
    clearTimeout(this.#holdOff);
    clearTimeout(this.#maxDelay);
    this.#holdOff = this.#maxDelay = undefined;
    this.#due = true;
    this.#start();
  }

  #start(): void {
    if (!this.#due || this.#running || this.#pacing || this.#stopped) return;
    const wait = this.#notBefore - this.#now();
    if (wait > 0) {
      this.#pacing = setTimeout(() => {
        this.#pacing = undefined;
        this.#start();
      }, wait);
      return;
    }
    this.#due = false;
    this.#rebuilds++;
    const spent = this.#cost();
    this.#running = this.#opts
      .run()
      .catch((err) => this.#opts.onError(err))
      .finally(() => {
        const cost = this.#cost() - spent;
        this.#notBefore = this.#now() + cost * (this.#opts.costFactor ?? 2);
        this.#running = undefined;
        this.#start();
      });
  }
}

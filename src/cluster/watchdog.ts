/**
 * The primary's watchdog over its workers' event loops. Each worker sends a heartbeat over the IPC channel from a
 * timer of its own event loop (cluster/worker.ts); a loop blocked by a request (a catastrophic regular expression,
 * a runaway computation) sends none. A worker silent for longer than `blockTimeoutMs` is reported and replaced by
 * the primary; one that is merely busy, and still turns its loop within the timeout, never is.
 *
 * Two things that look like a silent worker and are not:
 * - the primary itself was stalled (its own check ran late): heartbeats are sitting unread in its IPC pipe, so the
 *   round is skipped and every worker counts as just heard from;
 * - a worker applying a new routing table (one synchronous parse + build, long for a very large table) gets a
 *   longer limit until it acknowledges the table (`applyingTimeoutMs`).
 *
 * Pure bookkeeping with the time passed in: the primary owns the timer and the kill.
 */

export interface WatchdogSettings {
  /** Silence (no heartbeat) after which a worker is blocked; 0: the watchdog is off. */
  blockTimeoutMs: number;
  /** How often workers beat and the primary checks. */
  heartbeatMs: number;
  /** The limit while a worker applies a routing table (sent, not yet acknowledged). */
  applyingTimeoutMs: number;
}

export const DEFAULT_BLOCK_TIMEOUT_MS = 5_000;

/** Settings for a block timeout: beats ten times per timeout (50 ms … 1 s), and a long limit for table applies. */
export function watchdogSettings(blockTimeoutMs: number = DEFAULT_BLOCK_TIMEOUT_MS): WatchdogSettings {
  return {
    blockTimeoutMs,
    heartbeatMs: Math.min(1_000, Math.max(50, Math.round(blockTimeoutMs / 10))),
    applyingTimeoutMs: Math.max(60_000, 6 * blockTimeoutMs),
  };
}

interface Watched {
  lastBeat: number;
  applying: boolean;
  reported: boolean;
}

export interface Blocked<K> {
  key: K;
  /** How long the worker has been silent. */
  silentMs: number;
}

export class Watchdog<K> {
  readonly settings: WatchdogSettings;
  readonly #watched = new Map<K, Watched>();
  #lastCheck: number | undefined;

  constructor(settings: WatchdogSettings) {
    this.settings = settings;
  }

  get enabled(): boolean {
    return this.settings.blockTimeoutMs > 0;
  }

  /** A worker said hello or sent a heartbeat. */
  beat(key: K, now: number): void {
    const w = this.#watched.get(key);
    if (w) w.lastBeat = now;
    else this.#watched.set(key, { lastBeat: now, applying: false, reported: false });
  }

  /** A routing table was sent to this worker (true) or it answered (false). */
  applying(key: K, applying: boolean): void {
    const w = this.#watched.get(key);
    if (w) w.applying = applying;
  }

  /** The worker is gone (exited, or replaced). */
  forget(key: K): void {
    this.#watched.delete(key);
  }

  /** Milliseconds since the worker was last heard from (undefined: not watched yet). */
  silentMs(key: K, now: number): number | undefined {
    const w = this.#watched.get(key);
    return w ? now - w.lastBeat : undefined;
  }

  /** Whether a worker was reported blocked and is not gone yet. */
  isBlocked(key: K): boolean {
    return this.#watched.get(key)?.reported ?? false;
  }

  /** Workers silent beyond their limit, each reported once; run every `heartbeatMs`. */
  check(now: number): Blocked<K>[] {
    if (!this.enabled) return [];
    const last = this.#lastCheck;
    this.#lastCheck = now;
    if (last !== undefined && now - last > 2 * this.settings.heartbeatMs + this.settings.blockTimeoutMs / 2) {
      // This process was stalled itself: the workers' beats are unread in the IPC pipe, not missing.
      for (const w of this.#watched.values()) w.lastBeat = Math.max(w.lastBeat, now);
      return [];
    }
    const out: Blocked<K>[] = [];
    for (const [key, w] of this.#watched) {
      if (w.reported) continue;
      const silent = now - w.lastBeat;
      const limit = w.applying ? this.settings.applyingTimeoutMs : this.settings.blockTimeoutMs;
      if (silent > limit) {
        w.reported = true;
        out.push({ key, silentMs: silent });
      }
    }
    return out;
  }
}

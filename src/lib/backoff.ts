/**
 * Retry pacing for everything that reconnects (Consul watches, Kubernetes informers, the status writer).
 *
 * Exponential backoff with equal jitter: attempt n waits between half and all of min(max, base·2ⁿ⁻¹). The random
 * half spreads the retries of many watches (and many edge nodes) after a shared outage; the fixed half keeps a lower
 * bound so a run of errors can never turn into a tight loop.
 */

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

export function backoffDelay(
  attempt: number,
  opts: BackoffOptions,
  random: () => number = Math.random,
): number {
  const cap = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.min(Math.max(0, attempt - 1), 30));
  return Math.round(cap / 2 + random() * (cap / 2));
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Polling with a deadline: the only way tests and helpers wait for something.
 * Never sleep to synchronise; poll a condition until it holds or time runs out.
 */

export interface WaitOptions {
  /** Give up after this long (default 30 s). */
  timeoutMs?: number;
  /** Pause between attempts (default 100 ms). */
  intervalMs?: number;
  /** Says what was awaited; used in the timeout error. */
  message?: string;
  /** Called on timeout; its text is appended to the error (e.g. a log tail). */
  diagnostics?: () => string | Promise<string>;
}

/**
 * Thrown by a condition to stop waiting at once (e.g. the server process exited):
 * waitFor rethrows it, with the diagnostics appended, instead of retrying.
 */
export class StopWaiting extends Error {
  override name = 'StopWaiting';
}

/**
 * Calls `condition` until it returns a value other than `undefined`, `null` or `false`,
 * and returns that value. A throwing attempt counts as "not yet"; the last error is
 * reported if the deadline passes.
 */
export async function waitFor<T>(
  condition: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  opts: WaitOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      const v = await condition();
      if (v !== undefined && v !== null && v !== false) return v;
      lastError = undefined;
    } catch (err) {
      if (err instanceof StopWaiting) {
        lastError = err;
        break;
      }
      lastError = err;
    }
    if (Date.now() >= deadline) break;
    await pause(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
  const what = opts.message ?? 'condition';
  let text =
    lastError instanceof StopWaiting
      ? `gave up waiting for ${what}: ${lastError.message}`
      : `timed out after ${timeoutMs} ms (${attempts} attempts) waiting for ${what}`;
  if (lastError !== undefined && !(lastError instanceof StopWaiting))
    text += `\nlast error: ${errorText(lastError)}`;
  if (opts.diagnostics) {
    try {
      text += `\n${await opts.diagnostics()}`;
    } catch {
      // diagnostics are best effort
    }
  }
  throw new Error(text);
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    return cause === undefined ? err.message : `${err.message} (cause: ${errorText(cause)})`;
  }
  return String(err);
}

// When the controller rebuilds: a burst is one rebuild; a steady stream of changes rebuilds every max delay; a
// rebuild that takes long spaces the next ones out (rebuilds take at most a third of the time by default), so a
// long `kubectl apply` of a big table makes a few large batches, not one per max delay. (The cost of a rebuild is
// its CPU time in production; here the clock jumps by it.)
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HoldOff } from '../../../src/control/hold-off.ts';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Marks every `everyMs` for `forMs` of fake time; each rebuild "takes" `costMs` (the clock jumps inside it). */
async function stream(opts: {
  everyMs: number;
  forMs: number;
  costMs: number;
  costFactor?: number;
  /** Wall time each rebuild waits without using CPU (a disk write). */
  waitMs?: number;
}) {
  let offset = 0;
  const starts: number[] = [];
  const h = new HoldOff({
    holdOffMs: 50,
    maxDelayMs: 250,
    ...(opts.costFactor !== undefined ? { costFactor: opts.costFactor } : {}),
    now: () => Date.now() + offset,
    cost: () => offset,
    run: async () => {
      starts.push(Date.now() + offset);
      offset += opts.costMs;
      if (opts.waitMs) await new Promise((r) => setTimeout(r, opts.waitMs));
    },
    onError: (err) => {
      throw err;
    },
  });
  for (let t = 0; t < opts.forMs; t += opts.everyMs) {
    h.mark();
    await vi.advanceTimersByTimeAsync(opts.everyMs);
  }
  await vi.advanceTimersByTimeAsync(10_000);
  expect(h.busy).toBe(false);
  return starts;
}

describe('HoldOff', () => {
  it('a burst of marks is one rebuild after the hold-off', async () => {
    const starts = await stream({ everyMs: 5, forMs: 40, costMs: 1 });
    expect(starts).toHaveLength(1);
  });

  it('a steady stream rebuilds every max delay while rebuilds are cheap', async () => {
    const starts = await stream({ everyMs: 10, forMs: 3000, costMs: 1 });
    // 3 s of changes, 250 ms max delay: about 12 rebuilds, and one after the stream ends.
    expect(starts.length).toBeGreaterThanOrEqual(11);
    expect(starts.length).toBeLessThanOrEqual(14);
  });

  it('expensive rebuilds are spaced out: each waits twice the last one’s duration after it', async () => {
    const starts = await stream({ everyMs: 10, forMs: 3000, costMs: 300 });
    const gaps = starts.slice(1).map((s, i) => s - starts[i]!);
    // Start to start: 300 ms of rebuild + 600 ms pause, never less.
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(900);
    expect(starts.length).toBeLessThanOrEqual(Math.ceil((3000 + 300 * 5) / 900) + 1);
    // Without the bound the same stream rebuilds once per max delay plus the rebuild itself.
    const unpaced = await stream({ everyMs: 10, forMs: 3000, costMs: 300, costFactor: 0 });
    expect(unpaced.length).toBeGreaterThan(starts.length);
  });

  it('a rebuild that waits (for the disk) without using CPU does not push the next one back', async () => {
    const starts = await stream({ everyMs: 10, forMs: 3000, costMs: 1, waitMs: 300 });
    const gaps = starts.slice(1).map((s, i) => s - starts[i]!);
    // The next batch starts as soon as this one is done (its own max delay ran meanwhile): no pause on top.
    for (const g of gaps) expect(g).toBeLessThan(400);
    expect(starts.length).toBeGreaterThanOrEqual(8);
  });
});

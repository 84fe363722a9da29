import { describe, expect, it } from 'vitest';
import { backoffDelay, pause } from '../../../src/lib/backoff.ts';

describe('backoffDelay', () => {
  const o = { baseMs: 100, maxMs: 1000 };
  it('doubles from the base, half fixed and half random, up to the cap', () => {
    expect(backoffDelay(1, o, () => 0)).toBe(50);
    expect(backoffDelay(1, o, () => 1)).toBe(100);
    expect(backoffDelay(3, o, () => 1)).toBe(400);
    expect(backoffDelay(10, o, () => 1)).toBe(1000);
    expect(backoffDelay(10, o, () => 0)).toBe(500);
    expect(backoffDelay(10_000, o, () => 1)).toBe(1000);
  });
});

describe('pause', () => {
  it('resolves at once when its signal aborts', async () => {
    const ac = new AbortController();
    const p = pause(60_000, ac.signal);
    ac.abort();
    await expect(p).resolves.toBeUndefined();
  });
});

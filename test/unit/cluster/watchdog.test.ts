/** The watchdog's bookkeeping, with the clock passed in (the e2e test is test/e2e/cluster/worker-watchdog.test.ts). */
import { describe, expect, it } from 'vitest';
import { Watchdog, watchdogSettings } from '../../../src/cluster/watchdog.ts';

describe('Watchdog', () => {
  const settings = watchdogSettings(2000); // beats every 200 ms

  it('reports a worker silent beyond the timeout once, never one that beats within it', () => {
    const w = new Watchdog<number>(settings);
    w.beat(0, 0);
    w.beat(1, 0);
    for (let t = 200; t <= 1800; t += 200) {
      w.beat(0, t); // busy but turning its loop
      expect(w.check(t)).toEqual([]);
    }
    w.beat(0, 2000);
    expect(w.check(2000)).toEqual([]);
    expect(w.check(2200)).toEqual([{ key: 1, silentMs: 2200 }]);
    expect(w.isBlocked(1)).toBe(true);
    expect(w.check(2400)).toEqual([]); // reported once
    w.forget(1);
    expect(w.isBlocked(1)).toBe(false);
    expect(w.silentMs(1, 2400)).toBeUndefined();
  });

  it('skips a round when the primary itself was stalled (the beats are unread, not missing)', () => {
    const w = new Watchdog<number>(settings);
    w.beat(0, 0);
    expect(w.check(200)).toEqual([]);
    // The primary's own loop was blocked for 5 s: its next check comes late.
    expect(w.check(5200)).toEqual([]);
    for (let t = 5400; t <= 7200; t += 200) expect(w.check(t)).toEqual([]);
    expect(w.check(7400)).toEqual([{ key: 0, silentMs: 2200 }]);
  });

  it('gives a worker applying a routing table the longer limit until it answers', () => {
    const w = new Watchdog<number>(settings);
    w.beat(0, 0);
    w.applying(0, true);
    for (let t = 200; t <= 10_000; t += 200) expect(w.check(t)).toEqual([]);
    w.applying(0, false);
    expect(w.check(10_200)).toEqual([{ key: 0, silentMs: 10_200 }]);
    expect(settings.applyingTimeoutMs).toBe(60_000);
  });

  it('is off with a timeout of 0; beats scale with the timeout', () => {
    const off = new Watchdog<number>(watchdogSettings(0));
    off.beat(0, 0);
    expect(off.check(1e9)).toEqual([]);
    expect(watchdogSettings(5000).heartbeatMs).toBe(500);
    expect(watchdogSettings(60_000).heartbeatMs).toBe(1000);
    expect(watchdogSettings(500).heartbeatMs).toBe(50);
  });
});

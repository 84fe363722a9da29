/**
 * Passive outlier detection (src/dataplane/proxy/outlier.ts) on real Upstream and ClusterRuntime objects (no pool is ever
 * opened: nothing here touches the network), with vitest's fake clock for both Date.now() and the re-admission
 * timers, so ejection lengths are checked to the millisecond without waiting.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ClusterRuntime,
  ClusterState,
  LB_ROUND_ROBIN,
} from '../../../../src/dataplane/proxy/cluster-runtime.ts';
import {
  DEFAULT_OUTLIER_SETTINGS,
  OutlierDetector,
  type OutlierSettings,
} from '../../../../src/dataplane/proxy/outlier.ts';
import { type Upstream, UpstreamPools } from '../../../../src/dataplane/proxy/upstream-pools.ts';

const BASE = 1000;
const MAX = 5000;

function setup(endpoints: number, settings: Partial<OutlierSettings> = {}, service = 'svc', port0 = 40000) {
  const detector = new OutlierDetector({
    consecutiveFailures: 3,
    baseEjectionMs: BASE,
    maxEjectionMs: MAX,
    maxEjectionPercent: 100,
    ...settings,
  });
  const cluster = new ClusterRuntime(
    {
      id: `c-${service}`,
      kind: 'consul',
      service,
      datacenter: 'dc1',
      endpoints: Array.from({ length: endpoints }, (_, i) => ({
        address: '127.0.0.1',
        port: port0 + i,
        weight: 1,
        id: `e${i}`,
      })),
      pool: {
        maxConnections: 1,
        keepAliveTimeoutMs: 1000,
        pipelining: 1,
        connectTimeoutMs: 1000,
        maxPendingRequests: 0,
      },
    },
    new UpstreamPools(),
    new ClusterState(),
  );
  const ups = cluster.upstreams;
  const fail = (up: Upstream, times = 1) => {
    for (let i = 0; i < times; i++) detector.failure(up, cluster);
  };
  return { detector, cluster, ups, fail };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('ejection', () => {
  it('happens at exactly `consecutiveFailures` failures in a row', () => {
    const { ups, fail, detector } = setup(2);
    fail(ups[0]!, 2);
    expect(ups[0]!.ejected).toBe(false);
    expect(ups[0]!.consecutiveFailures).toBe(2);
    fail(ups[0]!);
    expect(ups[0]!.ejected).toBe(true);
    expect(ups[0]!.ejections).toBe(1);
    expect(ups[1]!.ejected).toBe(false);
    expect(detector.stats().ejections).toBe(1);
  });

  it('a success breaks the streak', () => {
    const { ups, fail, detector } = setup(1);
    fail(ups[0]!, 2);
    detector.success(ups[0]!);
    fail(ups[0]!, 2);
    expect(ups[0]!.ejected).toBe(false);
    expect(ups[0]!.consecutiveFailures).toBe(2);
  });

  it('consecutiveFailures 0 turns detection off', () => {
    const { ups, fail, detector } = setup(1, { consecutiveFailures: 0 });
    fail(ups[0]!, 100);
    expect(ups[0]!.ejected).toBe(false);
    expect(ups[0]!.consecutiveFailures).toBe(0);
    expect(detector.stats().ejections).toBe(0);
  });

  it('failures of an endpoint already ejected or retired are ignored', () => {
    const { ups, fail, detector } = setup(2);
    fail(ups[0]!, 3);
    const timer = ups[0]!.ejectionTimer;
    fail(ups[0]!, 10);
    expect(ups[0]!.ejections).toBe(1);
    expect(ups[0]!.ejectionTimer).toBe(timer);
    ups[1]!.retired = true;
    fail(ups[1]!, 10);
    expect(ups[1]!.ejected).toBe(false);
    expect(detector.stats().ejections).toBe(1);
  });

  it('the ejected endpoint is skipped by the balancer until re-admitted', () => {
    const { ups, fail, cluster } = setup(2);
    fail(ups[0]!, 3);
    for (let i = 0; i < 6; i++) expect(cluster.pick(LB_ROUND_ROBIN, undefined, undefined)).toBe(ups[1]);
    vi.advanceTimersByTime(BASE);
    const picked = new Set(
      Array.from({ length: 4 }, () => cluster.pick(LB_ROUND_ROBIN, undefined, undefined)),
    );
    expect(picked).toEqual(new Set([ups[0], ups[1]]));
  });
});

describe('ejection time', () => {
  it('the first ejection lasts the base time; re-admission clears the streak', () => {
    const { ups, fail } = setup(1);
    fail(ups[0]!, 3);
    vi.advanceTimersByTime(BASE - 1);
    expect(ups[0]!.ejected).toBe(true);
    vi.advanceTimersByTime(1);
    expect(ups[0]!.ejected).toBe(false);
    expect(ups[0]!.consecutiveFailures).toBe(0);
    expect(ups[0]!.ejectionTimer).toBeUndefined();
    expect(ups[0]!.lastReadmitted).toBe(Date.now());
  });

  it('grows by the base time with each ejection soon after the last, up to the maximum', () => {
    const { ups, fail } = setup(1);
    const lengths: number[] = [];
    for (let round = 0; round < 7; round++) {
      fail(ups[0]!, 3);
      const start = Date.now();
      while (ups[0]!.ejected) vi.advanceTimersByTime(100);
      lengths.push(Date.now() - start);
    }
    // base × ejections: 1 s, 2 s, 3 s, 4 s, then capped at 5 s.
    expect(lengths).toEqual([1000, 2000, 3000, 4000, 5000, 5000, 5000]);
    expect(ups[0]!.ejections).toBe(7);
  });

  it('the count starts over once an endpoint stayed admitted for base × its count', () => {
    const { ups, fail } = setup(1);
    fail(ups[0]!, 3);
    vi.advanceTimersByTime(BASE);
    fail(ups[0]!, 3);
    vi.advanceTimersByTime(2 * BASE);
    expect(ups[0]!.ejected).toBe(false);
    expect(ups[0]!.ejections).toBe(2);

    // Admitted for 2 × base - 1: still counts as a repeat offender (third ejection, 3 × base).
    vi.advanceTimersByTime(2 * BASE - 1);
    fail(ups[0]!, 3);
    expect(ups[0]!.ejections).toBe(3);
    vi.advanceTimersByTime(3 * BASE);
    expect(ups[0]!.ejected).toBe(false);

    // Admitted for 3 × base: forgiven, the next ejection is a first one again.
    vi.advanceTimersByTime(3 * BASE);
    fail(ups[0]!, 3);
    expect(ups[0]!.ejections).toBe(1);
    vi.advanceTimersByTime(BASE);
    expect(ups[0]!.ejected).toBe(false);
  });

  it('a retired endpoint’s re-admission timer is cleared', async () => {
    const { ups, fail } = setup(2);
    fail(ups[0]!, 3);
    expect(vi.getTimerCount()).toBe(1);
    await ups[0]!.retire();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('max ejection percent', () => {
  it.each([
    { endpoints: 4, percent: 50, most: 2 },
    { endpoints: 3, percent: 50, most: 1 },
    { endpoints: 10, percent: 10, most: 1 },
    { endpoints: 2, percent: 100, most: 2 },
    // floor(1 × 50 %) = 0: a lone endpoint is never ejected (nothing to send its traffic to anyway).
    { endpoints: 1, percent: 50, most: 0 },
  ])('$endpoints endpoints at $percent %: at most $most ejected at once', ({ endpoints, percent, most }) => {
    const { ups, fail, detector } = setup(endpoints, { maxEjectionPercent: percent });
    for (const up of ups) fail(up, 3);
    expect(ups.filter((u) => u.ejected)).toHaveLength(most);
    expect(detector.stats().refusedByCap).toBe(endpoints - most);
  });

  it('an endpoint refused by the cap is ejected at its next failure once a slot is free', () => {
    const { ups, fail, detector } = setup(2, { maxEjectionPercent: 50 });
    fail(ups[0]!, 3);
    fail(ups[1]!, 3);
    expect(ups[1]!.ejected).toBe(false);
    expect(ups[1]!.consecutiveFailures).toBe(3);
    vi.advanceTimersByTime(BASE);
    expect(ups[0]!.ejected).toBe(false);
    fail(ups[1]!);
    expect(ups[1]!.ejected).toBe(true);
    expect(detector.stats()).toMatchObject({ ejections: 2, refusedByCap: 1 });
  });

  it('counts ejections and refusals per service and datacenter', () => {
    const d = new OutlierDetector({
      ...DEFAULT_OUTLIER_SETTINGS,
      consecutiveFailures: 1,
      maxEjectionPercent: 50,
    });
    const a = setup(2, {}, 'alpha', 41000);
    const b = setup(1, {}, 'beta', 42000);
    d.failure(a.ups[0]!, a.cluster);
    d.failure(a.ups[1]!, a.cluster);
    d.failure(b.ups[0]!, b.cluster);
    const s = d.stats();
    expect(s).toMatchObject({ ejections: 1, refusedByCap: 2 });
    expect(s.byService).toEqual(
      new Map([
        ['alpha\u0000dc1', [1, 1]],
        ['beta\u0000dc1', [0, 1]],
      ]),
    );
  });
});

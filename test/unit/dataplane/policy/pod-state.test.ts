import { describe, expect, it } from 'vitest';
import {
  type Lease,
  type LeaseRequest,
  type PolicyCoordinator,
  PolicyState,
} from '../../../../src/cluster/policy-state.ts';
import { RateLimiter } from '../../../../src/dataplane/policy/rate-limiter.ts';
import { TokenBucket } from '../../../../src/lib/token-bucket.ts';

describe('TokenBucket', () => {
  it('starts full, refills at the rate, never above the burst', () => {
    const b = new TokenBucket(0.01, 5, 0); // 10/s
    expect(b.take(10, 0)).toBe(5);
    expect(b.take(1, 0)).toBe(0);
    expect(b.msUntilToken(0)).toBe(100);
    expect(b.take(10, 250)).toBe(2);
    expect(b.available(100_000)).toBe(5);
  });
});

describe('PolicyState', () => {
  it('grants leases from one bucket per key, never more than it holds', () => {
    let now = 0;
    const s = new PolicyState({ now: () => now });
    const req = { key: 'r|a', perMs: 0.1, burst: 10, want: 4 };
    const grants = [s.lease(req), s.lease(req), s.lease(req), s.lease(req)].map((l) => l.granted);
    expect(grants).toEqual([4, 4, 2, 0]);
    expect(s.lease(req).waitMs).toBe(10);
    expect(s.lease({ ...req, key: 'r|b' }).granted).toBe(4);
    now = 50;
    expect(s.lease(req).granted).toBe(4);
  });

  it('records a replay key for its ttl, then forgets it', () => {
    let now = 0;
    const s = new PolicyState({ now: () => now });
    expect(s.firstSeen('sig', 1000)).toBe(true);
    expect(s.firstSeen('sig', 1000)).toBe(false);
    now = 1001;
    expect(s.firstSeen('sig', 1000)).toBe(true);
    s.sweep();
    expect(s.stats().replaysRefused).toBe(1);
  });

  it('drops the oldest replay entries beyond its cap (the documented gap)', () => {
    const s = new PolicyState({ now: () => 0, limits: { maxReplayEntries: 2 } });
    s.firstSeen('a', 1000);
    s.firstSeen('b', 1000);
    s.firstSeen('c', 1000);
    expect(s.stats().replayEntries).toBe(2);
    expect(s.firstSeen('a', 1000)).toBe(true);
  });
});

class FakeCoordinator implements PolicyCoordinator {
  readonly state = new PolicyState();
  calls = 0;
  down = false;
  async lease(r: LeaseRequest): Promise<Lease | undefined> {
    this.calls++;
    return this.down ? undefined : this.state.lease(r);
  }
  async firstSeen(): Promise<boolean | undefined> {
    return true;
  }
}

describe('RateLimiter (worker side)', () => {
  it('two workers sharing one coordinator admit the burst once between them', async () => {
    const c = new FakeCoordinator();
    const data = { requests: 10, periodMs: 60_000, burst: 10, key: 'Route' as const };
    const w1 = new RateLimiter('ns/r#0', data, c, 2);
    const w2 = new RateLimiter('ns/r#0', data, c, 2);
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? w1 : w2).take('')));
    expect(results.filter((r) => r.allowed)).toHaveLength(10);
    const refused = results.find((r) => !r.allowed)!;
    expect(refused.retryAfterS).toBeGreaterThanOrEqual(1);
  });

  it('falls back to its share of the rate when the primary does not answer', async () => {
    const c = new FakeCoordinator();
    c.down = true;
    const w = new RateLimiter('ns/r#0', { requests: 10, periodMs: 60_000, burst: 10, key: 'Route' }, c, 2);
    const results = [];
    for (let i = 0; i < 10; i++) results.push(await w.take(''));
    expect(results.filter((r) => r.allowed)).toHaveLength(5);
  });
});

describe('policy metrics', () => {
  it('sums the workers per rule and splits auth failures into policy and reason', async () => {
    const { aggregatePolicyStats, POLICY_METRICS } = await import(
      '../../../../src/control/metrics/policy-metrics.ts'
    );
    const worker = (shed: number, replayed: number, level: number) => ({
      overload: { level, delayMs: 10, rssBytes: 0, windowsAtLevel: [0, 0, 0, 0] },
      rules: {
        'ns/r#0': {
          ipDenied: 1,
          rateLimited: 2,
          shed,
          concurrencyLimited: 0,
          passed: 5,
          inFlight: 1,
          authFailures: { 'signature:replayed': replayed },
          forwardedForInvalid: shed,
          jwksFetches: { ok: 1, 'too-large': replayed },
        },
      },
      keySets: { partners: { keys: 2, refused: { 'rsa.pem': 'a PEM PUBLIC KEY (rsa) …' } } },
    });
    const a = aggregatePolicyStats([worker(1, 3, 0), worker(2, 4, 2), undefined]);
    const family = (name: string) => POLICY_METRICS.find((f) => f.name === name)!.samples(a);
    expect(family('edgegate_policy_shed_total')).toContainEqual({
      labels: { rule: 'ns/r#0', cause: 'overload' },
      value: 3,
    });
    expect(family('edgegate_policy_auth_failures_total')).toEqual([
      { labels: { rule: 'ns/r#0', policy: 'signature', reason: 'replayed' }, value: 7 },
    ]);
    expect(family('edgegate_overload_level')).toEqual([{ labels: {}, value: 2 }]);
    expect(family('edgegate_policy_forwarded_for_invalid_total')).toEqual([
      { labels: { rule: 'ns/r#0' }, value: 3 },
    ]);
    expect(family('edgegate_policy_jwks_fetches_total')).toEqual([
      { labels: { rule: 'ns/r#0', result: 'ok' }, value: 2 },
      { labels: { rule: 'ns/r#0', result: 'too-large' }, value: 7 },
    ]);
    // every worker reads the same files: the count is not summed
    expect(family('edgegate_policy_keys_refused')).toEqual([{ labels: { key_set: 'partners' }, value: 1 }]);
  });
});

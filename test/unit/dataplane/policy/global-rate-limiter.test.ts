/**
 * The worker side of `rateLimit.scope: Global` against an in-process store (the real Redis is in
 * test/e2e/policy/global-rate-limit.test.ts): leases are asked for as global, and when the store cannot decide
 * the failure mode does — without asking the store again for every request.
 */
import { describe, expect, it } from 'vitest';
import type { Lease } from '../../../../src/cluster/policy-state.ts';
import { LocalCoordinator, PolicyState } from '../../../../src/cluster/policy-state.ts';
import { compile } from '../../../../src/compile/compile.ts';
import { RateLimiter } from '../../../../src/dataplane/policy/rate-limiter.ts';
import type { RateLimitData } from '../../../../src/table/policy-types.ts';

class FakeStore {
  readonly local = new PolicyState();
  calls = 0;
  down = false;
  async lease(key: string, perMs: number, burst: number, want: number): Promise<Lease | undefined> {
    this.calls++;
    return this.down ? undefined : this.local.lease({ key, perMs, burst, want });
  }
}

const data = (failureMode: 'Open' | 'Closed'): RateLimitData => ({
  requests: 3,
  periodMs: 60_000,
  burst: 3,
  key: 'Route',
  scope: 'Global',
  failureMode,
});

describe('RateLimiter, scope Global', () => {
  it('takes its tokens from the shared store, and two limiters (two gateways) share one bucket', async () => {
    const store = new FakeStore();
    const a = new RateLimiter('ns/r#0', data('Open'), new LocalCoordinator(new PolicyState({ store })), 1);
    const b = new RateLimiter('ns/r#0', data('Open'), new LocalCoordinator(new PolicyState({ store })), 1);
    const out = [];
    for (let i = 0; i < 6; i++) out.push((await (i % 2 ? a : b).take('')).allowed);
    expect(out.filter(Boolean)).toHaveLength(3);
    expect(store.calls).toBeGreaterThan(0);
  });

  it('store down: Open admits, Closed refuses, both marked storeFailed; the store is not asked per request', async () => {
    for (const mode of ['Open', 'Closed'] as const) {
      const store = new FakeStore();
      store.down = true;
      const l = new RateLimiter('ns/r#0', data(mode), new LocalCoordinator(new PolicyState({ store })), 1);
      const out = [];
      for (let i = 0; i < 20; i++) out.push(await l.take(''));
      expect(out.every((d) => d.storeFailed === true)).toBe(true);
      expect(out.every((d) => d.allowed === (mode === 'Open'))).toBe(true);
      // One call, then the failure mode decides for a while (never 20 round trips to a dead store).
      expect(store.calls).toBe(1);
    }
  });

  it('no store configured: every Global lease is unavailable (the failure mode decides)', async () => {
    const l = new RateLimiter('ns/r#0', data('Closed'), new LocalCoordinator(), 1);
    const d = await l.take('');
    expect(d).toMatchObject({ allowed: false, storeFailed: true });
  });

  it('a Node-scope limit never touches the store', async () => {
    const store = new FakeStore();
    const { scope: _s, failureMode: _f, ...node } = data('Open');
    const l = new RateLimiter('ns/r#0', node, new LocalCoordinator(new PolicyState({ store })), 1);
    for (let i = 0; i < 5; i++) await l.take('');
    expect(store.calls).toBe(0);
  });
});

describe('compile: rateLimit.scope', () => {
  const run = (rateLimit: unknown) =>
    compile({
      routes: [
        {
          raw: {
            apiVersion: 'edgegate.io/v1alpha1',
            kind: 'GatewayRoute',
            metadata: { name: 'r', namespace: 'ns' },
            spec: { rules: [{ backends: [{ consul: { service: 'api' } }], policies: { rateLimit } }] },
          },
          origin: 'test',
        },
      ],
      catalog: { localDatacenter: 'dc1', datacenters: {} },
    });

  it('Global carries its failure mode (default Open); Node (the default) carries neither', () => {
    expect(run({ requests: 5, scope: 'Global' }).table.entries[0]!.policies!.rateLimit).toMatchObject({
      scope: 'Global',
      failureMode: 'Open',
    });
    expect(
      run({ requests: 5, scope: 'Global', failureMode: 'Closed' }).table.entries[0]!.policies!.rateLimit!
        .failureMode,
    ).toBe('Closed');
    expect(run({ requests: 5, scope: 'Node' }).table.entries[0]!.policies!.rateLimit).toEqual({
      requests: 5,
      periodMs: 1000,
      burst: 5,
      key: 'Route',
    });
  });

  it('refuses failureMode without scope Global, and an unknown scope, naming the field', () => {
    const errs = (rl: unknown) => run(rl).statuses[0]!.errors.map((e) => `${e.path.join('.')}: ${e.message}`);
    expect(errs({ requests: 5, failureMode: 'Closed' })).toContain(
      'spec.rules.0.policies.rateLimit.failureMode: only allowed with scope Global',
    );
    expect(errs({ requests: 5, scope: 'Cluster' }).join('\n')).toMatch(/rateLimit\.scope/);
  });
});

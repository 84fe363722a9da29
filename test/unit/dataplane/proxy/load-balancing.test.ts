import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ClusterRuntime,
  ClusterState,
  LB_CONSISTENT_HASH,
  LB_LEAST_REQUEST,
  LB_ROUND_ROBIN,
} from '../../../../src/dataplane/proxy/cluster-runtime.ts';
import { hash32, RingHash } from '../../../../src/dataplane/proxy/ring-hash.ts';
import { UpstreamPools } from '../../../../src/dataplane/proxy/upstream-pools.ts';
import type { ClusterData, EndpointData } from '../../../../src/table/types.ts';

const POOL = {
  maxConnections: 4,
  keepAliveTimeoutMs: 4000,
  pipelining: 1,
  connectTimeoutMs: 1000,
  maxPendingRequests: 10,
};

function endpoints(n: number, base = 20000): EndpointData[] {
  return Array.from({ length: n }, (_, i) => ({
    address: '127.0.0.1',
    port: base + i,
    weight: 1,
    id: `e${i}`,
  }));
}

function cluster(eps: EndpointData[]): ClusterData {
  return { id: 'c', kind: 'consul', service: 's', datacenter: 'dc1', endpoints: eps, pool: POOL };
}

const member = (ep: EndpointData) => ({ ringKey: `${ep.address}:${ep.port}`, weight: ep.weight });
const never = () => false;

describe('ring hash', () => {
  it('removing one of 10 endpoints remaps at most 15% of keys (and only keys of the removed one)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 1, max: 1_000_000 }), (removed, seed) => {
        const eps = endpoints(10, 30000 + (seed % 1000) * 10);
        const before = new RingHash(eps.map(member));
        const after = new RingHash(eps.filter((_, i) => i !== removed).map(member));
        const removedKey = member(eps[removed]!).ringKey;
        let moved = 0;
        const keys = 5000;
        for (let k = 0; k < keys; k++) {
          const h = hash32(`user-${seed}-${k}`);
          const a = before.pick(h, never, undefined)!.ringKey;
          const b = after.pick(h, never, undefined)!.ringKey;
          if (a !== b) {
            moved++;
            // Minimal remapping: only the removed endpoint's keys move.
            expect(a).toBe(removedKey);
          }
        }
        expect(moved / keys).toBeLessThanOrEqual(0.15);
      }),
      { numRuns: 20 },
    );
  });

  it('spreads keys roughly evenly', () => {
    const ring = new RingHash(endpoints(10).map(member));
    const counts = new Map<string, number>();
    for (let k = 0; k < 20000; k++) {
      const o = ring.pick(hash32(`k${k}`), never, undefined)!.ringKey;
      counts.set(o, (counts.get(o) ?? 0) + 1);
    }
    expect(counts.size).toBe(10);
    for (const c of counts.values()) expect(c).toBeGreaterThan(1000);
  });

  it('does not depend on member order', () => {
    const eps = endpoints(7);
    const a = new RingHash(eps.map(member));
    const b = new RingHash([...eps].reverse().map(member));
    for (let k = 0; k < 500; k++) {
      const h = hash32(`x${k}`);
      expect(a.pick(h, never, undefined)!.ringKey).toBe(b.pick(h, never, undefined)!.ringKey);
    }
  });
});

describe('ClusterRuntime picking', () => {
  it('round robin skips ejected and retired upstreams, and the excluded one when it can', () => {
    const pools = new UpstreamPools();
    const c = new ClusterRuntime(cluster(endpoints(3)), pools, new ClusterState());
    const [a, b, d] = c.upstreams;
    a!.ejected = true;
    d!.retired = true;
    for (let i = 0; i < 10; i++) expect(c.pick(LB_ROUND_ROBIN, undefined, undefined)).toBe(b);
    // Excluding the only admitted one: panic mode takes the ejected one rather than failing.
    expect(c.pick(LB_ROUND_ROBIN, undefined, b)).toBe(a);
  });

  it('least request prefers the endpoint with fewer in-flight requests', () => {
    const pools = new UpstreamPools();
    const c = new ClusterRuntime(cluster(endpoints(2)), pools, new ClusterState());
    c.upstreams[0]!.inFlight = 50;
    c.upstreams[1]!.inFlight = 1;
    let second = 0;
    for (let i = 0; i < 200; i++)
      if (c.pick(LB_LEAST_REQUEST, undefined, undefined) === c.upstreams[1]) second++;
    expect(second).toBe(200);
  });

  it('consistent hash keeps a key on one endpoint and moves it only while that endpoint is ejected', () => {
    const pools = new UpstreamPools();
    const c = new ClusterRuntime(cluster(endpoints(5)), pools, new ClusterState());
    const h = hash32('session-42');
    const first = c.pick(LB_CONSISTENT_HASH, h, undefined)!;
    for (let i = 0; i < 20; i++) expect(c.pick(LB_CONSISTENT_HASH, h, undefined)).toBe(first);
    first.ejected = true;
    const other = c.pick(LB_CONSISTENT_HASH, h, undefined)!;
    expect(other).not.toBe(first);
    first.ejected = false;
    expect(c.pick(LB_CONSISTENT_HASH, h, undefined)).toBe(first);
  });

  it('upstreams (pools and state) are shared across table versions while the endpoint stays', async () => {
    const pools = new UpstreamPools();
    const eps = endpoints(3);
    const v1 = new ClusterRuntime(cluster(eps), pools, new ClusterState());
    v1.upstreams[0]!.inFlight = 3;
    const pool0 = v1.upstreams[0]!.pool;
    const v2data = cluster(eps.slice(0, 2));
    const v2 = new ClusterRuntime(v2data, pools, new ClusterState());
    pools.retain([v2data]);
    expect(v2.upstreams[0]).toBe(v1.upstreams[0]);
    expect(v2.upstreams[0]!.pool).toBe(pool0);
    expect(v2.upstreams[0]!.inFlight).toBe(3);
    expect(v1.upstreams[2]!.retired).toBe(true);
    expect(pools.stats()).toMatchObject({ upstreams: 2, retired: 1 });
    await pools.destroy();
  });
});

describe('ring hash edge cases', () => {
  it('hash32 is pinned: a changed hash would move every session when workers of two versions serve together', () => {
    expect([hash32(''), hash32('a'), hash32('user-42'), hash32('127.0.0.1:8080#0')]).toEqual([
      2872998923, 444641715, 2083131798, 4072591966,
    ]);
  });

  it('an empty ring, or one whose members are all skipped, picks nothing', () => {
    expect(new RingHash([]).pick(1, never, undefined)).toBeUndefined();
    const ring = new RingHash(endpoints(3).map(member));
    expect(ring.pick(1, () => true, undefined)).toBeUndefined();
  });

  it('a hash past the last point wraps around to the first', () => {
    const ring = new RingHash(endpoints(3).map(member), 4);
    expect(ring.pick(0xffffffff, never, undefined)).toBe(ring.pick(0, never, undefined));
  });

  it('points scale with weight; weight 0 takes no keys', () => {
    const heavy = { ringKey: 'h:1', weight: 2 };
    const light = { ringKey: 'l:1', weight: 1 };
    const none = { ringKey: 'n:1', weight: 0 };
    const ring = new RingHash([heavy, light, none]);
    expect(ring.size).toBe(256 + 128);
    const counts = new Map<string, number>();
    for (let k = 0; k < 30000; k++) {
      const o = ring.pick(hash32(`k${k}`), never, undefined)!.ringKey;
      counts.set(o, (counts.get(o) ?? 0) + 1);
    }
    expect(counts.get('n:1')).toBeUndefined();
    const ratio = counts.get('h:1')! / counts.get('l:1')!;
    expect(ratio).toBeGreaterThan(1.5);
    expect(ratio).toBeLessThan(2.6);
  });
});

describe('ClusterRuntime consistent-hash edge cases', () => {
  it('a request without a key is spread round robin', () => {
    const c = new ClusterRuntime(cluster(endpoints(3)), new UpstreamPools(), new ClusterState());
    const picked = new Set(Array.from({ length: 3 }, () => c.pick(LB_CONSISTENT_HASH, undefined, undefined)));
    expect(picked.size).toBe(3);
  });

  it('every endpoint ejected: the key keeps its own endpoint (panic mode), a retry still avoids the failed one', () => {
    const c = new ClusterRuntime(cluster(endpoints(3)), new UpstreamPools(), new ClusterState());
    const h = hash32('session-7');
    const owner = c.pick(LB_CONSISTENT_HASH, h, undefined)!;
    for (const u of c.upstreams) u.ejected = true;
    expect(c.pick(LB_CONSISTENT_HASH, h, undefined)).toBe(owner);
    const retry = c.pick(LB_CONSISTENT_HASH, h, owner);
    expect(retry).toBeDefined();
    expect(retry).not.toBe(owner);
  });

  it('a lone endpoint that failed is tried again rather than answering 503; retired ones never', () => {
    const c = new ClusterRuntime(cluster(endpoints(1)), new UpstreamPools(), new ClusterState());
    const only = c.upstreams[0]!;
    const h = hash32('k');
    expect(c.pick(LB_CONSISTENT_HASH, h, only)).toBe(only);
    expect(c.pick(LB_ROUND_ROBIN, undefined, only)).toBe(only);
    only.retired = true;
    expect(c.pick(LB_CONSISTENT_HASH, h, undefined)).toBeUndefined();
    expect(c.pick(LB_ROUND_ROBIN, undefined, undefined)).toBeUndefined();
    expect(c.pick(LB_LEAST_REQUEST, undefined, undefined)).toBeUndefined();
  });

  // Was a bug: the fallback scan advanced its start on every step, so it visited every other endpoint only, found
  // none admitted half the time and fell into panic mode, sending about a third of requests to ejected endpoints.
  it('least request never picks an ejected or excluded endpoint while another is available', () => {
    const c = new ClusterRuntime(cluster(endpoints(4)), new UpstreamPools(), new ClusterState());
    const [a, b, d, e] = c.upstreams;
    a!.ejected = true;
    d!.retired = true;
    for (let i = 0; i < 500; i++) expect(c.pick(LB_LEAST_REQUEST, undefined, e)).toBe(b);
    d!.retired = false;
    d!.ejected = true;
    b!.ejected = true;
    for (let i = 0; i < 500; i++) expect(c.pick(LB_LEAST_REQUEST, undefined, undefined)).toBe(e);
  });
});

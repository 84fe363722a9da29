/**
 * Cross-datacenter failover in the worker (src/dataplane/proxy/failover.ts) on real ClusterRuntime, Upstream and
 * OutlierDetector objects (no pool is opened: nothing touches the network), with vitest's fake clock for the
 * re-admission timers: the per-request choice sees the catalog (endpoints in the table) and outlier ejections.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ClusterRuntime, ClusterState } from '../../../../src/dataplane/proxy/cluster-runtime.ts';
import { FailoverStates, FailoverTarget } from '../../../../src/dataplane/proxy/failover.ts';
import { DEFAULT_OUTLIER_SETTINGS, OutlierDetector } from '../../../../src/dataplane/proxy/outlier.ts';
import { UpstreamPools } from '../../../../src/dataplane/proxy/upstream-pools.ts';

const pools = new UpstreamPools();
let port = 41000;

function cluster(dc: string, endpoints: number): ClusterRuntime {
  return new ClusterRuntime(
    {
      id: `consul:billing@${dc}`,
      kind: 'consul',
      service: 'billing',
      datacenter: dc,
      endpoints: Array.from({ length: endpoints }, (_, i) => ({
        address: '127.0.0.1',
        port: port++,
        weight: 1,
        id: `${dc}-${i}`,
      })),
      pool: {
        maxConnections: 1,
        keepAliveTimeoutMs: 1000,
        pipelining: 1,
        connectTimeoutMs: 1000,
        maxPendingRequests: 0,
      },
    },
    pools,
    new ClusterState(),
  );
}

function target(...chain: ClusterRuntime[]) {
  const states = new FailoverStates();
  const t = new FailoverTarget(chain, states.state('edge/billing', 'consul:billing@dc1'));
  states.install([t]);
  return { t, states };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('failover by the catalog', () => {
  it('serves the primary while it has an endpoint, else the first fallback that has one, else the primary', () => {
    const dc1 = cluster('dc1', 2);
    const dc2 = cluster('dc2', 0);
    const dc3 = cluster('dc3', 1);
    expect(target(dc1, dc2, dc3).t.choose()).toBe(dc1);
    const empty1 = cluster('dc1', 0);
    expect(target(empty1, dc2, dc3).t.choose()).toBe(dc3);
    const none = target(empty1, dc2);
    expect(none.t.choose()).toBe(empty1);
    expect(none.states.figures()).toEqual([
      {
        route: 'edge/billing',
        backend: 'consul:billing@dc1',
        datacenter: 'dc1',
        since: 1_000_000,
        transitions: 0,
      },
    ]);
  });

  it('a retired endpoint (left the table) does not count', () => {
    const dc1 = cluster('dc1', 1);
    const dc2 = cluster('dc2', 1);
    dc1.upstreams[0]!.retired = true;
    expect(target(dc1, dc2).t.choose()).toBe(dc2);
  });
});

describe('failover by outlier ejection', () => {
  it('every primary endpoint may be ejected (the cap does not apply), traffic moves to the fallback and comes back on re-admission', () => {
    const detector = new OutlierDetector({
      ...DEFAULT_OUTLIER_SETTINGS,
      consecutiveFailures: 2,
      baseEjectionMs: 1000,
    });
    const dc1 = cluster('dc1', 2);
    const dc2 = cluster('dc2', 1);
    const { t, states } = target(dc1, dc2);
    expect(t.choose()).toBe(dc1);
    for (const up of dc1.upstreams) for (let i = 0; i < 2; i++) detector.failure(up, dc1);
    expect(dc1.upstreams.every((u) => u.ejected)).toBe(true);
    expect(detector.stats().refusedByCap).toBe(0);
    vi.advanceTimersByTime(10);
    expect(t.choose()).toBe(dc2);
    expect(states.figures()[0]).toMatchObject({ datacenter: 'dc2', since: 1_000_010, transitions: 1 });
    vi.advanceTimersByTime(1000);
    expect(t.choose()).toBe(dc1);
    expect(states.figures()[0]).toMatchObject({ datacenter: 'dc1', since: 1_001_010, transitions: 2 });
  });

  it('a cluster without failover keeps the ejection cap (50 %)', () => {
    const detector = new OutlierDetector({ ...DEFAULT_OUTLIER_SETTINGS, consecutiveFailures: 1 });
    const plain = cluster('dc1', 2);
    for (const up of plain.upstreams) detector.failure(up, plain);
    expect(plain.upstreams.filter((u) => u.ejected)).toHaveLength(1);
    expect(detector.stats().refusedByCap).toBe(1);
  });

  it('figures are evaluated at scrape time: an idle backend reports where it would go now', () => {
    const dc1 = cluster('dc1', 1);
    const dc2 = cluster('dc2', 1);
    const { states } = target(dc1, dc2);
    expect(states.figures()[0]!.datacenter).toBe('dc1');
    dc1.upstreams[0]!.ejected = true;
    expect(states.figures()[0]!.datacenter).toBe('dc2');
  });
});

/**
 * Worker snapshot aggregation and the recording layer: exact sums over workers, totals that never go back across
 * worker exits and missed answers, slots that survive table versions, and access-log settings validation.
 */
import { describe, expect, it } from 'vitest';
import type { WorkerSnapshot } from '../../../../src/cluster/worker-report.ts';
import { CODE_LABELS } from '../../../../src/cluster/worker-report.ts';
import { SnapshotAggregator } from '../../../../src/control/metrics/aggregate.ts';
import { accessLogSettings } from '../../../../src/dataplane/observe/access-log.ts';
import {
  gatewayCodeIndex,
  statusClassIndex,
  TrafficRecorder,
} from '../../../../src/dataplane/observe/traffic-recorder.ts';
import type { TableData } from '../../../../src/table/types.ts';

function table(version: number, endpoints = 1): TableData {
  const pool = {
    maxConnections: 8,
    keepAliveTimeoutMs: 4000,
    pipelining: 1,
    connectTimeoutMs: 1000,
    maxPendingRequests: 1024,
  };
  return {
    hash: `h${version}`,
    version,
    hosts: [{ host: '*', entries: [0, 1] }],
    clusters: [
      {
        id: 'c-alpha',
        kind: 'consul',
        service: 'alpha',
        datacenter: 'dc1',
        pool,
        endpoints: Array.from({ length: endpoints }, (_, i) => ({
          address: '10.0.0.1',
          port: 8000 + i,
          weight: 1,
          id: `a${i}`,
        })),
      },
      {
        id: 'c-beta',
        kind: 'consul',
        service: 'beta',
        datacenter: 'dc2',
        pool,
        endpoints: [{ address: '10.0.0.2', port: 9000, weight: 1, id: 'b' }],
      },
    ],
    entries: [
      {
        route: 'ns/a',
        rule: 0,
        match: 0,
        ruleId: 'ns/a#0',
        created: 0,
        matchData: { path: { type: 'PathPrefix', value: '/a' }, headers: [], queryParams: [] },
        backends: [
          { cluster: 'c-alpha', weight: 1 },
          { cluster: 'c-beta', weight: 1 },
        ],
      },
      {
        route: 'ns/cat',
        rule: 0,
        match: 0,
        ruleId: 'ns/cat#0',
        created: 0,
        matchData: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
        catalog: { prefix: '/', services: { dc1: { alpha: 'c-alpha' }, dc2: { beta: 'c-beta' } } },
      },
    ],
  };
}

function snapshot(
  recorder: TrafficRecorder,
  pid: number,
  extra: Partial<WorkerSnapshot> = {},
): WorkerSnapshot {
  return {
    ...recorder.snapshot(),
    worker: String(pid),
    pid,
    version: 1,
    endpoints: [],
    counters: {},
    process: [],
    ...extra,
  };
}

const OK = statusClassIndex(200);

describe('TrafficRecorder', () => {
  it('resolves slots from the installed table objects and counts per route × cluster', () => {
    const r = new TrafficRecorder();
    const t = table(1);
    r.install(t);
    const [a, cat] = t.entries;
    const [alpha, beta] = t.clusters;
    r.routeSlots(a!).forCluster(alpha).add(OK, 0.002, 10, 100, 0);
    r.routeSlots(a!).forCluster(beta).add(statusClassIndex(503), 0.2, 10, 100, 1);
    r.routeSlots(a!).forCluster(alpha).add(OK, 0.002, 10, 100, 0);
    r.routeSlots(cat!).forCluster(beta).add(OK, 0.002, 0, 50, 0);
    r.routeSlots(cat!)
      .forCluster(undefined)
      .add(gatewayCodeIndex('EDGEGATE_CATALOG_UNKNOWN_SERVICE'), 0.001, 0, 9, 0);
    const s = r.snapshot();
    const find = (route: string, service: string) =>
      s.traffic.find((x) => x.route === route && x.service === service)!;
    expect(find('ns/a', 'alpha').codes[CODE_LABELS.indexOf('2xx')]).toBe(2);
    expect(find('ns/a', 'beta').codes[CODE_LABELS.indexOf('5xx')]).toBe(1);
    expect(find('ns/a', 'beta').retries).toBe(1);
    expect(find('ns/a', 'beta').datacenter).toBe('dc2');
    expect(find('ns/cat', 'beta').bytesOut).toBe(50);
    expect(find('ns/cat', '').codes[CODE_LABELS.indexOf('EDGEGATE_CATALOG_UNKNOWN_SERVICE')]).toBe(1);
    // Histogram: 0.002 s falls in the 0.0025 bucket, 0.2 s in the 0.25 one.
    const h = find('ns/a', 'alpha').duration;
    expect(h.counts[1]).toBe(2);
    expect(h.sum).toBeCloseTo(0.004);
    // Unused slots are not exported.
    expect(s.traffic).toHaveLength(4);
  });

  it('keeps counting in the same slot across table versions', () => {
    const r = new TrafficRecorder();
    const t1 = table(1);
    r.install(t1);
    r.routeSlots(t1.entries[0]!).forCluster(t1.clusters[0]).add(OK, 0.01, 0, 1, 0);
    const t2 = table(2, 3);
    r.install(t2);
    r.routeSlots(t2.entries[0]!).forCluster(t2.clusters[0]).add(OK, 0.01, 0, 1, 0);
    // A request that started on the old table finishes after the swap: still counted in the same series.
    r.routeSlots(t1.entries[0]!).forCluster(t1.clusters[0]).add(OK, 0.01, 0, 1, 0);
    const alpha = r.snapshot().traffic.filter((x) => x.route === 'ns/a' && x.service === 'alpha');
    expect(alpha).toHaveLength(1);
    expect(alpha[0]!.codes[OK]).toBe(3);
  });

  it('maps connection events to the service of the endpoint (IPv4, IPv6 with brackets, string ports)', () => {
    const r = new TrafficRecorder();
    const t = table(1);
    t.clusters[1]!.endpoints[0]!.address = 'fd00::2';
    r.install(t);
    r.connectionOpened('10.0.0.1', '8000');
    r.connectionOpened('[fd00::2]', 9000);
    r.connectionFailed('fd00::2', '9000');
    r.connectionOpened('192.0.2.99', 1); // not in the table: ignored
    const up = r.snapshot().upstream;
    expect(up.find((u) => u.service === 'alpha')!.connectionsOpened).toBe(1);
    const beta = up.find((u) => u.service === 'beta')!;
    expect(beta.connectionsOpened).toBe(1);
    expect(beta.connectionFailures).toBe(1);
  });
});

describe('SnapshotAggregator', () => {
  function worker(requests: number): TrafficRecorder {
    const r = new TrafficRecorder();
    const t = table(1);
    r.install(t);
    for (let i = 0; i < requests; i++)
      r.routeSlots(t.entries[0]!).forCluster(t.clusters[0]).add(OK, 0.01, 1, 2, 0);
    return r;
  }
  const total = (agg: SnapshotAggregator) =>
    agg
      .view()
      .traffic.filter((t) => t.route === 'ns/a')
      .reduce((n, t) => n + t.codes[OK]!, 0);

  it('sums live workers exactly', () => {
    const agg = new SnapshotAggregator();
    agg.update([snapshot(worker(7), 1, { active: 2 }), snapshot(worker(5), 2, { active: 1 })], [1, 2]);
    expect(total(agg)).toBe(12);
    expect(agg.view().active).toBe(3);
    expect(agg.view().traffic[0]!.bytesIn).toBe(12);
  });

  it('never goes back when a worker exits and is replaced', () => {
    const agg = new SnapshotAggregator();
    agg.update([snapshot(worker(7), 1, { active: 4 }), snapshot(worker(5), 2)], [1, 2]);
    // Worker 1 died; worker 3 replaced it and has counted 2 so far.
    agg.update([snapshot(worker(6), 2), snapshot(worker(2), 3)], [2, 3]);
    expect(total(agg)).toBe(7 + 6 + 2);
    // The dead worker's gauges are gone.
    expect(agg.view().active).toBe(0);
    agg.update([snapshot(worker(6), 2), snapshot(worker(4), 3)], [2, 3]);
    expect(total(agg)).toBe(7 + 6 + 4);
  });

  it('uses the previous snapshot of a worker that does not answer, and reports it', () => {
    const agg = new SnapshotAggregator();
    agg.update([snapshot(worker(7), 1), snapshot(worker(5), 2)], [1, 2]);
    agg.update([snapshot(worker(9), 2)], [1, 2]);
    expect(total(agg)).toBe(7 + 9);
    expect(agg.view().stale).toBe(1);
    expect(agg.missedAnswers).toBe(1);
    agg.update([snapshot(worker(8), 1), snapshot(worker(9), 2)], [1, 2]);
    expect(agg.view().stale).toBe(0);
    expect(total(agg)).toBe(17);
  });

  it('derives gateway errors by code from the traffic series', () => {
    const r = new TrafficRecorder();
    r.unmatched.add(gatewayCodeIndex('EDGEGATE_NO_ROUTE'), 0.001, 0, 1, 0);
    r.unmatched.add(gatewayCodeIndex('EDGEGATE_NO_ROUTE'), 0.001, 0, 1, 0);
    const agg = new SnapshotAggregator();
    agg.update([snapshot(r, 1)], [1]);
    expect(agg.view().gatewayErrors.get('EDGEGATE_NO_ROUTE')).toBe(2);
    expect(agg.view().gatewayErrors.get('EDGEGATE_UPSTREAM_TIMEOUT')).toBe(0);
  });
});

describe('access log settings', () => {
  it('refuses credential headers in the allow-list and bad sample rates, naming the flag', () => {
    for (const h of [
      'authorization',
      'Cookie',
      'x-api-key',
      'X-Auth-Token',
      'proxy-authorization',
      'set-cookie',
    ])
      expect(() => accessLogSettings({ headers: h })).toThrow(/--access-log-headers: .* never logged/);
    expect(() => accessLogSettings({ headers: 'bad header' })).toThrow(/not a header name/);
    expect(() => accessLogSettings({ sampleRate: '1.5' })).toThrow(/--access-log-sample/);
    expect(() => accessLogSettings({ sampleRate: 'x' })).toThrow(/--access-log-sample/);
    expect(accessLogSettings({ sampleRate: '0.25', headers: 'User-Agent, referer' })).toEqual({
      enabled: true,
      sampleRate: 0.25,
      headers: ['user-agent', 'referer'],
    });
  });
});

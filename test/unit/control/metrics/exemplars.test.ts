/**
 * Trace exemplars across the worker/primary seam: a slot keeps the latest sampled trace per duration bucket, a
 * snapshot carries them (and carries nothing when no request was traced), and the primary keeps the most recent one
 * per bucket over workers, including a worker that has exited.
 */
import { describe, expect, it } from 'vitest';
import {
  type BucketExemplar,
  DURATION_BUCKETS,
  type TrafficSeries,
  type WorkerSnapshot,
} from '../../../../src/cluster/worker-report.ts';
import { SnapshotAggregator } from '../../../../src/control/metrics/aggregate.ts';
import { TrafficSlot } from '../../../../src/dataplane/observe/traffic-recorder.ts';

const ex = (traceId: string, value: number, timestamp: number): BucketExemplar => ({
  traceId,
  spanId: 'b7ad6b7169203331',
  value,
  timestamp,
});

function series(exemplars?: (BucketExemplar | null)[]): TrafficSeries {
  const counts = new Array(DURATION_BUCKETS.length + 1).fill(0);
  return {
    route: 'ns/a',
    service: 'alpha',
    datacenter: 'dc1',
    codes: [0, 1, 0, 0, 0],
    duration: { counts, sum: 0, ...(exemplars ? { exemplars } : {}) },
    bytesIn: 0,
    bytesOut: 0,
    retries: 0,
  };
}

function snapshot(pid: number, t: TrafficSeries): WorkerSnapshot {
  return {
    worker: String(pid),
    pid,
    version: 1,
    active: 0,
    traffic: [t],
    upstream: [],
    endpoints: [],
    counters: {},
    process: [],
  };
}

describe('TrafficSlot exemplars', () => {
  it('has none until a traced request, then the latest per bucket', () => {
    const slot = new TrafficSlot('ns/a', 'alpha', 'dc1');
    slot.add(1, 0.003, 0, 0, 0);
    expect(slot.exemplars).toBeUndefined();
    slot.exemplar(0.003, 'a'.repeat(32), 'b'.repeat(16), 100);
    slot.exemplar(0.004, 'c'.repeat(32), 'd'.repeat(16), 101);
    slot.exemplar(2, 'e'.repeat(32), 'f'.repeat(16), 102);
    const i5ms = DURATION_BUCKETS.indexOf(0.005);
    expect(slot.exemplars![i5ms]).toMatchObject({ traceId: 'c'.repeat(32), value: 0.004 });
    expect(slot.exemplars![DURATION_BUCKETS.indexOf(2.5)]).toMatchObject({ traceId: 'e'.repeat(32) });
    expect(slot.exemplars!.filter((e) => e !== null)).toHaveLength(2);
  });
});

describe('SnapshotAggregator exemplars', () => {
  it('keeps the most recent exemplar per bucket over live and exited workers', () => {
    const n = DURATION_BUCKETS.length + 1;
    const w1 = new Array<BucketExemplar | null>(n).fill(null);
    const w2 = new Array<BucketExemplar | null>(n).fill(null);
    w1[0] = ex('1'.repeat(32), 0.0005, 200);
    w2[0] = ex('2'.repeat(32), 0.0007, 100);
    w2[3] = ex('3'.repeat(32), 0.008, 50);
    const agg = new SnapshotAggregator();
    agg.update([snapshot(1, series(w1)), snapshot(2, series(w2))], [1, 2]);
    let d = agg.view().traffic[0]!.duration;
    expect(d.exemplars![0]!.traceId).toBe('1'.repeat(32));
    expect(d.exemplars![3]!.traceId).toBe('3'.repeat(32));
    // Worker 1 exits; its replacement has a newer exemplar for bucket 3 only. Bucket 0 keeps the exited one's.
    const w3 = new Array<BucketExemplar | null>(n).fill(null);
    w3[3] = ex('4'.repeat(32), 0.009, 300);
    agg.update([snapshot(2, series(w2)), snapshot(3, series(w3))], [2, 3]);
    d = agg.view().traffic[0]!.duration;
    expect(d.exemplars![0]!.traceId).toBe('1'.repeat(32));
    expect(d.exemplars![3]!.traceId).toBe('4'.repeat(32));
  });

  it('adds no exemplars when no worker traced anything', () => {
    const agg = new SnapshotAggregator();
    agg.update([snapshot(1, series()), snapshot(2, series())], [1, 2]);
    expect(agg.view().traffic[0]!.duration.exemplars).toBeUndefined();
  });
});

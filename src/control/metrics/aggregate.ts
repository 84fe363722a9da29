/**
 * Sums worker snapshots into one view, in the primary, at scrape time.
 *
 * Counters are summed exactly over the live workers. So that a total never goes back when a worker exits and is
 * replaced (its successor starts from zero), the last snapshot of every worker that left is folded into a retired
 * total that stays in the sum. What a worker counted between the last scrape and its exit is lost (Prometheus
 * sees a smaller increase, never a decrease). A live worker that does not answer a scrape in time contributes its
 * previous snapshot (stale, still monotonic) and is reported as stale.
 *
 * Gauges (active requests, pool figures) come from live workers only.
 */

import type { WorkerSnapshot } from '../../cluster/worker-report.ts';
import {
  CODE_LABELS,
  type HistogramSnapshot,
  type TrafficSeries,
  type UpstreamSeries,
} from '../../cluster/worker-report.ts';

function addInto(target: number[], source: number[]): void {
  for (let i = 0; i < source.length; i++) target[i] = (target[i] ?? 0) + source[i]!;
}

/** Per bucket, the more recent of two exemplars. */
export function mergeExemplars(target: HistogramSnapshot, source: HistogramSnapshot): void {
  const from = source.exemplars;
  if (from === undefined) return;
  target.exemplars ??= new Array(from.length).fill(null);
  const into = target.exemplars!;
  for (let i = 0; i < from.length; i++) {
    const e = from[i];
    if (e && (!into[i] || into[i]!.timestamp < e.timestamp)) into[i] = e;
  }
}

function addHistogram(target: HistogramSnapshot, source: HistogramSnapshot): void {
  addInto(target.counts, source.counts);
  target.sum += source.sum;
  mergeExemplars(target, source);
}

function cloneTraffic(s: TrafficSeries): TrafficSeries {
  return {
    ...s,
    codes: [...s.codes],
    duration: {
      counts: [...s.duration.counts],
      sum: s.duration.sum,
      ...(s.duration.exemplars ? { exemplars: [...s.duration.exemplars] } : {}),
    },
  };
}

function cloneUpstream(s: UpstreamSeries): UpstreamSeries {
  return { ...s, headerTime: { counts: [...s.headerTime.counts], sum: s.headerTime.sum } };
}

const trafficKey = (s: TrafficSeries) => `${s.route}\u0000${s.service}\u0000${s.datacenter}`;
const upstreamKey = (s: UpstreamSeries) => `${s.service}\u0000${s.datacenter}`;

/** Counter parts of snapshots, summed. */
class CounterTotals {
  readonly traffic = new Map<string, TrafficSeries>();
  readonly upstream = new Map<string, UpstreamSeries>();
  readonly counters: Record<string, number> = {};

  add(s: Pick<WorkerSnapshot, 'traffic' | 'upstream' | 'counters'>): void {
    for (const t of s.traffic) {
      const k = trafficKey(t);
      const prior = this.traffic.get(k);
      if (!prior) this.traffic.set(k, cloneTraffic(t));
      else {
        addInto(prior.codes, t.codes);
        addHistogram(prior.duration, t.duration);
        prior.bytesIn += t.bytesIn;
        prior.bytesOut += t.bytesOut;
        prior.retries += t.retries;
      }
    }
    for (const u of s.upstream) {
      const k = upstreamKey(u);
      const prior = this.upstream.get(k);
      if (!prior) this.upstream.set(k, cloneUpstream(u));
      else {
        addHistogram(prior.headerTime, u.headerTime);
        prior.connectionsOpened += u.connectionsOpened;
        prior.connectionFailures += u.connectionFailures;
      }
    }
    for (const [name, v] of Object.entries(s.counters)) this.counters[name] = (this.counters[name] ?? 0) + v;
  }

  merged(others: Iterable<WorkerSnapshot>): CounterTotals {
    const out = new CounterTotals();
    out.add({
      traffic: [...this.traffic.values()],
      upstream: [...this.upstream.values()],
      counters: this.counters,
    });
    for (const s of others) out.add(s);
    return out;
  }
}

export interface AggregateView {
  traffic: TrafficSeries[];
  upstream: UpstreamSeries[];
  counters: Record<string, number>;
  /** Gateway-generated answers by error code (from the traffic series). */
  gatewayErrors: Map<string, number>;
  active: number;
  /** Live workers' latest snapshots (fresh or stale). */
  workers: WorkerSnapshot[];
  /** Live workers that did not answer this scrape. */
  stale: number;
}

export class SnapshotAggregator {
  readonly #live = new Map<number, WorkerSnapshot>();
  readonly #retired = new CounterTotals();
  #stale = 0;
  /** Scrapes in which at least one live worker did not answer. */
  incompleteScrapes = 0;
  /** Worker answers missed (one per worker per scrape). */
  missedAnswers = 0;

  /**
   * One scrape's answers. `livePids` are the workers alive now (answered or not); a worker known before and not
   * alive any more is retired.
   */
  update(answers: WorkerSnapshot[], livePids: Iterable<number>): void {
    const live = new Set(livePids);
    for (const a of answers) live.add(a.pid);
    for (const [pid, snap] of this.#live) {
      if (live.has(pid)) continue;
      this.#retired.add(snap);
      this.#live.delete(pid);
    }
    const answered = new Set<number>();
    for (const a of answers) {
      this.#live.set(a.pid, a);
      answered.add(a.pid);
    }
    let stale = 0;
    for (const pid of live) if (!answered.has(pid)) stale++;
    this.#stale = stale;
    if (stale > 0) {
      this.incompleteScrapes++;
      this.missedAnswers += stale;
    }
  }

  view(): AggregateView {
    const workers = [...this.#live.values()];
    const totals = this.#retired.merged(workers);
    const traffic = [...totals.traffic.values()];
    const gatewayErrors = new Map<string, number>();
    for (let i = 5; i < CODE_LABELS.length; i++) {
      let n = 0;
      for (const t of traffic) n += t.codes[i] ?? 0;
      gatewayErrors.set(CODE_LABELS[i]!, n);
    }
    let active = 0;
    for (const w of workers) active += w.active;
    return {
      traffic,
      upstream: [...totals.upstream.values()],
      counters: totals.counters,
      gatewayErrors,
      active,
      workers,
      stale: this.#stale,
    };
  }
}

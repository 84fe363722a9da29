/**
 * The metric families of Consul failover and freshness (docs/consul.md, docs/observability.md): which datacenter
 * serves each backend with failover (from the workers' snapshots), the Consul source's lag and data age per
 * datacenter, and the age of the last-known-good table loaded at start. Pure: figures in, samples out.
 */
import type { FailoverFigures } from '../../cluster/worker-report.ts';

/** Per datacenter, as the Consul source reports it (sources/consul/freshness.ts). */
export interface ConsulDatacenterFigures {
  lastContactSeconds: number;
  knownLeader: boolean;
  indexAgeSeconds: number;
  stale: boolean;
}

/** The last-known-good table read at start (control/last-known-good-age.ts). */
export interface LastKnownGoodFigures {
  /** Age of the file's table when it was read, in seconds. */
  ageSeconds: number;
  /** 1 when older than the max age. */
  stale: boolean;
  /** 1 when it was not served for being too old. */
  refused: boolean;
}

export interface FreshnessInput {
  workers: readonly { failover?: FailoverFigures[] }[];
  consul: Record<string, ConsulDatacenterFigures> | undefined;
  lastKnownGood: LastKnownGoodFigures | undefined;
}

export interface FreshnessSample {
  labels: Record<string, string>;
  value: number;
}

export interface FreshnessMetricFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  samples(input: FreshnessInput): FreshnessSample[];
}

interface Serving {
  route: string;
  backend: string;
  datacenter: string;
  workers: number;
  since: number;
}

/** Per (route, backend, datacenter): how many workers serve from it and the latest switch to it. */
function serving(input: FreshnessInput): { rows: Serving[]; totals: Map<string, number> } {
  const rows = new Map<string, Serving>();
  const totals = new Map<string, number>();
  for (const w of input.workers)
    for (const f of w.failover ?? []) {
      const backendKey = `${f.route}\u0000${f.backend}`;
      totals.set(backendKey, (totals.get(backendKey) ?? 0) + 1);
      const k = `${backendKey}\u0000${f.datacenter}`;
      const r = rows.get(k);
      if (r) {
        r.workers++;
        r.since = Math.max(r.since, f.since);
      } else
        rows.set(k, {
          route: f.route,
          backend: f.backend,
          datacenter: f.datacenter,
          workers: 1,
          since: f.since,
        });
    }
  return { rows: [...rows.values()], totals };
}

const perDc = (pick: (f: ConsulDatacenterFigures) => number) => (input: FreshnessInput) =>
  Object.entries(input.consul ?? {}).map(([datacenter, f]) => ({ labels: { datacenter }, value: pick(f) }));

export const FRESHNESS_METRICS: FreshnessMetricFamily[] = [
  {
    name: 'edgegate_backend_serving_datacenter',
    help: 'Backends with cross-datacenter failover: the share of proxy workers (0-1) whose requests go to this datacenter now; 1 on one datacenter when all agree.',
    type: 'gauge',
    samples(input) {
      const { rows, totals } = serving(input);
      return rows.map((r) => ({
        labels: { route: r.route, backend: r.backend, datacenter: r.datacenter },
        value: r.workers / (totals.get(`${r.route}\u0000${r.backend}`) ?? 1),
      }));
    },
  },
  {
    name: 'edgegate_backend_serving_datacenter_since_seconds',
    help: 'Backends with cross-datacenter failover: when a proxy worker last switched to this datacenter (seconds since the epoch).',
    type: 'gauge',
    samples: (input) =>
      serving(input).rows.map((r) => ({
        labels: { route: r.route, backend: r.backend, datacenter: r.datacenter },
        value: r.since / 1000,
      })),
  },
  {
    name: 'edgegate_backend_failover_transitions_total',
    help: 'Backends with cross-datacenter failover: changes of the serving datacenter, summed over proxy workers (a replaced worker starts from 0).',
    type: 'counter',
    samples(input) {
      const sums = new Map<string, FreshnessSample>();
      for (const w of input.workers)
        for (const f of w.failover ?? []) {
          const k = `${f.route}\u0000${f.backend}`;
          const s = sums.get(k);
          if (s) s.value += f.transitions;
          else sums.set(k, { labels: { route: f.route, backend: f.backend }, value: f.transitions });
        }
      return [...sums.values()];
    },
  },
  {
    name: 'edgegate_consul_last_contact_seconds',
    help: 'X-Consul-LastContact of the latest answer for each datacenter: how far the answering server lags behind its leader (0 from the leader).',
    type: 'gauge',
    samples: perDc((f) => f.lastContactSeconds),
  },
  {
    name: 'edgegate_consul_known_leader',
    help: 'X-Consul-KnownLeader of the latest answer for each datacenter (1: the answering server knows a leader).',
    type: 'gauge',
    samples: perDc((f) => (f.knownLeader ? 1 : 0)),
  },
  {
    name: 'edgegate_consul_index_age_seconds',
    help: "Age of each datacenter's catalog data: the server's lag behind the leader, plus the time since contact was lost while a watch of the datacenter fails.",
    type: 'gauge',
    samples: perDc((f) => f.indexAgeSeconds),
  },
  {
    name: 'edgegate_consul_stale',
    help: "1 while a datacenter's catalog data is stale (no contact, or older than EDGEGATE_CONSUL_STALE_AFTER): routes using it show ServingStale.",
    type: 'gauge',
    samples: perDc((f) => (f.stale ? 1 : 0)),
  },
  {
    name: 'edgegate_last_known_good_age_seconds',
    help: 'Age of the last-known-good table found at start (its savedAt), in seconds when it was read.',
    type: 'gauge',
    samples: (input) => (input.lastKnownGood ? [{ labels: {}, value: input.lastKnownGood.ageSeconds }] : []),
  },
  {
    name: 'edgegate_last_known_good_stale',
    help: 'The last-known-good table found at start was older than --last-known-good-max-age, by what was done: served (served with the stale warning) or refused (not served).',
    type: 'gauge',
    samples: (input) => {
      const l = input.lastKnownGood;
      if (!l) return [];
      return [
        { labels: { action: 'served' }, value: l.stale && !l.refused ? 1 : 0 },
        { labels: { action: 'refused' }, value: l.refused ? 1 : 0 },
      ];
    },
  },
];

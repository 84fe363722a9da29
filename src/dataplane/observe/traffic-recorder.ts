/**
 * The worker's request-path recording layer. Every (route, service, datacenter) the table can produce gets a slot
 * of plain numbers when the table is installed: response counts per code (typed array indexed by a small integer),
 * a request-duration histogram as a fixed bucket array, byte and retry counts. A request adds to its slot with a
 * handful of number increments — no label objects, no string building, no hashing of label values. The slots become
 * metrics only when the primary asks for a snapshot at scrape time (snapshot()).
 *
 * Slots are reached from the table objects themselves: installing a table stores each entry's RouteSlots and each
 * cluster's UpstreamSlot under a symbol on the EntryData / ClusterData object (the "index in the compiled entry"),
 * so a request resolves its slot by a property read. Slots are kept by label tuple across table versions, so a
 * route that stays in the table keeps counting where it was (counters never go back); the slots of a route (or a
 * Service) that left the table go with it — its series end, as a deleted object's do — so a worker's memory
 * follows the table it serves, not every route it ever served.
 */
import {
  type BucketExemplar,
  CODE_LABELS,
  DURATION_BUCKETS,
  type TrafficSeries,
  type TrafficSnapshot,
  UPSTREAM_BUCKETS,
  type UpstreamSeries,
} from '../../cluster/worker-report.ts';
import type { GatewayErrorCode } from '../../lib/errors.ts';
import type { ClusterData, EntryData, TableData } from '../../table/types.ts';

/** Index of each `code` label value (the gateway's codes sit after the status classes). */
const CODE_INDEX = new Map<string, number>(CODE_LABELS.map((c, i) => [c, i]));

/** The index of a gateway error code in CODE_LABELS (rare path: only for gateway-generated answers). */
export function gatewayCodeIndex(code: GatewayErrorCode): number {
  return CODE_INDEX.get(code)!;
}

/** Index of a forwarded answer's status class in CODE_LABELS (100-599; anything else counts as 5xx). */
export function statusClassIndex(status: number): number {
  const c = (status / 100) | 0;
  return c >= 1 && c <= 5 ? c - 1 : 4;
}

function bucketIndex(buckets: readonly number[], value: number): number {
  let i = 0;
  while (i < buckets.length && value > buckets[i]!) i++;
  return i;
}

/** One (route, service, datacenter). `service`/`datacenter` are '' when the request never reached a backend. */
export class TrafficSlot {
  readonly route: string;
  readonly service: string;
  readonly datacenter: string;
  readonly codes = new Float64Array(CODE_LABELS.length);
  /** Non-cumulative bucket counts; the last one is +Inf. */
  readonly duration = new Float64Array(DURATION_BUCKETS.length + 1);
  durationSum = 0;
  requests = 0;
  bytesIn = 0;
  bytesOut = 0;
  retries = 0;
  /** The latest sampled trace per duration bucket (tracing on only; created by the first one). */
  exemplars: (BucketExemplar | null)[] | undefined = undefined;

  constructor(route: string, service: string, datacenter: string) {
    this.route = route;
    this.service = service;
    this.datacenter = datacenter;
  }

  /** Adds one finished request. */
  add(codeIndex: number, seconds: number, bytesIn: number, bytesOut: number, retries: number): void {
    this.requests++;
    this.codes[codeIndex]!++;
    this.duration[bucketIndex(DURATION_BUCKETS, seconds)]!++;
    this.durationSum += seconds;
    this.bytesIn += bytesIn;
    this.bytesOut += bytesOut;
    this.retries += retries;
  }

  /** A sampled request's trace becomes the exemplar of its duration bucket (tracing on only). */
  exemplar(seconds: number, traceId: string, spanId: string, timestamp: number): void {
    this.exemplars ??= new Array<BucketExemplar | null>(DURATION_BUCKETS.length + 1).fill(null);
    this.exemplars[bucketIndex(DURATION_BUCKETS, seconds)] = { traceId, spanId, value: seconds, timestamp };
  }
}

/** One (service, datacenter): upstream-side figures. */
export class UpstreamSlot {
  readonly service: string;
  readonly datacenter: string;
  readonly headerTime = new Float64Array(UPSTREAM_BUCKETS.length + 1);
  headerTimeSum = 0;
  headerTimeCount = 0;
  /** TCP connections opened / failed to open (from undici's diagnostics channels, see pool-events.ts). */
  connectionsOpened = 0;
  connectionFailures = 0;

  constructor(service: string, datacenter: string) {
    this.service = service;
    this.datacenter = datacenter;
  }

  /** One upstream answer's response-header time. */
  addHeaderTime(seconds: number): void {
    this.headerTime[bucketIndex(UPSTREAM_BUCKETS, seconds)]!++;
    this.headerTimeSum += seconds;
    this.headerTimeCount++;
  }
}

/** The slots of one route: one per cluster it can send to, and one for requests that never got a cluster. */
export class RouteSlots {
  readonly none: TrafficSlot;
  readonly #byCluster = new Map<string, TrafficSlot>();
  #lastCluster: ClusterData | undefined;
  #lastSlot: TrafficSlot | undefined;

  constructor(none: TrafficSlot) {
    this.none = none;
  }

  /** @internal table installation only */
  bind(clusterId: string, slot: TrafficSlot): void {
    this.#byCluster.set(clusterId, slot);
  }

  /** The slot for a request of this route that went to `cluster` (undefined: never reached a backend). */
  forCluster(cluster: ClusterData | undefined): TrafficSlot {
    if (cluster === undefined) return this.none;
    // Most routes have one backend: the identity check answers without a lookup.
    if (cluster === this.#lastCluster) return this.#lastSlot!;
    const slot = this.#byCluster.get(cluster.id) ?? this.none;
    this.#lastCluster = cluster;
    this.#lastSlot = slot;
    return slot;
  }
}

const kRouteSlots = Symbol('edgegate.routeSlots');
const kUpstreamSlot = Symbol('edgegate.upstreamSlot');
type TaggedEntry = EntryData & { [kRouteSlots]?: RouteSlots };
type TaggedCluster = ClusterData & { [kUpstreamSlot]?: UpstreamSlot };

export class TrafficRecorder {
  readonly #traffic = new Map<string, TrafficSlot>();
  readonly #upstream = new Map<string, UpstreamSlot>();
  /** For requests that matched no route. */
  readonly unmatched: TrafficSlot;
  /** `address:port` → upstream slot, for connection events (rare path). */
  #byEndpoint = new Map<string, UpstreamSlot>();
  active = 0;

  constructor() {
    this.unmatched = this.#trafficSlot('', '', '');
  }

  #trafficSlot(route: string, service: string, datacenter: string): TrafficSlot {
    const key = `${route}\u0000${service}\u0000${datacenter}`;
    let slot = this.#traffic.get(key);
    if (!slot) {
      slot = new TrafficSlot(route, service, datacenter);
      this.#traffic.set(key, slot);
    }
    return slot;
  }

  #upstreamSlot(service: string, datacenter: string): UpstreamSlot {
    const key = `${service}\u0000${datacenter}`;
    let slot = this.#upstream.get(key);
    if (!slot) {
      slot = new UpstreamSlot(service, datacenter);
      this.#upstream.set(key, slot);
    }
    return slot;
  }

  /**
   * Prepares the slots of a table before it serves: tags every entry and cluster object with its slots. Call it
   * with the same objects the proxy will hand to routeSlots()/upstreamSlot().
   */
  install(table: TableData): void {
    const clusters = new Map<string, ClusterData>();
    const byEndpoint = new Map<string, UpstreamSlot>();
    const traffic = new Set<TrafficSlot>([this.unmatched]);
    const upstream = new Set<UpstreamSlot>();
    for (const c of table.clusters) {
      clusters.set(c.id, c);
      const up = this.#upstreamSlot(c.service, c.datacenter);
      upstream.add(up);
      (c as TaggedCluster)[kUpstreamSlot] = up;
      for (const ep of c.endpoints) {
        const key = endpointKey(ep.address, ep.port);
        if (!byEndpoint.has(key)) byEndpoint.set(key, up);
      }
    }
    this.#byEndpoint = byEndpoint;
    const routes = new Map<string, RouteSlots>();
    for (const e of table.entries) {
      let rs = routes.get(e.route);
      if (!rs) {
        rs = new RouteSlots(this.#trafficSlot(e.route, '', ''));
        traffic.add(rs.none);
        routes.set(e.route, rs);
      }
      const ids = e.catalog
        ? Object.values(e.catalog.services).flatMap((s) => Object.values(s))
        : (e.backends ?? []).map((b) => b.cluster);
      for (const id of ids) {
        const c = clusters.get(id);
        if (!c) continue;
        const slot = this.#trafficSlot(e.route, c.service, c.datacenter);
        traffic.add(slot);
        rs.bind(id, slot);
      }
      (e as TaggedEntry)[kRouteSlots] = rs;
    }
    // What the new table cannot produce any more: routes and Services that left it.
    for (const [key, slot] of this.#traffic) if (!traffic.has(slot)) this.#traffic.delete(key);
    for (const [key, slot] of this.#upstream) if (!upstream.has(slot)) this.#upstream.delete(key);
  }

  /** Slots held (traffic, upstream): they follow the installed table. */
  get size(): { traffic: number; upstream: number } {
    return { traffic: this.#traffic.size, upstream: this.#upstream.size };
  }

  /** The slots of a matched entry (installed with its table). */
  routeSlots(entry: EntryData): RouteSlots {
    return (entry as TaggedEntry)[kRouteSlots] ?? this.#lateRouteSlots(entry);
  }

  /** An entry of a table that was not installed (should not happen): slow path, but still counted. */
  #lateRouteSlots(entry: EntryData): RouteSlots {
    const rs = new RouteSlots(this.#trafficSlot(entry.route, '', ''));
    (entry as TaggedEntry)[kRouteSlots] = rs;
    return rs;
  }

  upstreamSlot(cluster: ClusterData): UpstreamSlot {
    const tagged = cluster as TaggedCluster;
    let slot = tagged[kUpstreamSlot];
    if (slot === undefined) {
      slot = this.#upstreamSlot(cluster.service, cluster.datacenter);
      tagged[kUpstreamSlot] = slot;
    }
    return slot;
  }

  /** Connection events from undici (rare path). */
  connectionOpened(address: string, port: number | string): void {
    const s = this.#byEndpoint.get(endpointKey(address, port));
    if (s) s.connectionsOpened++;
  }

  connectionFailed(address: string, port: number | string): void {
    const s = this.#byEndpoint.get(endpointKey(address, port));
    if (s) s.connectionFailures++;
  }

  /** Plain-data copy of every slot that saw traffic (structured-clone and JSON safe). */
  snapshot(): TrafficSnapshot {
    const traffic: TrafficSeries[] = [];
    for (const s of this.#traffic.values()) {
      if (s.requests === 0) continue;
      traffic.push({
        route: s.route,
        service: s.service,
        datacenter: s.datacenter,
        codes: Array.from(s.codes),
        duration: {
          counts: Array.from(s.duration),
          sum: s.durationSum,
          ...(s.exemplars !== undefined ? { exemplars: [...s.exemplars] } : {}),
        },
        bytesIn: s.bytesIn,
        bytesOut: s.bytesOut,
        retries: s.retries,
      });
    }
    const upstream: UpstreamSeries[] = [];
    for (const s of this.#upstream.values()) {
      if (s.headerTimeCount === 0 && s.connectionsOpened === 0 && s.connectionFailures === 0) continue;
      upstream.push({
        service: s.service,
        datacenter: s.datacenter,
        headerTime: { counts: Array.from(s.headerTime), sum: s.headerTimeSum },
        connectionsOpened: s.connectionsOpened,
        connectionFailures: s.connectionFailures,
      });
    }
    return { active: this.active, traffic, upstream };
  }
}

/** `address:port` the way both the table and undici's connect events can produce it (IPv6 without brackets). */
export function endpointKey(address: string, port: number | string): string {
  const a = address.charCodeAt(0) === 91 /* [ */ ? address.slice(1, -1) : address;
  return `${a}:${port}`;
}

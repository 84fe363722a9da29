/**
 * The Consul source: watches the local agent, the datacenter list, the service lists of the datacenters that
 * matter and the health of every service in the watch set, and reports a full CatalogSnapshot after each change
 * (facts only; compile/ decides routing). It reports nothing before its first complete view, so a table is never
 * built from half a catalog; when Consul is lost it reports nothing new (the controller keeps serving the last
 * state) and counts the age of its data; past `maxStalenessMs` (if set) it reports every service gone.
 */
import type { CatalogSnapshot, Instance } from '../../../api/catalog.ts';
import type { MeshIdentity } from '../../../api/certificate.ts';
import type { GatewayRoute } from '../../../api/gateway-route.ts';
import { BlockingQuery, type WatchError, type WatchErrorKind } from './blocking-query.ts';
import { ConsulHttp, type ConsulResponse } from './consul-http.ts';
import { type DatacenterFigures, datacenterOfWatch, FreshnessTracker } from './freshness.ts';
import { instancesFromHealth } from './health.ts';
import { MeshWatch } from './mesh-watch.ts';
import { PEER_SERVICES, peerServiceList, serviceList } from './service-lists.ts';
import type { ConsulSettings } from './settings.ts';
import { deriveWatchSet, peerOf, type ServiceWatchKey, watchKey } from './watch-set.ts';

export interface ConsulLog {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
}

export interface ConsulSourceOptions {
  settings: ConsulSettings;
  log: ConsulLog;
  onSnapshot: (catalog: CatalogSnapshot) => void;
  /** Duration of every finished blocking query, in seconds (edgegate_consul_blocking_query_seconds). */
  onBlockingQuery?: (seconds: number) => void;
  /** The gateway's mesh identity changed (leaf renewed, CA rotated); only with `settings.meshService`. */
  onMeshIdentity?: (identity: MeshIdentity) => void;
  now?: () => number;
}

/** Numbers for metrics (`edgegate_source_*`, `edgegate_consul_*`) and /debug/sources. */
export interface ConsulSourceStats {
  /** 1 when every watch's last request succeeded; 0 while any fails, and before first contact. */
  up: 0 | 1;
  /** The first complete view was reported. */
  synced: boolean;
  /** Seconds since the view was last complete and current (0 while up; since start if never synced). */
  dataAgeSeconds: number;
  /** The stale data was dropped (max staleness passed). */
  staleDropped: boolean;
  address: string;
  localDatacenter: string | undefined;
  datacenters: string[];
  /** Service (health) watches running, the cap, and how many the cap left out. */
  serviceWatches: number;
  serviceWatchLimit: number;
  serviceWatchesOverLimit: number;
  /** Service-list watches (one per datacenter in use). */
  serviceListWatches: number;
  requests: number;
  errors: number;
  /** Failed requests by kind (network, timeout, forbidden, http, invalid); they sum to `errors`. */
  errorsByKind: Record<WatchErrorKind, number>;
  /** 403 answers (ACL): counted, logged once per episode. */
  forbidden: number;
  /** Snapshots reported to the controller. */
  snapshots: number;
  /** Watches failing right now, with their last error. */
  failing: Record<string, string>;
  /** Service mesh: identity (trust domain, active root, leaf serial) and intention decisions; absent: off. */
  mesh?: Record<string, unknown>;
  /** Per datacenter in use: lag behind the leader, known leader, index, data age, staleness (freshness.ts). */
  freshness: Record<string, DatacenterFigures>;
}

interface ListEntry {
  watch: BlockingQuery;
  services: Record<string, string[]> | undefined;
}

interface ServiceEntry {
  key: ServiceWatchKey;
  watch: BlockingQuery;
  instances: Instance[] | undefined;
  text: string | undefined;
}

const SELF = 'agent/self';
const DATACENTERS = 'catalog/datacenters';

export class ConsulSource {
  readonly #s: ConsulSettings;
  readonly #log: ConsulLog;
  readonly #onSnapshot: (c: CatalogSnapshot) => void;
  readonly #onBlockingQuery: ((seconds: number) => void) | undefined;
  readonly #now: () => number;
  readonly #http: ConsulHttp;
  readonly #lists = new Map<string, ListEntry>();
  readonly #services = new Map<string, ServiceEntry>();
  readonly #failing = new Map<string, WatchError>();
  #self: BlockingQuery | undefined;
  #dcWatch: BlockingQuery | undefined;
  #agentDatacenter: string | undefined;
  #datacenters: string[] | undefined;
  #routes: readonly GatewayRoute[] | undefined;
  #contacted = false;
  #synced = false;
  #syncTimer: NodeJS.Timeout | undefined;
  #syncDeadlinePassed = false;
  #staleSince: number;
  #staleTimer: NodeJS.Timeout | undefined;
  #staleDropped = false;
  #lastReported: string | undefined;
  #overLimit = 0;
  readonly #errorsByKind: Record<WatchErrorKind, number> = {
    network: 0,
    timeout: 0,
    forbidden: 0,
    http: 0,
    invalid: 0,
  };
  #forbiddenLogged = false;
  #snapshots = 0;
  #stopped = false;
  readonly #mesh: MeshWatch | undefined;
  readonly #fresh: FreshnessTracker;
  /** The freshness part of the last snapshot: a change of it is reported. */
  #freshText = '{}';

  constructor(opts: ConsulSourceOptions) {
    this.#s = opts.settings;
    this.#log = opts.log;
    this.#onSnapshot = opts.onSnapshot;
    this.#onBlockingQuery = opts.onBlockingQuery;
    this.#now = opts.now ?? Date.now;
    this.#http = new ConsulHttp(opts.settings);
    this.#staleSince = this.#now();
    if (opts.settings.meshService)
      this.#mesh = new MeshWatch({
        gatewayService: opts.settings.meshService,
        namespace: opts.settings.namespace,
        http: this.#http,
        watch: (key, path, query, pollMs, onData) => this.#watch(key, path, query, pollMs, onData),
        log: opts.log,
        onIdentity: (identity) => opts.onMeshIdentity?.(identity),
        onDecision: () => this.#report(),
        backoffBaseMs: opts.settings.backoffBaseMs,
        backoffMaxMs: opts.settings.backoffMaxMs,
      });
    this.#fresh = new FreshnessTracker(opts.settings.staleAfterMs, this.#now);
  }

  start(): void {
    this.#mesh?.start();
    // The agent's own datacenter is the local one; polling /v1/agent/self doubles as a liveness probe.
    this.#self = this.#watch(
      SELF,
      '/v1/agent/self',
      {},
      Math.max(this.#s.datacenterPollMs, 30_000),
      (body) => {
        const dc = (body as { Config?: { Datacenter?: unknown } } | null)?.Config?.Datacenter;
        if (typeof dc !== 'string' || dc === '')
          throw new TypeError('no Config.Datacenter in /v1/agent/self');
        if (dc === this.#agentDatacenter) return;
        this.#agentDatacenter = dc;
        this.#reconcile();
      },
    );
    this.#dcWatch = this.#watch(
      DATACENTERS,
      '/v1/catalog/datacenters',
      {},
      this.#s.datacenterPollMs,
      (body) => {
        if (!Array.isArray(body) || !body.every((d) => typeof d === 'string'))
          throw new TypeError('expected a list of datacenter names');
        const dcs = [...new Set(body as string[])].sort();
        if (this.#datacenters && dcs.join('\0') === this.#datacenters.join('\0')) return;
        this.#datacenters = dcs;
        this.#reconcile();
      },
    );
  }

  /** The routes changed (the valid ones, validated once by the controller): re-derive the watch set. */
  setRoutes(routes: readonly GatewayRoute[]): void {
    this.#routes = routes;
    this.#reconcile();
  }

  get localDatacenter(): string | undefined {
    return this.#s.datacenter ?? this.#agentDatacenter;
  }

  stats(): ConsulSourceStats {
    const up = this.#contacted && this.#failing.size === 0 ? 1 : 0;
    return {
      up,
      synced: this.#synced,
      dataAgeSeconds: up && this.#synced ? 0 : Math.max(0, (this.#now() - this.#staleSince) / 1000),
      staleDropped: this.#staleDropped,
      address: this.#s.address,
      localDatacenter: this.localDatacenter,
      datacenters: [...(this.#datacenters ?? [])],
      serviceWatches: this.#services.size,
      serviceWatchLimit: this.#s.maxWatches,
      serviceWatchesOverLimit: this.#overLimit,
      serviceListWatches: this.#lists.size,
      requests: this.#http.requests,
      errors: Object.values(this.#errorsByKind).reduce((a, b) => a + b, 0),
      errorsByKind: { ...this.#errorsByKind },
      forbidden: this.#errorsByKind.forbidden,
      snapshots: this.#snapshots,
      failing: Object.fromEntries([...this.#failing].map(([k, e]) => [k, e.message])),
      ...(this.#mesh ? { mesh: this.#mesh.stats() } : {}),
      freshness: this.#fresh.figures(),
    };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#syncTimer);
    clearTimeout(this.#staleTimer);
    const all = [this.#self, this.#dcWatch, ...[...this.#lists.values()].map((e) => e.watch)];
    all.push(...[...this.#services.values()].map((e) => e.watch));
    await Promise.all([...all.map((w) => w?.stop()), this.#mesh?.stop()]);
    await this.#http.close();
  }

  #watch(
    key: string,
    path: string,
    query: Record<string, string>,
    pollMs: number,
    onData: (body: unknown) => void,
  ) {
    const s = this.#s;
    return new BlockingQuery({
      http: this.#http,
      path,
      query: { ...this.#http.commonQuery(), ...query },
      waitMs: s.waitMs,
      ratePerSecond: s.ratePerSecond,
      rateBurst: s.rateBurst,
      backoffBaseMs: s.backoffBaseMs,
      backoffMaxMs: s.backoffMaxMs,
      pollMs,
      onOk: (res) => {
        this.#onOk(key);
        this.#freshness(key, res);
      },
      onError: (err, n) => {
        this.#onError(key, err, n);
        this.#freshness(key, undefined);
      },
      ...(this.#onBlockingQuery ? { onBlockingQuery: this.#onBlockingQuery } : {}),
      onData: (body) => {
        if (this.#stopped) return;
        try {
          onData(body);
        } catch (err) {
          this.#onError(key, { kind: 'invalid', message: `${path}: ${(err as Error).message}` }, 1);
        }
      },
    }).start();
  }

  /** Freshness bookkeeping of one answer (or failure); a datacenter that became stale or current is reported. */
  #freshness(key: string, res: ConsulResponse | undefined): void {
    if (this.#stopped) return;
    const dc = datacenterOfWatch(key, this.localDatacenter);
    if (dc === undefined) return;
    if (res) this.#fresh.answered(dc, key, res);
    else this.#fresh.failed(dc, key);
    if (JSON.stringify(this.#fresh.snapshot()) !== this.#freshText) this.#report();
  }

  #onOk(key: string): void {
    if (this.#stopped) return;
    this.#contacted = true;
    const wasFailing = this.#failing.delete(key);
    if (this.#failing.size > 0) return;
    if (this.#forbiddenLogged) {
      this.#forbiddenLogged = false;
      this.#log.info('consul: access granted again');
    }
    if (wasFailing || this.#staleDropped) {
      this.#log.info('consul: every watch answers again; serving live data', { address: this.#s.address });
    }
    this.#staleSince = this.#now();
    clearTimeout(this.#staleTimer);
    this.#staleTimer = undefined;
    if (this.#staleDropped) {
      this.#staleDropped = false;
      this.#lastReported = undefined;
      this.#report();
    }
  }

  #onError(key: string, err: WatchError, consecutive: number): void {
    if (this.#stopped) return;
    this.#errorsByKind[err.kind]++;
    const firstFailure = this.#failing.size === 0;
    if (firstFailure && (this.#contacted || this.#synced)) this.#staleSince = this.#now();
    this.#failing.set(key, err);
    if (err.kind === 'forbidden') {
      const reloaded = this.#http.reloadToken();
      if (!this.#forbiddenLogged) {
        this.#forbiddenLogged = true;
        this.#log.error(
          `consul: permission denied (403) on ${err.message}; the ACL token (CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE) needs node:read and service:read in every datacenter used; keeping the last state and retrying`,
          { watch: key, tokenReloaded: reloaded },
        );
      }
    } else if (firstFailure) {
      this.#log.warn(`consul: ${err.message}; keeping the last state and retrying with backoff`, {
        watch: key,
        kind: err.kind,
      });
    } else {
      this.#log.debug(`consul: ${err.message}`, { watch: key, attempt: consecutive });
    }
    this.#armStaleTimer();
  }

  #armStaleTimer(): void {
    const max = this.#s.maxStalenessMs;
    if (max <= 0 || this.#staleTimer || this.#staleDropped) return;
    const due = Math.max(0, this.#staleSince + max - this.#now());
    this.#staleTimer = setTimeout(() => {
      this.#staleTimer = undefined;
      if (this.#stopped || this.#failing.size === 0) return;
      if (this.#now() - this.#staleSince < max) return this.#armStaleTimer();
      if (!this.#synced) return;
      this.#staleDropped = true;
      this.#log.error(
        `consul: no contact for ${Math.round((this.#now() - this.#staleSince) / 1000)} s (over EDGEGATE_CONSUL_MAX_STALENESS); dropping the stale instances`,
      );
      this.#report();
    }, due);
  }

  #reconcile(): void {
    if (this.#stopped) return;
    const local = this.localDatacenter;
    if (!this.#routes || !local || !this.#datacenters) return;
    const services: Record<string, Record<string, string[]> | undefined> = {};
    for (const [dc, e] of this.#lists) services[dc] = e.services;
    const ws = deriveWatchSet(this.#routes, {
      localDatacenter: local,
      datacenters: this.#datacenters,
      services,
    });

    const wantedDcs = new Set(ws.datacenters);
    this.#fresh.retain(new Set([...wantedDcs, local]));
    for (const [dc, e] of this.#lists) {
      if (wantedDcs.has(dc)) continue;
      void e.watch.stop();
      this.#lists.delete(dc);
      this.#failing.delete(`services@${dc}`);
      this.#fresh.forget(dc, `services@${dc}`);
    }
    for (const dc of ws.datacenters) {
      if (this.#lists.has(dc)) continue;
      const entry: ListEntry = { services: undefined, watch: undefined as unknown as BlockingQuery };
      this.#lists.set(dc, entry);
      const peer = peerOf(dc);
      const listPath = peer !== undefined ? PEER_SERVICES : '/v1/catalog/services';
      entry.watch = this.#watch(`services@${dc}`, listPath, whereQuery(dc), 1000, (body) => {
        const next = peer !== undefined ? peerServiceList(body) : serviceList(body);
        if (entry.services && JSON.stringify(entry.services) === JSON.stringify(next)) return;
        entry.services = next;
        this.#reconcile();
      });
    }

    const capped = ws.services.slice(0, this.#s.maxWatches);
    const over = ws.services.length - capped.length;
    if (over !== this.#overLimit) {
      this.#overLimit = over;
      if (over > 0)
        this.#log.warn(
          `consul: ${ws.services.length} services to watch, over the cap of ${this.#s.maxWatches} (EDGEGATE_CONSUL_MAX_WATCHES); ${over} not watched`,
          { notWatched: ws.services.slice(this.#s.maxWatches, this.#s.maxWatches + 20).map(watchKey) },
        );
    }
    const wanted = new Set(capped.map(watchKey));
    for (const [k, e] of this.#services) {
      if (wanted.has(k)) continue;
      void e.watch.stop();
      this.#services.delete(k);
      this.#failing.delete(`health@${k}`);
      this.#fresh.forget(e.key.datacenter, `health@${k}`);
    }
    for (const key of capped) {
      const k = watchKey(key);
      if (this.#services.has(k)) continue;
      const entry: ServiceEntry = {
        key,
        instances: undefined,
        text: undefined,
        watch: undefined as unknown as BlockingQuery,
      };
      this.#services.set(k, entry);
      entry.watch = this.#watch(
        `health@${k}`,
        `/v1/health/${key.mesh ? 'connect' : 'service'}/${encodeURIComponent(key.service)}`,
        whereQuery(key.datacenter),
        1000,
        (body) => {
          const instances = instancesFromHealth(body);
          const text = JSON.stringify(instances);
          if (text === entry.text) return;
          entry.instances = instances;
          entry.text = text;
          this.#report();
        },
      );
    }
    this.#mesh?.setDestinations(capped.filter((k) => k.mesh).map((k) => k.service));
    this.#report();
  }

  #pending(): string[] {
    const out: string[] = this.#mesh?.pending() ?? [];
    for (const [dc, e] of this.#lists) if (!e.services) out.push(`services@${dc}`);
    for (const [k, e] of this.#services) if (!e.instances) out.push(`health@${k}`);
    return out;
  }

  #report(): void {
    if (this.#stopped) return;
    const local = this.localDatacenter;
    if (!this.#routes || !local || !this.#datacenters) return;
    if (!this.#synced) {
      const pending = this.#pending();
      if (pending.length > 0 && !this.#syncDeadlinePassed) {
        this.#syncTimer ??= setTimeout(() => {
          this.#syncDeadlinePassed = true;
          this.#report();
        }, this.#s.initialSyncTimeoutMs);
        return;
      }
      if (pending.length > 0)
        this.#log.warn('consul: first view reported before these watches answered', { pending });
      this.#synced = true;
      clearTimeout(this.#syncTimer);
      this.#log.info('consul: synced', {
        localDatacenter: local,
        datacenters: this.#datacenters,
        serviceWatches: this.#services.size,
      });
    }
    const snapshot = this.#snapshot(local, this.#datacenters);
    const text = JSON.stringify(snapshot);
    if (text === this.#lastReported) return;
    this.#lastReported = text;
    this.#snapshots++;
    this.#onSnapshot(snapshot);
  }

  #snapshot(local: string, dcs: string[]): CatalogSnapshot {
    const datacenters: CatalogSnapshot['datacenters'] = {};
    for (const dc of dcs) datacenters[dc] = { services: {} };
    const freshness = this.#fresh.snapshot();
    this.#freshText = JSON.stringify(freshness);
    const out: CatalogSnapshot = { localDatacenter: local, datacenters };
    if (Object.keys(freshness).length > 0) out.freshness = freshness;
    const mesh = this.#mesh
      ? {
          gatewayService: this.#mesh.gatewayService,
          namespace: this.#s.namespace ?? 'default',
          services: {} as Record<string, Instance[]>,
          intentions: this.#mesh.decisions(),
        }
      : undefined;
    if (mesh) out.mesh = mesh;
    const peers: NonNullable<CatalogSnapshot['peers']> = {};
    for (const key of this.#lists.keys()) {
      const peer = peerOf(key);
      if (peer !== undefined) peers[peer] = { services: {} };
    }
    if (Object.keys(peers).length > 0) out.peers = peers;
    if (this.#staleDropped) return out;
    const keys = [...this.#services.keys()].sort();
    for (const k of keys) {
      const e = this.#services.get(k)!;
      if (!e.instances) continue;
      // The service list says whether the service exists at all (health answers [] for an unknown name too).
      const list = this.#lists.get(e.key.datacenter)?.services;
      if (list && !(e.key.service in list)) continue;
      const peer = peerOf(e.key.datacenter);
      if (peer !== undefined) {
        const p = peers[peer];
        if (p) p.services[e.key.service] = e.instances;
        continue;
      }
      if (!datacenters[e.key.datacenter]) continue;
      if (e.key.mesh) {
        if (mesh) mesh.services[`${e.key.datacenter}/${e.key.service}`] = e.instances;
        continue;
      }
      datacenters[e.key.datacenter]!.services[e.key.service] = e.instances;
    }
    return out;
  }
}

/** `?dc=` for a datacenter, `?peer=` for a cluster peer's key (`peer:<name>`, watch-set.ts). */
function whereQuery(datacenter: string): Record<string, string> {
  const peer = peerOf(datacenter);
  return peer !== undefined ? { peer } : { dc: datacenter };
}

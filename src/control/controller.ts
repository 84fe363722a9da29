/**
 * The controller loop. Sources report full snapshots of their own view (latest wins); every report only marks
 * the state dirty. A hold-off timer (restarted by each report, bounded by a maximum delay from the first one, and
 * paced so rebuilds take at most a share of the time: control/hold-off.ts) batches bursts into one rebuild:
 * compile → if the table's content changed, give it the next version, persist it as last-known-good and publish
 * it. Nothing is published before every expected source has reported once, so an empty table is never pushed over
 * a good one.
 */
import { type CatalogSnapshot, emptyCatalog, emptyKube, type KubeServiceSnapshot } from '../api/catalog.ts';
import type { CertificateRefSnapshot } from '../api/certificate-refs.ts';
import type { GatewayRoute } from '../api/gateway-route.ts';
import type { RouteSource } from '../api/route-source.ts';
import { routeKey } from '../api/validate.ts';
import {
  type CompileMemo,
  type CompileSettings,
  compile,
  DEFAULT_SETTINGS,
  type LastValidRoute,
  type RouteStatus,
  validRoutes,
} from '../compile/compile.ts';
import type { TableData } from '../table/types.ts';
import { HoldOff } from './hold-off.ts';
import type { LastKnownGood } from './last-known-good.ts';

export type SourceName = 'routes' | 'catalog' | 'kube' | 'certificates';

export interface ControllerOptions {
  /** Sources that must report once before the first publish. */
  expect: SourceName[];
  publish: (table: TableData) => void | Promise<void>;
  /** Called after every rebuild with every route's status (also when the table did not change). */
  onStatuses?: (statuses: RouteStatus[], table: TableData) => void;
  onError?: (err: unknown) => void;
  settings?: CompileSettings;
  holdOffMs?: number;
  maxDelayMs?: number;
  /** Pause after a rebuild as a multiple of its CPU time (default 2; see control/hold-off.ts). */
  rebuildCostFactor?: number;
  lastKnownGood?: LastKnownGood;
  /** Whether to serve the last-known-good table found at start, by its savedAt (last-known-good-age.ts). */
  admitLastKnownGood?: (savedAt: string | undefined) => boolean;
  /** For tests and metrics: compile duration in ms. */
  onCompiled?: (ms: number, table: TableData) => void;
}

export class Controller {
  readonly #opts: Required<Pick<ControllerOptions, 'holdOffMs' | 'maxDelayMs'>> & ControllerOptions;
  readonly #synced = new Set<SourceName>();
  #routes: RouteSource[] = [];
  #catalog: CatalogSnapshot = emptyCatalog();
  #kube: KubeServiceSnapshot = emptyKube();
  #certificateRefs: CertificateRefSnapshot | undefined;
  #current: TableData | undefined;
  #statuses: RouteStatus[] = [];
  /** Each route's last valid version: served while its current version is invalid (fail closed). */
  #lastValid = new Map<string, LastValidRoute>();
  /** Fallback versions last handed to the route listeners, beside the sources' routes. */
  #notifiedFallbacks: unknown[] = [];
  /** Serving datacenter of each failover backend (`route\0ref`) and since when. */
  #serving = new Map<string, { dc: string; since: string }>();
  readonly #batches: HoldOff;
  /** Validated and compiled routes by source object, kept between rebuilds (CompileInput.memo). */
  readonly #memo: CompileMemo = new WeakMap();
  readonly #routeListeners: ((routes: GatewayRoute[]) => void)[] = [];

  constructor(opts: ControllerOptions) {
    this.#opts = { holdOffMs: 50, maxDelayMs: 250, ...opts };
    this.#batches = new HoldOff({
      holdOffMs: this.#opts.holdOffMs,
      maxDelayMs: this.#opts.maxDelayMs,
      ...(opts.rebuildCostFactor !== undefined ? { costFactor: opts.rebuildCostFactor } : {}),
      run: () => this.rebuild(),
      onError: (err) => this.#opts.onError?.(err),
    });
  }

  /** The table being served (last published), if any. */
  get current(): TableData | undefined {
    return this.#current;
  }

  get statuses(): RouteStatus[] {
    return this.#statuses;
  }

  /** Expected sources that have not reported yet. */
  get pending(): SourceName[] {
    return this.#opts.expect.filter((s) => !this.#synced.has(s));
  }

  /** True once every expected source reported and the result was published. */
  get synced(): boolean {
    return this.pending.length === 0 && this.#current !== undefined;
  }

  /** Each route's last valid version (by `namespace/name`), for /debug/routes. */
  get lastValid(): ReadonlyMap<string, LastValidRoute> {
    return this.#lastValid;
  }

  /**
   * Serve the persisted last-known-good table until the live sources have synced; its routes' last valid versions
   * keep serving a route whose version in the live source is invalid (fail closed across restarts).
   */
  async restore(): Promise<TableData | undefined> {
    const lkg = await this.#opts.lastKnownGood?.loadState();
    if (!lkg || this.#current) return undefined;
    if (this.#lastValid.size === 0 && lkg.routes) {
      this.#lastValid = new Map(Object.entries(lkg.routes));
    }
    // A table refused for its age is not served; the routes' last valid versions still keep routes fail closed.
    if (this.#opts.admitLastKnownGood && !this.#opts.admitLastKnownGood(lkg.savedAt)) return undefined;
    this.#current = lkg.table;
    await this.#opts.publish(lkg.table);
    return lkg.table;
  }

  setRoutes(routes: RouteSource[]): void {
    this.#routes = routes;
    this.#mark('routes');
    // Until the rebuild knows which routes are invalid, the listeners also get every last valid version that
    // differs from the reported one: the services a fallback needs stay watched through the update.
    const fallbacks: RouteSource[] = [];
    for (const r of routes) {
      const last = this.#lastValid.get(routeKey(r.raw));
      if (last && !sameVersion(last, r.raw)) fallbacks.push({ raw: last.raw, origin: last.origin });
    }
    this.#notifiedFallbacks = fallbacks.map((f) => f.raw);
    this.#notifyRoutes(fallbacks);
  }

  /**
   * Sources whose watches depend on the routes (Consul's watch set, certificate Secrets) follow them here; called
   * at once if known. They get the valid routes as reported plus the last valid version of each invalid route
   * (what is served for it), validated once here (the memo compile uses) and parsed: no source validates again.
   */
  onRoutes(listener: (routes: GatewayRoute[]) => void): void {
    this.#routeListeners.push(listener);
    if (this.#synced.has('routes'))
      listener(validRoutes([...this.#routes, ...this.#fallbackSources()], this.#memo));
  }

  #fallbackSources(): RouteSource[] {
    const out: RouteSource[] = [];
    for (const s of this.#statuses) {
      const last = s.fallback && this.#lastValid.get(s.route);
      if (last) out.push({ raw: last.raw, origin: last.origin });
    }
    return out;
  }

  #notifyRoutes(fallbacks: RouteSource[]): void {
    if (this.#routeListeners.length === 0) return;
    const all = validRoutes(
      fallbacks.length > 0 ? [...this.#routes, ...fallbacks] : this.#routes,
      this.#memo,
    );
    for (const l of this.#routeListeners) l(all);
  }

  setCatalog(catalog: CatalogSnapshot): void {
    this.#catalog = catalog;
    this.#mark('catalog');
  }

  setKube(kube: KubeServiceSnapshot): void {
    this.#kube = kube;
    this.#mark('kube');
  }

  /**
   * What the Secret certificate source knows of the Secrets routes name (statuses only: the table does not
   * depend on it, so it is never an expected source and never delays a publish).
   */
  setCertificateRefs(refs: CertificateRefSnapshot): void {
    this.#certificateRefs = refs;
    this.#mark('certificates');
  }

  #mark(source: SourceName): void {
    this.#synced.add(source);
    this.#batches.mark();
  }

  /** Compile now and publish if the content changed. Normally driven by the timers. */
  async rebuild(): Promise<void> {
    if (this.pending.length > 0) return;
    const started = performance.now();
    const { table, statuses, lastValid } = compile({
      routes: this.#routes,
      catalog: this.#catalog,
      kube: this.#kube,
      settings: this.#opts.settings ?? DEFAULT_SETTINGS,
      lastValid: this.#lastValid,
      memo: this.#memo,
      ...(this.#certificateRefs ? { certificateRefs: this.#certificateRefs } : {}),
    });
    this.#opts.onCompiled?.(performance.now() - started, table);
    const lastValidChanged = this.#stampSince(lastValid, statuses);
    this.#stampServing(statuses);
    this.#lastValid = lastValid;
    this.#statuses = statuses;
    const fallbacks = this.#fallbackSources();
    if (
      !sameList(
        fallbacks.map((f) => f.raw),
        this.#notifiedFallbacks,
      )
    ) {
      this.#notifiedFallbacks = fallbacks.map((f) => f.raw);
      this.#notifyRoutes(fallbacks);
    }
    const prior = this.#current;
    if (prior && prior.hash === table.hash) {
      this.#opts.onStatuses?.(statuses, prior);
      // The last-known-good file keeps the last valid versions too: save it when one of them changed.
      if (lastValidChanged) await this.#save(prior);
      return;
    }
    table.version = (prior?.version ?? 0) + 1;
    this.#current = table;
    await this.#opts.publish(table);
    this.#opts.onStatuses?.(statuses, table);
    await this.#save(table);
  }

  async #save(table: TableData): Promise<void> {
    await this.#opts.lastKnownGood?.save(table, Object.fromEntries(this.#lastValid));
  }

  /**
   * A version that was already the last valid one keeps its time; a new one gets now. True when the set of last
   * valid versions changed (a route added, removed, or with a new valid version).
   */
  #stampSince(next: Map<string, LastValidRoute>, statuses: RouteStatus[]): boolean {
    const now = new Date().toISOString();
    // Equal sizes and every key known before: the same keys.
    let changed = next.size !== this.#lastValid.size;
    for (const [key, v] of next) {
      const prev = this.#lastValid.get(key);
      if (prev && (prev === v || sameVersion(prev, v.raw))) v.since = prev.since ?? now;
      else {
        v.since = now;
        changed = true;
      }
    }
    for (const s of statuses) if (s.fallback) s.fallback.since = next.get(s.route)?.since;
    return changed;
  }

  /** A failover backend's serving datacenter keeps its time while it stays the same; a change gets now. */
  #stampServing(statuses: RouteStatus[]): void {
    const now = new Date().toISOString();
    const next = new Map<string, { dc: string; since: string }>();
    for (const s of statuses)
      for (const b of s.backends) {
        if (b.serving === undefined) continue;
        const key = `${s.route}\u0000${b.ref}`;
        const prev = this.#serving.get(key);
        const since = prev && prev.dc === b.serving ? prev.since : now;
        b.servingSince = since;
        next.set(key, { dc: b.serving, since });
      }
    this.#serving = next;
  }

  /** Resolves when no rebuild is pending or running. */
  async idle(): Promise<void> {
    await this.#batches.idle();
  }

  stop(): void {
    this.#batches.stop();
  }
}

function metaOf(raw: unknown): { generation?: unknown; uid?: unknown } | undefined {
  return (raw as { metadata?: { generation?: unknown; uid?: unknown } } | null)?.metadata;
}

/** Same version of a route: the same object, or (Kubernetes) the same uid and generation. */
function sameVersion(last: LastValidRoute, raw: unknown): boolean {
  if (last.raw === raw) return true;
  const m = metaOf(raw);
  return (
    typeof m?.generation === 'number' && m.generation === last.generation && m.uid === metaOf(last.raw)?.uid
  );
}

function sameList(a: unknown[], b: unknown[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

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
import type { RouteSource } from '../api/route-source.ts';
import {
  type CompileMemo,
  type CompileSettings,
  compile,
  DEFAULT_SETTINGS,
  type RouteStatus,
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
  readonly #batches: HoldOff;
  /** Validated and compiled routes by source object, kept between rebuilds (CompileInput.memo). */
  readonly #memo: CompileMemo = new WeakMap();
  readonly #routeListeners: ((routes: RouteSource[]) => void)[] = [];

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

  /** Serve the persisted last-known-good table until the live sources have synced. */
  async restore(): Promise<TableData | undefined> {
    const lkg = await this.#opts.lastKnownGood?.load();
    if (!lkg || this.#current) return undefined;
    this.#current = lkg;
    await this.#opts.publish(lkg);
    return lkg;
  }

  setRoutes(routes: RouteSource[]): void {
    this.#routes = routes;
    this.#mark('routes');
    for (const l of this.#routeListeners) l(routes);
  }

  /** Sources whose watches depend on the routes (Consul's watch set) follow them here; called at once if known. */
  onRoutes(listener: (routes: RouteSource[]) => void): void {
    this.#routeListeners.push(listener);
    if (this.#synced.has('routes')) listener(this.#routes);
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
    const { table, statuses } = compile({
      routes: this.#routes,
      catalog: this.#catalog,
      kube: this.#kube,
      settings: this.#opts.settings ?? DEFAULT_SETTINGS,
      memo: this.#memo,
      ...(this.#certificateRefs ? { certificateRefs: this.#certificateRefs } : {}),
    });
    this.#opts.onCompiled?.(performance.now() - started, table);
    this.#statuses = statuses;
    const prior = this.#current;
    if (prior && prior.hash === table.hash) {
      this.#opts.onStatuses?.(statuses, prior);
      return;
    }
    table.version = (prior?.version ?? 0) + 1;
    this.#current = table;
    await this.#opts.publish(table);
    this.#opts.onStatuses?.(statuses, table);
    await this.#opts.lastKnownGood?.save(table);
  }

  /** Resolves when no rebuild is pending or running. */
  async idle(): Promise<void> {
    await this.#batches.idle();
  }

  stop(): void {
    this.#batches.stop();
  }
}

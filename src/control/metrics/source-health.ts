/**
 * Up/down and data age of each input source (routes, catalog, kube, consul…), for edgegate_source_* metrics and
 * readiness reasons. Sources that keep their own state can register a getter instead of reporting events.
 */

export interface SourceState {
  name: string;
  up: boolean;
  /** Last time the source delivered (or confirmed) its data, ms since the epoch; 0: never. */
  lastUpdate: number;
  /** Snapshots delivered since start. */
  updates: number;
  lastError?: string;
}

export class SourceHealth {
  readonly #states = new Map<string, SourceState>();
  readonly #getters = new Map<string, () => Omit<SourceState, 'name'>>();

  /** A source that is expected: reported down until it delivers. */
  expect(name: string): void {
    if (!this.#states.has(name)) this.#states.set(name, { name, up: false, lastUpdate: 0, updates: 0 });
  }

  /** The source delivered a snapshot: up, data fresh. */
  reported(name: string, now = Date.now()): void {
    const s = this.#states.get(name) ?? { name, up: false, lastUpdate: 0, updates: 0 };
    s.up = true;
    s.lastUpdate = now;
    s.updates++;
    delete s.lastError;
    this.#states.set(name, s);
  }

  /** The source lost its upstream (API server, Consul agent): down; its last data stays in use. */
  failed(name: string, error: string): void {
    const s = this.#states.get(name) ?? { name, up: false, lastUpdate: 0, updates: 0 };
    s.up = false;
    s.lastError = error;
    this.#states.set(name, s);
  }

  /** A source that tracks its own state (e.g. the Consul or Kubernetes source): read at scrape time. */
  register(name: string, getter: () => Omit<SourceState, 'name'>): void {
    this.#getters.set(name, getter);
  }

  list(): SourceState[] {
    const out = [...this.#states.values()].map((s) => ({ ...s }));
    for (const [name, get] of this.#getters) {
      const i = out.findIndex((s) => s.name === name);
      const s = { name, ...get() };
      if (i >= 0) out[i] = s;
      else out.push(s);
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }
}

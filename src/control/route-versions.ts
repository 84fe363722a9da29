/**
 * Which table version serves each route's CURRENT compiled form, and whether every live worker serves it: the
 * input of Programmed. A route's form is its entries and hostnames (the text table/wire.ts keeps per route while
 * serializing); a publish that leaves a route's digest as it was leaves its `since` version as it was, so a
 * route nobody touched stays Programmed while other routes change and the workers catch up. Work per publish is
 * one pass over the routes; work per acknowledgement is proportional to the routes that were waiting for it.
 */
import type { TableData } from '../table/types.ts';
import { tableWire } from '../table/wire.ts';

interface Served {
  /** The route's compiled form as text (table/wire.ts). */
  digest: string;
  /** First table version with this form of the route. */
  since: number;
}

export class RouteVersions {
  #routes = new Map<string, Served>();
  /** Routes whose `since` is newer than the served version. */
  readonly #waiting = new Set<string>();
  #served = 0;

  /** A table was published (versions only grow). */
  published(table: TableData): void {
    const next = new Map<string, Served>();
    for (const [route, digest] of tableWire(table).routes) {
      const prior = this.#routes.get(route);
      if (prior && prior.digest === digest) {
        // Keep the newest text (the older one can go with its table).
        prior.digest = digest;
        next.set(route, prior);
      } else {
        next.set(route, { digest, since: table.version });
        if (table.version > this.#served) this.#waiting.add(route);
      }
    }
    for (const route of this.#waiting) if (!next.has(route)) this.#waiting.delete(route);
    this.#routes = next;
  }

  /** Every live worker serves `version` now. Returns the routes that became served by it. */
  served(version: number): string[] {
    if (version <= this.#served) return [];
    this.#served = version;
    const now: string[] = [];
    for (const route of this.#waiting) {
      const r = this.#routes.get(route);
      if (!r || r.since <= version) {
        this.#waiting.delete(route);
        if (r) now.push(route);
      }
    }
    return now;
  }

  /** The version every live worker serves (0: none yet). */
  get servedVersion(): number {
    return this.#served;
  }

  /** Routes in the table whose current form not every worker serves yet. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** The route is in the table and every live worker serves its current form. */
  isServed(route: string): boolean {
    const r = this.#routes.get(route);
    return r !== undefined && r.since <= this.#served;
  }

  /** The first table version with the route's current form (undefined: not in the table). */
  since(route: string): number | undefined {
    return this.#routes.get(route)?.since;
  }
}

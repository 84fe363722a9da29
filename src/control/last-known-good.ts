/**
 * The last-known-good table on disk: written atomically (temp file, fsync, rename, fsync of the directory) after
 * every publish, read at start so an edge node serves at once even while its sources are unreachable. Beside the
 * table it keeps each route's last valid version, so a route whose live version is invalid after a restart still
 * serves its last valid one (fail closed).
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { LastValidRoute } from '../compile/compile.ts';
import type { TableData } from '../table/types.ts';

/** What the file holds: the table, and the last valid version of each route by `namespace/name` (absent in older files). */
export interface LastKnownGoodState {
  table: TableData;
  routes?: Record<string, LastValidRoute>;
}

const FORMAT = 1;

export class LastKnownGood {
  readonly #file: string;
  readonly #dir: string;
  #writing: Promise<void> = Promise.resolve();

  constructor(stateDir: string) {
    this.#dir = stateDir;
    this.#file = join(stateDir, 'table.json');
  }

  get file(): string {
    return this.#file;
  }

  async load(): Promise<TableData | undefined> {
    return (await this.loadState())?.table;
  }

  async loadState(): Promise<LastKnownGoodState | undefined> {
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch {
      return undefined;
    }
    try {
      const doc = JSON.parse(text) as { format?: number; table?: TableData; routes?: unknown };
      if (doc.format !== FORMAT || !doc.table || !Array.isArray(doc.table.entries)) return undefined;
      const routes = validRoutes(doc.routes);
      return { table: doc.table, ...(routes ? { routes } : {}) };
    } catch {
      return undefined;
    }
  }

  /** Saves are serialized; the last one wins. */
  save(table: TableData, routes?: Record<string, LastValidRoute>): Promise<void> {
    this.#writing = this.#writing.then(() => this.#write(table, routes));
    return this.#writing;
  }

  async #write(table: TableData, routes: Record<string, LastValidRoute> | undefined): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    const tmp = `${this.#file}.${process.pid}.tmp`;
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(
        JSON.stringify({
          format: FORMAT,
          savedAt: new Date().toISOString(),
          table,
          ...(routes ? { routes } : {}),
        }),
      );
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.#file);
    const dh = await open(this.#dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }
}

/** The `routes` of a file: entries that do not have the shape are left out (each is validated again before use). */
function validRoutes(value: unknown): Record<string, LastValidRoute> | undefined {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const out: Record<string, LastValidRoute> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const r = v as Partial<LastValidRoute> | null;
    if (!r || typeof r !== 'object' || typeof r.origin !== 'string' || r.raw === undefined) continue;
    out[key] = {
      raw: r.raw,
      origin: r.origin,
      ...(typeof r.generation === 'number' ? { generation: r.generation } : {}),
      ...(typeof r.since === 'string' ? { since: r.since } : {}),
    };
  }
  return out;
}

/**
 * The last-known-good table on disk: written atomically (temp file, fsync, rename, fsync of the directory) after
 * every publish, read at start so an edge node serves at once even while its sources are unreachable. Beside the
 * table it keeps each route's last valid version, so a route whose live version is invalid after a restart still
 * serves its last valid one (fail closed).
 *
 * The file is one header line (`{"format":2,"version":…,"hash":…,"savedAt":…,"routes":{…}}`) and then the table's
 * bytes as compile serialized them (table/wire.ts) — the same bytes that were hashed and sent to the workers,
 * written as they are, not serialized again. A file whose bytes do not hash to its header's hash (truncated,
 * edited) is not served. Format 1 (one JSON document) is still read.
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { LastValidRoute } from '../compile/compile.ts';
import type { TableData } from '../table/types.ts';
import { decodeTable, hashOfJson, tableWire } from '../table/wire.ts';

/** What the file holds: the table, and the last valid version of each route by `namespace/name` (absent in older files). */
export interface LastKnownGoodState {
  table: TableData;
  routes?: Record<string, LastValidRoute>;
  /** When the file was written (ISO time; absent in format 1): its age is checked at start (last-known-good-age.ts). */
  savedAt?: string;
}

const FORMAT = 2;

export class LastKnownGood {
  readonly #file: string;
  readonly #dir: string;
  #writing: Promise<void> = Promise.resolve();
  /** What the queued save will write. */
  #next: { table: TableData; routes: Record<string, LastValidRoute> | undefined } | undefined;
  #dirMade = false;

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
      const newline = text.indexOf('\n');
      const header = JSON.parse(newline < 0 ? text : text.slice(0, newline)) as {
        format?: number;
        version?: unknown;
        hash?: unknown;
        table?: TableData;
        routes?: unknown;
        savedAt?: unknown;
      };
      const routes = validRoutes(header.routes);
      const savedAt = typeof header.savedAt === 'string' ? { savedAt: header.savedAt } : {};
      const withRoutes = (table: TableData): LastKnownGoodState => ({
        table,
        ...(routes ? { routes } : {}),
        ...savedAt,
      });
      if (header.format === 1) {
        // The format before the header line: one document, the table inside.
        if (!header.table || !Array.isArray(header.table.entries)) return undefined;
        return withRoutes(header.table);
      }
      if (header.format !== FORMAT || newline < 0) return undefined;
      if (typeof header.version !== 'number' || typeof header.hash !== 'string') return undefined;
      const json = text.slice(newline + 1);
      if (hashOfJson(json) !== header.hash) return undefined;
      return withRoutes(decodeTable(json, header.version, header.hash));
    } catch {
      return undefined;
    }
  }

  /**
   * Saves are serialized and coalesced: a save asked for while another is being written replaces any save still
   * waiting (only the newest table matters), and a failed save does not stop the next ones.
   */
  save(table: TableData, routes?: Record<string, LastValidRoute>): Promise<void> {
    const queued = this.#next !== undefined;
    this.#next = { table, routes };
    if (!queued)
      this.#writing = this.#writing
        .catch(() => {})
        .then(() => {
          const next = this.#next!;
          this.#next = undefined;
          return this.#write(next.table, next.routes).catch((err: unknown) => {
            this.#dirMade = false; // the directory may be what is gone: make it again next time
            throw err;
          });
        });
    return this.#writing;
  }

  async #write(table: TableData, routes: Record<string, LastValidRoute> | undefined): Promise<void> {
    const { json, hash } = tableWire(table);
    if (!this.#dirMade) {
      await mkdir(this.#dir, { recursive: true });
      this.#dirMade = true;
    }
    const tmp = `${this.#file}.${process.pid}.tmp`;
    const fh = await open(tmp, 'w', 0o644);
    try {
      const header = JSON.stringify({
        format: FORMAT,
        version: table.version,
        hash,
        savedAt: new Date().toISOString(),
        ...(routes ? { routes } : {}),
      });
      // writeFile writes all of it (write() may stop short); the second continues where the first ended.
      await fh.writeFile(`${header}\n`);
      await fh.writeFile(json);
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

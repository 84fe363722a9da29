/**
 * The last-known-good table on disk: written atomically (temp file, fsync, rename, fsync of the directory) after
 * every publish, read at start so an edge node serves at once even while its sources are unreachable.
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { TableData } from '../table/types.ts';

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
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch {
      return undefined;
    }
    try {
      const doc = JSON.parse(text) as { format?: number; table?: TableData };
      if (doc.format !== FORMAT || !doc.table || !Array.isArray(doc.table.entries)) return undefined;
      return doc.table;
    } catch {
      return undefined;
    }
  }

  /** Saves are serialized; the last one wins. */
  save(table: TableData): Promise<void> {
    this.#writing = this.#writing.then(() => this.#write(table));
    return this.#writing;
  }

  async #write(table: TableData): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    const tmp = `${this.#file}.${process.pid}.tmp`;
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(JSON.stringify({ format: FORMAT, savedAt: new Date().toISOString(), table }));
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

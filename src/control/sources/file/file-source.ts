/**
 * The standalone sources: GatewayRoute YAML files (one file or a directory tree of *.yaml / *.yml) and a
 * catalog file. Both are watched; every change reports a full snapshot. A file that fails to parse keeps its
 * previous good content (and the error is reported with file and line); one bad route never hides the others.
 */
import { type FSWatcher, watch } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { CatalogSnapshot, Instance } from '../../../api/catalog.ts';
import type { RouteSource } from '../../../api/route-source.ts';
import { formatPath, validateCatalogFile } from '../../../api/validate.ts';
import { parseYamlDocs, type YamlDoc, YamlSyntaxError } from './yaml-docs.ts';

export interface SourceLog {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

const YAML_FILE = /\.ya?ml$/i;

/** The YAML files under a path (itself if it is a file) and the directories to watch for changes. */
async function listTree(path: string): Promise<{ files: string[]; dirs: string[] }> {
  const st = await stat(path);
  if (st.isFile()) return { files: [path], dirs: [dirname(path)] };
  const entries = await readdir(path, { recursive: true, withFileTypes: true });
  const files = entries
    .filter((e) => e.isFile() && YAML_FILE.test(e.name) && !e.name.startsWith('.'))
    .map((e) => join(e.parentPath, e.name))
    .sort();
  const dirs = [path, ...entries.filter((e) => e.isDirectory()).map((e) => join(e.parentPath, e.name))];
  return { files, dirs };
}

/** Routes read from one YAML file, as RouteSources. Throws YamlSyntaxError. */
export async function readRouteFile(file: string): Promise<RouteSource[]> {
  const docs = parseYamlDocs(await readFile(file, 'utf8'), file);
  return docs.map((d: YamlDoc) => ({ raw: d.value, origin: `${file}:${d.line}`, locate: d.locate }));
}

/** Reads a catalog file into a snapshot. Throws with `file:line: field: message` on bad content. */
export async function readCatalogFile(file: string, localDatacenter?: string): Promise<CatalogSnapshot> {
  const docs = parseYamlDocs(await readFile(file, 'utf8'), file);
  const doc = docs[0];
  if (!doc) return { localDatacenter: localDatacenter ?? 'dc1', datacenters: {} };
  const result = validateCatalogFile(doc.value);
  if (!result.ok) {
    const lines = result.errors.map(
      (e) => `${file}:${doc.locate(e.path)}: ${formatPath(e.path)}: ${e.message}`,
    );
    throw new Error(lines.join('\n'));
  }
  const datacenters: CatalogSnapshot['datacenters'] = {};
  for (const [dc, body] of Object.entries(result.value.datacenters)) {
    const services: Record<string, Instance[]> = {};
    for (const [name, list] of Object.entries(body.services ?? {})) {
      services[name] = list.map((i) => ({
        id: i.id ?? `${name}-${i.address}:${i.port}`,
        address: i.address,
        port: i.port,
        tags: i.tags ?? [],
        meta: i.meta ?? {},
        health: i.health ?? 'passing',
        weight: i.weight ?? 1,
      }));
    }
    datacenters[dc] = { services };
  }
  const names = Object.keys(datacenters).sort();
  const local = localDatacenter ?? (names.includes('dc1') ? 'dc1' : (names[0] ?? 'dc1'));
  return { localDatacenter: local, datacenters };
}

/**
 * Calls `onChange` (debounced) whenever something in these directories changes. Each directory gets its own
 * non-recursive watch: Node's recursive watch on Linux loses track of a file after it is replaced by rename (what
 * editors and config-management tools do), a directory watch does not. `setDirs` follows a changing tree.
 */
class DirWatcher {
  readonly #watchers = new Map<string, FSWatcher>();
  readonly #fire: () => void;
  #timer: NodeJS.Timeout | undefined;

  constructor(dirs: string[], onChange: () => void, debounceMs = 20) {
    this.#fire = () => {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(onChange, debounceMs);
    };
    this.setDirs(dirs);
  }

  setDirs(dirs: Iterable<string>): void {
    const want = new Set(dirs);
    for (const [dir, w] of this.#watchers) {
      if (want.has(dir)) continue;
      w.close();
      this.#watchers.delete(dir);
    }
    for (const dir of want) {
      if (this.#watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, this.#fire);
        w.on('error', () => {
          w.close();
          this.#watchers.delete(dir);
        });
        this.#watchers.set(dir, w);
      } catch {
        // Gone between listing and watching: the next change of its parent rescans.
      }
    }
  }

  close(): void {
    clearTimeout(this.#timer);
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
  }
}

export class FileRouteSource {
  readonly #path: string;
  readonly #log: SourceLog;
  readonly #lastGood = new Map<string, { mtimeMs: number; size: number; routes: RouteSource[] }>();
  #watcher: DirWatcher | undefined;
  #dirs: string[] = [];
  #running: Promise<void> = Promise.resolve();

  constructor(path: string, log: SourceLog) {
    // Kept as given (not resolved): messages name files the way the user wrote them.
    this.#path = path;
    this.#log = log;
  }

  /** Reads every file once, reports, then reports again on every change. Resolves after the first report. */
  async start(onSnapshot: (routes: RouteSource[]) => void): Promise<void> {
    const reload = async () => {
      const routes = await this.read();
      this.#watcher?.setDirs(this.#dirs);
      onSnapshot(routes);
    };
    await reload();
    this.#watcher = new DirWatcher(this.#dirs, () => {
      this.#running = this.#running
        .then(reload)
        .catch((err) => this.#log.error(`reading routes failed: ${err}`));
    });
  }

  async read(): Promise<RouteSource[]> {
    let files: string[];
    try {
      const tree = await listTree(this.#path);
      files = tree.files;
      this.#dirs = tree.dirs;
    } catch (err) {
      this.#log.error(`cannot read routes from ${this.#path}: ${(err as Error).message}`);
      files = [...this.#lastGood.keys()];
    }
    const present = new Set(files);
    for (const f of this.#lastGood.keys()) if (!present.has(f)) this.#lastGood.delete(f);
    const all: RouteSource[] = [];
    for (const file of files) {
      let st: { mtimeMs: number; size: number };
      try {
        st = await stat(file);
      } catch {
        this.#lastGood.delete(file);
        continue;
      }
      const cached = this.#lastGood.get(file);
      if (cached && cached.mtimeMs === st.mtimeMs && cached.size === st.size) {
        all.push(...cached.routes);
        continue;
      }
      try {
        const routes = await readRouteFile(file);
        this.#lastGood.set(file, { mtimeMs: st.mtimeMs, size: st.size, routes });
        all.push(...routes);
      } catch (err) {
        const where = err instanceof YamlSyntaxError ? { file: err.file, line: err.line } : { file };
        this.#log.error(`keeping the previous routes of ${file}: ${(err as Error).message}`, where);
        if (cached) all.push(...cached.routes);
      }
    }
    return all;
  }

  stop(): void {
    this.#watcher?.close();
  }
}

export class FileCatalogSource {
  readonly #path: string;
  readonly #log: SourceLog;
  readonly #localDatacenter: string | undefined;
  #last: CatalogSnapshot | undefined;
  #watcher: DirWatcher | undefined;
  #running: Promise<void> = Promise.resolve();

  constructor(path: string, log: SourceLog, localDatacenter?: string) {
    this.#path = resolve(path);
    this.#log = log;
    this.#localDatacenter = localDatacenter;
  }

  async start(onSnapshot: (catalog: CatalogSnapshot) => void): Promise<void> {
    const reload = async () => {
      const snapshot = await this.read();
      if (snapshot) onSnapshot(snapshot);
    };
    await reload();
    if (!this.#last) throw new Error(`the catalog file ${this.#path} could not be read`);
    // Watched through its directory: a file watch misses a replace by rename.
    this.#watcher = new DirWatcher([dirname(this.#path)], () => {
      this.#running = this.#running
        .then(reload)
        .catch((err) => this.#log.error(`reading catalog failed: ${err}`));
    });
  }

  async read(): Promise<CatalogSnapshot | undefined> {
    try {
      this.#last = await readCatalogFile(this.#path, this.#localDatacenter);
      return this.#last;
    } catch (err) {
      const where =
        err instanceof YamlSyntaxError ? { file: err.file, line: err.line } : { file: this.#path };
      this.#log.error(`keeping the previous catalog: ${(err as Error).message}`, where);
      return undefined;
    }
  }

  stop(): void {
    this.#watcher?.close();
  }
}

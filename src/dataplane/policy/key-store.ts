/**
 * Key sets for request signatures and static JWT keys: `<secrets dir>/<key set>/<key id>`, one file per key —
 * exactly the layout of a Kubernetes Secret mounted as a volume (each data key becomes a file; the kubelet's
 * `..data` bookkeeping entries start with a dot and are skipped). Standalone, the same layout on disk.
 *
 * Keys are read by each worker from its own filesystem: they never travel in the routing table, over IPC, or into
 * the last-known-good file, and the controller needs no RBAC right on Secrets. A set is re-read when it is older
 * than the refresh interval (the kubelet updates mounted Secrets in place), without blocking requests.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export const KEY_SET_PATTERN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const KEY_ID_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,252}$/;

interface LoadedSet {
  keys: Map<string, Buffer>;
  loadedAt: number;
  error: string | undefined;
  loading: Promise<void> | undefined;
}

export class KeyStore {
  readonly #dir: string | undefined;
  readonly #refreshMs: number;
  readonly #sets = new Map<string, LoadedSet>();

  constructor(dir: string | undefined, refreshMs = 10_000) {
    this.#dir = dir;
    this.#refreshMs = refreshMs;
  }

  /** The key with this id in this set, or undefined (unknown set, unknown id, or no secrets dir). */
  async get(set: string, keyId: string): Promise<Buffer | undefined> {
    if (!KEY_ID_PATTERN.test(keyId)) return undefined;
    const s = await this.#set(set);
    return s.keys.get(keyId);
  }

  /** Every key of a set (JWT without `kid`: the only key). */
  async all(set: string): Promise<Map<string, Buffer>> {
    return (await this.#set(set)).keys;
  }

  /** Starts loading a set ahead of the first request that needs it. */
  warm(set: string): void {
    void this.#set(set);
  }

  async #set(name: string): Promise<LoadedSet> {
    let s = this.#sets.get(name);
    if (!s) {
      s = { keys: new Map(), loadedAt: 0, error: undefined, loading: undefined };
      this.#sets.set(name, s);
      s.loading = this.#load(name, s);
      await s.loading;
      return s;
    }
    if (s.loading && s.loadedAt === 0) await s.loading;
    else if (!s.loading && performance.now() - s.loadedAt > this.#refreshMs) s.loading = this.#load(name, s);
    return s;
  }

  async #load(name: string, s: LoadedSet): Promise<void> {
    try {
      if (!this.#dir || !KEY_SET_PATTERN.test(name)) throw new Error('no such key set');
      const dir = join(this.#dir, name);
      const keys = new Map<string, Buffer>();
      for (const entry of await readdir(dir)) {
        if (!KEY_ID_PATTERN.test(entry)) continue;
        try {
          keys.set(entry, await readFile(join(dir, entry)));
        } catch {
          // a directory or an unreadable file is not a key
        }
      }
      s.keys = keys;
      s.error = undefined;
    } catch (err) {
      s.error = (err as Error).message;
      // Keep the keys of the last good read: a Secret being updated must not lock everyone out.
    } finally {
      s.loadedAt = performance.now();
      s.loading = undefined;
    }
  }

  stats(): Record<string, { keys: number; error?: string }> {
    const out: Record<string, { keys: number; error?: string }> = {};
    for (const [name, s] of this.#sets)
      out[name] = { keys: s.keys.size, ...(s.error ? { error: s.error } : {}) };
    return out;
  }
}

/**
 * Key sets for request signatures and static JWT keys: `<secrets dir>/<key set>/<key id>`, one file per key —
 * exactly the layout of a Kubernetes Secret mounted as a volume (each data key becomes a file; the kubelet's
 * `..data` bookkeeping entries start with a dot and are skipped). Standalone, the same layout on disk.
 *
 * Keys are read by each worker from its own filesystem: they never travel in the routing table, over IPC, or into
 * the last-known-good file, and the controller needs no RBAC right on Secrets. A set is re-read when it is older
 * than the refresh interval (the kubelet updates mounted Secrets in place), without blocking requests.
 *
 * Each file is classified when read (key-material.ts): a shared secret or a public key, never both, and a file
 * that is neither or mixes them is refused (left out of the set, with its reason in `stats()` and reported once
 * through `onRefused`). HMAC users get only secrets (`hmacKey`); JWT gets the classified material.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeySetStats } from '../../cluster/worker-report.ts';
import { type Classified, classifyKey, type KeyMaterial } from './key-material.ts';

export const KEY_SET_PATTERN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const KEY_ID_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,252}$/;

interface LoadedKey {
  bytes: Buffer;
  classified: Classified;
}

interface LoadedSet {
  keys: Map<string, KeyMaterial>;
  /** Every file read, classified (refused ones too): a re-read of unchanged bytes reuses the classification. */
  files: Map<string, LoadedKey>;
  /** Key id → why its file was refused. */
  refused: Map<string, string>;
  loadedAt: number;
  error: string | undefined;
  loading: Promise<void> | undefined;
}

export class KeyStore {
  readonly #dir: string | undefined;
  readonly #refreshMs: number;
  readonly #sets = new Map<string, LoadedSet>();
  readonly #onRefused: ((set: string, keyId: string, error: string) => void) | undefined;

  constructor(
    dir: string | undefined,
    refreshMs = 10_000,
    onRefused?: (set: string, keyId: string, error: string) => void,
  ) {
    this.#dir = dir;
    this.#refreshMs = refreshMs;
    this.#onRefused = onRefused;
  }

  /**
   * The HMAC secret with this id, or undefined: unknown set or id, no secrets dir, or a file that is not a
   * shared secret (a public key or certificate is never an HMAC key).
   */
  async hmacKey(set: string, keyId: string): Promise<Uint8Array | undefined> {
    if (!KEY_ID_PATTERN.test(keyId)) return undefined;
    const m = (await this.#set(set)).keys.get(keyId);
    return m?.kind === 'secret' && (m.alg === undefined || m.alg === 'HS256') ? m.secret : undefined;
  }

  /** Every usable key of a set, classified (JWT; a token without `kid`: the only key). */
  async materials(set: string): Promise<Map<string, KeyMaterial>> {
    return (await this.#set(set)).keys;
  }

  /** Starts loading a set ahead of the first request that needs it. */
  warm(set: string): void {
    void this.#set(set);
  }

  async #set(name: string): Promise<LoadedSet> {
    let s = this.#sets.get(name);
    if (!s) {
      s = {
        keys: new Map(),
        files: new Map(),
        refused: new Map(),
        loadedAt: 0,
        error: undefined,
        loading: undefined,
      };
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
      const files = new Map<string, LoadedKey>();
      for (const entry of await readdir(dir)) {
        if (!KEY_ID_PATTERN.test(entry)) continue;
        let bytes: Buffer;
        try {
          bytes = await readFile(join(dir, entry));
        } catch {
          continue; // a directory or an unreadable file is not a key
        }
        const prior = s.files.get(entry);
        files.set(
          entry,
          prior?.bytes.equals(bytes) ? prior : { bytes, classified: classifyKey(bytes, entry) },
        );
      }
      const keys = new Map<string, KeyMaterial>();
      const refused = new Map<string, string>();
      for (const [kid, f] of files) {
        if (f.classified.kind !== 'refused') keys.set(kid, f.classified);
        else {
          refused.set(kid, f.classified.error);
          if (s.refused.get(kid) !== f.classified.error) this.#onRefused?.(name, kid, f.classified.error);
        }
      }
      s.files = files;
      s.keys = keys;
      s.refused = refused;
      s.error = undefined;
    } catch (err) {
      s.error = (err as Error).message;
      // Keep the keys of the last good read: a Secret being updated must not lock everyone out.
    } finally {
      s.loadedAt = performance.now();
      s.loading = undefined;
    }
  }

  stats(): Record<string, KeySetStats> {
    const out: Record<string, KeySetStats> = {};
    for (const [name, s] of this.#sets)
      out[name] = {
        keys: s.keys.size,
        ...(s.refused.size > 0 ? { refused: Object.fromEntries(s.refused) } : {}),
        ...(s.error ? { error: s.error } : {}),
      };
    return out;
  }
}

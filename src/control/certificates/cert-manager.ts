/**
 * The primary's view of every certificate: each provider (certificate files, Kubernetes Secrets referenced by
 * routes) reports its full list of bundles; the manager merges them into one CertSet and publishes it to the
 * workers when its content changes. Certificates never enter the routing table: the table is persisted to disk as
 * last-known-good, and private keys do not belong in that file; they travel in their own IPC message instead.
 */
import {
  type CertBundle,
  type CertSet,
  hostnamesOf,
  inspectCertificate,
  type MeshIdentity,
} from '../../api/certificate.ts';

export interface CertExpiry {
  hostname: string;
  source: string;
  /** Seconds since the epoch (edgegate_tls_certificate_expiry_seconds). */
  notAfterSeconds: number;
}

type Clients = Record<string, { certPem: string; keyPem: string }>;

export class CertManager {
  readonly #providers = new Map<string, { bundles: CertBundle[]; defaultBundle?: CertBundle }>();
  readonly #clients = new Map<string, Clients>();
  readonly #publish: (set: CertSet) => void;
  #version = 0;
  #signature = '';
  #current: CertSet | undefined;
  #mesh: MeshIdentity | undefined;

  constructor(publish: (set: CertSet) => void) {
    this.#publish = publish;
  }

  get current(): CertSet | undefined {
    return this.#current;
  }

  /** A provider's full list (replaces what it reported before). Bundles must already be valid. */
  set(provider: string, bundles: CertBundle[], defaultBundle?: CertBundle): void {
    this.#providers.set(provider, defaultBundle ? { bundles, defaultBundle } : { bundles });
    this.#merge();
  }

  /** A provider's client certificates for mTLS to upstreams, by `namespace/name` (replaces its previous ones). */
  setClients(provider: string, clients: Clients): void {
    this.#clients.set(provider, clients);
    this.#merge();
  }

  /** The gateway's Consul service-mesh identity (leaf and CA roots), from the Consul source. */
  setMesh(identity: MeshIdentity): void {
    this.#mesh = identity;
    this.#merge();
  }

  #merge(): void {
    const clients: Clients = {};
    for (const n of [...this.#clients.keys()].sort())
      for (const [k, v] of Object.entries(this.#clients.get(n)!)) clients[k] ??= v;
    const names = [...this.#providers.keys()].sort();
    const all: CertBundle[] = [];
    let def: CertBundle | undefined;
    for (const n of names) {
      const p = this.#providers.get(n)!;
      all.push(...p.bundles);
      def ??= p.defaultBundle;
    }
    const mesh = this.#mesh;
    const signature = JSON.stringify([all, def ?? null, clients, mesh ?? null]);
    if (signature === this.#signature) return;
    this.#signature = signature;
    this.#current = { version: ++this.#version, bundles: all, defaultBundle: def, clients };
    if (mesh) this.#current.mesh = mesh;
    this.#publish(this.#current);
  }

  /** Certificate expiry per served hostname (for the expiry gauge). */
  expiry(): CertExpiry[] {
    const set = this.#current;
    if (!set) return [];
    const out: CertExpiry[] = [];
    const seen = new Set<string>();
    const add = (b: CertBundle, name?: string) => {
      const info = inspectCertificate(b.certPem, b.keyPem, 0, false);
      for (const h of name ? [name] : hostnamesOf(b, info)) {
        if (seen.has(h)) continue;
        seen.add(h);
        out.push({ hostname: h, source: b.source, notAfterSeconds: Math.floor(info.notAfter / 1000) });
      }
    };
    for (const b of set.bundles) add(b);
    if (set.defaultBundle) add(set.defaultBundle, '(default)');
    return out;
  }
}

/**
 * The worker's certificate map for SNI: hostname → SecureContext, swapped whole when the primary sends a new
 * CertSet. The TLS server's SNICallback reads the current map on every handshake, so a rotated certificate is
 * served to the next handshake while connections already established keep the one they negotiated.
 *
 * Lookup order: exact hostname, then the wildcard one label up (`*.example.com` serves `a.example.com`, not
 * `a.b.example.com`, as browsers check it), then the default certificate.
 */
import { createSecureContext, type SecureContext } from 'node:tls';
import { type CertBundle, type CertSet, hostnamesOf, inspectCertificate } from '../../api/certificate.ts';
import {
  ECDH_CURVES,
  INTERMEDIATE_CIPHERS,
  MAX_TLS_VERSION,
  MIN_TLS_VERSION,
  TLS_SECURE_OPTIONS,
} from './tls-settings.ts';

export interface ServedCert {
  context: SecureContext;
  source: string;
  subject: string;
  notAfter: number;
  fingerprint: string;
  /** Kept for `setSecureContext` (the listener's context for clients without SNI). */
  pems: { cert: string; key: string };
}

/** The context options every certificate is served with (one policy for the listener). */
export function secureContextOptions(certPem: string, keyPem: string) {
  return {
    cert: certPem,
    key: keyPem,
    minVersion: MIN_TLS_VERSION,
    maxVersion: MAX_TLS_VERSION,
    ciphers: INTERMEDIATE_CIPHERS,
    ecdhCurve: ECDH_CURVES,
    honorCipherOrder: true,
    // No renegotiation, no session tickets (tls-settings.ts): the same on every certificate's context.
    secureOptions: TLS_SECURE_OPTIONS,
  } as const;
}

export class CertStore {
  #version = 0;
  #exact = new Map<string, ServedCert>();
  #wildcard = new Map<string, ServedCert>();
  #default: ServedCert | undefined;
  /** Contexts by fingerprint: an unchanged certificate keeps its context (and its TLS session cache). */
  #byFingerprint = new Map<string, ServedCert>();
  readonly #onError: (bundle: CertBundle, err: Error) => void;

  constructor(onError: (bundle: CertBundle, err: Error) => void = () => {}) {
    this.#onError = onError;
  }

  get version(): number {
    return this.#version;
  }

  get defaultCert(): ServedCert | undefined {
    return this.#default;
  }

  get size(): number {
    return this.#exact.size + this.#wildcard.size;
  }

  /** Swaps in a new set. A bundle that fails here keeps the hostname's previous certificate. */
  update(set: CertSet): void {
    if (set.version <= this.#version) return;
    const previous = { exact: this.#exact, wildcard: this.#wildcard };
    const exact = new Map<string, ServedCert>();
    const wildcard = new Map<string, ServedCert>();
    const byFingerprint = new Map<string, ServedCert>();
    const build = (b: CertBundle): { served: ServedCert; hostnames: string[] } | undefined => {
      try {
        const info = inspectCertificate(b.certPem, b.keyPem);
        const served = this.#byFingerprint.get(info.fingerprint) ??
          byFingerprint.get(info.fingerprint) ?? {
            context: createSecureContext(secureContextOptions(b.certPem, b.keyPem)),
            source: b.source,
            subject: info.subject,
            notAfter: info.notAfter,
            fingerprint: info.fingerprint,
            pems: { cert: b.certPem, key: b.keyPem },
          };
        byFingerprint.set(info.fingerprint, served);
        return { served, hostnames: hostnamesOf(b, info) };
      } catch (err) {
        this.#onError(b, err as Error);
        // Keep what these hostnames served before.
        for (const h of b.hostnames) {
          const key = h.toLowerCase();
          const old = key.startsWith('*.') ? previous.wildcard.get(key.slice(2)) : previous.exact.get(key);
          if (old) {
            (key.startsWith('*.') ? wildcard : exact).set(key.startsWith('*.') ? key.slice(2) : key, old);
            byFingerprint.set(old.fingerprint, old);
          }
        }
        return undefined;
      }
    };
    for (const b of set.bundles) {
      const built = build(b);
      if (!built) continue;
      for (const h of built.hostnames) {
        // First bundle wins a hostname: the primary orders bundles (routes by precedence, then files).
        if (h.startsWith('*.')) {
          if (!wildcard.has(h.slice(2))) wildcard.set(h.slice(2), built.served);
        } else if (!exact.has(h)) exact.set(h, built.served);
      }
    }
    const def = set.defaultBundle ? build(set.defaultBundle)?.served : undefined;
    this.#exact = exact;
    this.#wildcard = wildcard;
    this.#default = def ?? (set.defaultBundle ? this.#default : undefined);
    if (this.#default) byFingerprint.set(this.#default.fingerprint, this.#default);
    this.#byFingerprint = byFingerprint;
    this.#version = set.version;
  }

  /** The certificate for an SNI name (undefined or empty: no SNI → the default). */
  resolve(servername: string | undefined): ServedCert | undefined {
    if (servername) {
      const name = servername.toLowerCase().replace(/\.$/, '');
      const hit = this.#exact.get(name);
      if (hit) return hit;
      const dot = name.indexOf('.');
      if (dot > 0) {
        const wild = this.#wildcard.get(name.slice(dot + 1));
        if (wild) return wild;
      }
    }
    return this.#default;
  }

  /** Hostname → certificate facts, for /debug and expiry metrics. */
  list(): { hostname: string; source: string; subject: string; notAfter: number }[] {
    const out: { hostname: string; source: string; subject: string; notAfter: number }[] = [];
    for (const [h, c] of this.#exact) out.push({ hostname: h, ...pick(c) });
    for (const [h, c] of this.#wildcard) out.push({ hostname: `*.${h}`, ...pick(c) });
    if (this.#default) out.push({ hostname: '(default)', ...pick(this.#default) });
    return out.sort((a, b) => (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0));
  }
}

function pick(c: ServedCert) {
  return { source: c.source, subject: c.subject, notAfter: c.notAfter };
}

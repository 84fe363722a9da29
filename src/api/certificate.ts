/**
 * Certificates as they travel from the primary (which reads Secrets and files) to the workers (which serve them),
 * and their validation. A bundle is PEM text plus the hostnames it serves; parsing checks that the key matches the
 * certificate and that the certificate is currently valid, so a worker never receives something it cannot serve.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';

export interface CertBundle {
  /** Where it came from, for logs and metrics: `file:/etc/tls/a.pem` or `secret:shop/api-tls`. */
  source: string;
  /** Hostnames served (exact or `*.suffix`, lower-case). Empty: the certificate's own DNS names. */
  hostnames: string[];
  certPem: string;
  keyPem: string;
  /** A client certificate for mTLS to upstreams (not served): its `namespace/name`. */
  key?: string;
}

/** What the primary sends to every worker (IPC `certs` message); the worker swaps it in whole. */
export interface CertSet {
  /** Increases with every change (the worker ignores older ones). */
  version: number;
  bundles: CertBundle[];
  /** Served when SNI names no known host, or is absent. */
  defaultBundle: CertBundle | undefined;
  /** Client certificates for mTLS to upstreams, by key `namespace/name` (a backend's `tls.clientCertificate`). */
  clients?: Record<string, { certPem: string; keyPem: string }>;
  /** Consul service mesh identity: the gateway's leaf certificate and the CA roots (absent: mesh off). */
  mesh?: MeshIdentity;
}

/** The gateway's Connect leaf certificate (and key) and the trust bundle of the Consul CA. */
export interface MeshIdentity {
  certPem: string;
  keyPem: string;
  /** PEM root (and intermediate) certificates of every CA root Consul currently trusts. */
  rootsPem: string[];
  /** The CA's SPIFFE trust domain (`<uuid>.consul`). */
  trustDomain: string;
  /** Active root id and leaf serial, for logs and /debug views. */
  activeRootId: string;
  leafSerial: string;
}

export interface CertInfo {
  subject: string;
  issuer: string;
  /** DNS names from subjectAltName (or the CN when there is none). */
  dnsNames: string[];
  notBefore: number;
  notAfter: number;
  /** SHA-256 of the certificate and key PEM: equal bundles reuse their SecureContext. */
  fingerprint: string;
}

export class CertificateError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

function dnsNamesOf(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (san) {
    return san
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.startsWith('DNS:'))
      .map((s) => s.slice(4).toLowerCase());
  }
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject);
  return cn ? [cn[1]!.toLowerCase()] : [];
}

/** Parses and checks a certificate chain and its key; throws CertificateError with a short reason. */
export function inspectCertificate(
  certPem: string,
  keyPem: string,
  now = Date.now(),
  checkDates = true,
): CertInfo {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new CertificateError(
      'InvalidCertificate',
      `cannot parse the certificate: ${(err as Error).message}`,
    );
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new CertificateError('InvalidKey', `cannot parse the private key: ${(err as Error).message}`);
  }
  if (!cert.checkPrivateKey(key))
    throw new CertificateError('KeyMismatch', 'the private key does not belong to the certificate');
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (checkDates && notAfter < now)
    throw new CertificateError('Expired', `the certificate expired on ${cert.validTo}`);
  if (checkDates && notBefore > now)
    throw new CertificateError('NotYetValid', `the certificate is valid only from ${cert.validFrom}`);
  return {
    subject: cert.subject.replaceAll('\n', ', '),
    issuer: cert.issuer.replaceAll('\n', ', '),
    dnsNames: dnsNamesOf(cert),
    notBefore,
    notAfter,
    fingerprint: createHash('sha256').update(certPem).update('\0').update(keyPem).digest('hex'),
  };
}

/** The hostnames a bundle serves: the configured ones, else the certificate's DNS names. */
export function hostnamesOf(bundle: CertBundle, info: CertInfo): string[] {
  return bundle.hostnames.length > 0 ? bundle.hostnames.map((h) => h.toLowerCase()) : info.dnsNames;
}

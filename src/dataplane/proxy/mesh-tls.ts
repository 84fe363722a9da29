/**
 * mTLS to Consul service-mesh (Connect) upstreams: the worker presents the gateway's leaf certificate, trusts only
 * the Consul CA roots, and accepts the upstream only if its certificate carries the expected SPIFFE ID as a URI SAN
 * (`spiffe://<trust domain>/ns/<namespace>/dc/<datacenter>/svc/<service>`). The leaf and roots arrive in the
 * certificate set (`CertSet.mesh`) and rotate without a restart: each new connection uses the current ones, open
 * connections are left alone. A wrong identity, or a chain that does not lead to the roots, fails the connection
 * with code EDGEGATE_MESH_IDENTITY (502 with the reason).
 */
import type { PeerCertificate } from 'node:tls';
import { buildConnector } from 'undici';
import type { MeshIdentity } from '../../api/certificate.ts';
import type { MeshPoolData, PoolData } from '../../table/types.ts';

/** The gateway's current mesh identity, as the latest certificate set gave it. */
export class MeshCredentials {
  #current: MeshIdentity | undefined;

  set(identity: MeshIdentity | undefined): void {
    this.#current = identity;
  }

  get current(): MeshIdentity | undefined {
    return this.#current;
  }
}

export function spiffeIdOf(trustDomain: string, m: MeshPoolData): string {
  return `spiffe://${trustDomain}/ns/${m.namespace}/dc/${m.datacenter}/svc/${m.service}`;
}

/** The SNI Consul's own proxies use for a service: `<service>.<namespace>.<dc>.internal.<trust domain>`. */
export function meshServerName(trustDomain: string, m: MeshPoolData): string {
  return `${m.service}.${m.namespace}.${m.datacenter}.internal.${trustDomain}`;
}

/**
 * URI SANs of a peer certificate. Node's `subjectaltname` text is `TYPE:value` entries joined by `, `, where a value
 * that holds a `,` or a quote is written as a JSON string: a value can never pass for two entries.
 */
export function uriSans(cert: PeerCertificate): string[] {
  const san = cert.subjectaltname ?? '';
  const out: string[] = [];
  let i = 0;
  while (i < san.length) {
    const colon = san.indexOf(':', i);
    if (colon < 0) break;
    const type = san.slice(i, colon);
    let value: string;
    let end: number;
    if (san[colon + 1] === '"') {
      end = colon + 2;
      while (end < san.length && san[end] !== '"') end += san[end] === '\\' ? 2 : 1;
      end++;
      try {
        value = JSON.parse(san.slice(colon + 1, end)) as string;
      } catch {
        return out; // not Node's format: trust nothing after it
      }
    } else {
      end = san.indexOf(', ', colon);
      if (end < 0) end = san.length;
      value = san.slice(colon + 1, end);
    }
    if (type === 'URI') out.push(value);
    i = san.startsWith(', ', end) ? end + 2 : end;
  }
  return out;
}

function meshError(message: string): Error {
  return Object.assign(new Error(message), { code: 'EDGEGATE_MESH_IDENTITY' });
}

/** Chain failures Node reports for a certificate that does not lead to the trusted roots. */
const CHAIN_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
]);

/** The undici connector of a mesh pool. */
export function meshConnect(pool: PoolData, credentials: MeshCredentials): buildConnector.connector {
  const mesh = pool.mesh!;
  let built: { identity: MeshIdentity; expected: string; connect: buildConnector.connector } | undefined;
  return (options, callback) => {
    const identity = credentials.current;
    if (identity === undefined) {
      const err = Object.assign(
        new Error('the gateway has no Consul mesh identity yet (leaf certificate and CA roots)'),
        { code: 'EDGEGATE_NO_CLIENT_CERTIFICATE' },
      );
      callback(err, null);
      return;
    }
    if (built?.identity !== identity) {
      const expected = spiffeIdOf(identity.trustDomain, mesh);
      built = {
        identity,
        expected,
        connect: buildConnector({
          timeout: pool.connectTimeoutMs,
          ca: identity.rootsPem,
          cert: identity.certPem,
          key: identity.keyPem,
          rejectUnauthorized: true,
          checkServerIdentity: (_host: string, cert: PeerCertificate) => {
            const ids = uriSans(cert);
            if (ids.includes(expected)) return undefined;
            return meshError(
              `mesh upstream identity ${ids.length > 0 ? ids.join(', ') : '(no URI SAN)'} is not the expected ${expected}`,
            );
          },
        } as buildConnector.BuildOptions),
      };
    }
    const b = built;
    const { servername: _fromHost, ...rest } = options;
    b.connect(
      { ...rest, servername: meshServerName(identity.trustDomain, mesh) } as typeof options,
      (err, socket) => {
        const code = (err as (Error & { code?: string }) | null)?.code;
        if (err && code !== undefined && CHAIN_ERRORS.has(code))
          return callback(
            meshError(
              `mesh upstream certificate does not chain to the Consul CA roots (${code}); expected ${b.expected}`,
            ),
            null,
          );
        if (err) return callback(err, null);
        callback(null, socket!);
      },
    );
  };
}

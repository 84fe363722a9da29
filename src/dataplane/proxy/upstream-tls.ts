/**
 * TLS (and HTTP/2) to upstreams: the undici connect options for a pool whose backend has `tls`, and the part of the
 * pool key that keeps differently-configured TLS pools apart. HTTP/2 upstreams are negotiated by ALPN (undici's
 * `allowH2`); an upstream that only offers http/1.1 is spoken to in HTTP/1.1.
 */
import { createHash } from 'node:crypto';
import { buildConnector } from 'undici';
import type { MeshIdentity } from '../../api/certificate.ts';
import type { EndpointData, PoolData } from '../../table/types.ts';
import { MeshCredentials, meshConnect } from './mesh-tls.ts';

/** A client certificate and key (PEM) for mTLS to upstreams. */
export interface ClientCertificate {
  certPem: string;
  keyPem: string;
}

/**
 * The client certificates this process may present to upstreams, by key `namespace/name`, as the latest
 * certificate set gave them. Pools look them up when they open a connection, so a rotated certificate is used by
 * every new connection and open ones are left alone.
 */
export class ClientCertificates {
  #byKey = new Map<string, ClientCertificate>();

  /** The gateway's Consul mesh identity (mesh-tls.ts), from the certificate set's `mesh`. */
  readonly mesh = new MeshCredentials();

  /** The certificate set's `clients` (replaces the previous ones) and its mesh identity. */
  set(clients: Record<string, ClientCertificate> | undefined, mesh?: MeshIdentity): void {
    this.#byKey = new Map(Object.entries(clients ?? {}));
    this.mesh.set(mesh);
  }

  get(key: string): ClientCertificate | undefined {
    return this.#byKey.get(key);
  }
}

const digests = new Map<string, string>();

function digest(text: string): string {
  let d = digests.get(text);
  if (d === undefined) {
    d = createHash('sha256').update(text).digest('hex').slice(0, 16);
    digests.set(text, d);
  }
  return d;
}

export function upstreamTlsPoolKey(pool: PoolData): string {
  if (!pool.tls) return '';
  const client = pool.tls.clientCertificate ? `:client=${pool.tls.clientCertificate}` : '';
  const mesh = pool.mesh ? `:mesh=${pool.mesh.namespace}/${pool.mesh.datacenter}/${pool.mesh.service}` : '';
  return `|tls:${pool.tls.serverName ?? ''}:${pool.tls.caBundle ? digest(pool.tls.caBundle) : 'system'}${client}:${pool.protocol ?? 'http1'}${mesh}`;
}

/**
 * undici `connect` for a pool: a plain options object for HTTP, and for TLS a connector that pins the server name.
 * (undici otherwise takes SNI and the name to verify from each request's Host header, which is the CLIENT's host,
 * not the upstream's: the upstream is verified against `serverName`, or its address when none is set.) With a
 * client certificate, each new connection presents the one the certificate set holds now; without it loaded the
 * connection fails (a connect failure: 502 / retried like any other), never falls back to no certificate.
 */
export function upstreamConnect(
  pool: PoolData,
  clientCerts: ClientCertificates,
): Record<string, unknown> | buildConnector.connector {
  const tls = pool.tls;
  if (!tls) return { timeout: pool.connectTimeoutMs };
  if (pool.mesh) return meshConnect(pool, clientCerts.mesh);
  const build = (client: ClientCertificate | undefined) =>
    buildConnector({
      timeout: pool.connectTimeoutMs,
      ...(tls.caBundle !== undefined ? { ca: tls.caBundle } : {}),
      ...(client ? { cert: client.certPem, key: client.keyPem } : {}),
      rejectUnauthorized: true,
      ALPNProtocols: pool.protocol === 'h2' ? ['h2', 'http/1.1'] : ['http/1.1'],
    } as buildConnector.BuildOptions);
  const key = tls.clientCertificate;
  let built: { client: ClientCertificate | undefined; connect: buildConnector.connector } | undefined;
  return (options, callback) => {
    const client = key === undefined ? undefined : clientCerts.get(key);
    if (key !== undefined && client === undefined) {
      const err = Object.assign(new Error(`client certificate ${key} is not loaded`), {
        code: 'EDGEGATE_NO_CLIENT_CERTIFICATE',
      });
      callback(err, null);
      return;
    }
    // One connector (and its TLS session cache) per certificate: rebuilt when the certificate rotates.
    if (
      built === undefined ||
      built.client?.certPem !== client?.certPem ||
      built.client?.keyPem !== client?.keyPem
    )
      built = { client, connect: build(client) };
    const { servername: _fromHost, ...rest } = options;
    built.connect(
      (tls.serverName !== undefined ? { ...rest, servername: tls.serverName } : rest) as typeof options,
      callback,
    );
  };
}

/**
 * Per-request undici options for a TLS pool: a constant `servername`, so undici never tears a connection down
 * because two requests carried different Host headers (it compares each request's server name with the
 * connection's). The connector above decides what is actually sent and verified.
 */
export function upstreamDispatchOptions(pool: PoolData, ep: EndpointData): { servername?: string } {
  return pool.tls ? { servername: pool.tls.serverName ?? ep.address } : {};
}

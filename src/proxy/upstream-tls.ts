/**
 * TLS (and HTTP/2) to upstreams: the undici connect options for a pool whose backend has `tls`, and the part of the
 * pool key that keeps differently-configured TLS pools apart. HTTP/2 upstreams are negotiated by ALPN (undici's
 * `allowH2`); an upstream that only offers http/1.1 is spoken to in HTTP/1.1.
 */
import { createHash } from 'node:crypto';
import { buildConnector } from 'undici';
import type { EndpointData, PoolData } from '../table/types.ts';

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
  return `|tls:${pool.tls.serverName ?? ''}:${pool.tls.caBundle ? digest(pool.tls.caBundle) : 'system'}:${pool.protocol ?? 'http1'}`;
}

/**
 * undici `connect` for a pool: a plain options object for HTTP, and for TLS a connector that pins the server name.
 * (undici otherwise takes SNI and the name to verify from each request's Host header, which is the CLIENT's host,
 * not the upstream's: the upstream is verified against `serverName`, or its address when none is set.)
 */
export function upstreamConnect(pool: PoolData): Record<string, unknown> | buildConnector.connector {
  const tls = pool.tls;
  if (!tls) return { timeout: pool.connectTimeoutMs };
  const base = buildConnector({
    timeout: pool.connectTimeoutMs,
    ...(tls.caBundle !== undefined ? { ca: tls.caBundle } : {}),
    rejectUnauthorized: true,
    ALPNProtocols: pool.protocol === 'h2' ? ['h2', 'http/1.1'] : ['http/1.1'],
  } as buildConnector.BuildOptions);
  return (options, callback) => {
    const { servername: _fromHost, ...rest } = options;
    base(
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

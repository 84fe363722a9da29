/**
 * TLS (and HTTP/2) to upstreams: the undici connect options for a pool whose backend has `tls`, and the part of the
 * pool key that keeps differently-configured TLS pools apart. HTTP/2 upstreams are negotiated by ALPN (undici's
 * `allowH2`); an upstream that only offers http/1.1 is spoken to in HTTP/1.1.
 */
import { createHash } from 'node:crypto';
import type { PoolData } from '../table/types.ts';

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

/** Extra undici `connect` options (merged beside the connect timeout); empty for plain HTTP. */
export function upstreamTlsConnect(pool: PoolData): Record<string, unknown> {
  const tls = pool.tls;
  if (!tls) return {};
  return {
    ...(tls.serverName !== undefined ? { servername: tls.serverName } : {}),
    ...(tls.caBundle !== undefined ? { ca: tls.caBundle } : {}),
    rejectUnauthorized: true,
    ALPNProtocols: pool.protocol === 'h2' ? ['h2', 'http/1.1'] : ['http/1.1'],
  };
}

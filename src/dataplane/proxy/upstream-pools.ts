/**
 * One Upstream per endpoint (and pool settings): its pool (raw-pool.ts for cleartext HTTP/1.1 without pipelining
 * when `--upstream-client raw`, else undici's Pool) plus the per-endpoint state the worker keeps
 * (in-flight count, outlier ejection). Upstreams outlive table versions: an endpoint that stays in the table keeps
 * its warm keep-alive connections and its ejection state; one that leaves is retired and its pool closed gracefully
 * (in-flight requests finish) once no table references it.
 */
import { Pool } from 'undici';
import type { ClusterData, EndpointData, PoolData } from '../../table/types.ts';
import { RawPool } from './raw-pool.ts';
import { watchHttp2Pool } from './upstream-h2-events.ts';
import {
  ClientCertificates,
  upstreamConnect,
  upstreamDispatchOptions,
  upstreamTlsPoolKey,
} from './upstream-tls.ts';

const H2C_OPTIONS = { allowH2: true, useH2c: true } as const;

export function poolKey(ep: EndpointData, pool: PoolData): string {
  return `${ep.address}:${ep.port}|${pool.maxConnections}/${pool.keepAliveTimeoutMs}/${pool.pipelining}/${pool.connectTimeoutMs}/${pool.maxPendingRequests}${upstreamTlsPoolKey(pool)}${pool.protocol === 'h2c' ? '|h2c' : ''}`;
}

export function originOf(ep: EndpointData, pool?: PoolData): string {
  const scheme = pool?.tls ? 'https' : 'http';
  return ep.address.includes(':')
    ? `${scheme}://[${ep.address}]:${ep.port}`
    : `${scheme}://${ep.address}:${ep.port}`;
}

/** What the proxy needs of a pool: undici's dispatcher protocol, its figures, closing. */
export type UpstreamPool = Pick<Pool, 'dispatch' | 'close' | 'destroy'> & {
  readonly stats: Pool['stats'] | RawPool['stats'];
};

/** Which HTTP client carries cleartext HTTP/1.1 upstream requests (`--upstream-client`). */
export type UpstreamClient = 'raw' | 'undici';

/** Can the raw pool carry this endpoint's requests? Cleartext HTTP/1.1, one request per connection at a time. */
function rawCapable(s: PoolData): boolean {
  return s.tls === undefined && s.protocol === undefined && s.pipelining <= 1;
}

export class Upstream {
  readonly key: string;
  readonly endpoint: EndpointData;
  readonly settings: PoolData;
  /** `address:port`: identity on a consistent-hash ring. */
  readonly ringKey: string;
  readonly weight: number;
  /** TLS pools: the constant server name every request carries (see upstreamDispatchOptions). */
  readonly servername: string | undefined;
  /** In-flight requests above which a new one is refused (503): connections × pipelining + pending. */
  readonly capacity: number;
  /** Requests dispatched and not yet settled (least request balancing, pending cap). */
  inFlight = 0;
  /** Outlier detection state (outlier.ts). */
  consecutiveFailures = 0;
  ejected = false;
  ejections = 0;
  lastReadmitted = 0;
  ejectionTimer: NodeJS.Timeout | undefined;
  /** Left the table: never picked again, its pool is closing. */
  retired = false;
  #pool: UpstreamPool | undefined;
  /** The undici pool for upgrades (WebSocket) when requests go through the raw pool. */
  #tunnels: Pool | undefined;
  readonly #clientCerts: ClientCertificates;
  readonly #raw: boolean;

  constructor(
    key: string,
    endpoint: EndpointData,
    settings: PoolData,
    clientCerts = new ClientCertificates(),
    client: UpstreamClient = 'undici',
  ) {
    this.#clientCerts = clientCerts;
    this.#raw = client === 'raw' && rawCapable(settings);
    this.key = key;
    this.endpoint = endpoint;
    this.settings = settings;
    this.ringKey = `${endpoint.address}:${endpoint.port}`;
    this.weight = endpoint.weight;
    this.servername = upstreamDispatchOptions(settings, endpoint).servername;
    this.capacity = settings.maxConnections * settings.pipelining + settings.maxPendingRequests;
  }

  /** The pool, created on first use (a table may list many endpoints that never get traffic in this worker). */
  get pool(): UpstreamPool {
    if (this.#pool === undefined) {
      if (this.#raw) {
        const s = this.settings;
        this.#pool = new RawPool({
          host: this.endpoint.address,
          port: this.endpoint.port,
          connections: s.maxConnections,
          keepAliveTimeoutMs: s.keepAliveTimeoutMs,
          connectTimeoutMs: s.connectTimeoutMs,
        });
      } else this.#pool = this.#undiciPool();
    }
    return this.#pool;
  }

  /** The pool that carries upgrades (WebSocket over HTTP/1.1): undici's, the request pool when that is one. */
  get tunnelPool(): Pick<Pool, 'dispatch'> {
    if (!this.#raw) return this.pool as Pool;
    this.#tunnels ??= this.#undiciPool();
    return this.#tunnels;
  }

  #undiciPool(): Pool {
    const s = this.settings;
    const pool = new Pool(originOf(this.endpoint, s), {
      connections: s.maxConnections,
      pipelining: s.pipelining,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      keepAliveMaxTimeout: s.keepAliveTimeoutMs,
      connect: upstreamConnect(s, this.#clientCerts),
      // h2c: undici's prior-knowledge cleartext HTTP/2 (no upgrade, no fallback to HTTP/1.1); each pooled
      // connection is one HTTP/2 session carrying up to `pipelining` concurrent streams.
      ...(s.protocol === 'h2' ? { allowH2: true } : s.protocol === 'h2c' ? H2C_OPTIONS : {}),
      // The gateway's own timeouts are passed per request.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    if (s.protocol !== undefined) watchHttp2Pool(pool, s.protocol);
    return pool;
  }

  get hasPool(): boolean {
    return this.#pool !== undefined;
  }

  retire(): Promise<void> {
    this.retired = true;
    clearTimeout(this.ejectionTimer);
    const closing: Promise<void>[] = [];
    for (const pool of [this.#pool, this.#tunnels])
      if (pool !== undefined) closing.push(pool.close().catch(() => pool.destroy()));
    return Promise.all(closing).then(() => {});
  }

  destroy(): Promise<void> {
    this.retired = true;
    clearTimeout(this.ejectionTimer);
    const closing: Promise<void>[] = [];
    for (const pool of [this.#pool, this.#tunnels])
      if (pool !== undefined) closing.push(pool.destroy().catch(() => {}));
    return Promise.all(closing).then(() => {});
  }
}

export interface UpstreamStats {
  upstreams: number;
  pools: number;
  inFlight: number;
  ejected: number;
  retired: number;
}

export class UpstreamPools {
  readonly #upstreams = new Map<string, Upstream>();
  readonly #client: UpstreamClient;
  #retired = 0;
  /** Client certificates for mTLS to upstreams (`tls.clientCertificate`), from the certificate set. */
  readonly clientCertificates = new ClientCertificates();

  constructor(client: UpstreamClient = 'undici') {
    this.#client = client;
  }

  get size(): number {
    return this.#upstreams.size;
  }

  /** The upstream for an endpoint with these pool settings, created on first use. */
  get(ep: EndpointData, settings: PoolData): Upstream {
    const key = poolKey(ep, settings);
    let up = this.#upstreams.get(key);
    if (up === undefined) {
      up = new Upstream(key, ep, settings, this.clientCertificates, this.#client);
      this.#upstreams.set(key, up);
    }
    return up;
  }

  /** Keeps the upstreams of these clusters; retires the others (their pools close gracefully). */
  retain(clusters: Iterable<ClusterData>): void {
    const keep = new Set<string>();
    for (const c of clusters) for (const ep of c.endpoints) keep.add(poolKey(ep, c.pool));
    for (const [key, up] of this.#upstreams) {
      if (keep.has(key)) continue;
      this.#upstreams.delete(key);
      this.#retired++;
      void up.retire();
    }
  }

  entries(): IterableIterator<[string, Upstream]> {
    return this.#upstreams.entries();
  }

  /** Plain numbers for metrics (edgegate_upstream_*). */
  stats(): UpstreamStats {
    let pools = 0;
    let inFlight = 0;
    let ejected = 0;
    for (const up of this.#upstreams.values()) {
      if (up.hasPool) pools++;
      inFlight += up.inFlight;
      if (up.ejected) ejected++;
    }
    return { upstreams: this.#upstreams.size, pools, inFlight, ejected, retired: this.#retired };
  }

  async close(): Promise<void> {
    const all = [...this.#upstreams.values()];
    this.#upstreams.clear();
    await Promise.allSettled(all.map((u) => u.retire()));
  }

  async destroy(): Promise<void> {
    const all = [...this.#upstreams.values()];
    this.#upstreams.clear();
    await Promise.allSettled(all.map((u) => u.destroy()));
  }
}

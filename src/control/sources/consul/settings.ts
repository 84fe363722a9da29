/**
 * Consul source settings, following Consul's own environment conventions (the same variables the `consul` CLI
 * reads) plus a few `EDGEGATE_CONSUL_*` knobs for the watchers. Every bad value is refused with the name of the
 * variable, before anything starts.
 */
import { readFileSync } from 'node:fs';
import { DurationError, parseDurationSetting } from '../../../lib/duration.ts';

export type Consistency = 'stale' | 'default' | 'consistent';

export interface ConsulSettings {
  /** `http://127.0.0.1:8500` — scheme, host and port only. */
  address: string;
  /** Read at start; with `tokenFile` it is re-read after a 403 (token rotation). */
  token: string | undefined;
  tokenFile: string | undefined;
  /** PEM of the CA that signed the agent's certificate (`CONSUL_CACERT`). */
  caCert: string | undefined;
  clientCert: string | undefined;
  clientKey: string | undefined;
  tlsServerName: string | undefined;
  /** `CONSUL_HTTP_SSL_VERIFY=false` turns certificate verification off (test setups only). */
  tlsVerify: boolean;
  namespace: string | undefined;
  partition: string | undefined;
  /** Override of the agent's datacenter as the local one (`--datacenter`). */
  datacenter: string | undefined;
  /** Read mode of every query: `stale` (default: any server answers, no leader round trip). */
  consistency: Consistency;
  /** `wait` of a blocking query (Consul caps it at 10 minutes). */
  waitMs: number;
  /** Token bucket per watch: under churn a watch degrades to polling at this rate. */
  ratePerSecond: number;
  rateBurst: number;
  /** Exponential backoff with jitter after errors. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** `/v1/catalog/datacenters` poll interval (it cannot block). */
  datacenterPollMs: number;
  /** Cap on concurrent service watches (health of one service in one datacenter each). */
  maxWatches: number;
  /** After this long without contact, the stale data is dropped; 0 = never (default). */
  maxStalenessMs: number;
  /** Data older than this (lag behind the leader, or time without contact) is reported stale; 0: only outages. */
  staleAfterMs: number;
  /** How long the first report waits for watches that have not answered yet. */
  initialSyncTimeoutMs: number;
  /**
   * The gateway's own Consul service name: its service-mesh identity (leaf certificate, intention source). Unset:
   * mesh backends are not served (`--consul-mesh-service`, `EDGEGATE_CONSUL_MESH_SERVICE`).
   */
  meshService?: string | undefined;
}

export const CONSUL_DEFAULTS = {
  address: 'http://127.0.0.1:8500',
  consistency: 'stale',
  waitMs: 60_000,
  ratePerSecond: 10,
  rateBurst: 20,
  backoffBaseMs: 250,
  backoffMaxMs: 10_000,
  datacenterPollMs: 10_000,
  maxWatches: 1000,
  maxStalenessMs: 0,
  staleAfterMs: 10_000,
  initialSyncTimeoutMs: 10_000,
} as const;

export class ConsulSettingsError extends Error {
  override name = 'ConsulSettingsError';
}

type Env = Record<string, string | undefined>;

function nonEmpty(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t ? t : undefined;
}

function bool(env: Env, name: string): boolean | undefined {
  const v = nonEmpty(env[name])?.toLowerCase();
  if (v === undefined) return undefined;
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new ConsulSettingsError(`${name}: expected true or false, got ${JSON.stringify(env[name])}`);
}

/** A duration variable (src/lib/duration.ts), refused as a ConsulSettingsError naming it. */
function parseDurationMs(value: string, name: string): number {
  try {
    return parseDurationSetting(value, name);
  } catch (err) {
    if (err instanceof DurationError) throw new ConsulSettingsError(err.message);
    throw err;
  }
}

function duration(env: Env, name: string, fallback: number, min: number, max: number): number {
  const v = nonEmpty(env[name]);
  if (v === undefined) return fallback;
  const ms = parseDurationMs(v, name);
  if (ms < min || ms > max)
    throw new ConsulSettingsError(`${name}: ${v} is out of range (${min} ms … ${max} ms)`);
  return ms;
}

function number(env: Env, name: string, fallback: number, min: number, max: number): number {
  const v = nonEmpty(env[name]);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new ConsulSettingsError(
      `${name}: expected a number from ${min} to ${max}, got ${JSON.stringify(v)}`,
    );
  return n;
}

function readFile(name: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConsulSettingsError(
      `${name}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
}

/** Reads the token file (trimmed); undefined if it is empty. */
export function readTokenFile(path: string): string | undefined {
  return nonEmpty(readFile('CONSUL_HTTP_TOKEN_FILE', path));
}

/**
 * `CONSUL_HTTP_ADDR` (or `CONSUL_ADDR`): `host:port`, `http://host:port` or `https://host:port`;
 * `CONSUL_HTTP_SSL=true` makes a bare `host:port` https.
 */
export function parseAddress(raw: string, ssl: boolean | undefined, name = 'CONSUL_HTTP_ADDR'): string {
  const value = raw.trim();
  if (value.startsWith('unix://'))
    throw new ConsulSettingsError(`${name}: unix sockets are not supported (${value}); use host:port`);
  const withScheme = /^[a-z]+:\/\//i.test(value) ? value : `${ssl ? 'https' : 'http'}://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ConsulSettingsError(
      `${name}: invalid address ${JSON.stringify(raw)} (expected host:port or URL)`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ConsulSettingsError(`${name}: scheme must be http or https, got ${url.protocol}`);
  if (url.pathname !== '/' || url.search || url.username)
    throw new ConsulSettingsError(`${name}: give scheme, host and port only, got ${JSON.stringify(raw)}`);
  if (ssl && url.protocol === 'http:' && /^[a-z]+:\/\//i.test(value))
    throw new ConsulSettingsError(`${name}: http:// address with CONSUL_HTTP_SSL=true`);
  if (!url.port) url.port = url.protocol === 'https:' ? '8501' : '8500';
  return url.origin;
}

/** A Consul service name usable as a SPIFFE path segment and in a URL path (undefined stays undefined). */
export function meshServiceName(v: string | undefined, name: string): string | undefined {
  if (v === undefined) return undefined;
  if (!/^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$/.test(v))
    throw new ConsulSettingsError(
      `${name}: ${JSON.stringify(v)} is not a Consul service name (letters, digits, '.', '_', '-')`,
    );
  return v;
}

/** Settings from the environment; `overrides` (CLI flags) win. */
export function consulSettingsFromEnv(env: Env, overrides: Partial<ConsulSettings> = {}): ConsulSettings {
  const ssl = bool(env, 'CONSUL_HTTP_SSL');
  const addrName = nonEmpty(env.CONSUL_HTTP_ADDR) ? 'CONSUL_HTTP_ADDR' : 'CONSUL_ADDR';
  const rawAddr = nonEmpty(env[addrName]);
  const address = rawAddr
    ? parseAddress(rawAddr, ssl, addrName)
    : ssl
      ? 'https://127.0.0.1:8501'
      : CONSUL_DEFAULTS.address;
  const tokenFile = nonEmpty(env.CONSUL_HTTP_TOKEN_FILE);
  // Consul's CLI: CONSUL_HTTP_TOKEN wins over the file.
  const token = nonEmpty(env.CONSUL_HTTP_TOKEN) ?? (tokenFile ? readTokenFile(tokenFile) : undefined);
  const caPath = nonEmpty(env.CONSUL_CACERT);
  const certPath = nonEmpty(env.CONSUL_CLIENT_CERT);
  const keyPath = nonEmpty(env.CONSUL_CLIENT_KEY);
  if (Boolean(certPath) !== Boolean(keyPath))
    throw new ConsulSettingsError('CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY must be given together');
  const consistency = (nonEmpty(env.EDGEGATE_CONSUL_CONSISTENCY) ??
    CONSUL_DEFAULTS.consistency) as Consistency;
  if (!['stale', 'default', 'consistent'].includes(consistency))
    throw new ConsulSettingsError(
      `EDGEGATE_CONSUL_CONSISTENCY: expected stale, default or consistent, got ${JSON.stringify(consistency)}`,
    );
  const d = CONSUL_DEFAULTS;
  const settings: ConsulSettings = {
    address,
    token,
    tokenFile: nonEmpty(env.CONSUL_HTTP_TOKEN) ? undefined : tokenFile,
    caCert: caPath ? readFile('CONSUL_CACERT', caPath) : undefined,
    clientCert: certPath ? readFile('CONSUL_CLIENT_CERT', certPath) : undefined,
    clientKey: keyPath ? readFile('CONSUL_CLIENT_KEY', keyPath) : undefined,
    tlsServerName: nonEmpty(env.CONSUL_TLS_SERVER_NAME),
    tlsVerify: bool(env, 'CONSUL_HTTP_SSL_VERIFY') ?? true,
    namespace: nonEmpty(env.CONSUL_NAMESPACE),
    partition: nonEmpty(env.CONSUL_PARTITION),
    datacenter: undefined,
    consistency,
    waitMs: duration(env, 'EDGEGATE_CONSUL_WAIT', d.waitMs, 1000, 600_000),
    ratePerSecond: number(env, 'EDGEGATE_CONSUL_RATE', d.ratePerSecond, 0.01, 10_000),
    rateBurst: number(env, 'EDGEGATE_CONSUL_BURST', d.rateBurst, 1, 10_000),
    backoffBaseMs: duration(env, 'EDGEGATE_CONSUL_BACKOFF_BASE', d.backoffBaseMs, 1, 60_000),
    backoffMaxMs: duration(env, 'EDGEGATE_CONSUL_BACKOFF_MAX', d.backoffMaxMs, 1, 600_000),
    datacenterPollMs: duration(env, 'EDGEGATE_CONSUL_DC_POLL', d.datacenterPollMs, 100, 3_600_000),
    maxWatches: number(env, 'EDGEGATE_CONSUL_MAX_WATCHES', d.maxWatches, 1, 100_000),
    maxStalenessMs: duration(env, 'EDGEGATE_CONSUL_MAX_STALENESS', d.maxStalenessMs, 0, 365 * 86_400_000),
    staleAfterMs: duration(env, 'EDGEGATE_CONSUL_STALE_AFTER', d.staleAfterMs, 0, 365 * 86_400_000),
    initialSyncTimeoutMs: duration(env, 'EDGEGATE_CONSUL_SYNC_TIMEOUT', d.initialSyncTimeoutMs, 100, 600_000),
    meshService: meshServiceName(nonEmpty(env.EDGEGATE_CONSUL_MESH_SERVICE), 'EDGEGATE_CONSUL_MESH_SERVICE'),
  };
  if (!Number.isInteger(settings.maxWatches))
    throw new ConsulSettingsError('EDGEGATE_CONSUL_MAX_WATCHES: expected a whole number');
  if (settings.backoffMaxMs < settings.backoffBaseMs)
    throw new ConsulSettingsError(
      'EDGEGATE_CONSUL_BACKOFF_MAX must not be below EDGEGATE_CONSUL_BACKOFF_BASE',
    );
  return { ...settings, ...overrides };
}

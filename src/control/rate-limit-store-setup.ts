/**
 * The shared rate-limit store of a gateway process (`--redis-url`, for `rateLimit.scope: Global`): its settings
 * from flags and the environment, its start with metrics and state-change logging, and the readiness note that
 * shows it is not connected. A down store never fails readiness: every gateway of the fleet would go unready at
 * once; the rules' failureMode decides instead, and /readyz says so in its notes.
 */
import { readFileSync } from 'node:fs';
import type { Registry } from 'prom-client';
import { RateLimitStore, type RateLimitStoreSettings } from '../cluster/rate-limit-store.ts';
import { ConfigError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { registerRateLimitStoreMetrics } from './metrics/rate-limit-store-metrics.ts';

export interface RateLimitStoreFlags {
  redisUrl?: string;
  redisPasswordFile?: string;
  redisTimeout?: string;
}

/** Longest accepted --redis-timeout: it must stay below the workers' 250 ms wait for the primary's answer. */
export const MAX_REDIS_TIMEOUT_MS = 200;

/**
 * `--redis-url` (EDGEGATE_REDIS_URL), the password from EDGEGATE_REDIS_PASSWORD or `--redis-password-file`
 * (EDGEGATE_REDIS_PASSWORD_FILE; a mounted Secret), `--redis-timeout`. Undefined: no store configured.
 */
export function rateLimitStoreSettingsFrom(
  o: RateLimitStoreFlags,
  env: Record<string, string | undefined>,
  parseDuration: (value: string, flag: string) => number,
): RateLimitStoreSettings | undefined {
  const url = o.redisUrl?.trim();
  if (!url) {
    if (o.redisPasswordFile) throw new ConfigError('--redis-password-file needs --redis-url');
    return undefined;
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`--redis-url: not a URL (expected redis://host:port or rediss://host:port)`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')
    throw new ConfigError(`--redis-url: expected a redis:// or rediss:// URL, got ${parsed.protocol}//…`);
  if (!parsed.hostname) throw new ConfigError('--redis-url: the URL has no host');
  const timeoutMs = parseDuration(o.redisTimeout ?? '100ms', '--redis-timeout');
  if (!(timeoutMs >= 1 && timeoutMs <= MAX_REDIS_TIMEOUT_MS))
    throw new ConfigError(`--redis-timeout: expected 1ms … ${MAX_REDIS_TIMEOUT_MS}ms`);
  let password = env.EDGEGATE_REDIS_PASSWORD || undefined;
  if (o.redisPasswordFile) {
    if (password !== undefined)
      throw new ConfigError('set one of EDGEGATE_REDIS_PASSWORD or --redis-password-file, not both');
    try {
      password = readFileSync(o.redisPasswordFile, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new ConfigError(`--redis-password-file: cannot read it: ${(err as NodeJS.ErrnoException).code}`);
    }
  }
  return { url, timeoutMs, ...(password !== undefined ? { password } : {}) };
}

/** Secret values of the store settings, for the redaction of the debug views and logs. */
export function rateLimitStoreSecrets(s: RateLimitStoreSettings | undefined): string[] {
  if (!s) return [];
  const out: string[] = [];
  if (s.password) out.push(s.password);
  try {
    const u = new URL(s.url);
    if (u.password) out.push(decodeURIComponent(u.password), u.password);
  } catch {
    // validated at start-up
  }
  return out;
}

export interface RunningRateLimitStore {
  store: RateLimitStore;
  /** Readiness notes: the store is not connected (empty when it is). */
  notes(): string[];
  close(): Promise<void>;
}

export function startRateLimitStore(
  settings: RateLimitStoreSettings,
  log: Logger,
  registry: Registry,
): RunningRateLimitStore {
  let store: RateLimitStore | undefined;
  const metrics = registerRateLimitStoreMetrics(registry, () => store?.stats());
  const where = redactedUrl(settings.url);
  store = new RateLimitStore(settings, {
    onCall: (c) => metrics.onCall(c),
    onStateChange: (state, error) => {
      if (state === 'up') log.info('rate-limit store connected', { store: where });
      else if (state === 'slow')
        log.warn('rate-limit store slow: its calls time out; Global rate limits follow their failureMode', {
          store: where,
          error,
        });
      else
        log.warn('rate-limit store not connected: Global rate limits follow their failureMode', {
          store: where,
          state,
          error,
        });
    },
  });
  const s = store;
  return {
    store: s,
    notes() {
      const st = s.stats();
      if (st.state === 'up') return [];
      return [
        `rate-limit store ${where} is ${st.state === 'slow' ? 'slow (its calls time out)' : st.state} since ${new Date(st.since).toISOString()}${st.lastError ? ` (${st.lastError})` : ''}: Global rate limits follow their failureMode`,
      ];
    },
    close: () => s.close(),
  };
}

function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}

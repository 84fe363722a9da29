/**
 * The shared store of `rateLimit.scope: Global` limits: Redis (or Valkey) through ioredis, one atomic Lua script
 * per lease. It lives where the pod-wide policy state lives (the primary, or the process itself with
 * `--workers 0`), so a pod holds one connection and every figure (state, latency, errors) is in one place.
 *
 * The script is GCRA (the generic cell rate algorithm): per key one number, the theoretical arrival time (TAT) in
 * ms on the server's clock (`TIME`, so the gateways' clocks never matter). Taking n tokens moves TAT by
 * n × interval; it is allowed while TAT − now ≤ burst × interval. A lease asks for up to `want` tokens and gets
 * as many as fit (0: the wait until the next one). The key expires when its TAT is in the past (a full bucket
 * needs no state).
 *
 * Every call has a hard timeout (ioredis `commandTimeout` plus our own race): a slow or stopped Redis costs a
 * request at most the timeout. Commands are never queued while disconnected (`enableOfflineQueue: false`): a
 * down store answers at once, and ioredis reconnects in the background with a capped backoff.
 */
import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import type { GlobalLeaseStore, Lease } from './policy-state.ts';

export interface RateLimitStoreSettings {
  /** redis://[user:password@]host:port[/db] or rediss:// (TLS). */
  url: string;
  /** Overrides the URL's password (from EDGEGATE_REDIS_PASSWORD or a file). */
  password?: string;
  /** Hard timeout of one store call. */
  timeoutMs: number;
  /** Key prefix, so several gateways (or other users) can share one Redis. */
  prefix?: string;
}

/** up: connected and answering; slow: connected, but its last call timed out; connecting / down: not connected. */
export type StoreState = 'connecting' | 'up' | 'slow' | 'down';

export interface StoreCallResult {
  result: 'ok' | 'timeout' | 'error' | 'unavailable';
  ms: number;
}

export interface RateLimitStoreStats {
  state: StoreState;
  /** Since when (ms since the epoch) the state is what it is. */
  since: number;
  lastError: string | undefined;
  /** Calls by result: ok, timeout, error (Redis answered with an error or the connection broke), unavailable (not connected: answered at once). */
  calls: Record<StoreCallResult['result'], number>;
  /** Leases by outcome: granted (≥ 1 token), empty (the limit is reached). */
  leases: { granted: number; empty: number };
  reconnects: number;
}

/**
 * KEYS[1] bucket; ARGV interval ms per token, burst, tokens wanted. Returns {granted, waitMs, remaining}. TAT is
 * written with every digit of the double (`%.17g`; Lua's tostring keeps 14, which at epoch-milliseconds would round
 * away a fast rate's interval).
 */
const GCRA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local room = burst * interval - (tat - now)
local n = math.floor(room / interval + 1e-9)
if n > want then n = want end
if n < 1 then
  return {0, math.ceil(interval - room), 0}
end
tat = tat + n * interval
redis.call('SET', KEYS[1], string.format('%.17g', tat), 'PX', math.ceil(tat - now) + 1000)
return {n, 0, math.floor((burst * interval - (tat - now)) / interval + 1e-9)}
`;

type Gcra = (key: string, interval: string, burst: string, want: string) => Promise<[number, number, number]>;

/** Keys longer than this (a long header value) are hashed: a bounded key size in Redis. */
const MAX_PLAIN_KEY = 200;

export class RateLimitStore implements GlobalLeaseStore {
  readonly settings: RateLimitStoreSettings;
  readonly #redis: Redis;
  readonly #onCall: ((c: StoreCallResult) => void) | undefined;
  readonly #onStateChange: ((s: StoreState, error?: string) => void) | undefined;
  #lastCallTimedOut = false;
  #everConnected = false;
  readonly #stats: RateLimitStoreStats = {
    state: 'connecting',
    since: Date.now(),
    lastError: undefined,
    calls: { ok: 0, timeout: 0, error: 0, unavailable: 0 },
    leases: { granted: 0, empty: 0 },
    reconnects: 0,
  };

  constructor(
    settings: RateLimitStoreSettings,
    opts: {
      onCall?: (c: StoreCallResult) => void;
      onStateChange?: (s: StoreState, error?: string) => void;
    } = {},
  ) {
    this.settings = settings;
    this.#onCall = opts.onCall;
    this.#onStateChange = opts.onStateChange;
    const options: RedisOptions = {
      commandTimeout: settings.timeoutMs,
      connectTimeout: Math.max(1_000, settings.timeoutMs * 10),
      enableOfflineQueue: false,
      // No INFO round trip before `ready` (it would run under commandTimeout and, on a busy host, flap the
      // connection at start); the first lease is the check.
      enableReadyCheck: false,
      maxRetriesPerRequest: 0,
      // Reconnect forever, 50 ms … 1 s apart: the limit comes back as soon as the store does.
      retryStrategy: (times) => Math.min(50 * times, 1_000),
      lazyConnect: false,
      ...(settings.password !== undefined ? { password: settings.password } : {}),
    };
    this.#redis = new Redis(settings.url, options);
    this.#redis.defineCommand('edgegateGcra', { numberOfKeys: 1, lua: GCRA });
    this.#redis.on('ready', () => {
      this.#everConnected = true;
      this.#lastCallTimedOut = false;
      this.#refresh();
    });
    this.#redis.on('error', (err: Error) => {
      this.#stats.lastError = err.message;
      this.#refresh();
    });
    this.#redis.on('close', () => this.#refresh());
    this.#redis.on('reconnecting', () => {
      this.#stats.reconnects++;
      this.#refresh();
    });
  }

  get state(): StoreState {
    return this.#stats.state;
  }

  /** The state from the connection's status and the last call; logged (onStateChange) when it changes. */
  #refresh(): void {
    const s: StoreState =
      this.#redis.status === 'ready'
        ? this.#lastCallTimedOut
          ? 'slow'
          : 'up'
        : this.#everConnected || this.#stats.reconnects > 0
          ? 'down'
          : 'connecting';
    if (this.#stats.state === s) return;
    this.#stats.state = s;
    this.#stats.since = Date.now();
    this.#onStateChange?.(this.#stats.state, this.#stats.lastError);
  }

  stats(): RateLimitStoreStats {
    return {
      ...this.#stats,
      calls: { ...this.#stats.calls },
      leases: { ...this.#stats.leases },
    };
  }

  /** Up to `want` tokens of `key` (rate `perMs`, bucket `burst`); undefined when the store did not answer in time. */
  async lease(key: string, perMs: number, burst: number, want: number): Promise<Lease | undefined> {
    const start = performance.now();
    if (this.#redis.status !== 'ready') return this.#done('unavailable', start, undefined);
    const k = `${this.settings.prefix ?? 'edgegate:rl:'}${key.length > MAX_PLAIN_KEY ? createHash('sha256').update(key).digest('base64url') : key}`;
    let timer: NodeJS.Timeout | undefined;
    try {
      const call = (this.#redis as unknown as { edgegateGcra: Gcra }).edgegateGcra(
        k,
        String(1 / perMs),
        String(burst),
        String(Math.max(1, Math.floor(want))),
      );
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), this.settings.timeoutMs);
      });
      const r = await Promise.race([call, timeout]);
      if (r === 'timeout') {
        call.catch(() => {});
        this.#stats.lastError = `no answer within ${this.settings.timeoutMs} ms`;
        return this.#done('timeout', start, undefined);
      }
      const [granted, waitMs, remaining] = r.map(Number) as [number, number, number];
      if (granted > 0) this.#stats.leases.granted++;
      else this.#stats.leases.empty++;
      return this.#done('ok', start, { granted, waitMs: granted > 0 ? 0 : Math.max(1, waitMs), remaining });
    } catch (err) {
      const message = (err as Error).message;
      this.#stats.lastError = message;
      return this.#done(/timed out/i.test(message) ? 'timeout' : 'error', start, undefined);
    } finally {
      clearTimeout(timer);
    }
  }

  #done(result: StoreCallResult['result'], start: number, lease: Lease | undefined): Lease | undefined {
    this.#stats.calls[result]++;
    if (result === 'timeout' || result === 'ok') {
      this.#lastCallTimedOut = result === 'timeout';
      this.#refresh();
    }
    this.#onCall?.({ result, ms: performance.now() - start });
    return lease;
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }
}

/**
 * The Redis side of `rateLimit.scope: Global` against a real redis-server: the GCRA script grants what fits and no
 * more, tells the wait when empty, refills at the rate, names long keys by their hash and lets idle keys expire;
 * with a password (and a wrong one) and the flag/environment parsing that feeds it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RateLimitStore } from '../../../src/cluster/rate-limit-store.ts';
import {
  rateLimitStoreSecrets,
  rateLimitStoreSettingsFrom,
} from '../../../src/control/rate-limit-store-setup.ts';
import { parseDurationSetting } from '../../../src/lib/duration.ts';
import { type RedisServer, startRedis } from '../../support/redis.ts';
import { makeTempDir, removeDir } from '../../support/tmp.ts';
import { waitFor } from '../../support/wait.ts';

let redis: RedisServer;
let store: RateLimitStore;
const PASSWORD = 'store-test-secret';

beforeAll(async () => {
  redis = await startRedis({ password: PASSWORD });
  store = new RateLimitStore({ url: redis.url, password: PASSWORD, timeoutMs: 200 });
  await waitFor(() => store.state === 'up', { message: 'the store connects', timeoutMs: 10_000 });
});

afterAll(async () => {
  await store?.close();
  await redis?.stop();
});

describe('RateLimitStore (GCRA in Redis)', () => {
  it('grants up to the burst, partially when fewer fit, then the wait until the next token', async () => {
    // 10 per second (one token per 100 ms), burst 5.
    const perMs = 10 / 1000;
    expect(await store.lease('k1', perMs, 5, 3)).toEqual({ granted: 3, waitMs: 0, remaining: 2 });
    expect(await store.lease('k1', perMs, 5, 3)).toEqual({ granted: 2, waitMs: 0, remaining: 0 });
    const empty = await store.lease('k1', perMs, 5, 3);
    expect(empty!.granted).toBe(0);
    expect(empty!.waitMs).toBeGreaterThan(0);
    expect(empty!.waitMs).toBeLessThanOrEqual(100);
    // Refill at the rate: a token is there again within the wait it named (a refused lease takes nothing).
    await waitFor(async () => (await store.lease('k1', perMs, 5, 1))!.granted === 1, {
      timeoutMs: 5_000,
      message: 'a token to refill',
    });
    // Another key is another bucket.
    expect((await store.lease('k2', perMs, 5, 5))!.granted).toBe(5);
  });

  it('keys expire once the bucket would be full again; a long key is stored by its hash', async () => {
    await store.lease('short-lived', 1, 2, 1); // 1000/s: full again within ~1 ms, key kept 1 s beyond
    const ttl = Number((await redis.command('PTTL edgegate:rl:short-lived')).slice(1));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1_100);
    const long = 'x'.repeat(5_000);
    expect((await store.lease(long, 0.001, 2, 1))!.granted).toBe(1);
    const keys = await redis.command("EVAL \"return #redis.call('KEYS', 'edgegate:rl:*')\" 0");
    expect(Number(keys.slice(1))).toBe(4);
    expect(await redis.command(`EXISTS edgegate:rl:${'x'.repeat(300)}`)).toBe(':0');
  });

  it('a wrong password: never up, every lease undefined at once', async () => {
    const bad = new RateLimitStore({ url: redis.url, password: 'wrong', timeoutMs: 100 });
    try {
      await waitFor(() => bad.stats().lastError !== undefined, {
        message: 'the AUTH error',
        timeoutMs: 10_000,
      });
      expect(bad.state).not.toBe('up');
      const t0 = performance.now();
      expect(await bad.lease('k', 0.01, 5, 1)).toBeUndefined();
      expect(performance.now() - t0).toBeLessThan(100);
      expect(bad.stats().calls.unavailable).toBeGreaterThanOrEqual(1);
    } finally {
      await bad.close();
    }
  });
});

describe('--redis-url, EDGEGATE_REDIS_PASSWORD, --redis-password-file, --redis-timeout', () => {
  const parse = (o: object, env: Record<string, string> = {}) =>
    rateLimitStoreSettingsFrom(o, env, (v, flag) => parseDurationSetting(v, flag));

  it('reads the URL, the timeout and the password from the environment or a file (trailing newline dropped)', () => {
    const dir = makeTempDir('redis-flags');
    try {
      writeFileSync(join(dir, 'pw'), 's3cret\n');
      expect(parse({ redisUrl: 'redis://r:6379/2', redisTimeout: '50ms' })).toEqual({
        url: 'redis://r:6379/2',
        timeoutMs: 50,
      });
      expect(parse({ redisUrl: 'rediss://r:6380' }, { EDGEGATE_REDIS_PASSWORD: 'p' })).toMatchObject({
        password: 'p',
        timeoutMs: 100,
      });
      expect(parse({ redisUrl: 'redis://r', redisPasswordFile: join(dir, 'pw') })?.password).toBe('s3cret');
      expect(parse({})).toBeUndefined();
    } finally {
      removeDir(dir);
    }
  });

  it('refuses bad values with the flag named', () => {
    expect(() => parse({ redisUrl: 'http://r:6379' })).toThrow(
      /--redis-url: expected a redis:\/\/ or rediss:\/\//,
    );
    expect(() => parse({ redisUrl: 'not a url' })).toThrow(/--redis-url: not a URL/);
    expect(() => parse({ redisUrl: 'redis://r', redisTimeout: '2s' })).toThrow(
      /--redis-timeout: expected 1ms … 200ms/,
    );
    expect(() => parse({ redisUrl: 'redis://r', redisPasswordFile: '/nonexistent/pw' })).toThrow(
      /--redis-password-file: cannot read it: ENOENT/,
    );
    expect(() =>
      parse({ redisUrl: 'redis://r', redisPasswordFile: '/x' }, { EDGEGATE_REDIS_PASSWORD: 'p' }),
    ).toThrow(/not both/);
    expect(() => parse({ redisPasswordFile: '/x' })).toThrow(/--redis-password-file needs --redis-url/);
  });

  it('the password (in a flag or in the URL) is a secret the debug views redact', () => {
    expect(
      rateLimitStoreSecrets({ url: 'redis://u:p%40ss@r:6379', password: 'other', timeoutMs: 1 }),
    ).toEqual(['other', 'p@ss', 'p%40ss']);
  });
});

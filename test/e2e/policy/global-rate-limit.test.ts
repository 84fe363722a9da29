/**
 * `rateLimit.scope: Global` with a real Redis (Debian's redis-server on loopback, no persistence) shared by THREE
 * gateway processes (`edgegate run --workers 1` each, primary + worker): one limit for all of them within ±10%
 * over a run split across them; Redis killed and restarted mid-run → failureMode Open serves, Closed answers 503,
 * and both enforce again once the store is back; a stopped Redis (SIGSTOP: connected, silent) costs a request at
 * most the store timeout, never a hang.
 */
import { Agent, request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scrapeMetrics, sumOf } from '../../support/prom-text.ts';
import { type RedisServer, startRedis } from '../../support/redis.ts';
import { waitFor } from '../../support/wait.ts';
import {
  call,
  type PolicyGateway,
  prefixRule,
  type RecordingUpstream,
  startPolicyGateway,
  startRecordingUpstream,
} from './helpers.ts';

const RATE = 60;
const BURST = 10;
const TIMEOUT_MS = 100;

let redis: RedisServer;
let up: RecordingUpstream;
const gws: PolicyGateway[] = [];

beforeAll(async () => {
  redis = await startRedis({ password: 'redis-test-secret' });
  up = await startRecordingUpstream('global-upstream');
  const routes = {
    global: {
      rules: [
        prefixRule('accuracy', '/accuracy', {
          rateLimit: { requests: RATE, period: '1s', burst: BURST, scope: 'Global' },
        }),
        // Per client key: each phase of a test uses a fresh key, so a worker's memory of an empty bucket (it
        // refuses locally until the store's wait is over) never stands in for the store.
        prefixRule('open', '/open', {
          rateLimit: {
            requests: 2,
            period: '60s',
            key: 'Header',
            header: 'x-client',
            scope: 'Global',
            failureMode: 'Open',
          },
        }),
        prefixRule('closed', '/closed', {
          rateLimit: { requests: 1000, period: '1s', scope: 'Global', failureMode: 'Closed' },
        }),
        prefixRule('paused-open', '/paused-open', {
          rateLimit: { requests: 1000, period: '1s', scope: 'Global', failureMode: 'Open' },
        }),
        prefixRule('paused-closed', '/paused-closed', {
          rateLimit: { requests: 1000, period: '1s', scope: 'Global', failureMode: 'Closed' },
        }),
        prefixRule('node', '/node', { rateLimit: { requests: 2, period: '60s' } }),
      ],
    },
  };
  // Three gateways: the password comes from the environment, the URL from the flag.
  for (let i = 0; i < 3; i++)
    gws.push(
      await startPolicyGateway({
        services: { api: [{ port: up.port }] },
        routes,
        workers: 1,
        args: ['--redis-url', redis.url, '--redis-timeout', `${TIMEOUT_MS}ms`],
        env: { EDGEGATE_REDIS_PASSWORD: 'redis-test-secret' },
      }),
    );
}, 120_000);

afterAll(async () => {
  await Promise.all(gws.map((g) => g.stop()));
  await up?.close();
  await redis?.stop();
});

const RULE = (r: string) => `default/global#${r}`;

async function readyz(g: PolicyGateway): Promise<{ ready: boolean; notes: string[] }> {
  return (await (await fetch(`${g.gw.adminUrl}/readyz`)).json()) as { ready: boolean; notes: string[] };
}

/** Every gateway's /readyz: ready either way, with a note naming the store exactly while it is not connected. */
async function storeNoted(down: boolean): Promise<void> {
  await waitFor(
    async () => {
      for (const g of gws) {
        const r = await readyz(g);
        expect(r.ready).toBe(true);
        if (r.notes.some((n) => n.startsWith('rate-limit store')) !== down) return false;
      }
      return true;
    },
    { timeoutMs: 20_000, message: `every gateway sees the store ${down ? 'down' : 'up'}` },
  );
}

async function metric(g: PolicyGateway, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sumOf(await scrapeMetrics(g.gw.adminUrl), name, labels);
}

describe('global rate limit (Redis) across three gateways', () => {
  it('a Node-scope rule stays per gateway, a Global one is shared (the store is up, /readyz has no note)', async () => {
    await storeNoted(false);
    // Node scope: 2 per minute on EACH gateway.
    for (const g of gws) {
      const s = [];
      for (let i = 0; i < 3; i++) s.push((await call(g.gw.port, '/node')).status);
      expect(s).toEqual([200, 200, 429]);
    }
    // Global: 2 per minute for the three together, whichever gateway is asked.
    expect(await spread('/open', 'a', 6)).toEqual([200, 200, 429, 429, 429, 429]);
    for (const g of gws) expect(await metric(g, 'edgegate_rate_limit_store_up')).toBe(1);
    const limited = await Promise.all(
      gws.map((g) =>
        metric(g, 'edgegate_rate_limit_global_decisions_total', { rule: RULE('open'), outcome: 'limited' }),
      ),
    );
    expect(limited).toEqual([1, 1, 2]);
  });

  it('holds one configured rate within ±10% at 2× the limit, the run split over three gateways', async () => {
    const perGateway = 2;
    const connections = perGateway * gws.length;
    const offered = 2 * RATE;
    const durationMs = 9_000;
    const interval = (1000 * connections) / offered;
    const agents = Array.from({ length: connections }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
    const statuses: number[] = [];
    const byGateway = gws.map(() => 0);
    const started = performance.now();
    const deadline = started + durationMs;
    await Promise.all(
      agents.map(async (agent, c) => {
        const g = c % gws.length;
        let k = 0;
        for (;;) {
          const due = started + (c * interval) / connections + k * interval;
          if (due >= deadline) break;
          const wait = due - performance.now();
          if (wait > 0) await sleep(wait);
          k++;
          const s = await get(agent, gws[g]!.gw.port, '/accuracy');
          statuses.push(s);
          if (s === 200) byGateway[g]!++;
        }
      }),
    );
    const elapsedS = (performance.now() - started) / 1000;
    for (const a of agents) a.destroy();
    const admitted = statuses.filter((s) => s === 200).length;
    const limited = statuses.filter((s) => s === 429).length;
    const other = statuses.length - admitted - limited;
    const admittedRate = (admitted - BURST) / elapsedS;
    console.log(
      `global rate limit accuracy: offered ${statuses.length} (${(statuses.length / elapsedS).toFixed(1)}/s) over ${elapsedS.toFixed(2)} s to 3 gateways; ` +
        `admitted ${admitted} (burst ${BURST} + ${admittedRate.toFixed(1)}/s vs configured ${RATE}/s: ${(((admittedRate - RATE) / RATE) * 100).toFixed(1)}%), ` +
        `limited ${limited}, other ${other}; admitted per gateway ${byGateway.join(' / ')}`,
    );
    expect(other).toBe(0);
    expect(statuses.length).toBeGreaterThan(1.5 * RATE * (durationMs / 1000));
    // Each gateway alone would admit the whole rate: three times the limit without the shared store.
    for (const n of byGateway) expect(n).toBeGreaterThan(0);
    expect(admittedRate).toBeGreaterThanOrEqual(RATE * 0.9);
    expect(admittedRate).toBeLessThanOrEqual(RATE * 1.1);
    // The counters are exact: every decision of the run, summed over the gateways.
    const sum = async (outcome: string) =>
      (
        await Promise.all(
          gws.map((g) =>
            metric(g, 'edgegate_rate_limit_global_decisions_total', { rule: RULE('accuracy'), outcome }),
          ),
        )
      ).reduce((a, b) => a + b, 0);
    expect(await sum('allowed')).toBe(admitted);
    expect(await sum('limited')).toBe(limited);
  }, 60_000);

  it('Redis killed mid-run: failureMode Open serves past the limit, Closed answers 503; after the restart both enforce again', async () => {
    await redis.kill();
    await storeNoted(true);
    // Open: served (and counted) past the limit of 2.
    expect(await spread('/open', 'b', 6)).toEqual([200, 200, 200, 200, 200, 200]);
    for (const g of gws) {
      expect(await metric(g, 'edgegate_rate_limit_store_up')).toBe(0);
      // Closed: 503 with its own code, never a 429 the client did not earn.
      const a = await call(g.gw.port, '/closed');
      expect(a.status).toBe(503);
      expect(a.json<{ error: string }>().error).toBe('EDGEGATE_RATE_LIMIT_UNAVAILABLE');
      expect(a.headers['retry-after']).toBe('1');
      expect(
        await metric(g, 'edgegate_rate_limit_global_decisions_total', {
          rule: RULE('open'),
          outcome: 'failed_open',
        }),
      ).toBeGreaterThanOrEqual(2);
      expect(
        await metric(g, 'edgegate_rate_limit_global_decisions_total', {
          rule: RULE('closed'),
          outcome: 'failed_closed',
        }),
      ).toBeGreaterThanOrEqual(1);
    }
    // The fail-open lines are rate-limited in the log: one per rule per 10 s, with the count.
    expect(gws[0]!.gw.output()).toContain('rate-limit store unavailable');
    const password = 'redis-test-secret';
    for (const g of gws) expect(g.gw.output()).not.toContain(password);

    await redis.restart();
    await storeNoted(false);
    // Reconnected: Closed serves again on every gateway…
    for (const g of gws)
      await waitFor(async () => (await call(g.gw.port, '/closed')).status === 200, {
        timeoutMs: 10_000,
        message: 'the Closed rule serves again',
      });
    // …and Open enforces again, one bucket of 2 for the three gateways.
    expect(await spread('/open', 'c', 5)).toEqual([200, 200, 429, 429, 429]);
    for (const g of gws) expect(await metric(g, 'edgegate_rate_limit_store_up')).toBe(1);
  }, 90_000);

  it('a stopped Redis (SIGSTOP: connected, silent) answers within the timeout, never hangs', async () => {
    redis.pause();
    try {
      for (const g of gws) {
        const t0 = performance.now();
        const closed = await call(g.gw.port, '/paused-closed');
        const open = await call(g.gw.port, '/paused-open');
        const ms = performance.now() - t0;
        expect(closed.status).toBe(503);
        expect(open.status).toBe(200);
        // Two requests, each waiting at most one store timeout (100 ms) plus its own work: far from a hang.
        expect(ms).toBeLessThan(5_000);
        expect(
          await metric(g, 'edgegate_rate_limit_store_calls_total', { result: 'timeout' }),
        ).toBeGreaterThan(0);
        // Connected but silent: /readyz (still ready) and the gauge say so.
        const r = await readyz(g);
        expect(r.ready).toBe(true);
        expect(r.notes.join('\n')).toMatch(/rate-limit store redis:\/\/127\.0\.0\.1:\d+\/? is slow/);
        expect(await metric(g, 'edgegate_rate_limit_store_up')).toBe(0);
      }
    } finally {
      redis.resume();
    }
    for (const g of gws)
      await waitFor(async () => (await call(g.gw.port, '/paused-closed')).status === 200, {
        timeoutMs: 10_000,
        message: 'the Closed rule serves again after SIGCONT',
      });
    await storeNoted(false);
  }, 60_000);
});

/** `n` requests with `x-client: key`, round-robin over the three gateways: their statuses. */
async function spread(path: string, key: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++)
    out.push((await call(gws[i % 3]!.gw.port, path, { headers: { 'x-client': key } })).status);
  return out;
}

function get(agent: Agent, port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, headers: { host: 'policy.test' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Pod-wide rate limits through `edgegate run --workers 2`: 429 with Retry-After and the IETF RateLimit headers,
 * buckets per header value, and the accuracy of the shared budget: offered at 2× the limit for 10 s over 8
 * connections (spread over both workers by the kernel), the admitted rate stays within ±10% of the configured one.
 */
import { Agent, request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scrapeMetrics, sumOf } from '../../support/prom-text.ts';
import {
  call,
  type PolicyGateway,
  prefixRule,
  type RecordingUpstream,
  startPolicyGateway,
  startRecordingUpstream,
  total,
} from './helpers.ts';

let up: RecordingUpstream;
let pg: PolicyGateway;

const RATE = 100;
const BURST = 20;

beforeAll(async () => {
  up = await startRecordingUpstream('limited-upstream');
  pg = await startPolicyGateway({
    services: { api: [{ port: up.port }] },
    routes: {
      limits: {
        rules: [
          prefixRule('small', '/small', { rateLimit: { requests: 3, period: '10s' } }),
          prefixRule('per-key', '/per-key', {
            rateLimit: { requests: 2, period: '10s', key: 'Header', header: 'x-api-key' },
          }),
          prefixRule('per-client', '/per-client', {
            rateLimit: { requests: 2, period: '10s', key: 'ClientAddress' },
          }),
          prefixRule('accuracy', '/accuracy', { rateLimit: { requests: RATE, period: '1s', burst: BURST } }),
        ],
      },
    },
  });
});

afterAll(async () => {
  await pg?.stop();
  await up?.close();
});

/**
 * One rule's `edgegate_policy_*` counter on the admin /metrics (the primary's sum over both workers). Fails if the
 * rule has no series at all, so an expected 0 cannot pass on a missing label.
 */
async function ruleMetric(name: string, rule: string): Promise<number> {
  const prom = await scrapeMetrics(pg.gw.adminUrl);
  const label = `default/limits#${rule}`;
  expect(
    prom.samples.some((x) => x.name === name && x.labels.rule === label),
    `${name}{rule="${label}"} exposed`,
  ).toBe(true);
  return sumOf(prom, name, { rule: label });
}

describe('rate limits', () => {
  it('answers 429 with Retry-After and RateLimit / RateLimit-Policy beyond the limit, pod-wide', async () => {
    const before = up.seen.length;
    const statuses: number[] = [];
    let limited: Awaited<ReturnType<typeof call>> | undefined;
    for (let i = 0; i < 8; i++) {
      const a = await call(pg.gw.port, '/small');
      statuses.push(a.status);
      if (a.status === 429) limited ??= a;
    }
    // 3 per 10 s for the whole pod, whichever worker each fresh connection reached.
    expect(statuses.filter((s) => s === 200)).toHaveLength(3);
    expect(up.seen.length - before).toBe(3);
    expect(limited!.json<{ error: string }>().error).toBe('EDGEGATE_RATE_LIMITED');
    const retryAfter = Number(limited!.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(10);
    expect(limited!.headers['ratelimit-policy']).toBe('"default/limits#small";q=3;w=10');
    expect(limited!.headers.ratelimit).toBe(`"default/limits#small";r=0;t=${retryAfter}`);
    // /metrics counts exactly the 429s and the 200s this test received, summed over both workers.
    expect(await ruleMetric('edgegate_policy_rate_limited_total', 'small')).toBe(
      statuses.filter((s) => s === 429).length,
    );
    expect(await ruleMetric('edgegate_policy_passed_total', 'small')).toBe(
      statuses.filter((s) => s === 200).length,
    );
  });

  it('keeps a bucket per header value, and one for requests without the header', async () => {
    const all: number[] = [];
    const run = async (key: string | undefined) => {
      const out: number[] = [];
      for (let i = 0; i < 4; i++)
        out.push((await call(pg.gw.port, '/per-key', { headers: key ? { 'x-api-key': key } : {} })).status);
      all.push(...out);
      return out;
    };
    expect(await run('alice')).toEqual([200, 200, 429, 429]);
    expect(await run('bob')).toEqual([200, 200, 429, 429]);
    expect(await run(undefined)).toEqual([200, 200, 429, 429]);
    expect(await ruleMetric('edgegate_policy_rate_limited_total', 'per-key')).toBe(
      all.filter((s) => s === 429).length,
    );
    expect(await ruleMetric('edgegate_policy_passed_total', 'per-key')).toBe(
      all.filter((s) => s === 200).length,
    );
  });

  it('keys by the peer address: a spoofed X-Forwarded-For from an untrusted peer does not buy a new bucket', async () => {
    const out: number[] = [];
    for (let i = 0; i < 5; i++)
      out.push(
        (await call(pg.gw.port, '/per-client', { headers: { 'x-forwarded-for': `203.0.113.${i}` } })).status,
      );
    expect(out).toEqual([200, 200, 429, 429, 429]);
    expect(await ruleMetric('edgegate_policy_rate_limited_total', 'per-client')).toBe(
      out.filter((s) => s === 429).length,
    );
  });

  it('holds the configured rate within ±10% at 2× the limit for 10 s across 2 workers', async () => {
    const connections = 8;
    const offered = 2 * RATE;
    const durationMs = 10_000;
    const perConnIntervalMs = (1000 * connections) / offered;
    const agents = Array.from({ length: connections }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
    const statuses: number[] = [];
    const started = performance.now();
    const deadline = started + durationMs;
    // Open-loop pacing per connection: request k of a connection is due at start + k·interval (no catch-up burst).
    await Promise.all(
      agents.map(async (agent, c) => {
        let k = 0;
        for (;;) {
          const due = started + (c * perConnIntervalMs) / connections + k * perConnIntervalMs;
          if (due >= deadline) break;
          const wait = due - performance.now();
          if (wait > 0) await sleep(wait);
          k++;
          statuses.push(await get(agent, '/accuracy'));
        }
      }),
    );
    const elapsedS = (performance.now() - started) / 1000;
    for (const a of agents) a.destroy();
    const admitted = statuses.filter((s) => s === 200).length;
    const limited = statuses.filter((s) => s === 429).length;
    const other = statuses.length - admitted - limited;
    // The bucket starts full: BURST requests are the initial allowance, the rest is the sustained rate.
    const admittedRate = (admitted - BURST) / elapsedS;
    const w = await pg.workerPolicies();
    const perWorker = w.map(
      (x) =>
        (x.rules['default/limits#accuracy']?.passed ?? 0) +
        (x.rules['default/limits#accuracy']?.rateLimited ?? 0),
    );
    console.log(
      `rate limit accuracy: offered ${statuses.length} requests (${(statuses.length / elapsedS).toFixed(1)}/s) over ${elapsedS.toFixed(2)} s; ` +
        `admitted ${admitted} (burst ${BURST} + ${admittedRate.toFixed(1)}/s vs configured ${RATE}/s: ${(((admittedRate - RATE) / RATE) * 100).toFixed(1)}%), ` +
        `limited ${limited}, other ${other}; requests per worker ${perWorker.join(' / ')}`,
    );
    expect(other).toBe(0);
    expect(statuses.length).toBeGreaterThan(1.5 * RATE * (durationMs / 1000));
    expect(admittedRate).toBeGreaterThanOrEqual(RATE * 0.9);
    expect(admittedRate).toBeLessThanOrEqual(RATE * 1.1);
    expect(total(w, 'default/limits#accuracy', (c) => c.rateLimited)).toBe(limited);
    // The statistical part is the admitted rate; the counters are exact: every 429 and every 200 of the run.
    expect(await ruleMetric('edgegate_policy_rate_limited_total', 'accuracy')).toBe(limited);
    expect(await ruleMetric('edgegate_policy_passed_total', 'accuracy')).toBe(admitted);
  }, 60_000);
});

function get(agent: Agent, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: pg.gw.port, path, agent, headers: { host: 'policy.test' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

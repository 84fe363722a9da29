/**
 * Load shedding through `edgegate run --workers 2`: the per-rule concurrency cap, and the overload guard —
 * with both workers' event loops held busy through the test hook (EDGEGATE_TEST_HOOKS=1, admin
 * /debug/test/busy), High-priority routes keep answering while Low-priority ones get 503 with Retry-After.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scrapeMetrics, sumOf } from '../../support/prom-text.ts';
import { waitFor } from '../../support/wait.ts';
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

beforeAll(async () => {
  up = await startRecordingUpstream('shed-upstream');
  pg = await startPolicyGateway({
    services: { api: [{ port: up.port }] },
    routes: {
      shed: {
        rules: [
          prefixRule('checkout', '/checkout', { priority: 'High' }),
          prefixRule('recommendations', '/recommendations', { priority: 'Low' }),
          // Critical: never shed by the overload guard, so this rule shows the concurrency cap alone.
          prefixRule('slow', '/slow', { maxConcurrentRequests: 2, priority: 'Critical' }),
        ],
      },
    },
    args: ['--overload-delay', '60ms'],
    env: { EDGEGATE_TEST_HOOKS: '1' },
  });
});

afterAll(async () => {
  await pg?.stop();
  await up?.close();
});

describe('load shedding', () => {
  it('caps requests in flight per rule (divided among the workers) with 503 + Retry-After, and frees the slots', async () => {
    const slow = 'default/shed#slow';
    const metrics = () => scrapeMetrics(pg.gw.adminUrl);
    // undefined when the rule has no series: an expected 0 must not pass on a missing one.
    const inFlight = async () =>
      (await metrics()).samples.find((x) => x.name === 'edgegate_policy_in_flight' && x.labels.rule === slow)
        ?.value;
    expect(await inFlight()).toBe(0);
    let settled = false;
    const pending = Promise.all(
      Array.from({ length: 8 }, () => call(pg.gw.port, '/slow?delay=1500')),
    ).finally(() => {
      settled = true;
    });
    // Sample the gauge on /metrics for as long as the requests are out: the admitted ones are all held for 1.5 s.
    const gauge: number[] = [];
    await waitFor(
      async () => {
        if (settled) return true;
        gauge.push((await inFlight()) ?? Number.NaN);
        return false;
      },
      { timeoutMs: 15_000, intervalMs: 20, message: 'the 8 concurrent requests answered' },
    );
    const answers = await pending;
    const ok = answers.filter((a) => a.status === 200).length;
    const capped = answers.filter((a) => a.status === 503);
    console.log(
      `concurrency cap 2 (1 per worker), 8 concurrent: ${ok} served, ${capped.length} refused (${[...new Set(capped.map((a) => a.json<{ error: string }>().error))].join(', ')})`,
    );
    expect(ok).toBeGreaterThanOrEqual(1);
    expect(ok).toBeLessThanOrEqual(2);
    expect(capped.length).toBe(8 - ok);
    expect(capped[0]!.json<{ error: string }>().error).toBe('EDGEGATE_CONCURRENCY_LIMITED');
    expect(capped[0]!.headers['retry-after']).toBe('1');
    // While they were held, edgegate_policy_in_flight (summed over the workers by the primary) showed exactly the
    // requests admitted under the cap — never more.
    console.log(`edgegate_policy_in_flight while held: ${gauge.join(',')}`);
    expect(Math.max(...gauge)).toBe(ok);
    // Every refusal is counted under cause="concurrency" (none under "overload"), every admitted one as passed.
    const held = await metrics();
    expect(sumOf(held, 'edgegate_policy_shed_total', { rule: slow, cause: 'concurrency' })).toBe(
      capped.length,
    );
    expect(sumOf(held, 'edgegate_policy_shed_total', { rule: slow, cause: 'overload' })).toBe(0);
    expect(sumOf(held, 'edgegate_policy_passed_total', { rule: slow })).toBe(ok);
    // Slots are released when the responses close, which can be just after the client has them.
    await waitFor(async () => total(await pg.workerPolicies(), slow, (c) => c.inFlight) === 0, {
      timeoutMs: 10_000,
      message: 'the slots released in the workers',
    });
    expect((await call(pg.gw.port, '/slow')).status).toBe(200);
    expect(sumOf(await metrics(), 'edgegate_policy_passed_total', { rule: slow })).toBe(ok + 1);
    await waitFor(async () => (await inFlight()) === 0, {
      timeoutMs: 10_000,
      message: 'edgegate_policy_in_flight back to 0',
    });
  });

  it('under overload (event loops held busy), High-priority routes answer and Low-priority ones get 503', async () => {
    await waitFor(async () => (await call(pg.gw.port, '/recommendations')).status === 200, {
      timeoutMs: 10_000,
      message: 'Low route answers before the overload',
    });
    // 100 ms blocks against a 60 ms threshold: level 1 (≥ 1×) or 2 (≥ 2×) on a loaded machine — both shed Low —
    // far below level 3 (≥ 4× = 240 ms), which would shed High too.
    const busy = await fetch(`${pg.gw.adminUrl}/debug/test/busy?ms=8000&block=100`);
    expect(busy.status).toBe(200);
    expect(((await busy.json()) as { workers: number }).workers).toBe(2);
    // Each worker measures its own loop: wait until both shed (fresh connections reach both).
    await waitFor(
      async () => {
        const w = await pg.workerPolicies().catch(() => []);
        const shedding = w.filter((x) => (x.rules['default/shed#recommendations']?.shed ?? 0) > 0).length;
        if (shedding < 2)
          await Promise.all(Array.from({ length: 4 }, () => call(pg.gw.port, '/recommendations')));
        return shedding === 2;
      },
      { timeoutMs: 6000, intervalMs: 50, message: 'both workers shed the Low route' },
    );
    const high: number[] = [];
    const low: Awaited<ReturnType<typeof call>>[] = [];
    for (let i = 0; i < 10; i++) {
      const [h, l] = await Promise.all([call(pg.gw.port, '/checkout'), call(pg.gw.port, '/recommendations')]);
      high.push(h.status);
      low.push(l);
    }
    const guard = (await (await fetch(`${pg.gw.adminUrl}/debug/workers`)).json()) as {
      workers: { stats?: { policies?: { overload: { level: number; delayMs: number } } } }[];
    };
    console.log(
      `under overload: High ${high.join(',')}; Low ${low.map((a) => a.status).join(',')}; guard per worker ${guard.workers
        .map(
          (w) =>
            `level ${w.stats?.policies?.overload.level} at p99 delay ${w.stats?.policies?.overload.delayMs} ms`,
        )
        .join('; ')}`,
    );
    expect(high.every((s) => s === 200)).toBe(true);
    expect(low.every((a) => a.status === 503)).toBe(true);
    expect(low[0]!.json<{ error: string }>().error).toBe('EDGEGATE_OVERLOADED');
    expect(Number(low[0]!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // When the pressure ends, the Low route comes back.
    await waitFor(async () => (await call(pg.gw.port, '/recommendations')).status === 200, {
      timeoutMs: 20_000,
      intervalMs: 200,
      message: 'Low route answers again after the overload',
    });
  }, 60_000);

  it('the test hook exists only with EDGEGATE_TEST_HOOKS=1', async () => {
    const other = await startPolicyGateway({
      services: { api: [{ port: up.port }] },
      routes: { plain: { rules: [prefixRule('any', '/')] } },
      workers: 1,
    });
    try {
      expect((await fetch(`${other.gw.adminUrl}/debug/test/busy?ms=100`)).status).toBe(404);
    } finally {
      await other.stop();
    }
  });
});

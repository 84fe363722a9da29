/**
 * The overload guard's memory threshold (`--overload-memory`) through `edgegate run --workers 2`: with the
 * threshold below any worker's resident memory, each worker is at overload level 2 after its first window, so
 * Low and Normal rules are shed (503 EDGEGATE_OVERLOADED + Retry-After) and High and Critical ones are served.
 * The event-loop delay signal is off here, so memory alone decides.
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
} from './helpers.ts';

let up: RecordingUpstream;
let pg: PolicyGateway;

beforeAll(async () => {
  up = await startRecordingUpstream('memory-upstream');
  pg = await startPolicyGateway({
    services: { api: [{ port: up.port }] },
    routes: {
      memory: {
        rules: [
          prefixRule('low', '/low', { priority: 'Low' }),
          // No policies at all: Normal by default, and shed like any Normal rule.
          prefixRule('normal', '/normal'),
          prefixRule('high', '/high', { priority: 'High' }),
          prefixRule('critical', '/critical', { priority: 'Critical' }),
          prefixRule('capped', '/capped', { priority: 'Critical', maxConcurrentRequests: 4 }),
        ],
      },
    },
    args: ['--overload-memory', '1Mi', '--overload-delay', '0'],
  });
});

afterAll(async () => {
  await pg?.stop();
  await up?.close();
});

interface WorkersView {
  workers: { pid: number; stats?: { policies?: { overload: { level: number; rssBytes: number } } } }[];
}

describe('overload guard, memory threshold', () => {
  it('sheds Low and Normal rules and serves High and Critical once resident memory is over the threshold', async () => {
    // Each worker samples its RSS every window (500 ms): wait until both report level 2.
    const overload = await waitFor(
      async () => {
        const view = (await (await fetch(`${pg.gw.adminUrl}/debug/workers`)).json()) as WorkersView;
        const levels = view.workers.map((w) => w.stats?.policies?.overload);
        return levels.length === 2 && levels.every((o) => o?.level === 2) && levels;
      },
      { timeoutMs: 10_000, message: 'both workers at overload level 2' },
    );
    for (const o of overload) expect(o!.rssBytes).toBeGreaterThan(1024 * 1024);

    const before = up.seen.length;
    for (let i = 0; i < 6; i++) {
      for (const path of ['/low', '/normal']) {
        const a = await call(pg.gw.port, path);
        expect(a.status, path).toBe(503);
        expect(a.json<{ error: string }>().error).toBe('EDGEGATE_OVERLOADED');
        expect(Number(a.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      }
      for (const path of ['/high', '/critical'])
        expect((await call(pg.gw.port, path)).status, path).toBe(200);
    }
    expect(up.seen.length - before).toBe(12);

    const prom = await scrapeMetrics(pg.gw.adminUrl);
    expect(sumOf(prom, 'edgegate_overload_level')).toBe(2);
    expect(sumOf(prom, 'edgegate_policy_shed_total', { cause: 'overload' })).toBe(12);
  });

  it('edgegate_policy_in_flight shows the requests held under a concurrency cap, and 0 once they are done', async () => {
    const inFlight = async () => sumOf(await scrapeMetrics(pg.gw.adminUrl), 'edgegate_policy_in_flight');
    expect(await inFlight()).toBe(0);
    // Two slow requests fit the cap (4, two per worker) wherever the kernel puts them.
    const held = [call(pg.gw.port, '/capped?delay=3000'), call(pg.gw.port, '/capped?delay=3000')];
    await waitFor(async () => (await inFlight()) === 2, {
      timeoutMs: 10_000,
      message: 'two requests in flight',
    });
    expect((await Promise.all(held)).map((a) => a.status)).toEqual([200, 200]);
    // Released when each response closes, just after the client has it.
    await waitFor(async () => (await inFlight()) === 0, { timeoutMs: 10_000, message: 'slots released' });
  });
});

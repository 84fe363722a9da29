/**
 * The worker watchdog, against a real gateway with two workers: a worker whose event loop is blocked for longer
 * than --worker-block-timeout (here by the EDGEGATE_TEST_HOOKS busy hook, standing for a request that blocks) is
 * reported (log line, /readyz notes, edgegate_worker_blocked_total) and replaced by the primary while the other
 * worker keeps serving; a worker that is merely busy for less than the timeout is never killed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EchoUpstream,
  type GatewayProcess,
  startEcho,
  startGateway,
  writeOneServiceConfig,
} from '../../support/gateway.ts';
import { scrapeMetrics, sumOf } from '../../support/prom-text.ts';
import { waitFor } from '../../support/wait.ts';

interface WorkersView {
  restarts: number;
  blockedReplacements: number;
  workers: {
    slot: number;
    pid?: number;
    state: string;
    lastError?: string;
    stats?: { connections: number };
  }[];
}

let echo: EchoUpstream;
let gw: GatewayProcess;
let dir: string;

const workers = async (): Promise<WorkersView> =>
  (await (await fetch(`${gw.adminUrl}/debug/workers`)).json()) as WorkersView;
const busy = (slot: number, ms: number, block: number) =>
  fetch(`${gw.adminUrl}/debug/test/busy?slot=${slot}&ms=${ms}&block=${block}`).then((r) => r.json());
const busyOver = () => gw.output().split('test hook: busy period over').length - 1;

beforeAll(async () => {
  echo = await startEcho('watched');
  dir = mkdtempSync(join(tmpdir(), 'eg-watchdog-'));
  const { routes, catalog } = writeOneServiceConfig(dir, echo.port);
  gw = await startGateway(
    ['--routes', routes, '--catalog', catalog, '--workers', '2', '--worker-block-timeout', '2s'],
    { env: { EDGEGATE_TEST_HOOKS: '1' } },
  );
  await waitFor(async () => (await workers()).workers.every((w) => w.state === 'listening'), {
    timeoutMs: 20_000,
  });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  await echo?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('worker watchdog', () => {
  it('never kills a worker that is busy in blocks shorter than the timeout', async () => {
    const before = await workers();
    // 3 s of work in 1 s blocks: the loop turns between blocks, so heartbeats get through.
    await busy(0, 3000, 1000);
    await waitFor(() => busyOver() === 1, { timeoutMs: 20_000, diagnostics: () => gw.output() });
    const after = await workers();
    expect(after.workers.map((w) => w.pid)).toEqual(before.workers.map((w) => w.pid));
    expect(after.blockedReplacements).toBe(0);
    expect(gw.output()).not.toContain('worker event loop blocked');
  });

  it('replaces a worker whose loop is blocked beyond the timeout; the other keeps serving', async () => {
    // Keep-alive connections spread by the kernel over both workers (SO_REUSEPORT).
    const clients = Array.from({ length: 8 }, () => new Client(gw.url, { pipelining: 1 }));
    try {
      for (const c of clients) expect((await c.request({ path: '/x', method: 'GET' })).statusCode).toBe(200);
      const view = await waitFor(
        async () => {
          const w = await workers();
          const counts = w.workers.map((x) => x.stats?.connections ?? 0);
          return counts.reduce((a, b) => a + b, 0) >= 8 ? w : undefined;
        },
        { timeoutMs: 10_000 },
      );
      // Block the worker holding fewer of our connections: the other one holds at least four.
      const [blocked, healthy] =
        (view.workers[0]!.stats?.connections ?? 0) <= (view.workers[1]!.stats?.connections ?? 0)
          ? [view.workers[0]!, view.workers[1]!]
          : [view.workers[1]!, view.workers[0]!];
      const healthyConnections = healthy.stats!.connections;
      expect(healthyConnections).toBeGreaterThanOrEqual(4);

      await busy(blocked.slot, 8000, 8000);
      // During the block: every connection of the healthy worker is answered.
      const answers = await Promise.allSettled(
        clients.map(async (c) => {
          const r = await c.request({ path: '/during', method: 'GET', headersTimeout: 15_000 });
          await r.body.text();
          return r.statusCode;
        }),
      );
      const ok = answers.filter((a) => a.status === 'fulfilled' && a.value === 200).length;
      expect(ok).toBeGreaterThanOrEqual(healthyConnections);

      const replaced = await waitFor(
        async () => {
          const w = await workers();
          const slot = w.workers.find((x) => x.slot === blocked.slot);
          return slot?.pid !== undefined && slot.pid !== blocked.pid && slot.state === 'listening'
            ? w
            : undefined;
        },
        { timeoutMs: 20_000, diagnostics: () => gw.output() },
      );
      expect(replaced.blockedReplacements).toBe(1);
      expect(replaced.workers.find((x) => x.slot === healthy.slot)?.pid).toBe(healthy.pid);
      expect(replaced.workers.find((x) => x.slot === blocked.slot)?.lastError).toMatch(
        /event loop blocked for \d+\.\d s; replaced/,
      );
      expect(gw.output()).toContain('worker event loop blocked; replacing it');

      const metrics = await scrapeMetrics(gw.adminUrl);
      expect(sumOf(metrics, 'edgegate_worker_blocked_total')).toBe(1);
      expect(sumOf(metrics, 'edgegate_worker_restarts_total')).toBeGreaterThanOrEqual(1);
      expect(metrics.samples.filter((s) => s.name === 'edgegate_worker_heartbeat_age_seconds')).toHaveLength(
        2,
      );

      const ready = (await (await fetch(`${gw.adminUrl}/readyz`)).json()) as {
        ready: boolean;
        notes: string[];
      };
      expect(ready.ready).toBe(true);
      expect(ready.notes.join('\n')).toMatch(
        new RegExp(
          `worker slot ${blocked.slot} \\(pid ${blocked.pid}\\) was replaced at .*event loop was blocked`,
        ),
      );
      // The new worker serves.
      const fresh = new Client(gw.url);
      for (let i = 0; i < 4; i++)
        expect((await fresh.request({ path: '/y', method: 'GET' })).statusCode).toBe(200);
      await fresh.close();
    } finally {
      await Promise.all(clients.map((c) => c.destroy()));
    }
  }, 60_000);
});

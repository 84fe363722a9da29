/**
 * The primary's bookkeeping against real worker processes that speak the protocol but let the test decide when
 * they acknowledge (fixtures/fake-worker.ts): readiness per worker version, hand-off of the current table to a
 * replacement before it listens, crash-loop backoff and the restart count.
 */

import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, test } from 'vitest';
import winston from 'winston';
import { ClusterPrimary } from '../../../src/cluster/primary.ts';
import type { TableData } from '../../../src/table/types.ts';
import { waitFor } from './helpers.ts';

const exec = fileURLToPath(new URL('./fixtures/fake-worker.ts', import.meta.url));

function table(version: number): TableData {
  return { version, hash: `h${version}`, entries: [], hosts: [], clusters: [] } as TableData;
}

function capturingLogger(): { log: winston.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(String(chunk)));
      cb();
    },
  });
  const log = winston.createLogger({
    level: 'debug',
    format: winston.format.json(),
    transports: [new winston.transports.Stream({ stream })],
  });
  return { log, lines };
}

let primary: ClusterPrimary | undefined;
afterEach(async () => {
  await primary?.drain({ delayMs: 0, timeoutMs: 2000 });
  primary = undefined;
});

function start(mode: string, workers: number, log: winston.Logger): ClusterPrimary {
  primary = new ClusterPrimary({
    workers,
    exec,
    log,
    minUptimeMs: 60_000,
    backoffBaseMs: 100,
    backoffMaxMs: 1000,
    config: {
      host: '127.0.0.1',
      port: 1,
      reusePort: true,
      proxy: { fakeMode: mode },
      listener: {},
      logLevel: 'error',
      drain: { delayMs: 0, timeoutMs: 1000 },
    },
  });
  primary.start();
  return primary;
}

test('/readyz semantics: ready only when every live worker serves the current version', async () => {
  const { log } = capturingLogger();
  const p = start('hold', 2, log);
  expect(p.readiness().ready).toBe(false);
  expect(p.readiness().reasons).toContain('no routing table published yet');

  p.publish(table(1));
  await waitFor('both workers on version 1', () => p.readiness().ready);
  expect(p.workers().map((w) => [w.state, w.version])).toEqual([
    ['listening', 1],
    ['listening', 1],
  ]);

  // Version 2: the workers hold it until told; readiness names each worker still on version 1.
  p.publish(table(2));
  const [a, b] = p.workers();
  let r = p.readiness();
  expect(r.ready).toBe(false);
  expect(r.reasons).toEqual([
    `worker ${a!.id} (pid ${a!.pid}) serves version 1, current is 2`,
    `worker ${b!.id} (pid ${b!.pid}) serves version 1, current is 2`,
  ]);

  process.kill(a!.pid!, 'SIGUSR2');
  await waitFor('worker a on version 2', () => p.workers()[0]!.version === 2);
  r = p.readiness();
  expect(r.ready).toBe(false);
  expect(r.reasons).toEqual([`worker ${b!.id} (pid ${b!.pid}) serves version 1, current is 2`]);

  process.kill(b!.pid!, 'SIGUSR2');
  await waitFor('ready on version 2', () => p.readiness().ready);
  expect(p.stats().lastHandoff).toMatchObject({ version: 2, workers: 2 });

  // Draining fails readiness at once.
  const drained = p.drain({ delayMs: 0, timeoutMs: 2000 });
  expect(p.readiness().reasons[0]).toMatch(/draining/);
  expect(await drained).toEqual({ clean: true });
});

test('a replacement worker gets the current table before it listens', async () => {
  const { log, lines } = capturingLogger();
  const p = start('hold', 1, log);
  p.publish(table(1));
  await waitFor('ready on 1', () => p.readiness().ready);
  p.publish(table(2));
  const old = p.workers()[0]!;
  process.kill(old.pid!, 'SIGUSR2');
  await waitFor('ready on 2', () => p.readiness().ready);

  process.kill(old.pid!, 'SIGKILL');
  // The fake worker reports `listening` only together with its FIRST table's ack: so listening ⇒ it got v2 first.
  const fresh = await waitFor('a replacement listening', () => {
    const w = p.workers()[0]!;
    return w.pid !== old.pid && w.state === 'listening' ? w : undefined;
  });
  expect(fresh.version).toBe(2);
  expect(p.restarts).toBe(1);
  expect(p.readiness()).toEqual({ ready: true, reasons: [] });
  const restartLine = lines.find((l) => l.message === 'worker exited; restarting');
  expect(restartLine).toMatchObject({ pid: old.pid, signal: 'SIGKILL', restartInMs: 0, restarts: 1 });
});

test('a worker still applying a table gets only the latest of the versions published meanwhile', async () => {
  const { log } = capturingLogger();
  const p = start('hold', 1, log);
  p.publish(table(1));
  await waitFor('ready on 1', () => p.readiness().ready);
  // Version 2 goes out and is held; 3, 4 and 5 are published while the worker has not answered.
  for (const v of [2, 3, 4, 5]) p.publish(table(v));
  const received = async () => (await p.collectWorkerStats(2000))[0]?.requests;
  await waitFor('the worker answered the stats request', async () => (await received()) === 2);
  const w = p.workers()[0]!;
  process.kill(w.pid!, 'SIGUSR2'); // acknowledges 2: the primary sends 5, not 3 and 4
  await waitFor('version 5 sent', async () => (await received()) === 3);
  expect(p.workers()[0]!.version).toBe(2);
  process.kill(w.pid!, 'SIGUSR2');
  await waitFor('ready on 5', () => p.readiness().ready);
  expect(p.stats().lastHandoff).toMatchObject({ version: 5, workers: 1 });
  expect(await received()).toBe(3);
});

test('crash loop: restarts back off exponentially and are counted', async () => {
  const { log, lines } = capturingLogger();
  const p = start('crash', 1, log);
  p.publish(table(1));
  await waitFor('five restarts', () => p.restarts >= 5, 20_000);
  const delays = lines
    .filter((l) => l.message === 'worker exited; restarting')
    .slice(0, 5)
    .map((l) => l.restartInMs);
  console.log(`crash loop: restart delays ${JSON.stringify(delays)} ms, restarts ${p.restarts}`);
  expect(delays).toEqual([0, 100, 200, 400, 800]);
  expect(p.workers()[0]!.fastExits).toBeGreaterThanOrEqual(5);
  expect(p.readiness().ready).toBe(false);
});

/**
 * Consul change → served table, with real Consul agents (dc1 + dc2 from the test harness, test/support/consul.ts)
 * and edgegate as a real process (`edgegate run --consul`, default workers, default coalescing: hold-off 50 ms,
 * max 250 ms). Three `edgegate echo` instances of `billing` in dc2 behind the catalog route; a TTL check of
 * billing-1 is failed and passed through the dc2 agent, and the delay is measured the way the e2e test does:
 * fail → the request after the last one billing-1 answered; pass → the first answer from billing-1.
 *   node bench/consul-change.bench.ts [rounds=20]     (each round is two changes)
 * The table holds 1,001 routes (the catalog route plus 1,000 generated ones), so each change recompiles and hands
 * a realistic table to the workers. Prints one JSON line: p50 / p99 / max in ms, for fails, passes and all.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CATALOG_ROUTE_YAML,
  type Echo,
  type Gateway,
  percentile,
  register,
  startEcho,
  startGateway,
  stopEcho,
  ttl,
  writeRoutes,
} from '../test/e2e/consul/helpers.ts';
import { type ConsulPair, startConsulPair } from '../test/support/consul.ts';
import { makeRoute } from './lib/scenario.ts';

const ROUNDS = Number(process.argv[2] ?? 20);
const routesDir = mkdtempSync(join(tmpdir(), 'edgegate-bench-consul-routes-'));
const stateDir = mkdtempSync(join(tmpdir(), 'edgegate-bench-consul-state-'));
// A realistic table around the catalog route: 1,000 generated routes (bench/lib/scenario.ts), all backed by
// `billing` in dc2 so the watch set stays on services the agents know.
const generated = Array.from({ length: 1000 }, (_, i) => {
  const raw = makeRoute(i, { routes: 1000, endpoints: 0, datacenters: 1, servicesPerDc: 1 }).raw as {
    spec: { rules: { backends: unknown[] }[] };
  };
  for (const rule of raw.spec.rules) rule.backends = [{ consul: { service: 'billing', datacenter: 'dc2' } }];
  return JSON.stringify(raw);
});
writeRoutes(routesDir, {
  'generated.yaml': generated.join('\n---\n'),
  'catalog.yaml': CATALOG_ROUTE_YAML,
});

let pair: ConsulPair | undefined;
let gw: Gateway | undefined;
const echoes: Echo[] = [];
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const r = (n: number) => Math.round(n * 10) / 10;
  return {
    n: s.length,
    p50Ms: r(percentile(s, 50)),
    p99Ms: r(percentile(s, 99)),
    maxMs: r(s.at(-1) ?? Number.NaN),
  };
};

try {
  pair = await startConsulPair();
  process.stderr.write('consul dc1 + dc2 up\n');
  gw = await startGateway({ routesDir, stateDir, consulAddr: pair.dc1.httpAddr });
  process.stderr.write('edgegate up\n');
  for (const i of [1, 2, 3]) {
    const e = await startEcho(`billing-${i}`);
    echoes.push(e);
    await register(pair.dc2, {
      id: `billing-${i}`,
      service: 'billing',
      tags: ['edge'],
      port: e.port,
      httpStatus: 200,
      ttl: 'passing',
    });
  }
  process.stderr.write('billing-1..3 registered in dc2\n');
  const c = gw.client;
  // The proxy port accepts only once a worker holds a table: refused connections count as "not yet".
  const until = async (cond: () => Promise<boolean>, what: string) => {
    const deadline = performance.now() + 60_000;
    while (!(await cond().catch(() => false))) {
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await until(async () => Object.keys(await c.spread('/dc2/billing/x', 6)).length === 3, 'three instances');

  process.stderr.write('three instances served\n');
  const fails: number[] = [];
  const passes: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let t0 = performance.now();
    await ttl(pair.dc2, 'billing-1', 'fail');
    let last = t0;
    let clean = 0;
    const deadline = performance.now() + 10_000;
    while (clean < 12 && performance.now() < deadline) {
      const a = await c.get('/dc2/billing/x');
      if (a.name === 'billing-1') {
        last = a.at;
        clean = 0;
      } else clean++;
    }
    if (clean < 12) throw new Error('billing-1 still served 10 s after its check failed');
    fails.push(last - t0);
    t0 = performance.now();
    await ttl(pair.dc2, 'billing-1', 'pass');
    let back: number | undefined;
    while (back === undefined) {
      const a = await c.get('/dc2/billing/x');
      if (a.name === 'billing-1') back = a.at;
      else if (performance.now() - t0 > 10_000)
        throw new Error('billing-1 not back 10 s after its check passed');
    }
    passes.push(back - t0);
  }
  console.log(
    JSON.stringify({
      changes: fails.length + passes.length,
      coalescing: 'hold-off 50 ms, max 250 ms (defaults)',
      routes: 1001,
      fail: stats(fails),
      pass: stats(passes),
      all: stats([...fails, ...passes]),
    }),
  );
} catch (err) {
  process.stderr.write(`consul-change bench failed: ${(err as Error).stack}\n`);
  process.exitCode = 1;
} finally {
  await gw?.stop();
  for (const e of echoes) await stopEcho(e);
  await pair?.stop();
  rmSync(routesDir, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });
}
